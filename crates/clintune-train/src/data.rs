//! Training data: a verified curated dataset, read as packed batches.

use crate::error::TrainError;
use crate::recipe::Recipe;
use burn::prelude::*;
use clintune_core::WithContext;
use clintune_curate::reader::{PackConfig, PackedBatch, PackedReader, ReaderError};
use clintune_lineage::{Manifest, verify_chain};
use clintune_model::Batch;
use clintune_text::tokenizer::Tokenizer;
use std::path::Path;

/// A curated dataset, checked before any example is read.
#[derive(Debug)]
pub struct Dataset {
    /// Its manifest.
    pub manifest: Manifest,
    /// The tokenizer it was encoded with.
    pub tokenizer: Tokenizer,
}

impl Dataset {
    /// Opens the `clintune curate` output in `dir`: its manifest must verify
    /// (every file rehashed) before anything is read.
    pub fn open(dir: &Path) -> Result<Self, TrainError> {
        let manifest = Manifest::read(dir).map_err(|e| {
            TrainError::dataset(
                dir,
                format!("not a curated dataset (no readable manifest: {e})"),
            )
        })?;
        if manifest.stage != "curate" {
            return Err(TrainError::dataset(
                dir,
                format!(
                    "manifest stage is `{}`; training reads only `clintune curate` output",
                    manifest.stage
                ),
            ));
        }
        verify_chain(dir).map_err(|e| {
            TrainError::dataset(dir, WithContext::new("manifest does not verify", e))
        })?;
        let tokenizer = Tokenizer::load(dir).map_err(|e| TrainError::dataset(dir, e))?;
        Ok(Self {
            manifest,
            tokenizer,
        })
    }

    /// The id written into padding: the tokenizer's pad token, else its
    /// end-of-sequence token, else 0. Padding is never trained on.
    pub fn pad_id(&self) -> u32 {
        let config = self.tokenizer.config();
        config
            .pad_token
            .as_deref()
            .and_then(|t| self.tokenizer.token_id(t))
            .or_else(|| self.tokenizer.eos_id())
            .unwrap_or(0)
    }
}

/// A reader over `split` of the dataset in `dir`, packed as the recipe says.
/// The validation split is read in file order.
pub fn reader(
    dir: &Path,
    split: &str,
    recipe: &Recipe,
    pad_id: u32,
) -> Result<PackedReader, TrainError> {
    let reader = PackedReader::open(dir, split, pack_config(split, recipe, pad_id))
        .map_err(|e| TrainError::dataset(dir, e))?;
    let (over, longest) = reader.documents_over_seq_len();
    if over > 0 {
        tracing::warn!(
            "{over} of {} {split} examples are longer than data.seq_len = {} (the longest has \
             {longest} tokens): they are cut into pieces, and a chat's answer in a later piece \
             is trained on without its prompt; raise data.seq_len to {longest} to keep them whole",
            reader.num_documents(),
            recipe.data.seq_len,
        );
    }
    Ok(reader)
}

/// The validation split's reader, or `None` when the dataset has no
/// validation examples (a missing or empty split: evaluation and early
/// stopping are then off). Any other fault, such as an unreadable file, is
/// an error: it must not silently turn evaluation off.
pub fn validation_reader(
    dir: &Path,
    recipe: &Recipe,
    pad_id: u32,
) -> Result<Option<PackedReader>, TrainError> {
    let split = "validation";
    match PackedReader::open(dir, split, pack_config(split, recipe, pad_id)) {
        Ok(reader) => Ok(Some(reader)),
        Err(ReaderError::MissingSplit { .. } | ReaderError::EmptySplit { .. }) => Ok(None),
        Err(e) => Err(TrainError::dataset(dir, e)),
    }
}

fn pack_config(split: &str, recipe: &Recipe, pad_id: u32) -> PackConfig {
    PackConfig {
        seq_len: recipe.data.seq_len,
        batch_size: recipe.data.micro_batch,
        seed: recipe.train.seed,
        shuffle: recipe.data.shuffle && split == "train",
        pack: recipe.data.packing,
        pad_id,
    }
}

/// One micro-batch on a device: the model's input, next-token targets, and
/// the weight of each target (1 where trained).
#[derive(Debug, Clone)]
pub struct Inputs<B: Backend> {
    /// Tokens, positions and documents.
    pub batch: Batch,
    /// `[batch, seq]` next-token ids.
    pub targets: Tensor<B, 2, Int>,
    /// `[batch, seq]` 1.0 where the target is trained on.
    pub weights: Tensor<B, 2>,
    /// How many targets are trained on.
    pub trained: usize,
}

/// How many next-token targets of `packed` are trained on.
pub fn trained_tokens(packed: &PackedBatch) -> usize {
    packed
        .shifted_targets()
        .1
        .iter()
        .map(|&w| usize::from(w))
        .sum()
}

impl<B: Backend> Inputs<B> {
    /// Moves a packed batch to `device`: segments become documents, so
    /// attention never crosses an example.
    pub fn new(packed: &PackedBatch, device: &B::Device) -> Self {
        let (targets, weights) = packed.shifted_targets();
        let shape = [packed.batch_size, packed.seq_len];
        let trained = weights.iter().map(|&w| usize::from(w)).sum();
        Self {
            batch: Batch {
                batch: packed.batch_size,
                seq: packed.seq_len,
                tokens: packed.tokens.clone(),
                positions: packed.positions.clone(),
                documents: packed.segment_ids.clone(),
            },
            targets: Tensor::from_data(
                TensorData::new(targets.into_iter().map(i64::from).collect(), shape),
                device,
            ),
            weights: Tensor::from_data(
                TensorData::new(weights.into_iter().map(f32::from).collect(), shape),
                device,
            ),
            trained,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe::parse("[model]\nbase = \"m\"\n[data]\ndataset = \"d\"\n").unwrap()
    }

    #[test]
    fn a_missing_validation_split_turns_evaluation_off_a_broken_one_stops() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            validation_reader(tmp.path(), &recipe(), 0)
                .unwrap()
                .is_none()
        );
        let split = tmp.path().join("validation");
        std::fs::create_dir_all(&split).unwrap();
        assert!(
            validation_reader(tmp.path(), &recipe(), 0)
                .unwrap()
                .is_none()
        );
        std::fs::write(split.join("part-00000.parquet"), b"not parquet").unwrap();
        let err = validation_reader(tmp.path(), &recipe(), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("part-00000.parquet"), "{err}");
    }
}
