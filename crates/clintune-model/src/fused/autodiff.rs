//! The fused kernels as burn-autodiff operations: the forward runs the
//! kernel on the inner burn-flex tensors, and a tracked call registers a
//! backward step that runs the kernel's backward.

use super::attention::{self, Dims, Saved};
use super::{
    contiguous, from_vec, linear as lin, logprob, norm, rope as rot, swiglu as glu, values,
};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::ops::FloatTensor;
use std::sync::Arc;

type Ad = Autodiff<Flex>;

/// The autodiff primitives of `tensors`.
fn primitives<const D: usize, const N: usize>(tensors: [Tensor<Ad, D>; N]) -> [FloatTensor<Ad>; N] {
    tensors.map(|t| t.into_primitive().tensor())
}

/// `out`, computed from `inputs` by `op`, recorded for the backward pass
/// with the state `state` makes when some input is tracked.
fn record<BO, const N: usize, const D: usize>(
    op: BO,
    inputs: &[FloatTensor<Ad>; N],
    out: FlexTensor,
    state: impl FnOnce() -> BO::State,
) -> Tensor<Ad, D>
where
    BO: Backward<Flex, N>,
{
    let nodes = inputs.each_ref().map(|t| t.node.clone());
    let result = match op
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(result))
}

/// Registers `grad` (of shape `like`'s) for `parent` when it is tracked.
fn register(
    grads: &mut Gradients,
    parent: Option<NodeId>,
    grad: impl FnOnce() -> Vec<f32>,
    like: &FlexTensor,
) {
    if let Some(id) = parent {
        let shape = like.layout().shape().to_vec();
        grads.register::<Flex>(id, from_vec(grad(), shape));
    }
}

/// The ids of an operation's tracked parents.
fn parents<S, const N: usize>(ops: &Ops<S, N>) -> [Option<NodeId>; N] {
    ops.parents.each_ref().map(|p| p.as_ref().map(|n| n.id))
}

// ---- attention ----

/// What attention's backward reads: the inputs, the output and the
/// log-sum-exps (all contiguous).
#[derive(Debug, Clone)]
pub(super) struct AttentionState {
    dims: Dims,
    starts: Arc<Vec<u32>>,
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    out: FlexTensor,
    lse: Arc<Vec<f32>>,
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let s = &ops.state;
        let saved = Saved {
            starts: &s.starts,
            q: values(&s.q),
            k: values(&s.k),
            v: values(&s.v),
            out: values(&s.out),
            lse: &s.lse,
        };
        let g = attention::backward(s.dims, &saved, values(&grad));
        let [q, k, v] = parents(&ops);
        register(grads, q, || g.dq, &s.q);
        register(grads, k, || g.dk, &s.k);
        register(grads, v, || g.dv, &s.v);
    }
}

/// Attention's forward on burn-flex tensors: the output, and the state its
/// backward reads.
pub(super) fn attention_forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    starts: &Arc<Vec<u32>>,
) -> (FlexTensor, impl FnOnce() -> AttentionState) {
    let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
    let (qs, ks) = (q.layout().shape(), k.layout().shape());
    let dims = Dims {
        batch: qs[0],
        seq: qs[1],
        heads: qs[2],
        kv_heads: ks[2],
        head_dim: qs[3],
    };
    let fwd = attention::forward(dims, starts, values(&q), values(&k), values(&v));
    let out = from_vec(fwd.out, qs.to_vec());
    let (starts, saved_out) = (starts.clone(), out.clone());
    let state = move || AttentionState {
        dims,
        starts,
        q,
        k,
        v,
        out: saved_out,
        lse: Arc::new(fwd.lse),
    };
    (out, state)
}

/// Attention under autodiff (see [`super::attention`]).
pub(super) fn attention(
    q: Tensor<Ad, 4>,
    k: Tensor<Ad, 4>,
    v: Tensor<Ad, 4>,
    starts: &Arc<Vec<u32>>,
) -> Tensor<Ad, 4> {
    let inputs = primitives([q, k, v]);
    let [q, k, v] = inputs.each_ref().map(|t| &t.primitive);
    let (out, state) = attention_forward(q, k, v, starts);
    record(AttentionBackward, &inputs, out, state)
}

