//! `clintune audit memorization`: does a tuned model give back what it was
//! trained on? Two measures (Carlini et al., "The Secret Sharer", 2019):
//!
//! - **exposure** of each canary the dataset planted: how many bits better
//!   than chance the model ranks the planted secret among same-format
//!   candidates, `log2(candidates scored) - log2(rank)`. Near 0: not
//!   memorized; at its maximum (the canary ranks first): memorized.
//! - **verbatim extraction**: greedy continuations of training examples'
//!   prefixes that reproduce the example exactly, against the same for
//!   validation examples the model never saw.

use crate::error::EvalError;
use crate::score::score_split;
use burn::prelude::Backend;
use clintune_core::Invalid;
use clintune_core::rng::SplitMix64;
use clintune_curate::canary::{self, Canary, random_secret};
use clintune_curate::labels::read_examples;
use clintune_curate::reader::{PackConfig, PackedReader};
use clintune_model::{GenerateConfig, Llama, Sampling};
use clintune_text::tokenizer::Tokenizer;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// The lineage stage of an audit.
pub const STAGE: &str = "audit";

/// The report's file name.
pub const REPORT_FILE: &str = "audit.json";

/// How the audit is run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditConfig {
    /// Same-format candidates each canary is ranked among.
    pub candidates: usize,
    /// Seed of the candidates.
    pub seed: u64,
    /// Examples per split whose prefixes are continued.
    pub extraction_examples: usize,
    /// Tokens of an example given as the prefix.
    pub prefix_tokens: usize,
    /// Tokens the continuation must reproduce.
    pub suffix_tokens: usize,
    /// Rows per forward pass when scoring candidates.
    pub batch_size: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            candidates: 10_000,
            seed: 0,
            extraction_examples: 64,
            prefix_tokens: 32,
            suffix_tokens: 32,
            batch_size: 16,
        }
    }
}

