//! A lineage manifest: read, its id recomputed, its chain drawn (parents
//! that point nowhere or at itself are errors, not loops).
#![no_main]

use clintune_lineage::{MANIFEST_FILE, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = clintune_fuzz::temp_dir();
    std::fs::write(dir.join(MANIFEST_FILE), data).expect("write");
    let Ok(manifest) = Manifest::read(dir) else {
        return;
    };
    let _ = manifest.compute_id();
    let _ = clintune_lineage::show::render_chain(dir);
});