// ---- target log-probabilities ----

/// What the log-probabilities' backward reads.
#[derive(Debug, Clone)]
pub(super) struct LogpState {
    logits: FlexTensor,
    targets: Arc<Vec<u32>>,
    lse: Arc<Vec<f32>>,
}

#[derive(Debug)]
struct LogpBackward;

impl Backward<Flex, 1> for LogpBackward {
    type State = LogpState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let s = &ops.state;
        let vocab = s.logits.layout().shape()[2];
        let [logits] = parents(&ops);
        let dlogits =
            || logprob::backward(values(&s.logits), vocab, &s.targets, &s.lse, values(&grad));
        register(grads, logits, dlogits, &s.logits);
    }
}

/// The target log-probabilities' forward on a burn-flex tensor
/// `[batch, seq, vocab]`: `[batch, seq]`, and the state its backward reads.
pub(super) fn token_logps_forward(
    logits: &FlexTensor,
    targets: Arc<Vec<u32>>,
) -> (FlexTensor, impl FnOnce() -> LogpState) {
    let logits = contiguous(logits);
    let shape = logits.layout().shape().to_vec();
    let fwd = logprob::forward(values(&logits), shape[2], &targets);
    let logp = from_vec(fwd.logp, shape[..2].to_vec());
    let state = move || LogpState {
        logits,
        targets,
        lse: Arc::new(fwd.lse),
    };
    (logp, state)
}

/// Target log-probabilities under autodiff (see [`super::token_logps`]).
pub(super) fn token_logps(logits: Tensor<Ad, 3>, targets: Arc<Vec<u32>>) -> Tensor<Ad, 2> {
    let inputs = primitives([logits]);
    let (logp, state) = token_logps_forward(&inputs[0].primitive, targets);
    record(LogpBackward, &inputs, logp, state)
}

// ---- linear map ----

/// What the linear map's backward reads: the contiguous input and weight.
#[derive(Debug, Clone)]
pub(super) struct LinearState {
    x: FlexTensor,
    w: FlexTensor,
}

impl LinearState {
    /// `[rows, in, out]`.
    fn dims(&self) -> [usize; 3] {
        let (x, w) = (self.x.layout().shape(), self.w.layout().shape());
        [x[0], x[1], w[0]]
    }
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 2> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let (s, g) = (&ops.state, values(&grad));
        let [x, w] = parents(&ops);
        register(
            grads,
            x,
            || lin::input_grad(g, values(&s.w), s.dims()),
            &s.x,
        );
        register(
            grads,
            w,
            || lin::weight_grad(g, values(&s.x), s.dims()),
            &s.w,
        );
    }
}

/// The linear map's forward on burn-flex tensors: `x · wᵀ`, and the state
/// its backward reads.
pub(super) fn linear_forward(
    x: &FlexTensor,
    w: &FlexTensor,
) -> (FlexTensor, impl FnOnce() -> LinearState) {
    let state = LinearState {
        x: contiguous(x),
        w: contiguous(w),
    };
    let [rows, inner, out] = state.dims();
    let y = lin::forward(values(&state.x), values(&state.w), [rows, inner, out]);
    (from_vec(y, vec![rows, out]), move || state)
}

/// The linear map under autodiff (see [`super::linear`]).
pub(super) fn linear(x: Tensor<Ad, 2>, w: Tensor<Ad, 2>) -> Tensor<Ad, 2> {
    let inputs = primitives([x, w]);
    let (y, state) = linear_forward(&inputs[0].primitive, &inputs[1].primitive);
    record(LinearBackward, &inputs, y, state)
}

// ---- RMSNorm ----

/// What RMSNorm's backward reads.
#[derive(Debug, Clone)]
pub(super) struct NormState {
    x: FlexTensor,
    w: FlexTensor,
    rstd: Arc<Vec<f32>>,
}

#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 2> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let s = &ops.state;
        let (dx, dw) = norm::backward(values(&grad), values(&s.x), values(&s.w), &s.rstd);
        let [x, w] = parents(&ops);
        register(grads, x, || dx, &s.x);
        register(grads, w, || dw, &s.w);
    }
}

