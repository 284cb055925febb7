//! What the fuzz targets share: the built-in policy, a fixed key, and a
//! folder for targets whose parser reads a file.

use clintune_core::secret::{KeySource, SecretKey};
use clintune_deid::policy::{LoadedPolicy, Policy};
use clintune_deid::pseudonym::Pseudonymizer;
use std::sync::OnceLock;

/// The policy compiled into clintune.
pub fn builtin_policy() -> LoadedPolicy {
    Policy::builtin().expect("the built-in policy loads")
}

/// Surrogates under a fixed key (the inputs are random, not patients).
pub fn pseudonymizer() -> Pseudonymizer {
    let key = SecretKey::from_bytes(
        b"fuzz-key-0123456789abcdef0123456789",
        KeySource::Env("FUZZ".into()),
    )
    .expect("a 35-byte key is long enough");
    Pseudonymizer::new(key)
}

/// This process's temporary folder, made on first use.
pub fn temp_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"))
        .path()
}
