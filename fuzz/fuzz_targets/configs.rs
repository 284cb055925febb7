//! Configuration text: a curation config (or a recipe's `[curate]`), and a
//! de-identification policy read from a file. Errors, never panics.
#![no_main]

use clintune_curate::config::CurateConfig;
use clintune_deid::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = CurateConfig::parse(text);
    let path = clintune_fuzz::temp_dir().join("policy.toml");
    std::fs::write(&path, data).expect("write");
    if let Ok(policy) = Policy::load(&path) {
        let _ = policy.scrubber();
    }
});
