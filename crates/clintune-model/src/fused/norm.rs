//! RMSNorm, `y = x / √(mean(x²) + ε) · w` over the last dimension, forward
//! and backward, on f32 slices.
//!
//! Unfused, the forward is seven tensor operations and the backward about
//! twice as many, each a pass over the activations; here each is one pass
//! per row, and the forward keeps each row's `1 / √(mean(x²) + ε)`.

use super::vector::dot;
use rayon::prelude::*;

/// Rows per rayon task.
const ROWS: usize = 64;

/// `x` `[rows, width]`, `w` `[width]`: the normalised rows and each row's
/// reciprocal root mean square.
pub(crate) fn forward(x: &[f32], w: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let width = w.len();
    let mut y = vec![0.0; x.len()];
    let rstd: Vec<f32> = y
        .par_chunks_mut(width)
        .with_min_len(ROWS)
        .zip(x.par_chunks(width))
        .map(|(out, row)| {
            let r = 1.0 / (dot(row, row) / width as f32 + eps).sqrt();
            for ((o, &v), &g) in out.iter_mut().zip(row).zip(w) {
                *o = v * r * g;
            }
            r
        })
        .collect();
    (y, rstd)
}

/// The gradients of `x` and `w` given the output's, `grad`.
pub(crate) fn backward(grad: &[f32], x: &[f32], w: &[f32], rstd: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let width = w.len();
    let mut dx = vec![0.0; x.len()];
    let dw = dx
        .par_chunks_mut(width * ROWS)
        .zip(x.par_chunks(width * ROWS))
        .zip(grad.par_chunks(width * ROWS))
        .zip(rstd.par_chunks(ROWS))
        .map(|(((dx, x), grad), rstd)| rows_backward(dx, x, grad, w, rstd))
        .reduce(
            || vec![0.0; width],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    (dx, dw)
}

/// A block of rows' input gradients, into `dx`; returns their share of the
/// weight's gradient.
fn rows_backward(dx: &mut [f32], x: &[f32], grad: &[f32], w: &[f32], rstd: &[f32]) -> Vec<f32> {
    let width = w.len();
    let mut dw = vec![0.0; width];
    let mut gw = vec![0.0; width];
    let rows = dx.chunks_exact_mut(width).zip(x.chunks_exact(width));
    for ((dx, x), (g, &r)) in rows.zip(grad.chunks_exact(width).zip(rstd)) {
        // With x̂ = x·r and gw = g·w: dx = r · (gw − x̂ · mean(gw · x̂)).
        for (((o, &gi), &wi), (d, &xi)) in gw.iter_mut().zip(g).zip(w).zip(dw.iter_mut().zip(x)) {
            *o = gi * wi;
            *d += gi * xi * r;
        }
        let mean = dot(&gw, x) * r / width as f32;
        for ((o, &gwi), &xi) in dx.iter_mut().zip(&gw).zip(x) {
            *o = r * (gwi - xi * r * mean);
        }
    }
    dw
}
