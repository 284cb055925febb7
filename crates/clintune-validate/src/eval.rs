//! `clintune eval`: a model's loss, perplexity and token accuracy on a
//! curated split, by task, against a baseline when one is given, written as
//! `eval.json` with a lineage manifest whose parents are the models and the
//! dataset.

use crate::diagnosis::{self, Answers, ScoreDifferences, Scores};
use crate::error::EvalError;
use crate::score::{Totals, score_split};
use crate::summary::{Bootstrap, Differences, Figures, Group, compare, group};
use burn::prelude::Backend;
use clintune_core::Invalid;
use clintune_core::staging::StagingDir;
use clintune_curate::labels::{ExampleLabel, read_examples, read_labels};
use clintune_curate::reader::{PackConfig, PackedReader};
use clintune_lineage::manifest::content_hash;
use clintune_lineage::{FileEntry, Manifest, ManifestBuilder, ParentRef};
use clintune_model::Llama;
use clintune_text::tokenizer::Tokenizer;
use serde::Serialize;
use serde_json::{Map, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The report's file name.
pub const REPORT_FILE: &str = "eval.json";

/// The lineage stage of an evaluation.
pub const STAGE: &str = "eval";

/// How a split is evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvalConfig {
    /// The split: `test` (held-out patients), `validation` or `train`.
    pub split: String,
    /// Tokens per packed row; longer examples are scored in pieces.
    pub seq_len: usize,
    /// Rows per forward pass.
    pub batch_size: usize,
    /// How the intervals of a comparison are drawn.
    pub bootstrap: Bootstrap,
    /// Answer `next-diagnosis` examples by greedy generation and score the
    /// diagnoses named (slower than scoring alone).
    pub generate: bool,
}

impl EvalConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.seq_len < 2 {
            return Err(Invalid::new("seq_len", "must be at least 2"));
        }
        if self.batch_size == 0 {
            return Err(Invalid::new("batch_size", "must be at least 1"));
        }
        if self.bootstrap.resamples == 0 {
            return Err(Invalid::new("bootstrap", "must be at least 1"));
        }
        Ok(())
    }
}

/// One model's per-example scores on a split, grouped by task.
#[derive(Debug, Clone)]
pub struct SplitScores {
    /// Per task, and [`crate::summary::ALL`].
    pub groups: BTreeMap<String, Group>,
    /// `next-diagnosis` answers, when generation is on and the split has
    /// such examples.
    pub diagnoses: Option<Answers>,
}

/// Scores `model` (whose context holds `context` tokens) on `cfg.split` of
/// the curated dataset in `dataset`; `progress` gets the phase (`scoring`,
/// `generating`), units done and units in all.
pub fn evaluate<B: Backend>(
    model: &Llama<B>,
    context: usize,
    dataset: &Path,
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<SplitScores, EvalError> {
    cfg.validate()?;
    let pack = PackConfig {
        seq_len: cfg.seq_len,
        batch_size: cfg.batch_size,
        seed: 0,
        shuffle: false,
        pad_id: 0,
        pack: true,
    };
    let mut reader = PackedReader::open(dataset, &cfg.split, pack)
        .map_err(|e| EvalError::dataset(dataset, e))?;
    let labels = read_labels(dataset, &cfg.split).map_err(|e| EvalError::dataset(dataset, e))?;
    check_labels(&reader, &labels).map_err(|e| EvalError::dataset(dataset, e))?;
    let scores = score_split(model, &mut reader, &mut |d, n| progress("scoring", d, n))?;
    let pairs = labels
        .iter()
        .map(|l| (l.patient_key.as_str(), l.task.as_str()));
    let groups = group(&scores, pairs);
    let diagnoses = if cfg.generate && groups.contains_key(diagnosis::TASK) {
        let examples = read_examples(dataset, &cfg.split, &|l| l.task == diagnosis::TASK)
            .map_err(|e| EvalError::dataset(dataset, e))?;
        let tokenizer = Tokenizer::load(dataset).map_err(|e| EvalError::dataset(dataset, e))?;
        let mut report = |d, n| progress("generating", d, n);
        let limits = (context, diagnosis::SLACK_TOKENS);
        Some(diagnosis::answer(
            model,
            &tokenizer,
            &examples,
            limits,
            &mut report,
        )?)
    } else {
        None
    };
    Ok(SplitScores { groups, diagnoses })
}

/// The labels must name the reader's documents in its order: both read the
/// same files, so a difference means the split changed between the reads.
fn check_labels(reader: &PackedReader, labels: &[ExampleLabel]) -> Result<(), String> {
    let same = labels.len() == reader.num_documents()
        && labels
            .iter()
            .enumerate()
            .all(|(i, l)| reader.example_id(i) == Some(l.example_id.as_str()));
    if same {
        Ok(())
    } else {
        Err("the split changed while it was read; evaluate again".into())
    }
}

/// What was evaluated: a directory and, when it has one, its manifest id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// The directory, as given.
    pub path: String,
    /// Its lineage manifest's id, when it has one.
    pub id: Option<String>,
}

