//! Randomly initialised models, as transformers initialises a fresh Llama:
//! linear and embedding weights normal with standard deviation
//! `initializer_range`, norms one, biases zero.
//!
//! Each tensor is drawn from the seed and its name, so a model is the same
//! whatever the backend, and changing one tensor's shape leaves the others.

use crate::config::ModelConfig;
use crate::llama::{Llama, Source};
use crate::weights::WeightsError;
use burn::prelude::*;
use clintune_core::rng::{SplitMix64, mix64};

/// transformers' default `initializer_range`.
pub const DEFAULT_STD: f64 = 0.02;

/// Draws tensors from a seed.
struct RandomInit {
    seed: u64,
    std: f64,
}

impl Source for RandomInit {
    fn read(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        let n = shape.iter().product();
        if name.ends_with("norm.weight") {
            return Ok(vec![1.0; n]);
        }
        if name.ends_with(".bias") {
            return Ok(vec![0.0; n]);
        }
        let place = name.bytes().fold(self.seed, |h, b| mix64(h ^ u64::from(b)));
        Ok(normals(SplitMix64(place), n, self.std))
    }
}

/// `n` draws from N(0, std²) (Box–Muller, both values of each pair used).
fn normals(mut rng: SplitMix64, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u = 1.0 - rng.next_f64(); // (0, 1]: ln is finite
        let v = rng.next_f64();
        let r = (-2.0 * u.ln()).sqrt() * std;
        let angle = std::f64::consts::TAU * v;
        out.push((r * angle.cos()) as f32);
        out.push((r * angle.sin()) as f32);
    }
    out.truncate(n);
    out
}

impl<B: Backend> Llama<B> {
    /// A freshly initialised model of `config`, drawn from `seed`.
    pub fn random(config: &ModelConfig, seed: u64, std: f64, device: &B::Device) -> Self {
        let source = RandomInit { seed, std };
        Self::build(config, &source, device).expect("every expected tensor has a shape")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_the_asked_spread() {
        let v = normals(SplitMix64(3), 100_001, 0.02);
        assert_eq!(v.len(), 100_001);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(mean.abs() < 2e-4, "{mean}");
        assert!((var.sqrt() - 0.02).abs() < 2e-4, "{}", var.sqrt());
    }

    #[test]
    fn each_tensor_depends_on_seed_and_name() {
        let init = RandomInit { seed: 1, std: 0.02 };
        let a = init
            .read("model.layers.0.mlp.up_proj.weight", &[4, 4])
            .unwrap();
        let b = init
            .read("model.layers.1.mlp.up_proj.weight", &[4, 4])
            .unwrap();
        let again = init
            .read("model.layers.0.mlp.up_proj.weight", &[4, 4])
            .unwrap();
        let other = RandomInit { seed: 2, std: 0.02 }
            .read("model.layers.0.mlp.up_proj.weight", &[4, 4])
            .unwrap();
        assert_eq!(a, again);
        assert_ne!(a, b);
        assert_ne!(a, other);
        assert_eq!(init.read("model.norm.weight", &[3]).unwrap(), vec![1.0; 3]);
    }
}
