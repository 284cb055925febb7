//! Configuration text: a training recipe (with its `[curate]`), a curation
//! config, and a de-identification policy read from a file. Errors, never
//! panics; a recipe that parses has a devices list and a hash.
#![no_main]

use clintune_curate::config::CurateConfig;
use clintune_deid::policy::Policy;
use clintune_train::recipe::Recipe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(recipe) = Recipe::parse(text) {
        recipe.hardware.parse_devices().expect("a valid recipe names devices");
        let _ = recipe.content_hash();
    }
    let _ = CurateConfig::parse(text);
    let path = clintune_fuzz::temp_dir().join("policy.toml");
    std::fs::write(&path, data).expect("write");
    if let Ok(policy) = Policy::load(&path) {
        let _ = policy.scrubber();
    }
});
