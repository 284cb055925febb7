//! AdamW's update in one pass over each parameter, in place.
//!
//! burn-optim's AdamW updates a parameter in about a dozen tensor
//! operations (each moment scaled, added, bias-corrected, a square root, a
//! division, the decay, the step), each a pass over memory that allocates
//! its output. Here one pass reads the parameter, its gradient and both
//! moments and writes the three in place: `small`'s full fine-tuning steps
//! on 2 cores got 20% faster.
//! Each element's arithmetic is burn's, operation by operation and in f32
//! (Rust never contracts `a·b + c` into an FMA), so the result is
//! bit-identical to burn's AdamW (tested) and the moments keep burn's
//! record format: checkpoints and resume are unchanged.

use super::vector::widest;
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// The scalars of one AdamW step, as burn's AdamW computes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// β₁.
    pub beta_1: f32,
    /// β₂.
    pub beta_2: f32,
    /// ε, added to √v̂.
    pub epsilon: f32,
    /// The step's number, from 1 (bias correction).
    pub time: i32,
    /// The learning rate.
    pub lr: f64,
    /// The decoupled weight decay (0: none).
    pub weight_decay: f32,
}

/// The per-element constants, converted as burn converts them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalars {
    beta_1: f32,
    beta_2: f32,
    factor_1: f32,
    factor_2: f32,
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    keep: f32,
    lr: f32,
}

impl Scalars {
    fn new(s: &AdamWStep) -> Self {
        let decay_rate = s.lr * f64::from(s.weight_decay);
        Self {
            beta_1: s.beta_1,
            beta_2: s.beta_2,
            factor_1: 1.0 - s.beta_1,
            factor_2: 1.0 - s.beta_2,
            correction_1: 1f32 - s.beta_1.powi(s.time),
            correction_2: 1f32 - s.beta_2.powi(s.time),
            epsilon: s.epsilon,
            // burn multiplies by (1 − lr·λ), computed in f64 and converted
            // to f32, or leaves the parameter as it is; × 1 leaves every f32
            // as it is too.
            keep: if decay_rate == 0.0 {
                1.0
            } else {
                (1.0 - decay_rate) as f32
            },
            lr: s.lr as f32,
        }
    }
}

/// Updates `param` and the moments `m`, `v` (all of one length) with
/// `grad`; `first`: the moments are unset (burn starts them from the
/// gradient alone, not from zero times β).
pub(crate) fn update(
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    step: &AdamWStep,
    first: bool,
) {
    let s = Scalars::new(step);
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| chunk(p, g, m, v, &s, first));
}

#[inline(always)]
fn chunk_body(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &Scalars, first: bool) {
    let moments = m.iter_mut().zip(v.iter_mut());
    for ((p, &g), (m, v)) in p.iter_mut().zip(g).zip(moments) {
        if first {
            *m = g * s.factor_1;
            *v = (g * g) * s.factor_2;
        } else {
            *m = *m * s.beta_1 + g * s.factor_1;
            *v = *v * s.beta_2 + (g * g) * s.factor_2;
        }
        let delta = (*m / s.correction_1) / ((*v / s.correction_2).sqrt() + s.epsilon);
        *p = *p * s.keep - delta * s.lr;
    }
}

widest! {
    fn chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: &Scalars, first: bool) = chunk_body
}
