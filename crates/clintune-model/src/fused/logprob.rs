//! The log-probability of each target token under its row of logits,
//! forward and backward, on f32 slices.
//!
//! The unfused computation builds the whole log-softmax (`[tokens, vocab]`,
//! several passes) to read one value per row, and its backward makes as
//! many again. Here the forward reads each row twice (max, then the sum of
//! exponentials) and keeps one log-sum-exp per row; the backward writes
//! each row's gradient `g · (onehot − softmax)` in one pass.

use super::vector::{exp_shifted, exp_sum, max};
use rayon::prelude::*;

/// Rows per rayon task.
const ROWS: usize = 16;

/// What the forward pass returns, one value per row.
pub(crate) struct Forward {
    /// `log softmax(row)[target]`.
    pub logp: Vec<f32>,
    /// `log Σ e^row`.
    pub lse: Vec<f32>,
}

/// Each row's log-probability of its target; `logits` is `[rows, vocab]`.
pub(crate) fn forward(logits: &[f32], vocab: usize, targets: &[u32]) -> Forward {
    let (logp, lse): (Vec<f32>, Vec<f32>) = logits
        .par_chunks(vocab)
        .with_min_len(ROWS)
        .zip(targets)
        .map(|(row, &t)| {
            let top = max(row);
            let lse = top + exp_sum(row, top).ln();
            (row[t as usize] - lse, lse)
        })
        .unzip();
    Forward { logp, lse }
}

/// The gradient of the logits given each row's log-probability gradient
/// `grad`: `grad · (onehot(target) − softmax(row))`.
pub(crate) fn backward(
    logits: &[f32],
    vocab: usize,
    targets: &[u32],
    lse: &[f32],
    grad: &[f32],
) -> Vec<f32> {
    let mut out = vec![0.0; logits.len()];
    out.par_chunks_mut(vocab)
        .with_min_len(ROWS)
        .zip(logits.par_chunks(vocab))
        .zip(targets.par_iter().zip(lse).zip(grad))
        .for_each(|((dst, row), ((&t, &lse), &g))| {
            if g == 0.0 {
                return;
            }
            dst.copy_from_slice(row);
            exp_shifted(dst, lse);
            dst.iter_mut().for_each(|x| *x *= -g);
            dst[t as usize] += g;
        });
    out
}
