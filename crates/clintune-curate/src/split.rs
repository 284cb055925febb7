//! Patient-level assignment: splits and shards from keyed hashes.
//!
//! Every example of a patient lands in the same split, so no patient is seen
//! in training and evaluation both. The hash is keyed with the configured
//! salt, so a split is reproducible and another salt gives an independent one.

use crate::config::SplitConfig;
use sha2::{Digest, Sha256};

/// A number in [0, 1) from a SHA-256 of `parts`, separated so that
/// ("ab","c") and ("a","bc") differ.
fn unit_hash(parts: &[&str]) -> f64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut top = [0u8; 8];
    top.copy_from_slice(&digest[..8]);
    // 53 bits: exactly representable in an f64.
    (u64::from_be_bytes(top) >> 11) as f64 / (1u64 << 53) as f64
}

/// The split of a patient: `train`, `validation` or `test`.
pub fn split_of(patient_key: &str, cfg: &SplitConfig) -> &'static str {
    let u = unit_hash(&["split", &cfg.salt, patient_key]);
    if u < cfg.train {
        "train"
    } else if u < cfg.train + cfg.validation {
        "validation"
    } else {
        "test"
    }
}

/// Which of `count` shards processes a patient. Independent of the split salt
/// so that resharding never moves a patient between splits.
pub fn shard_of(patient_key: &str, count: u32) -> u32 {
    ((unit_hash(&["shard", patient_key]) * f64::from(count)) as u32).min(count.saturating_sub(1))
}

/// `I/N` as given to `--shard`: shard `I` (0-based) of `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = clintune_core::Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            clintune_core::Invalid::new(
                "shard",
                format!("must be I/N with 0 <= I < N (e.g. 0/4), got `{s}`"),
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_respected_and_salt_changes_the_split() {
        let cfg = SplitConfig::default();
        let keys: Vec<String> = (0..10_000).map(|i| format!("pt-{i:020}")).collect();
        let train = keys.iter().filter(|k| split_of(k, &cfg) == "train").count();
        assert!((7_700..8_300).contains(&train), "{train}");
        let other = SplitConfig {
            salt: "other".into(),
            ..cfg.clone()
        };
        let moved = keys
            .iter()
            .filter(|k| split_of(k, &cfg) != split_of(k, &other))
            .count();
        assert!(moved > 2_000, "{moved}");
    }

    #[test]
    fn shards_cover_every_patient_once() {
        let mut counts = [0usize; 3];
        for i in 0..3_000 {
            counts[shard_of(&format!("pt-{i}"), 3) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (850..1_150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn shard_syntax() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
