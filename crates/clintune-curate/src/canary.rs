//! Canaries for the memorization audit (Carlini et al., "The Secret
//! Sharer", 2019): random secrets of a fixed format, each planted in the
//! train split 1, 4 or 16 times. A model that ranks a planted secret above
//! most same-format candidates has memorized it, and may memorize real
//! identifiers seen as often.
//!
//! The secrets are written to `audit/canaries.json` in the dataset, where
//! the audit reads them; the manifest and the card hold only their hashes.

use crate::encode::{Example, example_id};
use crate::error::CurateError;
use clintune_core::Invalid;
use clintune_core::hash::sha256_hex;
use clintune_core::rng::{SplitMix64, mix64};
use clintune_text::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

/// Where the canaries are written, inside the dataset.
pub const CANARIES_FILE: &str = "audit/canaries.json";

/// The task name of planted examples.
pub const TASK: &str = "canary";

/// The text before every secret.
pub const PREFIX: &str = "Medical record number:";

/// The secret's alphabet: 36 symbols.
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Symbols per group and groups per secret: `7K2-QX9-4PL`.
const GROUP: usize = 3;
const GROUPS: usize = 3;

/// `[audit]`: canaries planted in the train split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How many secrets to plant; 0 plants none.
    pub canaries: usize,
    /// How often each secret appears, in turn: with the default the first
    /// canary is planted once, the second 4 times, the third 16 times, the
    /// fourth once again, and so on.
    pub repeats: Vec<u32>,
    /// Seed of the secrets (mixed with the de-identified input's id).
    pub seed: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            canaries: 0,
            repeats: vec![1, 4, 16],
            seed: 0,
        }
    }
}

impl AuditConfig {
    /// True when nothing is planted (and the section is left out of the
    /// config hash, so datasets curated before canaries keep their ids).
    pub fn is_off(&self) -> bool {
        self.canaries == 0
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.canaries > 0 && self.repeats.is_empty() {
            return Err(Invalid::new(
                "audit.repeats",
                "must name at least one count",
            ));
        }
        if self.repeats.iter().any(|&r| r == 0 || r > 1000) {
            return Err(Invalid::new(
                "audit.repeats",
                "each must be between 1 and 1000",
            ));
        }
        if self.canaries > 1000 {
            return Err(Invalid::new("audit.canaries", "must be at most 1000"));
        }
        Ok(())
    }
}

/// One planted secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// `canary-NN`, also its pseudo-patient key.
    pub id: String,
    /// The text before the secret.
    pub prefix: String,
    /// The secret, e.g. `7K2-QX9-4PL`.
    pub secret: String,
    /// Times it was planted.
    pub repeats: u32,
    /// `sha256:` of `prefix secret`, for public places.
    pub sha256: String,
}

impl Canary {
    /// The planted text.
    pub fn text(&self) -> String {
        format!("{} {}", self.prefix, self.secret)
    }
}

/// A random secret of the canaries' format drawn from `rng`.
pub fn random_secret(rng: &mut SplitMix64) -> String {
    let mut s = String::with_capacity(GROUP * GROUPS + GROUPS - 1);
    for g in 0..GROUPS {
        if g > 0 {
            s.push('-');
        }
        for _ in 0..GROUP {
            s.push(char::from(
                ALPHABET[rng.below(ALPHABET.len() as u64) as usize],
            ));
        }
    }
    s
}

/// Base-2 logarithm of how many secrets the format allows.
pub fn format_bits() -> f64 {
    (GROUP * GROUPS) as f64 * (ALPHABET.len() as f64).log2()
}

/// The canaries `cfg` asks for, drawn from its seed and `data` (what
/// identifies the de-identified input), so the same curation plants the same
/// secrets and other data other ones.
pub fn draw(cfg: &AuditConfig, data: &str) -> Vec<Canary> {
    let salt = sha256_hex(data.as_bytes());
    let salt = u64::from_str_radix(&salt[..16], 16).unwrap_or_default();
    let mut rng = SplitMix64(mix64(cfg.seed ^ salt));
    (0..cfg.canaries)
        .map(|i| {
            let secret = random_secret(&mut rng);
            let prefix = PREFIX.to_string();
            let sha256 = format!(
                "sha256:{}",
                sha256_hex(format!("{prefix} {secret}").as_bytes())
            );
            Canary {
                id: format!("canary-{i:02}"),
                prefix,
                secret,
                repeats: cfg.repeats[i % cfg.repeats.len()],
                sha256,
            }
        })
        .collect()
}

/// Each canary's train examples, one per repeat, trained on in full.
pub fn examples(canaries: &[Canary], tokenizer: &Tokenizer) -> Result<Vec<Example>, CurateError> {
    let mut out = Vec::new();
    for c in canaries {
        let text = c.text();
        let input_ids = tokenizer.encode_document_ids(&text)?;
        for r in 0..c.repeats {
            // Each copy its own id: the ids of a split are distinct.
            let copy = format!("{}#{r}", c.id);
            out.push(Example {
                example_id: example_id(TASK, &copy, &text),
                patient_key: c.id.clone(),
                split: "train".into(),
                task: TASK.into(),
                text: text.clone(),
                loss_mask: vec![1; input_ids.len()],
                input_ids: input_ids.clone(),
                record_keys: Vec::new(),
                exact_key: 0,
                signature: Vec::new(),
                ..Example::default()
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_format_and_repeat_in_turn() {
        let cfg = AuditConfig {
            canaries: 4,
            ..AuditConfig::default()
        };
        let canaries = draw(&cfg, "sha256:parent");
        let repeats: Vec<u32> = canaries.iter().map(|c| c.repeats).collect();
        assert_eq!(repeats, [1, 4, 16, 1]);
        for c in &canaries {
            let groups: Vec<&str> = c.secret.split('-').collect();
            assert_eq!(groups.len(), GROUPS);
            assert!(
                groups
                    .iter()
                    .all(|g| g.len() == GROUP && g.bytes().all(|b| ALPHABET.contains(&b)))
            );
        }
        assert_eq!(draw(&cfg, "sha256:parent"), canaries, "deterministic");
        assert_ne!(draw(&cfg, "sha256:other")[0].secret, canaries[0].secret);
        assert!((format_bits() - 9.0 * 36f64.log2()).abs() < 1e-12);
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = AuditConfig {
            canaries: 2,
            repeats: vec![0],
            seed: 0,
        };
        assert_eq!(bad.validate().unwrap_err().field, "audit.repeats");
    }
}
