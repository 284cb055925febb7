//! Rotary position embeddings as transformers computes them.
//!
//! Hugging Face checkpoints rotate the two halves of each head against each
//! other (`rotate_half`), not interleaved pairs as burn's `RotaryEncoding`
//! does, and packed sequences need per-token positions; so the cos/sin rows
//! are computed here, in f32 like transformers, for exactly the positions
//! asked for.

use crate::config::{ModelConfig, RopeScaling};
use std::f32::consts::PI;

/// Inverse frequencies `1 / theta^(2i/d)`, with Llama 3 scaling when configured.
pub fn inv_freq(config: &ModelConfig) -> Vec<f32> {
    let d = config.head_dim;
    let base = config.rope_theta as f32;
    let plain = (0..d / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / d as f32));
    match &config.rope_scaling {
        Some(s) => plain.map(|f| llama3(f, s)).collect(),
        None => plain.collect(),
    }
}

/// Llama 3's rule: long wavelengths are divided by `factor`, short ones kept,
/// those between blended smoothly.
fn llama3(freq: f32, s: &RopeScaling) -> f32 {
    let old = s.original_max_position_embeddings as f32;
    let (low, high, factor) = (
        s.low_freq_factor as f32,
        s.high_freq_factor as f32,
        s.factor as f32,
    );
    let wavelength = 2.0 * PI / freq;
    if wavelength < old / high {
        freq
    } else if wavelength > old / low {
        freq / factor
    } else {
        let smooth = (old / wavelength - low) / (high - low);
        (1.0 - smooth) * freq / factor + smooth * freq
    }
}

/// `cos` and `sin` rows (`[positions.len(), head_dim]`, row-major) for the
/// given positions: each angle `position * inv_freq`, duplicated over both
/// halves of the head.
pub fn cos_sin(inv_freq: &[f32], positions: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let d = inv_freq.len() * 2;
    let mut cos = Vec::with_capacity(positions.len() * d);
    let mut sin = Vec::with_capacity(positions.len() * d);
    for &p in positions {
        for _half in 0..2 {
            for &f in inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    (cos, sin)
}
