//! The default policy and its dictionaries, compiled into clintune from
//! `deid/`, so that `deid`, `scan` and `run` work from any folder without
//! `--policy`. The bytes are those of `deid/` at build time: a run with the
//! built-in policy has the same configuration hash as one given
//! `--policy deid/safe-harbor.toml` from the same, unmodified checkout.

/// How the built-in policy is named in messages and manifests.
pub const NAME: &str = "built-in deid/safe-harbor.toml";

/// The policy file.
pub(crate) const POLICY: &str = include_str!("../../../deid/safe-harbor.toml");

/// The dictionary files, by path under the dictionaries folder, in the order
/// the configuration hash lists them: `*.txt` by name, then `philter/*.zst`.
pub(crate) const DICTIONARIES: &[(&str, &[u8])] = &[
    (
        "clinical-terms.txt",
        include_bytes!("../../../deid/dictionaries/clinical-terms.txt"),
    ),
    (
        "common-words.txt",
        include_bytes!("../../../deid/dictionaries/common-words.txt"),
    ),
    (
        "first-names.txt",
        include_bytes!("../../../deid/dictionaries/first-names.txt"),
    ),
    (
        "phi-model.txt",
        include_bytes!("../../../deid/dictionaries/phi-model.txt"),
    ),
    (
        "places.txt",
        include_bytes!("../../../deid/dictionaries/places.txt"),
    ),
    (
        "surnames.txt",
        include_bytes!("../../../deid/dictionaries/surnames.txt"),
    ),
    (
        "philter/first-names.txt.zst",
        include_bytes!("../../../deid/dictionaries/philter/first-names.txt.zst"),
    ),
    (
        "philter/last-names.txt.zst",
        include_bytes!("../../../deid/dictionaries/philter/last-names.txt.zst"),
    ),
    (
        "philter/safe-words.txt.zst",
        include_bytes!("../../../deid/dictionaries/philter/safe-words.txt.zst"),
    ),
];

/// The licences of the lists above, which travel with them in the binary
/// (SCOWL's word list; Philter's BSD-3-Clause lists).
pub const NOTICES: &[(&str, &str)] = &[
    (
        "deid/dictionaries/LICENSE-SCOWL",
        include_str!("../../../deid/dictionaries/LICENSE-SCOWL"),
    ),
    (
        "deid/dictionaries/philter/LICENSE-PHILTER",
        include_str!("../../../deid/dictionaries/philter/LICENSE-PHILTER"),
    ),
];

/// A built-in dictionary file by its path under the dictionaries folder.
pub(crate) fn dictionary(rel: &str) -> Option<&'static [u8]> {
    DICTIONARIES
        .iter()
        .find(|(name, _)| *name == rel)
        .map(|(_, bytes)| *bytes)
}
