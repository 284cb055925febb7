//! A linear map `y = x · wᵀ` with Hugging Face's weight layout `[out, in]`,
//! forward and backward, on f32 slices.
//!
//! burn computes `x · wᵀ` through a transposed view of `w`, so the weight's
//! gradient comes back as a transposed (strided) view too, and every
//! optimizer operation on it then walks it element by element. Here the
//! weight gradient `gᵀ · x` is written directly in `[out, in]` order.

use super::gemm::{Mat, matmul_threaded};

/// `x` `[rows, in]`, `w` `[out, in]`: `x · wᵀ`, `[rows, out]`.
pub(crate) fn forward(x: &[f32], w: &[f32], [rows, inner, out]: [usize; 3]) -> Vec<f32> {
    let mut y = vec![0.0; rows * out];
    let w = Mat::dense(w, out, inner).t();
    matmul_threaded(&mut y, Mat::dense(x, rows, inner), w);
    y
}

/// The input's gradient `g · w`, `[rows, in]`.
pub(crate) fn input_grad(g: &[f32], w: &[f32], [rows, inner, out]: [usize; 3]) -> Vec<f32> {
    let mut dx = vec![0.0; rows * inner];
    matmul_threaded(&mut dx, Mat::dense(g, rows, out), Mat::dense(w, out, inner));
    dx
}

/// The weight's gradient `gᵀ · x`, `[out, in]`.
pub(crate) fn weight_grad(g: &[f32], x: &[f32], [rows, inner, out]: [usize; 3]) -> Vec<f32> {
    let mut dw = vec![0.0; out * inner];
    matmul_threaded(
        &mut dw,
        Mat::dense(g, rows, out).t(),
        Mat::dense(x, rows, inner),
    );
    dw
}