impl Subject {
    /// `dir`, with its manifest's id if `manifest` is given.
    pub fn new(dir: &Path, manifest: Option<&Manifest>) -> Self {
        Self {
            path: dir.display().to_string(),
            id: manifest.map(|m| m.id.clone()),
        }
    }
}

/// One task's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskReport {
    /// Examples evaluated.
    pub examples: u64,
    /// Distinct patients.
    pub patients: u64,
    /// Trained tokens scored.
    pub tokens: u64,
    /// The model's figures; `null` when no token is trained on.
    pub model: Option<Figures>,
    /// The baseline's figures, when there is a baseline.
    pub baseline: Option<Figures>,
    /// Model minus baseline, with bootstrap intervals over patients.
    pub difference: Option<Differences>,
    /// Diagnoses named by generation (`next-diagnosis` only).
    pub diagnoses: Option<DiagnosisReport>,
}

/// How well generated answers name the recorded diagnoses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnosisReport {
    /// Examples answered.
    pub examples: u64,
    /// Examples not answered: the prompt alone fills the context.
    pub too_long: u64,
    /// The model's precision, recall and F1 over normalised names.
    pub model: Option<Scores>,
    /// The baseline's.
    pub baseline: Option<Scores>,
    /// Model minus baseline, with bootstrap intervals over patients.
    pub difference: Option<ScoreDifferences>,
}

fn diagnosis_report(
    model: &Answers,
    baseline: Option<&Answers>,
    boot: Bootstrap,
) -> DiagnosisReport {
    DiagnosisReport {
        examples: model.examples,
        too_long: model.too_long,
        model: Scores::of(&model.totals()),
        baseline: baseline.and_then(|b| Scores::of(&b.totals())),
        difference: baseline.and_then(|b| diagnosis::compare(model, b, boot)),
    }
}

/// The content of `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// The settings.
    pub config: EvalConfig,
    /// The model evaluated (with its adapter, if one was applied).
    pub model: Subject,
    /// The adapter applied to the model, if any.
    pub adapter: Option<Subject>,
    /// What it is compared with, if anything.
    pub baseline: Option<Subject>,
    /// The curated dataset.
    pub dataset: Subject,
    /// Per task, and `all`.
    pub tasks: BTreeMap<String, TaskReport>,
}

/// The subjects of a report.
#[derive(Debug, Clone)]
pub struct Subjects {
    /// The model.
    pub model: Subject,
    /// Its adapter.
    pub adapter: Option<Subject>,
    /// The baseline.
    pub baseline: Option<Subject>,
    /// The dataset.
    pub dataset: Subject,
}

