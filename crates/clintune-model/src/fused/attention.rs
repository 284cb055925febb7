//! Causal attention within packed documents, forward and backward, on f32
//! slices.
//!
//! A packed row holds documents one after another, so the keys a query may
//! see (its own document, up to itself) are one contiguous range ending at
//! the query: `starts[i]..=i`. The kernel works on blocks of query rows and,
//! for each, only on the key columns some row of the block can see, so the
//! `[heads, seq, seq]` mask is never built and blocks above the diagonal or
//! before the block's documents are never computed. The forward keeps each
//! row's log-sum-exp; the backward recomputes the probabilities from it (as
//! FlashAttention does) instead of keeping them.
//!
//! Layouts are the model's, so no head is copied out: queries, keys, values
//! and the output are `[batch, seq, heads, head_dim]`, row-major.

use super::gemm::{Mat, matmul};
use super::vector::{exp_shifted, max};
use rayon::prelude::*;

/// Query rows per block: the block's scores (`BLOCK × seq` f32) stay in
/// the L2 cache for the sequence lengths clintune trains at.
const BLOCK: usize = 64;

/// The sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    /// Rows.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (each shared by `heads / kv_heads` query heads).
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

impl Dims {
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// Head `h` of row `b` of a `[batch, seq, count, head_dim]` tensor.
    fn head<'a>(&self, data: &'a [f32], count: usize, b: usize, h: usize) -> Mat<'a> {
        let d = self.head_dim;
        let start = (b * self.seq * count + h) * d;
        Mat::new(&data[start..], [self.seq, d], [count * d, 1])
    }
}

/// For every token of a `[batch, seq]` batch (row-major), the position of
/// the first token of its document; `None` when some row's document ids are
/// not contiguous (a document that resumes after another), which this
/// kernel does not handle.
pub(crate) fn document_starts(documents: &[u32], seq: usize) -> Option<Vec<u32>> {
    let mut starts = Vec::with_capacity(documents.len());
    for row in documents.chunks(seq.max(1)) {
        let mut seen = std::collections::HashSet::new();
        let mut start = 0u32;
        for (t, &doc) in row.iter().enumerate() {
            if t == 0 || doc != row[t - 1] {
                if !seen.insert(doc) {
                    return None;
                }
                start = t as u32;
            }
            starts.push(start);
        }
    }
    Some(starts)
}

/// The rows `r0..r1`'s key columns: from the earliest start among them.
fn columns(starts: &[u32], r0: usize, r1: usize) -> usize {
    starts[r0..r1].iter().copied().min().unwrap_or(0) as usize
}

/// What the forward pass returns.
pub(crate) struct Forward {
    /// `[batch, seq, heads, head_dim]`.
    pub out: Vec<f32>,
    /// Each query row's log-sum-exp of its scaled scores, `[batch, heads, seq]`.
    pub lse: Vec<f32>,
}

/// `softmax(q kᵀ / √d, masked to each query's document and past) v`.
pub(crate) fn forward(dims: Dims, starts: &[u32], q: &[f32], k: &[f32], v: &[f32]) -> Forward {
    let (s, d) = (dims.seq, dims.head_dim);
    let heads: Vec<(Vec<f32>, Vec<f32>)> = (0..dims.batch * dims.heads)
        .into_par_iter()
        .map(|task| {
            let (b, h) = (task / dims.heads, task % dims.heads);
            let g = h / dims.group();
            forward_head(
                dims,
                &starts[b * s..(b + 1) * s],
                dims.head(q, dims.heads, b, h),
                dims.head(k, dims.kv_heads, b, g),
                dims.head(v, dims.kv_heads, b, g),
            )
        })
        .collect();
    let mut out = vec![0.0; dims.batch * s * dims.heads * d];
    let mut lse = Vec::with_capacity(dims.batch * dims.heads * s);
    for (task, (o, l)) in heads.into_iter().enumerate() {
        let (b, h) = (task / dims.heads, task % dims.heads);
        scatter_head(&mut out, &o, dims, dims.heads, b, h);
        lse.extend(l);
    }
    Forward { out, lse }
}

