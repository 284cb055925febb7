//! Per-example scores of a model on a split: packed as training packs them
//! (attention never crosses an example), each trained target's negative
//! log-likelihood and whether the most likely token was the target.

use crate::error::EvalError;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use clintune_curate::reader::{PackedBatch, PackedReader};
use clintune_model::{Batch, Llama};

/// One example's totals over its trained tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Summed negative log-likelihood (nats).
    pub nll: f64,
    /// Targets the model ranked first.
    pub correct: u64,
    /// Trained targets.
    pub tokens: u64,
}

impl Totals {
    /// Adds `other` in.
    pub fn add(&mut self, other: &Totals) {
        self.nll += other.nll;
        self.correct += other.correct;
        self.tokens += other.tokens;
    }

    /// Mean loss per trained token; `None` without tokens.
    pub fn loss(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.nll / self.tokens as f64)
    }

    /// Share of trained tokens the model ranked first.
    pub fn accuracy(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.correct as f64 / self.tokens as f64)
    }
}

/// Scores every document of `reader` over one epoch, calling `progress`
/// with (batches done, batches in all) after each batch. Returns one
/// [`Totals`] per document, indexed as [`PackedReader`] numbers them.
pub fn score_split<B: Backend>(
    model: &Llama<B>,
    reader: &mut PackedReader,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<Totals>, EvalError> {
    let mut scores = vec![Totals::default(); reader.num_documents()];
    let batches = reader.batches_in_epoch(0);
    for done in 1..=batches {
        let packed = reader.next_batch();
        let (targets, weights) = packed.shifted_targets();
        let (nll, hits) = token_scores(model, &packed, &targets)?;
        // A target is trained only inside one piece, so each piece's
        // positions add to its own document.
        for piece in &packed.pieces {
            let start = piece.row * packed.seq_len + piece.column;
            let doc = &mut scores[piece.document];
            for t in (start..start + piece.len).filter(|&t| weights[t] == 1) {
                doc.nll += f64::from(nll[t]);
                doc.correct += u64::from(hits[t]);
                doc.tokens += 1;
            }
        }
        progress(done, batches);
    }
    Ok(scores)
}

/// Each position's negative log-likelihood of its target and whether the
/// target was the arg-max, flat in the batch's `[rows, seq]` order.
fn token_scores<B: Backend>(
    model: &Llama<B>,
    packed: &PackedBatch,
    targets: &[u32],
) -> Result<(Vec<f32>, Vec<bool>), EvalError> {
    let device = model.device();
    let batch = Batch {
        batch: packed.batch_size,
        seq: packed.seq_len,
        tokens: packed.tokens.clone(),
        positions: packed.positions.clone(),
        documents: packed.segment_ids.clone(),
    };
    let logits = model.forward(&batch);
    let shape = [packed.batch_size, packed.seq_len, 1];
    let index = Tensor::<B, 3, Int>::from_data(
        TensorData::new(targets.iter().map(|&t| i64::from(t)).collect(), shape),
        &device,
    );
    let hits = logits.clone().argmax(2).equal(index.clone());
    let nll = log_softmax(logits, 2).gather(2, index).neg();
    let nll = nll.into_data().convert::<f32>().into_vec::<f32>();
    let hits = hits.into_data().into_vec::<bool>();
    match (nll, hits) {
        (Ok(nll), Ok(hits)) => Ok((nll, hits)),
        _ => Err(EvalError::Bug(
            "token scores did not come back as f32 and bool",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clintune_curate::reader::PackConfig;
    use clintune_model::{Cpu, ModelConfig, WeightFiles};
    use std::path::PathBuf;

    fn fixture() -> Llama<Cpu> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/llama/llama-gqa-rope3");
        let config = ModelConfig::load(&dir).expect("config");
        let weights = WeightFiles::open(&dir).expect("weights");
        Llama::load(&config, &weights, &Default::default()).expect("model")
    }

    /// One document alone, its targets where the mask of the next token is
    /// 1, log-softmax and arg-max taken in f64 on the host: no packing.
    fn alone(model: &Llama<Cpu>, ids: &[u32], mask: &[u8]) -> Totals {
        let logits = model.forward(&Batch::unpacked(&[ids.to_vec()]));
        let vocab = logits.dims()[2];
        let values = logits
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32");
        let mut t = Totals::default();
        for pos in 0..ids.len() - 1 {
            if mask[pos + 1] == 0 {
                continue;
            }
            let row: Vec<f64> = values[pos * vocab..(pos + 1) * vocab]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let max = row.iter().copied().fold(f64::MIN, f64::max);
            let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
            let target = ids[pos + 1] as usize;
            t.nll += log_sum - row[target];
            let best = (0..vocab)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .expect("a logit");
            t.correct += u64::from(best == target);
            t.tokens += 1;
        }
        t
    }

    /// Packed several to a row, each document scores as it does alone.
    #[test]
    fn packed_scores_equal_each_document_scored_alone() {
        let model = fixture();
        let docs: Vec<(Vec<u32>, Vec<u8>)> = (0..7u32)
            .map(|d| {
                let len = 5 + (d as usize * 3) % 11;
                let ids = (0..len as u32).map(|i| (d * 97 + i * 31) % 1024).collect();
                // The first two tokens are prompt, not trained on.
                let mask = (0..len).map(|i| u8::from(i >= 2)).collect();
                (ids, mask)
            })
            .collect();
        let cfg = PackConfig {
            seq_len: 24,
            batch_size: 2,
            seed: 0,
            shuffle: false,
            pad_id: 0,
            pack: true,
        };
        let mut reader = PackedReader::from_documents(docs.clone(), cfg).expect("reader");
        let mut calls = 0;
        let scores = score_split(&model, &mut reader, &mut |_, _| calls += 1).expect("scores");
        assert!(calls >= 2, "several batches, each reported");
        for (d, (ids, mask)) in docs.iter().enumerate() {
            let want = alone(&model, ids, mask);
            let got = scores[d];
            assert_eq!(
                (got.tokens, got.correct),
                (want.tokens, want.correct),
                "document {d}"
            );
            assert!(
                (got.nll - want.nll).abs() < 1e-3 * want.tokens as f64,
                "document {d}: {} vs {}",
                got.nll,
                want.nll
            );
        }
    }
}