impl EvalReport {
    /// The report of `model`'s scores, compared with `baseline`'s when given
    /// (scored on the same split).
    pub fn new(
        config: EvalConfig,
        subjects: Subjects,
        model: &SplitScores,
        baseline: Option<&SplitScores>,
    ) -> Self {
        let tasks = model
            .groups
            .iter()
            .map(|(task, g)| {
                let base = baseline.and_then(|b| b.groups.get(task));
                let mut report = task_report(g, base, config.bootstrap);
                if task == diagnosis::TASK {
                    report.diagnoses = model.diagnoses.as_ref().map(|m| {
                        let base = baseline.and_then(|b| b.diagnoses.as_ref());
                        diagnosis_report(m, base, config.bootstrap)
                    });
                }
                (task.clone(), report)
            })
            .collect();
        Self {
            config,
            model: subjects.model,
            adapter: subjects.adapter,
            baseline: subjects.baseline,
            dataset: subjects.dataset,
            tasks,
        }
    }
}

fn task_report(model: &Group, baseline: Option<&Group>, boot: Bootstrap) -> TaskReport {
    let totals: Totals = model.totals();
    TaskReport {
        examples: model.examples,
        patients: model.patients.len() as u64,
        tokens: totals.tokens,
        model: Figures::of(&totals),
        baseline: baseline.and_then(|b| Figures::of(&b.totals())),
        difference: baseline.and_then(|b| compare(model, b, boot)),
        diagnoses: None,
    }
}

/// The manifest in `dir`, if it has one; a manifest that is there but
/// unreadable is an error, not a missing parent.
pub fn manifest_of(dir: &Path) -> Result<Option<Manifest>, EvalError> {
    if !dir
        .join(clintune_lineage::manifest::MANIFEST_FILE)
        .is_file()
    {
        return Ok(None);
    }
    Manifest::read(dir)
        .map(Some)
        .map_err(|e| EvalError::model(dir, e))
}

/// Writes `report` to `out/eval.json` with a manifest whose parents are
/// `parents` (manifest, directory); atomically: nothing appears at `out`
/// unless both are written.
pub fn write_report(
    out: &Path,
    force: bool,
    report: &EvalReport,
    parents: &[(Manifest, PathBuf)],
) -> Result<Manifest, EvalError> {
    let all = report.tasks.get(crate::summary::ALL);
    let mut counts = Map::new();
    counts.insert("examples".into(), json!(all.map_or(0, |t| t.examples)));
    counts.insert("patients".into(), json!(all.map_or(0, |t| t.patients)));
    counts.insert("tokens".into(), json!(all.map_or(0, |t| t.tokens)));
    let stage = Stage {
        name: STAGE,
        file: REPORT_FILE,
        config: clintune_core::json::to_value("the evaluation settings", &report.config),
        counts,
    };
    write_stage(out, force, &stage, report, parents)
}

/// A validation stage's output: one JSON report and its manifest.
pub struct Stage {
    /// The lineage stage (`eval`, `audit`).
    pub name: &'static str,
    /// The report's file name.
    pub file: &'static str,
    /// The settings, hashed into the manifest.
    pub config: serde_json::Value,
    /// The manifest's counts.
    pub counts: Map<String, serde_json::Value>,
}

/// Writes `report` as `out/<stage.file>` with its manifest, atomically.
pub fn write_stage(
    out: &Path,
    force: bool,
    stage: &Stage,
    report: &impl Serialize,
    parents: &[(Manifest, PathBuf)],
) -> Result<Manifest, EvalError> {
    let staging = StagingDir::new(out, force)?;
    let file = staging.path().join(stage.file);
    let text = clintune_core::json::to_pretty(stage.file, report);
    std::fs::write(&file, text.as_bytes()).map_err(|e| EvalError::output(&file, e))?;
    let mut b = ManifestBuilder::new(stage.name, content_hash(&stage.config))
        .config(stage.name, stage.config.clone());
    for (manifest, dir) in parents {
        b = b.parent(ParentRef::locate(manifest, dir, out));
    }
    let entry = FileEntry::from_file(&file, stage.file, None)
        .map_err(|e| EvalError::output(&file, e))?
        .with_kind("report");
    let manifest = b.output(entry).counts(stage.counts.clone()).finish();
    manifest
        .write(staging.path())
        .map_err(|e| EvalError::output(staging.path(), e))?;
    staging.commit()?;
    Ok(manifest)
}
