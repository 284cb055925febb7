//! The curation run: verified de-identified records in, a dataset out.
//!
//! `run` builds candidates (examples that passed the filters, with their dedup
//! keys) and then finalizes them: deduplicates, writes the split files, the
//! tokenizer, the dataset card and the manifest. With `--shard I/N` it stops
//! after the candidates of one shard's patients; `merge` finalizes the union
//! of all shards. Single runs and merges share `finalize`, which sees only the
//! candidates, so both give the same dataset.

use crate::config::CurateConfig;
use crate::dedup::{self, DedupConfig, Item, Verdict};
use crate::encode::{Encoder, Example};
use crate::error::CurateError;
use crate::finalize;
use crate::source::Source;
use crate::split::{Shard, shard_of, split_of};
use crate::stats::Tallies;
use crate::store::{self, Layout};
use crate::tasks::{self, Content, Draft};
use clintune_core::progress::{Progress, Silent};
use clintune_core::staging::StagingDir;
use clintune_lineage::manifest::absolute_path;
use clintune_lineage::{FileEntry, Manifest, ManifestBuilder, ParentRef};
use clintune_text::tokenizer::{TOKENIZER_FILE, TOKENIZER_FILES, TemplateSource, Tokenizer};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Stage name in manifests and file metadata.
pub const STAGE: &str = "curate";
/// Stage name of one shard's candidates.
pub const SHARD_STAGE: &str = "curate-shard";
/// Candidate file of a shard.
pub const CANDIDATES_FILE: &str = "candidates.parquet";

/// What to curate, and where.
#[derive(Debug, Clone)]
pub struct CurateOptions {
    /// A `clintune deid` output directory.
    pub input: PathBuf,
    /// The effective configuration.
    pub config: CurateConfig,
    /// A tokenizer (a `tokenizer.json` or a directory holding one); without
    /// it a byte-level BPE is trained on the train split.
    pub tokenizer: Option<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Replace an existing output directory.
    pub force: bool,
    /// Process only this shard's patients and write candidates for `merge`.
    pub shard: Option<Shard>,
}

/// What a run made.
#[derive(Debug, Clone)]
pub struct CurateSummary {
    /// The output directory.
    pub out: PathBuf,
    /// The manifest written.
    pub manifest: Manifest,
}

/// Curates `opts.input` into `opts.out`.
pub fn run(opts: &CurateOptions) -> Result<CurateSummary, CurateError> {
    run_with_progress(opts, &Silent)
}

/// [`run`], reporting the tokenizing phase to `progress`.
pub fn run_with_progress(
    opts: &CurateOptions,
    progress: &dyn Progress,
) -> Result<CurateSummary, CurateError> {
    let staging = StagingDir::new(&opts.out, opts.force)?;
    let shard = opts.shard;
    let source = Source::open(&opts.input, |key| {
        shard.is_none_or(|s| shard_of(key, s.count) == s.index)
    })?;
    let mut tallies = Tallies::default();
    let drafts = build_drafts(&source, &opts.config, &mut tallies);
    let tokenizer = tokenizer_for(opts, &drafts)?;
    let candidates = encode_all(&drafts, &tokenizer, &opts.config, &mut tallies, progress)?;
    tokenizer.save(staging.path())?;
    let manifest = match shard {
        Some(shard) => write_shard(&staging, &source, opts, shard, &candidates, &tallies)?,
        None => {
            let parent = ParentRef::locate(&source.manifest, &source.dir, &opts.out);
            let inputs = source_inputs(&source, opts.tokenizer.as_deref())?;
            let ctx = finalize::Context {
                config: &opts.config,
                parent,
                inputs,
                records: source.files.iter().map(|f| f.sha256.clone()).collect(),
                tallies,
            };
            finalize::write(staging.path(), candidates, ctx)?
        }
    };
    let out = staging.commit()?;
    Ok(CurateSummary { out, manifest })
}

/// Every draft of every patient, with its split; filtered by length.
fn build_drafts(
    source: &Source,
    cfg: &CurateConfig,
    tallies: &mut Tallies,
) -> Vec<(Draft, &'static str)> {
    let per_patient: Vec<(Vec<Draft>, tasks::Tally)> = source
        .patients
        .par_iter()
        .map(|(key, records)| {
            let mut tally = tasks::Tally::new();
            let drafts = tasks::build(key, records, &cfg.tasks, &mut tally);
            (drafts, tally)
        })
        .collect();
    let mut out = Vec::new();
    for (key, (drafts, tally)) in source.patients.keys().zip(per_patient) {
        let split = split_of(key, &cfg.split);
        tallies.patient(split);
        tallies.add_skipped(&tally);
        for draft in drafts {
            tallies.built(draft.task.as_str());
            if draft.content.chars() < cfg.filter.min_chars {
                tallies.filtered("min_chars");
                continue;
            }
            out.push((draft, split));
        }
    }
    out
}

