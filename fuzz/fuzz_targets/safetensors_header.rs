//! A `model.safetensors` file: its header is read and checked before any
//! tensor, and reading each tensor back must stay within the file.
#![no_main]

use clintune_model::weights::WeightFiles;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = clintune_fuzz::temp_dir().join("model.safetensors");
    std::fs::write(&path, data).expect("write");
    let Ok(weights) = WeightFiles::open_file(&path) else {
        return;
    };
    let names: Vec<String> = weights.names().map(str::to_owned).collect();
    for name in names.iter().take(8) {
        let _ = weights.read_f32(name);
    }
});