/// RMSNorm's forward on burn-flex tensors (`x` `[…, width]`, `w` `[width]`).
pub(super) fn rms_norm_forward(
    x: &FlexTensor,
    w: &FlexTensor,
    eps: f32,
) -> (FlexTensor, impl FnOnce() -> NormState) {
    let (x, w) = (contiguous(x), contiguous(w));
    let (y, rstd) = norm::forward(values(&x), values(&w), eps);
    let y = from_vec(y, x.layout().shape().to_vec());
    let state = move || NormState {
        x,
        w,
        rstd: Arc::new(rstd),
    };
    (y, state)
}

/// RMSNorm under autodiff (see [`super::rms_norm`]).
pub(super) fn rms_norm(x: Tensor<Ad, 3>, w: Tensor<Ad, 1>, eps: f32) -> Tensor<Ad, 3> {
    let inputs = [x.into_primitive().tensor(), w.into_primitive().tensor()];
    let (y, state) = rms_norm_forward(&inputs[0].primitive, &inputs[1].primitive, eps);
    record(NormBackward, &inputs, y, state)
}

// ---- SwiGLU ----

/// What SwiGLU's backward reads: both inputs.
#[derive(Debug, Clone)]
pub(super) struct SwigluState {
    gate: FlexTensor,
    up: FlexTensor,
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    type State = SwigluState;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let s = &ops.state;
        let (dgate, dup) = glu::backward(values(&grad), values(&s.gate), values(&s.up));
        let [gate, up] = parents(&ops);
        register(grads, gate, || dgate, &s.gate);
        register(grads, up, || dup, &s.up);
    }
}

/// SwiGLU's forward on burn-flex tensors of one shape.
pub(super) fn swiglu_forward(
    gate: &FlexTensor,
    up: &FlexTensor,
) -> (FlexTensor, impl FnOnce() -> SwigluState) {
    let (gate, up) = (contiguous(gate), contiguous(up));
    let out = glu::forward(values(&gate), values(&up));
    let out = from_vec(out, gate.layout().shape().to_vec());
    (out, move || SwigluState { gate, up })
}

/// SwiGLU under autodiff (see [`super::swiglu`]).
pub(super) fn swiglu(gate: Tensor<Ad, 2>, up: Tensor<Ad, 2>) -> Tensor<Ad, 2> {
    let inputs = primitives([gate, up]);
    let (out, state) = swiglu_forward(&inputs[0].primitive, &inputs[1].primitive);
    record(SwigluBackward, &inputs, out, state)
}

// ---- rotary position embeddings ----

/// What the rotation's backward reads: the angles.
#[derive(Debug, Clone)]
pub(super) struct RopeState {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    shape: Vec<usize>,
}

#[derive(Debug)]
struct RopeBackward;

impl Backward<Flex, 1> for RopeBackward {
    type State = RopeState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let s = &ops.state;
        let d = s.shape[3];
        let [x] = parents(&ops);
        let dx = || rot::backward(values(&grad), &s.cos, &s.sin, d);
        register(grads, x, dx, &grad);
    }
}

/// The rotation's forward on a burn-flex tensor `[batch, seq, heads, head_dim]`.
pub(super) fn rope_forward(
    x: &FlexTensor,
    (cos, sin): (Arc<Vec<f32>>, Arc<Vec<f32>>),
) -> (FlexTensor, impl FnOnce() -> RopeState) {
    let x = contiguous(x);
    let shape = x.layout().shape().to_vec();
    let y = from_vec(
        rot::forward(values(&x), &cos, &sin, shape[3]),
        shape.clone(),
    );
    (y, move || RopeState { cos, sin, shape })
}

/// The rotation under autodiff (see [`super::rope`]).
pub(super) fn rope(x: Tensor<Ad, 4>, angles: (Arc<Vec<f32>>, Arc<Vec<f32>>)) -> Tensor<Ad, 4> {
    let inputs = primitives([x]);
    let (y, state) = rope_forward(&inputs[0].primitive, angles);
    record(RopeBackward, &inputs, y, state)
}
