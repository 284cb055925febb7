//! SwiGLU's gate, `silu(gate) · up`, forward and backward, on f32 slices:
//! one pass each way where the unfused computation makes about four
//! forward and eight backward.

use super::vector;
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// `silu(gate) · up`.
pub(crate) fn forward(gate: &[f32], up: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; gate.len()];
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(out, (gate, up))| vector::swiglu(gate, up, out));
    out
}

/// The gradients of `gate` and `up` given the output's, `grad`.
pub(crate) fn backward(grad: &[f32], gate: &[f32], up: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dgate = vec![0.0; gate.len()];
    let mut dup = vec![0.0; up.len()];
    dgate
        .par_chunks_mut(CHUNK)
        .zip(dup.par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(((dg, du), grad), (gate, up))| vector::swiglu_grads(grad, gate, up, dg, du));
    (dgate, dup)
}
