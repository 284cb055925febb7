//! The last step of a run or a merge: deduplicate candidates and write the
//! dataset (split files, card, manifest) into a staged directory that already
//! holds the tokenizer.

use crate::canary::{self, CANARIES_FILE, Canary};
use crate::card;
use crate::config::CurateConfig;
use crate::encode::Example;
use crate::error::CurateError;
use crate::pipeline::{STAGE, deduplicate, output_entry};
use crate::schema::{SCHEMA_VERSION, SPLITS};
use crate::stats::Tallies;
use crate::store::{self, Layout};
use clintune_core::hash::{file_digest, sha256_hex};
use clintune_lineage::{FileEntry, Manifest, ManifestBuilder, ParentRef};
use clintune_text::tokenizer::{TOKENIZER_FILE, TOKENIZER_FILES, Tokenizer};
use serde_json::json;
use std::path::Path;

/// File name of the dataset card.
pub const CARD_FILE: &str = "README.md";

/// What the dataset is made from.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The configuration used.
    pub config: &'a CurateConfig,
    /// The de-identification manifest it derives from.
    pub parent: ParentRef,
    /// Files read.
    pub inputs: Vec<FileEntry>,
    /// SHA-256 of each de-identified record file the dataset is made from:
    /// what the canaries are drawn from, the same whether curated at once or
    /// in shards, on any machine.
    pub records: Vec<String>,
    /// Counts so far (before deduplication).
    pub tallies: Tallies,
}

/// Deduplicates, writes split files, card and manifest into `dir`.
pub fn write(
    dir: &Path,
    candidates: Vec<Example>,
    mut ctx: Context<'_>,
) -> Result<Manifest, CurateError> {
    let mut kept = deduplicate(candidates, &ctx.config.dedup, &mut ctx.tallies)?;
    // Planted after deduplication, which would keep one copy of each. Drawn
    // from the records' hashes, not from the parent's id, which holds the
    // machine's paths: the same data gets the same canaries anywhere.
    let mut records = ctx.records.clone();
    records.sort_unstable();
    records.dedup();
    let canaries = canary::draw(&ctx.config.audit, &records.join("\n"));
    if !canaries.is_empty() {
        let tokenizer = Tokenizer::load(dir)?;
        kept.extend(canary::examples(&canaries, &tokenizer)?);
    }
    kept.sort_by(|a, b| a.example_id.cmp(&b.example_id));
    let tokenizer_sha = file_sha(&dir.join(TOKENIZER_FILE))?;
    let dataset_id = dataset_id(&ctx.parent.id, &ctx.config.hash(), &tokenizer_sha);
    let mut outputs = Vec::new();
    for split in SPLITS {
        let rows: Vec<&Example> = kept.iter().filter(|e| e.split == split).collect();
        for e in &rows {
            let trained = e.loss_mask.iter().map(|&m| u64::from(m)).sum();
            ctx.tallies
                .written(split, &e.task, e.input_ids.len() as u64, trained);
        }
        outputs.extend(write_split(
            dir,
            split,
            &rows,
            ctx.config.output.rows_per_file,
            &dataset_id,
        )?);
    }
    let card = card::render(&card::CardFacts {
        dataset_id: &dataset_id,
        parent: &ctx.parent,
        config: ctx.config,
        tallies: &ctx.tallies,
        tokenizer_sha256: &tokenizer_sha,
    });
    clintune_core::staging::write_atomic(&dir.join(CARD_FILE), card.as_bytes())
        .map_err(CurateError::io(dir.join(CARD_FILE)))?;
    outputs.push(output_entry(dir, CARD_FILE, None, "dataset-card")?);
    for name in TOKENIZER_FILES.iter().filter(|n| dir.join(n).is_file()) {
        outputs.push(output_entry(dir, name, None, "tokenizer")?);
    }
    if !canaries.is_empty() {
        outputs.push(write_canaries(dir, &canaries)?);
    }
    let manifest = manifest(ctx, outputs, (&dataset_id, &tokenizer_sha), &canaries);
    manifest.write(dir)?;
    Ok(manifest)
}

/// `audit/canaries.json`, as an output of kind `audit`.
fn write_canaries(dir: &Path, canaries: &[Canary]) -> Result<FileEntry, CurateError> {
    let path = dir.join(CANARIES_FILE);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(CurateError::io(parent))?;
    }
    let text = clintune_core::json::to_pretty("the canaries", canaries);
    clintune_core::staging::write_atomic(&path, text.as_bytes()).map_err(CurateError::io(&path))?;
    output_entry(dir, CANARIES_FILE, Some(canaries.len() as u64), "audit")
}

fn manifest(
    ctx: Context<'_>,
    outputs: Vec<FileEntry>,
    (dataset_id, tokenizer_sha): (&str, &str),
    canaries: &[Canary],
) -> Manifest {
    let mut b = ManifestBuilder::new(STAGE, ctx.config.hash())
        .config("dataset_id", dataset_id)
        .config("schema_version", SCHEMA_VERSION)
        .config("tokenizer_sha256", tokenizer_sha)
        .config(
            "curate",
            clintune_core::json::to_value("the curation config", ctx.config),
        )
        .parent(ctx.parent);
    if !canaries.is_empty() {
        // Hashes only: the secrets stay in the file the audit reads.
        let public: Vec<_> = canaries
            .iter()
            .map(|c| json!({"id": c.id, "repeats": c.repeats, "sha256": c.sha256}))
            .collect();
        b = b.config("canaries", public);
    }
    for entry in ctx.inputs {
        b = b.input(entry);
    }
    for entry in outputs {
        b = b.output(entry);
    }
    b.counts(ctx.tallies.to_counts()).finish()
}

/// The dataset id written into every split file: what determines the
/// dataset's content (parent, configuration, tokenizer, code version). The
/// manifest id cannot be used, since the manifest holds the files' hashes.
pub fn dataset_id(parent_id: &str, config_hash: &str, tokenizer_sha: &str) -> String {
    let text = format!(
        "{parent_id}\n{config_hash}\n{tokenizer_sha}\n{}\n{SCHEMA_VERSION}",
        clintune_core::TOOL_VERSION
    );
    format!("sha256:{}", sha256_hex(text.as_bytes()))
}

fn file_sha(path: &Path) -> Result<String, CurateError> {
    file_digest(path)
        .map(|d| d.sha256)
        .map_err(CurateError::io(path))
}

/// Writes one split's rows as `split/part-NNNNN.parquet` files.
fn write_split(
    dir: &Path,
    split: &str,
    rows: &[&Example],
    rows_per_file: usize,
    dataset_id: &str,
) -> Result<Vec<FileEntry>, CurateError> {
    let split_dir = dir.join(split);
    std::fs::create_dir_all(&split_dir).map_err(CurateError::io(&split_dir))?;
    let mut entries = Vec::new();
    for (i, chunk) in rows.chunks(rows_per_file).enumerate() {
        let name = format!("{split}/part-{i:05}.parquet");
        store::write(&dir.join(&name), chunk, Layout::Dataset, STAGE, dataset_id)?;
        entries.push(output_entry(
            dir,
            &name,
            Some(chunk.len() as u64),
            "parquet",
        )?);
    }
    Ok(entries)
}