/// Writes one head's `[seq, head_dim]` rows into a `[batch, seq, count, head_dim]` tensor.
fn scatter_head(dst: &mut [f32], head: &[f32], dims: Dims, count: usize, b: usize, h: usize) {
    let d = dims.head_dim;
    for (t, row) in head.chunks_exact(d).enumerate() {
        let at = ((b * dims.seq + t) * count + h) * d;
        dst[at..at + d].copy_from_slice(row);
    }
}

/// One head of one row: its output rows `[seq, head_dim]` and log-sum-exps.
fn forward_head(dims: Dims, starts: &[u32], q: Mat, k: Mat, v: Mat) -> (Vec<f32>, Vec<f32>) {
    let (s, d) = (dims.seq, dims.head_dim);
    let mut out = vec![0.0; s * d];
    let mut lse = vec![0.0; s];
    let mut scores = vec![0.0; BLOCK * s];
    for r0 in (0..s).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(s);
        let (rows, c0) = (r1 - r0, columns(starts, r0, r1));
        let n = r1 - c0;
        let p = &mut scores[..rows * n];
        matmul(p, q.rows(r0, rows), k.rows(c0, n).t(), dims.scale(), false);
        for (li, row) in p.chunks_exact_mut(n).enumerate() {
            let i = r0 + li;
            lse[i] = softmax_in_place(row, starts[i] as usize - c0, i - c0);
        }
        let dst = &mut out[r0 * d..r1 * d];
        matmul(dst, Mat::dense(p, rows, n), v.rows(c0, n), 1.0, false);
    }
    (out, lse)
}

/// Replaces `row[lo..=hi]` by its softmax and the rest by 0; returns the
/// log-sum-exp of `row[lo..=hi]`.
fn softmax_in_place(row: &mut [f32], lo: usize, hi: usize) -> f32 {
    let seen = &mut row[lo..=hi];
    let top = max(seen);
    let sum = exp_shifted(seen, top);
    let inv = 1.0 / sum;
    seen.iter_mut().for_each(|x| *x *= inv);
    row[..lo].fill(0.0);
    row[hi + 1..].fill(0.0);
    top + sum.ln()
}

/// The gradients of the forward pass's inputs.
pub(crate) struct Backward {
    /// `[batch, seq, heads, head_dim]`.
    pub dq: Vec<f32>,
    /// `[batch, seq, kv_heads, head_dim]`.
    pub dk: Vec<f32>,
    /// `[batch, seq, kv_heads, head_dim]`.
    pub dv: Vec<f32>,
}

/// The forward pass's inputs and results, which the backward pass reads.
pub(crate) struct Saved<'a> {
    /// Per-token document starts.
    pub starts: &'a [u32],
    /// Queries.
    pub q: &'a [f32],
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
    /// The forward's output.
    pub out: &'a [f32],
    /// The forward's log-sum-exps.
    pub lse: &'a [f32],
}

/// Gradients of `q`, `k` and `v` given the output's gradient `grad`.
pub(crate) fn backward(dims: Dims, saved: &Saved, grad: &[f32]) -> Backward {
    let s = dims.seq;
    let groups: Vec<GroupGrads> = (0..dims.batch * dims.kv_heads)
        .into_par_iter()
        .map(|task| {
            backward_group(
                dims,
                saved,
                grad,
                task / dims.kv_heads,
                task % dims.kv_heads,
            )
        })
        .collect();
    let size = |count: usize| dims.batch * s * count * dims.head_dim;
    let mut out = Backward {
        dq: vec![0.0; size(dims.heads)],
        dk: vec![0.0; size(dims.kv_heads)],
        dv: vec![0.0; size(dims.kv_heads)],
    };
    for (task, group) in groups.into_iter().enumerate() {
        let (b, g) = (task / dims.kv_heads, task % dims.kv_heads);
        for (r, dq) in group.dq.iter().enumerate() {
            scatter_head(&mut out.dq, dq, dims, dims.heads, b, g * dims.group() + r);
        }
        scatter_head(&mut out.dk, &group.dk, dims, dims.kv_heads, b, g);
        scatter_head(&mut out.dv, &group.dv, dims, dims.kv_heads, b, g);
    }
    out
}

