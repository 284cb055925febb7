//! Rotary position embeddings as transformers applies them (`x · cos +
//! rotate_half(x) · sin`, `rotate_half(x) = [−x₂, x₁]`), forward and
//! backward, on f32 slices of `[tokens, heads, head_dim]`.
//!
//! Unfused, that is two slices, a negation, a concatenation, two products
//! and a sum over the activations, with `cos` and `sin` repeated over the
//! heads; here it is one pass reading one `cos` and `sin` row per token.

use rayon::prelude::*;

/// Tokens per rayon task.
const TOKENS: usize = 64;

/// Which way the rotation goes: by the angles, or back (the backward pass,
/// whose rotation is the transpose).
#[derive(Clone, Copy)]
enum Way {
    Forward,
    Backward,
}

/// `x` rotated by each token's angles (`cos`, `sin`: `[tokens, head_dim]`).
pub(crate) fn forward(x: &[f32], cos: &[f32], sin: &[f32], head_dim: usize) -> Vec<f32> {
    rotate(x, cos, sin, head_dim, Way::Forward)
}

/// The input's gradient given the output's, `grad`.
pub(crate) fn backward(grad: &[f32], cos: &[f32], sin: &[f32], head_dim: usize) -> Vec<f32> {
    rotate(grad, cos, sin, head_dim, Way::Backward)
}

fn rotate(x: &[f32], cos: &[f32], sin: &[f32], d: usize, way: Way) -> Vec<f32> {
    let per_token = x.len() / (cos.len() / d).max(1);
    let mut out = vec![0.0; x.len()];
    out.par_chunks_mut(per_token)
        .with_min_len(TOKENS)
        .zip(x.par_chunks(per_token))
        .zip(cos.par_chunks(d).zip(sin.par_chunks(d)))
        .for_each(|((out, x), (cos, sin))| {
            for (o, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                rotate_head(o, x, cos, sin, way);
            }
        });
    out
}

/// One head: with halves `x₁`, `x₂`, the forward is
/// `[x₁c₁ − x₂s₁, x₂c₂ + x₁s₂]` and its transpose `[x₁c₁ + x₂s₂, x₂c₂ − x₁s₁]`.
fn rotate_head(out: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32], way: Way) {
    let h = x.len() / 2;
    let (x1, x2) = x.split_at(h);
    let (c1, c2) = cos.split_at(h);
    let (s1, s2) = sin.split_at(h);
    let (o1, o2) = out.split_at_mut(h);
    for i in 0..h {
        let (a, b) = (x1[i], x2[i]);
        match way {
            Way::Forward => {
                o1[i] = a * c1[i] - b * s1[i];
                o2[i] = b * c2[i] + a * s2[i];
            }
            Way::Backward => {
                o1[i] = a * c1[i] + b * s2[i];
                o2[i] = b * c2[i] - a * s1[i];
            }
        }
    }
}