/// The given tokenizer, or one trained on the train split's text.
fn tokenizer_for(opts: &CurateOptions, drafts: &[(Draft, &str)]) -> Result<Tokenizer, CurateError> {
    if let Some(path) = &opts.tokenizer {
        let tokenizer = Tokenizer::load(path)?;
        let source = tokenizer.template_source();
        if *source == TemplateSource::Default {
            tracing::warn!(
                "{}: the tokenizer has no chat template (no chat_template.jinja, \
                 chat_template.json or tokenizer_config.json entry); chats are rendered with \
                 clintune's default ChatML, which the model may not have been trained on",
                path.display()
            );
        } else {
            tracing::info!("chat template: {} of {}", source.describe(), path.display());
        }
        return Ok(tokenizer);
    }
    if opts.shard.is_some() {
        return Err(CurateError::Config {
            path: opts.out.clone(),
            source: clintune_core::Invalid::new(
                "--shard",
                "needs --tokenizer: every shard must tokenize alike; \
                 train one first with `clintune tokenizer train`",
            )
            .into(),
        });
    }
    train_tokenizer(drafts, &opts.config)
}

/// Trains the configured byte-level BPE on the train split's drafts.
pub fn train_tokenizer(
    drafts: &[(Draft, &str)],
    cfg: &CurateConfig,
) -> Result<Tokenizer, CurateError> {
    let texts = drafts
        .iter()
        .filter(|(_, split)| *split == "train")
        .flat_map(|(d, _)| training_texts(&d.content));
    tracing::info!(
        vocab_size = cfg.tokenizer.vocab_size,
        "training a byte-level BPE tokenizer on the train split"
    );
    Ok(Tokenizer::train(texts, &cfg.tokenizer)?)
}

fn training_texts(content: &Content) -> Vec<String> {
    content.texts().into_iter().map(String::from).collect()
}

/// Renders and tokenizes every draft in parallel; drops those out of the
/// token bounds.
fn encode_all(
    drafts: &[(Draft, &str)],
    tokenizer: &Tokenizer,
    cfg: &CurateConfig,
    tallies: &mut Tallies,
    progress: &dyn Progress,
) -> Result<Vec<Example>, CurateError> {
    let encoder = Encoder::new(tokenizer, &cfg.dedup)?;
    progress.begin("tokenizing", drafts.len() as u64, "examples");
    let encoded: Vec<Example> = drafts
        .par_iter()
        .map(|(draft, split)| {
            let ex = encoder.encode(draft.clone(), split);
            progress.advance(1);
            ex
        })
        .collect::<Result<_, _>>()?;
    progress.end();
    let f = &cfg.filter;
    let mut out = Vec::with_capacity(encoded.len());
    for ex in encoded {
        // A pair is as long as its longer answer after the prompt.
        let n = ex
            .input_ids
            .len()
            .max(ex.prompt_tokens + ex.rejected_ids.len());
        if n < f.min_tokens {
            tallies.filtered("min_tokens");
        } else if n > f.max_tokens {
            tallies.filtered("max_tokens");
        } else {
            out.push(ex);
        }
    }
    Ok(out)
}

/// Input entries: the parent's record files (hashes as verified) and the
/// given tokenizer file.
fn source_inputs(source: &Source, tokenizer: Option<&Path>) -> Result<Vec<FileEntry>, CurateError> {
    let mut inputs: Vec<FileEntry> = source
        .files
        .iter()
        .map(|f| FileEntry {
            path: absolute_path(&source.dir.join(&f.path)),
            ..f.clone()
        })
        .collect();
    if let Some(t) = tokenizer {
        let file = if t.is_dir() {
            t.join(TOKENIZER_FILE)
        } else {
            t.to_path_buf()
        };
        let entry = FileEntry::from_file(&file, absolute_path(&file), None)
            .map_err(CurateError::io(&file))?;
        inputs.push(entry.with_kind("tokenizer"));
    }
    Ok(inputs)
}

/// Writes one shard's candidates, tokenizer and manifest.
fn write_shard(
    staging: &StagingDir,
    source: &Source,
    opts: &CurateOptions,
    shard: Shard,
    candidates: &[Example],
    tallies: &Tallies,
) -> Result<Manifest, CurateError> {
    let dir = staging.path();
    let path = dir.join(CANDIDATES_FILE);
    let refs: Vec<&Example> = candidates.iter().collect();
    store::write(&path, &refs, Layout::Candidates, SHARD_STAGE, "")?;
    let mut b = ManifestBuilder::new(SHARD_STAGE, opts.config.hash())
        .config("shard", shard.index)
        .config("shards", shard.count)
        .config(
            "curate",
            clintune_core::json::to_value("the curation config", &opts.config),
        )
        .parent(ParentRef::locate(&source.manifest, &source.dir, &opts.out));
    for input in source_inputs(source, opts.tokenizer.as_deref())? {
        b = b.input(input);
    }
    let rows = Some(candidates.len() as u64);
    b = b.output(output_entry(dir, CANDIDATES_FILE, rows, "parquet")?);
    for name in TOKENIZER_FILES.iter().filter(|n| dir.join(n).is_file()) {
        b = b.output(output_entry(dir, name, None, "tokenizer")?);
    }
    let manifest = b.counts(tallies.to_counts()).finish();
    manifest.write(dir)?;
    Ok(manifest)
}

