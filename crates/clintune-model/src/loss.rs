//! The causal language-modelling loss.

use crate::fused;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// The log-probability of each target `[batch, seq]` under `logits`
/// `[batch, seq, vocab]`: one fused kernel on the CPU backend, the
/// log-softmax and a gather elsewhere.
pub fn token_log_probs<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
) -> Tensor<B, 2> {
    let [b, s, _] = logits.dims();
    match fused::token_logps(logits, &targets) {
        Ok(logp) => logp,
        Err(logits) => log_softmax(logits, 2)
            .gather(2, targets.reshape([b, s, 1]))
            .reshape([b, s]),
    }
}

/// The summed negative log-likelihood of `targets` `[batch, seq]` under
/// `logits` `[batch, seq, vocab]`, each position weighted by `weights`
/// `[batch, seq]` (1 on trained tokens, 0 elsewhere). Summed rather than
/// averaged so that micro-batches add up: divide by the number of trained
/// tokens of the whole effective batch.
pub fn token_nll<B: Backend>(
    logits: Tensor<B, 3>,
    targets: Tensor<B, 2, Int>,
    weights: Tensor<B, 2>,
) -> Tensor<B, 1> {
    total(token_log_probs(logits, targets) * weights).neg()
}

/// The sum of all of `t`'s elements, in an order fixed by its shape.
///
/// burn-cuda's whole-tensor `sum` adds partial sums with float atomics, so
/// its low bits change from run to run, and a resumed CUDA run did not equal
/// an uninterrupted one (the GPU check). A sum over the last
/// axis, then over the rows, runs one thread per output in a fixed order on
/// every backend.
pub fn total<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, 1> {
    let dims = t.dims();
    let last = dims.last().copied().unwrap_or(1).max(1);
    let rows = t.shape().num_elements() / last;
    t.reshape([rows, last]).sum_dim(1).sum_dim(0).reshape([1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn total_adds_every_element_of_any_rank() {
        let dev = Default::default();
        let values: Vec<f32> = (1..=24).map(|v| v as f32).collect();
        let flat = Tensor::<Flex, 1>::from_floats(values.as_slice(), &dev);
        let cube = flat.clone().reshape([2, 3, 4]);
        for sum in [total(flat), total(cube)] {
            assert_eq!(sum.dims(), [1]);
            assert_eq!(sum.into_scalar(), 300.0);
        }
    }

    #[test]
    fn sums_the_weighted_negative_log_likelihoods() {
        let dev = Default::default();
        // Row 0: uniform over 4 → ln 4 per token; row 1: certain of token 2.
        let logits = Tensor::<Flex, 3>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 50.0, 0.0], [2, 1, 4]),
            &dev,
        );
        let targets =
            Tensor::<Flex, 2, Int>::from_data(TensorData::new(vec![1i64, 2], [2, 1]), &dev);
        let all = Tensor::<Flex, 2>::ones([2, 1], &dev);
        let nll = token_nll(logits.clone(), targets.clone(), all).into_scalar();
        assert!((nll - 4f32.ln()).abs() < 1e-5, "{nll}");
        let second_only =
            Tensor::<Flex, 2>::from_data(TensorData::new(vec![0.0f32, 1.0], [2, 1]), &dev);
        let nll = token_nll(logits, targets, second_only).into_scalar();
        assert!(nll.abs() < 1e-5, "{nll}");
    }
}
