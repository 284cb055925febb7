//! The run's optimizer: burn's AdamW, computed in one pass per parameter on
//! the CPU.
//!
//! [`AdamW`] keeps burn-optim's state (`AdamWState`), so checkpoints are
//! written and read exactly as before, and on burn-flex in f32 it updates each
//! parameter with `clintune_model::adamw_step`, which computes burn's
//! arithmetic element by element in one pass (bit-identical; tested below).
//! Anywhere else (CUDA, bf16 weights) burn's own AdamW runs.

use burn::optim::{AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, SimpleOptimizer};
use burn::prelude::*;
use clintune_model::AdamWStep;

/// AdamW with decoupled weight decay, as `burn::optim::AdamW` computes it.
#[derive(Clone)]
pub struct AdamW {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    /// burn's own, for the backends the one-pass update does not run on.
    burn: burn::optim::AdamW,
}

impl AdamW {
    /// AdamW with these hyper-parameters (burn's defaults otherwise: no
    /// AMSGrad, no cautious decay).
    pub fn new(betas: [f32; 2], epsilon: f32, weight_decay: f32) -> Self {
        let burn = AdamWConfig::new()
            .with_beta_1(betas[0])
            .with_beta_2(betas[1])
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self {
            beta_1: betas[0],
            beta_2: betas[1],
            epsilon,
            weight_decay,
            burn,
        }
    }
}

impl<B: Backend> SimpleOptimizer<B> for AdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(1, |s| s.momentum.time + 1);
        let step = AdamWStep {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            time: time as i32,
            lr,
            weight_decay: self.weight_decay,
        };
        let moments = state.map(|s| [s.momentum.moment_1, s.momentum.moment_2]);
        match clintune_model::adamw_step(tensor, grad, moments, &step) {
            Ok([tensor, moment_1, moment_2]) => {
                let momentum = AdaptiveMomentumState {
                    time,
                    moment_1,
                    moment_2,
                    max_moment_2: None,
                };
                (tensor, Some(AdamWState { momentum }))
            }
            Err((tensor, grad, moments)) => {
                let state = moments.map(|[moment_1, moment_2]| AdamWState {
                    momentum: AdaptiveMomentumState {
                        time: time - 1,
                        moment_1,
                        moment_2,
                        max_moment_2: None,
                    },
                });
                self.burn.step(lr, tensor, grad, state)
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <burn::optim::AdamW as SimpleOptimizer<B>>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{DType, Distribution};

    fn random(shape: [usize; 2], seed: u64) -> Tensor<Flex, 2> {
        Flex::seed(&Default::default(), seed);
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    fn bits(t: &Tensor<Flex, 2>) -> Vec<u32> {
        t.to_data().iter::<f32>().map(f32::to_bits).collect()
    }

    #[test]
    fn the_one_pass_update_runs_on_flex_in_f32_only() {
        let step = AdamWStep {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            time: 1,
            lr: 1e-3,
            weight_decay: 0.0,
        };
        let (p, g) = (random([4, 8], 1), random([4, 8], 2));
        assert!(clintune_model::adamw_step(p.clone(), g.clone(), None, &step).is_ok());
        let (p, g) = (p.cast(DType::BF16), g.cast(DType::BF16));
        assert!(clintune_model::adamw_step(p, g, None, &step).is_err());
    }

    /// Five steps of both optimizers from the same start, with and without
    /// weight decay, compared bit for bit: parameters and both moments.
    #[test]
    fn one_pass_adamw_is_bit_identical_to_burns() {
        for weight_decay in [0.0, 0.01] {
            let ours = AdamW::new([0.9, 0.95], 1e-8, weight_decay);
            let burns = ours.burn.clone();
            let start = random([37, 300], 1);
            let (mut a, mut b) = (start.clone(), start);
            let (mut sa, mut sb) = (None, None);
            for step in 0..5u64 {
                let grad = random([37, 300], 10 + step) * 0.1;
                let lr = 1e-3 * (step + 1) as f64;
                (a, sa) = SimpleOptimizer::<Flex>::step(&ours, lr, a, grad.clone(), sa);
                (b, sb) = burns.step(lr, b, grad, sb);
            }
            let (sa, sb) = (sa.unwrap().momentum, sb.unwrap().momentum);
            assert_eq!(sa.time, sb.time);
            assert_eq!(
                bits(&a),
                bits(&b),
                "parameters, weight decay {weight_decay}"
            );
            assert_eq!(bits(&sa.moment_1), bits(&sb.moment_1), "first moments");
            assert_eq!(bits(&sa.moment_2), bits(&sb.moment_2), "second moments");
            assert_ne!(
                bits(&a),
                bits(&random([37, 300], 1)),
                "the steps moved the weights"
            );
        }
    }
}