impl AuditConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), Invalid> {
        for (name, value) in [
            ("candidates", self.candidates),
            ("prefix_tokens", self.prefix_tokens),
            ("suffix_tokens", self.suffix_tokens),
            ("batch_size", self.batch_size),
        ] {
            if value == 0 {
                return Err(Invalid::new(name, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// One canary's exposure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryExposure {
    /// Its id.
    pub id: String,
    /// `sha256:` of its text (the secret itself stays in the dataset).
    pub sha256: String,
    /// Times it was planted.
    pub repeats: u32,
    /// Candidates scored, the canary included.
    pub scored: u64,
    /// 1 + candidates the model found likelier than the canary.
    pub rank: u64,
    /// `log2(scored) - log2(rank)`, in bits.
    pub exposure: f64,
    /// The most the ranking can show: `log2(scored)`.
    pub max_exposure: f64,
}

/// Exact reproductions of held-back suffixes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Extraction {
    /// Examples continued.
    pub examples: u64,
    /// Continuations equal to the example's own tokens.
    pub reproduced: u64,
    /// `reproduced / examples`; 0 without examples.
    pub rate: f64,
}

/// Extraction from training examples against validation examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExtractionReport {
    /// Training examples' prefixes continued.
    pub train: Extraction,
    /// Validation examples' (never trained on) prefixes continued.
    pub validation: Extraction,
}

/// The ranks of each canary's secret among `cfg.candidates` random secrets
/// of its format, by the model's likelihood of the secret after its prefix;
/// `progress` gets (canaries done, canaries in all).
pub fn exposures<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    canaries: &[Canary],
    cfg: &AuditConfig,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<CanaryExposure>, EvalError> {
    cfg.validate()?;
    let mut out = Vec::new();
    for (i, c) in canaries.iter().enumerate() {
        let secrets = candidates(c, cfg);
        let docs = secrets
            .iter()
            .map(|s| secret_document(tokenizer, &c.prefix, s))
            .collect::<Result<Vec<_>, _>>()?;
        let pack = PackConfig {
            seq_len: docs
                .iter()
                .map(|(ids, _)| ids.len())
                .max()
                .unwrap_or(1)
                .max(64),
            batch_size: cfg.batch_size,
            seed: 0,
            shuffle: false,
            pad_id: 0,
            pack: true,
        };
        let mut reader = PackedReader::from_documents(docs, pack)
            .map_err(|e| EvalError::dataset(Path::new(canary::CANARIES_FILE), e))?;
        let scores = score_split(model, &mut reader, &mut |_, _| {})?;
        let own = scores[0].nll;
        let rank = 1 + scores[1..].iter().filter(|s| s.nll < own).count() as u64;
        let scored = scores.len() as u64;
        out.push(CanaryExposure {
            id: c.id.clone(),
            sha256: c.sha256.clone(),
            repeats: c.repeats,
            scored,
            rank,
            exposure: (scored as f64).log2() - (rank as f64).log2(),
            max_exposure: (scored as f64).log2(),
        });
        progress(i as u64 + 1, canaries.len() as u64);
    }
    Ok(out)
}

/// The canary's secret first, then distinct random secrets of its format.
fn candidates(c: &Canary, cfg: &AuditConfig) -> Vec<String> {
    let mut rng = SplitMix64(cfg.seed);
    let mut seen = BTreeSet::from([c.secret.clone()]);
    let mut out = vec![c.secret.clone()];
    while out.len() <= cfg.candidates {
        let s = random_secret(&mut rng);
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// `prefix secret` tokenized, trained (scored) on the tokens after the
/// prefix's own.
fn secret_document(
    tokenizer: &Tokenizer,
    prefix: &str,
    secret: &str,
) -> Result<(Vec<u32>, Vec<u8>), EvalError> {
    let tokens = |text: &str| {
        tokenizer
            .encode_document_ids(text)
            .map_err(|e| EvalError::dataset(Path::new(canary::CANARIES_FILE), e))
    };
    let ids = tokens(&format!("{prefix} {secret}"))?;
    let head = tokens(prefix)?;
    let shared = ids.iter().zip(&head).take_while(|(a, b)| a == b).count();
    let mask = (0..ids.len())
        .map(|i| u8::from(i >= shared.max(1)))
        .collect();
    Ok((ids, mask))
}

/// Continues the first `cfg.extraction_examples` long-enough examples of
/// each split (canaries left out) and counts exact reproductions.
pub fn extraction<B: Backend>(
    model: &Llama<B>,
    dataset: &Path,
    cfg: &AuditConfig,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExtractionReport, EvalError> {
    cfg.validate()?;
    let mut rate = |split: &str| -> Result<Extraction, EvalError> {
        let need = cfg.prefix_tokens + cfg.suffix_tokens;
        let examples = read_examples(dataset, split, &|l| l.task != canary::TASK)
            .map_err(|e| EvalError::dataset(dataset, e))?;
        let chosen: Vec<_> = examples
            .iter()
            .filter(|e| e.input_ids.len() >= need)
            .take(cfg.extraction_examples)
            .collect();
        let mut x = Extraction::default();
        for (i, e) in chosen.iter().enumerate() {
            let (prefix, rest) = e.input_ids.split_at(cfg.prefix_tokens);
            let truth = &rest[..cfg.suffix_tokens];
            let generate = GenerateConfig {
                max_new_tokens: cfg.suffix_tokens,
                stop_tokens: Vec::new(),
                sampling: Sampling::greedy(),
            };
            let said = model.generate(prefix, &generate, need + 1, |_| {});
            x.examples += 1;
            x.reproduced += u64::from(said.tokens == truth);
            progress(i as u64 + 1, chosen.len() as u64);
        }
        x.rate = if x.examples == 0 {
            0.0
        } else {
            x.reproduced as f64 / x.examples as f64
        };
        Ok(x)
    };
    Ok(ExtractionReport {
        train: rate("train")?,
        validation: rate("validation")?,
    })
}

/// The canaries a dataset planted, from its `audit/canaries.json`.
pub fn read_canaries(dataset: &Path) -> Result<Vec<Canary>, EvalError> {
    let path = dataset.join(canary::CANARIES_FILE);
    if !path.is_file() {
        return Err(EvalError::dataset(
            dataset,
            "holds no canaries: curate with `[audit] canaries = N` (recipes/curate.toml) to plant some",
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| EvalError::dataset(&path, e))?;
    serde_json::from_str(&text).map_err(|e| EvalError::dataset(&path, e))
}

/// The content of `audit.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    /// The settings.
    pub config: AuditConfig,
    /// The model audited.
    pub model: crate::eval::Subject,
    /// The adapter applied to it, if any.
    pub adapter: Option<crate::eval::Subject>,
    /// The dataset whose canaries and examples were used.
    pub dataset: crate::eval::Subject,
    /// Bits of the canaries' format: the exposure a full search would show.
    pub format_bits: f64,
    /// Each canary.
    pub canaries: Vec<CanaryExposure>,
    /// Mean exposure by times planted.
    pub mean_exposure_by_repeats: std::collections::BTreeMap<u32, f64>,
    /// Verbatim extraction.
    pub extraction: ExtractionReport,
}

impl AuditReport {
    /// The report of these results.
    pub fn new(
        config: AuditConfig,
        subjects: crate::eval::Subjects,
        canaries: Vec<CanaryExposure>,
        extraction: ExtractionReport,
    ) -> Self {
        let mut by: std::collections::BTreeMap<u32, (f64, u32)> = Default::default();
        for c in &canaries {
            let e = by.entry(c.repeats).or_default();
            e.0 += c.exposure;
            e.1 += 1;
        }
        Self {
            config,
            model: subjects.model,
            adapter: subjects.adapter,
            dataset: subjects.dataset,
            format_bits: canary::format_bits(),
            mean_exposure_by_repeats: by
                .into_iter()
                .map(|(r, (sum, n))| (r, sum / f64::from(n)))
                .collect(),
            canaries,
            extraction,
        }
    }

    /// The highest exposure of any canary.
    pub fn max_exposure(&self) -> f64 {
        self.canaries.iter().map(|c| c.exposure).fold(0.0, f64::max)
    }
}

/// Writes `report` to `out/audit.json` with its manifest, atomically.
pub fn write_report(
    out: &Path,
    force: bool,
    report: &AuditReport,
    parents: &[(clintune_lineage::Manifest, std::path::PathBuf)],
) -> Result<clintune_lineage::Manifest, EvalError> {
    let mut counts = serde_json::Map::new();
    counts.insert("canaries".into(), report.canaries.len().into());
    counts.insert(
        "max_exposure_milli_bits".into(),
        ((report.max_exposure() * 1000.0).round() as u64).into(),
    );
    let stage = crate::eval::Stage {
        name: STAGE,
        file: REPORT_FILE,
        config: clintune_core::json::to_value("the audit settings", &report.config),
        counts,
    };
    crate::eval::write_stage(out, force, &stage, report, parents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn canary() -> Canary {
        Canary {
            id: "canary-00".into(),
            prefix: canary::PREFIX.into(),
            secret: "7K2-QX9-4PL".into(),
            repeats: 4,
            sha256: String::new(),
        }
    }

    #[test]
    fn candidates_are_distinct_with_the_canary_first() {
        let cfg = AuditConfig {
            candidates: 500,
            ..AuditConfig::default()
        };
        let all = candidates(&canary(), &cfg);
        assert_eq!(all.len(), 501);
        assert_eq!(all[0], "7K2-QX9-4PL");
        assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 501);
        assert_eq!(candidates(&canary(), &cfg), all, "seeded");
    }

    /// Only the secret's tokens are scored, not the prefix shared by all.
    #[test]
    fn the_prefix_is_not_scored() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/llama/llama-gqa-rope3");
        let tokenizer = Tokenizer::load(&dir).expect("tokenizer");
        let (ids, mask) = secret_document(&tokenizer, canary::PREFIX, "7K2-QX9-4PL").expect("doc");
        let head = tokenizer.encode(canary::PREFIX).expect("ids");
        let scored = mask.iter().filter(|&&m| m == 1).count();
        assert!(scored > 0 && scored < ids.len());
        assert!(mask[..head.len() - 1].iter().all(|&m| m == 0));
        assert_eq!(ids.len(), mask.len());
    }
}