/// A manifest entry for a file written into `dir`.
pub fn output_entry(
    dir: &Path,
    name: &str,
    rows: Option<u64>,
    kind: &str,
) -> Result<FileEntry, CurateError> {
    let path = dir.join(name);
    FileEntry::from_file(&path, name, rows)
        .map(|e| e.with_kind(kind))
        .map_err(CurateError::io(&path))
}

/// Deduplicates `candidates` with the configured rule; returns those kept.
pub fn deduplicate(
    candidates: Vec<Example>,
    cfg: &DedupConfig,
    tallies: &mut Tallies,
) -> Result<Vec<Example>, CurateError> {
    let exact_only = DedupConfig {
        near: false,
        ..cfg.clone()
    };
    let (kept, exact) = dedup_pass(candidates, &exact_only)?;
    // Near duplicates only among the tasks they are looked for in: the
    // others have no signature.
    let (near_pool, rest): (Vec<Example>, Vec<Example>) =
        kept.into_iter().partition(|e| !e.signature.is_empty());
    let near_only = DedupConfig {
        exact: false,
        ..cfg.clone()
    };
    let (mut kept, near) = if cfg.near {
        dedup_pass(near_pool, &near_only)?
    } else {
        (near_pool, 0)
    };
    tallies.dedup(exact, near);
    kept.extend(rest);
    Ok(kept)
}

/// One dedup pass: the kept examples and how many were removed.
fn dedup_pass(
    candidates: Vec<Example>,
    cfg: &DedupConfig,
) -> Result<(Vec<Example>, u64), CurateError> {
    let items: Vec<Item<'_>> = candidates
        .iter()
        .map(|e| Item {
            id: &e.example_id,
            exact_key: e.exact_key,
            signature: &e.signature,
        })
        .collect();
    let verdicts = dedup::dedup(&items, cfg)?;
    let removed = verdicts.iter().filter(|v| **v != Verdict::Keep).count() as u64;
    let kept = candidates
        .into_iter()
        .zip(verdicts)
        .filter(|(_, v)| *v == Verdict::Keep)
        .map(|(e, _)| e)
        .collect();
    Ok((kept, removed))
}

/// `clintune tokenizer train`: trains the configured byte-level BPE on the
/// train split of a verified de-identification output and writes
/// `tokenizer.json` and `tokenizer_config.json` into `out`, atomically.
pub fn train_tokenizer_into(
    input: &Path,
    config: &CurateConfig,
    out: &Path,
    force: bool,
) -> Result<(PathBuf, Tokenizer), CurateError> {
    let staging = StagingDir::new(out, force)?;
    let source = Source::open(input, |_| true)?;
    let drafts = build_drafts(&source, config, &mut Tallies::default());
    let tokenizer = train_tokenizer(&drafts, config)?;
    tokenizer.save(staging.path())?;
    Ok((staging.commit()?, tokenizer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::{DedupConfig, MinHasher, exact_key};

    fn example(id: &str, task: &str, text: &str, cfg: &DedupConfig) -> Example {
        let near = cfg.near_tasks.iter().any(|t| t == task);
        Example {
            example_id: id.into(),
            patient_key: "pt-1".into(),
            split: "train".into(),
            task: task.into(),
            text: text.into(),
            input_ids: vec![1],
            loss_mask: vec![1],
            record_keys: vec![],
            exact_key: exact_key(text),
            signature: if near {
                MinHasher::new(cfg).signature(text)
            } else {
                Vec::new()
            },
            ..Example::default()
        }
    }

    #[test]
    fn next_diagnosis_examples_are_deduplicated_exactly_only() {
        let cfg = DedupConfig::default();
        let history: String = (0..60)
            .map(|i| format!("day {i} event number {i} recorded. "))
            .collect();
        let (a, b) = (
            format!("{history} answer: asthma"),
            format!("{history} answer: eczema"),
        );
        let candidates = vec![
            example("ex-1", "next-diagnosis", &a, &cfg),
            example("ex-2", "next-diagnosis", &b, &cfg),
            example("ex-3", "next-diagnosis", &a.to_uppercase(), &cfg),
            example("ex-4", "timeline", &format!("notes: {a}"), &cfg),
            example("ex-5", "timeline", &format!("notes: {b}"), &cfg),
        ];
        let mut tallies = Tallies::default();
        let kept = deduplicate(candidates, &cfg, &mut tallies).unwrap();
        let mut ids: Vec<&str> = kept.iter().map(|e| e.example_id.as_str()).collect();
        ids.sort();
        // ex-3 repeats ex-1 up to case; ex-5 is a near copy of ex-4 among
        // timelines; ex-2 is as near to ex-1 but is a next-diagnosis example.
        assert_eq!(ids, ["ex-1", "ex-2", "ex-4"]);
        assert_eq!(tallies.duplicates["exact"], 1);
        assert_eq!(tallies.duplicates["near"], 1);
    }
}
