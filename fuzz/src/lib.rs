//! What the fuzz targets share: the built-in policy, a fixed key, and a
//! folder for targets whose parser reads a file.

use clintune_core::secret::{KeySource, SecretKey};
use clintune_deid::policy::{LoadedPolicy, Policy};
use clintune_deid::pseudonym::Pseudonymizer;
use clintune_deid::resource::Deidentifier;
use clintune_deid::scrub::Scrubber;
use std::collections::BTreeSet;
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

/// The built-in policy, its scrubber and surrogates under the fixed key:
/// what the record-level targets de-identify with, made once per process.
pub struct Deid {
    /// The policy.
    pub policy: LoadedPolicy,
    /// Its free-text scrubber.
    pub scrubber: Scrubber,
    /// Surrogates under the fixed key.
    pub pseudonymizer: Pseudonymizer,
}

impl Deid {
    /// The shared instance.
    pub fn get() -> &'static Deid {
        static DEID: OnceLock<Deid> = OnceLock::new();
        DEID.get_or_init(|| {
            let policy = builtin_policy();
            Deid {
                scrubber: policy.scrubber().expect("scrubber"),
                policy,
                pseudonymizer: pseudonymizer(),
            }
        })
    }

    /// A de-identifier as of 2026-01-01 with no folder words.
    pub fn deidentifier<'a>(&'a self, path_words: &'a BTreeSet<String>) -> Deidentifier<'a> {
        Deidentifier {
            policy: &self.policy.policy,
            scrubber: &self.scrubber,
            pseudonymizer: &self.pseudonymizer,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("date"),
            path_words,
        }
    }
}