/// One key/value head's gradients and those of the query heads sharing it,
/// `[seq, head_dim]` each.
struct GroupGrads {
    dq: Vec<Vec<f32>>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

fn backward_group(dims: Dims, saved: &Saved, grad: &[f32], b: usize, g: usize) -> GroupGrads {
    let (s, d) = (dims.seq, dims.head_dim);
    let starts = &saved.starts[b * s..(b + 1) * s];
    let k = dims.head(saved.k, dims.kv_heads, b, g);
    let v = dims.head(saved.v, dims.kv_heads, b, g);
    let mut out = GroupGrads {
        dq: Vec::with_capacity(dims.group()),
        dk: vec![0.0; s * d],
        dv: vec![0.0; s * d],
    };
    let mut p = vec![0.0; BLOCK * s];
    let mut dp = vec![0.0; BLOCK * s];
    for h in g * dims.group()..(g + 1) * dims.group() {
        let q = dims.head(saved.q, dims.heads, b, h);
        let o = dims.head(saved.out, dims.heads, b, h);
        let dout = dims.head(grad, dims.heads, b, h);
        let lse = &saved.lse[(b * dims.heads + h) * s..][..s];
        let mut dq = vec![0.0; s * d];
        for r0 in (0..s).step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(s);
            let (rows, c0) = (r1 - r0, columns(starts, r0, r1));
            let n = r1 - c0;
            let (p, dp) = (&mut p[..rows * n], &mut dp[..rows * n]);
            // The probabilities, from the scores and the saved log-sum-exps.
            matmul(p, q.rows(r0, rows), k.rows(c0, n).t(), dims.scale(), false);
            for (li, row) in p.chunks_exact_mut(n).enumerate() {
                let i = r0 + li;
                probabilities_in_place(row, starts[i] as usize - c0, i - c0, lse[i]);
            }
            matmul(dp, dout.rows(r0, rows), v.rows(c0, n).t(), 1.0, false);
            let dv = &mut out.dv[c0 * d..r1 * d];
            matmul(
                dv,
                Mat::dense(p, rows, n).t(),
                dout.rows(r0, rows),
                1.0,
                true,
            );
            // dS = P ∘ (dP − rowsum(dO ∘ O)), the softmax's backward.
            for (li, (dp_row, p_row)) in dp.chunks_exact_mut(n).zip(p.chunks_exact(n)).enumerate() {
                let i = r0 + li;
                let delta = dot(dout.row(i), o.row(i));
                for (x, &pi) in dp_row.iter_mut().zip(p_row) {
                    *x = pi * (*x - delta);
                }
            }
            let ds = Mat::dense(dp, rows, n);
            matmul(
                &mut dq[r0 * d..r1 * d],
                ds,
                k.rows(c0, n),
                dims.scale(),
                false,
            );
            let dk = &mut out.dk[c0 * d..r1 * d];
            matmul(dk, ds.t(), q.rows(r0, rows), dims.scale(), true);
        }
        out.dq.push(dq);
    }
    out
}

/// `exp(row[j] − lse)` on `lo..=hi`, 0 elsewhere.
fn probabilities_in_place(row: &mut [f32], lo: usize, hi: usize, lse: f32) {
    exp_shifted(&mut row[lo..=hi], lse);
    row[..lo].fill(0.0);
    row[hi + 1..].fill(0.0);
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
