//! Logistic regression by averaged stochastic gradient descent over sparse,
//! hashed features: single-threaded, in a seeded order, so the same
//! examples and seed give the same weights bit for bit.

use clintune_core::rng::SplitMix64;

/// Examples in one flat layout: example `k`'s features are
/// `feats[offsets[k]..offsets[k + 1]]`.
#[derive(Debug, Default, Clone)]
pub struct Examples {
    /// Feature slots of every example, back to back.
    pub feats: Vec<u32>,
    /// Where each example's features start; one more entry than examples.
    pub offsets: Vec<usize>,
    /// Whether each example is PHI.
    pub labels: Vec<bool>,
}

impl Examples {
    /// No examples.
    pub fn new() -> Self {
        Examples {
            offsets: vec![0],
            ..Default::default()
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Adds one example.
    pub fn push(&mut self, feats: &[u32], label: bool) {
        self.feats.extend_from_slice(feats);
        self.offsets.push(self.feats.len());
        self.labels.push(label);
    }

    /// Adds every example of `other`.
    pub fn extend(&mut self, other: &Examples) {
        for k in 0..other.len() {
            self.push(other.features(k), other.labels[k]);
        }
    }

    /// Example `k`'s features.
    pub fn features(&self, k: usize) -> &[u32] {
        &self.feats[self.offsets[k]..self.offsets[k + 1]]
    }
}

/// How the weights are fitted.
#[derive(Debug, Clone, Copy)]
pub struct SgdConfig {
    /// Passes over the examples.
    pub epochs: usize,
    /// Step size of the first pass; pass `e` uses `rate / (1 + e)`.
    pub rate: f32,
    /// Weight of a PHI example's loss against a non-PHI one's: a miss
    /// costs more than a false alarm.
    pub positive_weight: f32,
    /// L2 penalty per step on the weights an example touches.
    pub l2: f32,
    /// Seed of the example order.
    pub seed: u64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            epochs: 6,
            rate: 0.1,
            positive_weight: 1.0,
            l2: 1e-5,
            seed: 1,
        }
    }
}

/// Fits weights to `data` over a table of `slots` weights; returns the
/// average of the weights over every step, which generalizes better than
/// the last.
pub fn fit(data: &Examples, slots: usize, cfg: &SgdConfig) -> Vec<f32> {
    let mut w = vec![0f32; slots];
    // Running sum of step-weighted updates, for the average.
    let mut u = vec![0f32; slots];
    let mut step = 1f32;
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng = SplitMix64(cfg.seed);
    for epoch in 0..cfg.epochs {
        shuffle(&mut order, &mut rng);
        let rate = cfg.rate / (1.0 + epoch as f32);
        for &k in &order {
            let f = data.features(k);
            let z: f32 = f.iter().map(|&s| w[s as usize]).sum();
            let p = sigmoid(z);
            let y = f32::from(u8::from(data.labels[k]));
            let scale = if data.labels[k] {
                cfg.positive_weight
            } else {
                1.0
            };
            let g = (p - y) * scale;
            for &s in f {
                let s = s as usize;
                let d = rate * (g + cfg.l2 * w[s]);
                w[s] -= d;
                u[s] -= step * d;
            }
            step += 1.0;
        }
    }
    w.iter().zip(&u).map(|(w, u)| w - u / step).collect()
}

/// 1 / (1 + e^-z).
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Fisher-Yates with the given generator.
fn shuffle(v: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slot 0 is a bias; slot 1 marks PHI, slot 2 marks not-PHI, slot 3 is noise.
    fn toy() -> Examples {
        let mut d = Examples::new();
        for k in 0..1500 {
            let phi = k % 3 == 0;
            let mut f = vec![0, if phi { 1 } else { 2 }];
            if k % 2 == 0 {
                f.push(3);
            }
            d.push(&f, phi);
        }
        d
    }

    #[test]
    fn learns_a_separable_rule_and_ignores_noise() {
        let w = fit(&toy(), 4, &SgdConfig::default());
        assert!(w[1] > 1.0 && w[2] < -1.0, "{w:?}");
        assert!(w[3].abs() < w[1].abs() / 4.0, "{w:?}");
        assert!(sigmoid(w[0] + w[1]) > 0.9 && sigmoid(w[0] + w[2]) < 0.1);
    }

    #[test]
    fn the_same_data_and_seed_give_the_same_weights() {
        let cfg = SgdConfig::default();
        assert_eq!(fit(&toy(), 4, &cfg), fit(&toy(), 4, &cfg));
        let other = SgdConfig { seed: 2, ..cfg };
        assert_ne!(fit(&toy(), 4, &cfg), fit(&toy(), 4, &other));
    }
}
