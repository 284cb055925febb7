//! `curate merge`: the shards of a sharded run become one dataset.
//!
//! Each shard holds the candidates of its patients and the counts made before
//! deduplication. Merging checks that the shards belong together (same
//! parent, configuration and tokenizer, every shard index exactly once), then
//! finalizes their union exactly as a single run would.

use crate::config::CurateConfig;
use crate::error::CurateError;
use crate::finalize;
use crate::pipeline::{CANDIDATES_FILE, CurateSummary, SHARD_STAGE};
use crate::stats::Tallies;
use crate::store;
use clintune_core::staging::StagingDir;
use clintune_core::{Cause, WithContext};
use clintune_lineage::manifest::absolute_path;
use clintune_lineage::{FileEntry, Manifest, ParentRef, verify_chain};
use clintune_text::tokenizer::{TOKENIZER_FILE, TOKENIZER_FILES};
use std::path::{Path, PathBuf};

/// One verified shard.
struct ShardDir {
    dir: PathBuf,
    manifest: Manifest,
    index: u64,
    count: u64,
}

/// Merges shard directories into `out`.
pub fn merge(shards: &[PathBuf], out: &Path, force: bool) -> Result<CurateSummary, CurateError> {
    let shards = shards
        .iter()
        .map(|d| open_shard(d))
        .collect::<Result<Vec<_>, _>>()?;
    let first = check_together(&shards)?;
    let config = shard_config(first)?;
    let staging = StagingDir::new(out, force)?;
    for name in TOKENIZER_FILES
        .iter()
        .filter(|n| first.dir.join(n).is_file())
    {
        let (from, to) = (first.dir.join(name), staging.path().join(name));
        std::fs::copy(&from, &to).map_err(CurateError::io(&from))?;
    }
    let mut tallies = Tallies::default();
    let mut candidates = Vec::new();
    let mut inputs = Vec::new();
    let mut records = Vec::new();
    for shard in &shards {
        // Every shard reads every record file (and keeps its own patients).
        let read = shard.manifest.inputs.iter();
        let read = read.filter(|e| e.kind.as_deref() != Some("tokenizer"));
        records.extend(read.map(|e| e.sha256.clone()));
        let counts = Tallies::from_counts(&shard.manifest.counts)
            .ok_or_else(|| shard_err(&shard.dir, "manifest counts are not a curation's"))?;
        tallies.absorb(&counts);
        let path = shard.dir.join(CANDIDATES_FILE);
        candidates.extend(store::read_candidates(&path)?);
        inputs.push(candidates_entry(shard, &path)?);
    }
    let parent = parent_of(first, out)?;
    let ctx = finalize::Context {
        config: &config,
        parent,
        inputs,
        records,
        tallies,
    };
    let manifest = finalize::write(staging.path(), candidates, ctx)?;
    let out = staging.commit()?;
    Ok(CurateSummary { out, manifest })
}

fn shard_err(dir: &Path, cause: impl Into<Cause>) -> CurateError {
    CurateError::Shard {
        path: dir.to_path_buf(),
        source: cause.into(),
    }
}

/// Reads and verifies a shard (its files and its parent chain).
fn open_shard(dir: &Path) -> Result<ShardDir, CurateError> {
    let manifest = Manifest::read(dir)
        .map_err(|e| shard_err(dir, WithContext::new("not a curation shard", e)))?;
    if manifest.stage != SHARD_STAGE {
        return Err(shard_err(
            dir,
            format!(
                "manifest stage is `{}`, expected `{SHARD_STAGE}` (made by `clintune curate --shard I/N`)",
                manifest.stage
            ),
        ));
    }
    verify_chain(dir).map_err(|e| shard_err(dir, WithContext::new("does not verify", e)))?;
    let number = |key: &str| manifest.config.get(key).and_then(serde_json::Value::as_u64);
    let (Some(index), Some(count)) = (number("shard"), number("shards")) else {
        return Err(shard_err(dir, "manifest does not record its shard number"));
    };
    Ok(ShardDir {
        dir: dir.to_path_buf(),
        manifest,
        index,
        count,
    })
}

/// Same parent, configuration, tokenizer and shard count; each index once.
fn check_together(shards: &[ShardDir]) -> Result<&ShardDir, CurateError> {
    let Some(first) = shards.first() else {
        return Err(shard_err(Path::new("."), "no shards given"));
    };
    let tokenizer = |s: &ShardDir| {
        s.manifest
            .outputs
            .iter()
            .find(|o| o.path == TOKENIZER_FILE)
            .map(|o| o.sha256.clone())
    };
    let mut seen = vec![false; first.count as usize];
    for s in shards {
        let differs = |what: &str| {
            shard_err(
                &s.dir,
                format!("{what} differs from {}'s", first.dir.display()),
            )
        };
        if s.manifest.parents != first.manifest.parents {
            return Err(differs("the de-identified input"));
        }
        if s.manifest.config_hash != first.manifest.config_hash {
            return Err(differs("the curation config"));
        }
        if tokenizer(s) != tokenizer(first) {
            return Err(differs("the tokenizer"));
        }
        if s.count != first.count || s.index >= s.count {
            return Err(differs("the shard count"));
        }
        if std::mem::replace(&mut seen[s.index as usize], true) {
            return Err(shard_err(
                &s.dir,
                format!("shard {}/{} given twice", s.index, s.count),
            ));
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(shard_err(
            &first.dir,
            format!("shard {missing}/{} is missing", first.count),
        ));
    }
    Ok(first)
}

fn shard_config(shard: &ShardDir) -> Result<CurateConfig, CurateError> {
    let value = shard
        .manifest
        .config
        .get("curate")
        .cloned()
        .unwrap_or_default();
    let config: CurateConfig = serde_json::from_value(value)
        .map_err(|e| shard_err(&shard.dir, WithContext::new("manifest config", e)))?;
    if config.hash() != shard.manifest.config_hash {
        return Err(shard_err(
            &shard.dir,
            "manifest config does not match its config hash",
        ));
    }
    Ok(config)
}

fn candidates_entry(shard: &ShardDir, path: &Path) -> Result<FileEntry, CurateError> {
    let recorded = shard
        .manifest
        .outputs
        .iter()
        .find(|o| o.path == CANDIDATES_FILE);
    let entry =
        recorded.ok_or_else(|| shard_err(&shard.dir, "manifest does not list its candidates"))?;
    Ok(FileEntry {
        path: absolute_path(path),
        ..entry.clone()
    })
}

/// The de-identification parent, located from the merged output.
fn parent_of(shard: &ShardDir, out: &Path) -> Result<ParentRef, CurateError> {
    let recorded = shard
        .manifest
        .parents
        .first()
        .ok_or_else(|| shard_err(&shard.dir, "manifest has no parent"))?;
    let parent_dir = shard.dir.join(&recorded.path);
    Ok(match Manifest::read(&parent_dir) {
        Ok(parent) if parent.id == recorded.id => ParentRef::locate(&parent, &parent_dir, out),
        _ => recorded.clone(),
    })
}
