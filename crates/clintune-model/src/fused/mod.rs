//! Fused kernels for the CPU backend, with their own backward passes.
//!
//! burn-flex runs a decoder as dozens of separate tensor operations, each a
//! pass over memory, and burn-autodiff records each one. Where a step of
//! the model is one known computation, computing it in one kernel with a
//! hand-written backward saves most of those passes and never builds the
//! intermediates: attention over packed documents (`attention`), the
//! target log-probabilities under the loss (`logprob`), linear maps
//! (`linear`), RMSNorm (`norm`), SwiGLU (`swiglu`) and rotary embeddings
//! (`rope`); LoRA's dropout mask is drawn in parallel (`dropout`, on every
//! backend), and AdamW updates each parameter in one pass (`adamw`).
//! `autodiff` records each as one burn-autodiff operation.
//!
//! burn 0.21 lets a backend gain an operation only through a new backend
//! trait that every generic signature would then carry. Instead, the model
//! stays generic over `B: Backend` and each fused entry point checks which
//! backend `B` is: burn-flex (inference) and `Autodiff<Flex>` (training)
//! run the kernels; any other backend, or a dtype other than f32, gets its
//! inputs back and the caller computes the unfused way. Tests hold every
//! kernel to the unfused computation, values and gradients (AdamW's: bit
//! for bit to burn's).

mod adamw;
pub(crate) mod attention;
mod autodiff;
mod dropout;
mod gemm;
mod linear;
mod logprob;
mod norm;
mod rope;
mod swiglu;
mod vector;

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::Dropout;
use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use std::any::{Any, TypeId};
use std::sync::Arc;

pub use adamw::AdamWStep;
pub use dropout::reseed as reseed_dropout;

type Ad = Autodiff<Flex>;

/// Which of the kernels' backends `B` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// burn-flex itself: forward only.
    Flex,
    /// burn-flex under burn-autodiff: forward, and backward when tracked.
    Autodiff,
}

fn kind<B: Backend>() -> Option<Kind> {
    let id = TypeId::of::<B>();
    if id == TypeId::of::<Flex>() {
        Some(Kind::Flex)
    } else if id == TypeId::of::<Autodiff<Flex>>() {
        Some(Kind::Autodiff)
    } else {
        None
    }
}

/// Whether the fused kernels run on backend `B` for activations in `dtype`.
pub(crate) fn runs_on<B: Backend>(dtype: DType) -> bool {
    dtype == DType::F32 && kind::<B>().is_some()
}

/// `value` as type `U`, which the caller has checked it is.
fn same<T: 'static, U: 'static>(value: T) -> U {
    match (Box::new(value) as Box<dyn Any>).downcast::<U>() {
        Ok(v) => *v,
        Err(_) => unreachable!("the backend's type was checked before the cast"),
    }
}

/// Runs `autodiff` when `B` is `Autodiff<Flex>` and `forward` when it is
/// `Flex`, on `inputs` as that backend's tensors; gives the inputs back
/// when they are not all f32 or `B` is neither.
fn route<B: Backend, I: 'static, O: 'static, IA: 'static, OA: 'static, IF: 'static, OF: 'static>(
    dtypes: &[DType],
    inputs: I,
    autodiff: impl FnOnce(IA) -> OA,
    forward: impl FnOnce(IF) -> OF,
) -> Result<O, I> {
    if dtypes.iter().any(|&d| d != DType::F32) {
        return Err(inputs);
    }
    match kind::<B>() {
        Some(Kind::Autodiff) => Ok(same(autodiff(same(inputs)))),
        Some(Kind::Flex) => Ok(same(forward(same(inputs)))),
        None => Err(inputs),
    }
}

/// Causal attention of queries `[batch, seq, heads, head_dim]` over keys
/// and values `[batch, seq, kv_heads, head_dim]`, each query seeing its own
/// document up to itself (`starts`: per token, where its document starts).
/// Returns `[batch, seq, heads, head_dim]`, or the inputs when the kernels
/// do not run on `B` or these dtypes.
pub(crate) fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    starts: &Arc<Vec<u32>>,
) -> Result<Tensor<B, 4>, [Tensor<B, 4>; 3]> {
    route::<B, _, _, _, _, _, _>(
        &[q.dtype(), k.dtype(), v.dtype()],
        [q, k, v],
        |[q, k, v]: [Tensor<Ad, 4>; 3]| autodiff::attention(q, k, v, starts),
        |[q, k, v]: [Tensor<Flex, 4>; 3]| {
            tensor::<4>(autodiff::attention_forward(&flex(q), &flex(k), &flex(v), starts).0)
        },
    )
}

/// `layer` applied to `x` while training (autodiff), its mask drawn in
/// parallel from the calling thread's stream of seeds ([`reseed_dropout`]):
/// on every backend and dtype, so a micro-batch draws the same masks
/// whichever worker runs it. burn's `Dropout` draws from the backend's
/// generator, which is one per process (on the GPU too).
pub(crate) fn dropout<B: Backend>(x: Tensor<B, 2>, layer: &Dropout) -> Tensor<B, 2> {
    let (device, prob) = (x.device(), layer.prob);
    if !B::ad_enabled(&device) || prob == 0.0 {
        return layer.forward(x);
    }
    let (seed, dims, keep) = (dropout::next_seed(), x.dims(), 1.0 - prob);
    let n = dims.iter().product();
    if runs_on::<B>(x.dtype()) {
        let mask = dropout::keep_mask(seed, n, keep);
        return x * Tensor::<B, 2>::from_data(TensorData::new(mask, dims), &device);
    }
    // One byte per element to the device, not four.
    let kept = dropout::keep_flags(seed, n, keep);
    let kept = Tensor::<B, 2, Bool>::from_data(TensorData::new(kept, dims), &device);
    x.mask_fill(kept.bool_not(), 0.0) * (1.0 / keep)
}

/// `x · wᵀ` for `x` `[rows, in]` and `w` `[out, in]`; or the inputs back
/// when the kernels do not run on `B` or these dtypes.
pub(crate) fn linear<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
) -> Result<Tensor<B, 2>, [Tensor<B, 2>; 2]> {
    route::<B, _, _, _, _, _, _>(
        &[x.dtype(), w.dtype()],
        [x, w],
        |[x, w]: [Tensor<Ad, 2>; 2]| autodiff::linear(x, w),
        |[x, w]: [Tensor<Flex, 2>; 2]| tensor::<2>(autodiff::linear_forward(&flex(x), &flex(w)).0),
    )
}

/// RMSNorm of `x` `[batch, seq, width]` with weight `w` `[width]`; or the
/// inputs back when the kernels do not run on `B` or these dtypes.
pub(crate) fn rms_norm<B: Backend>(
    x: Tensor<B, 3>,
    w: Tensor<B, 1>,
    eps: f64,
) -> Result<Tensor<B, 3>, (Tensor<B, 3>, Tensor<B, 1>)> {
    let eps = eps as f32;
    route::<B, _, _, _, _, _, _>(
        &[x.dtype(), w.dtype()],
        (x, w),
        |(x, w): (Tensor<Ad, 3>, Tensor<Ad, 1>)| autodiff::rms_norm(x, w, eps),
        |(x, w): (Tensor<Flex, 3>, Tensor<Flex, 1>)| {
            tensor::<3>(autodiff::rms_norm_forward(&flex(x), &flex(w), eps).0)
        },
    )
}

/// `x` `[batch, seq, heads, head_dim]` rotated by each token's angles
/// (`cos`, `sin`: `[batch · seq, head_dim]`, row-major); or `x` back when
/// the kernels do not run on `B` or this dtype.
pub(crate) fn rope<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Arc<Vec<f32>>,
    sin: &Arc<Vec<f32>>,
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    let angles = || (cos.clone(), sin.clone());
    route::<B, _, _, _, _, _, _>(
        &[x.dtype()],
        x,
        |x: Tensor<Ad, 4>| autodiff::rope(x, angles()),
        |x: Tensor<Flex, 4>| tensor::<4>(autodiff::rope_forward(&flex(x), angles()).0),
    )
}

/// `silu(gate) · up` for two `[rows, width]` tensors; or the inputs back
/// when the kernels do not run on `B` or these dtypes.
pub(crate) fn swiglu<B: Backend>(
    gate: Tensor<B, 2>,
    up: Tensor<B, 2>,
) -> Result<Tensor<B, 2>, [Tensor<B, 2>; 2]> {
    route::<B, _, _, _, _, _, _>(
        &[gate.dtype(), up.dtype()],
        [gate, up],
        |[gate, up]: [Tensor<Ad, 2>; 2]| autodiff::swiglu(gate, up),
        |[gate, up]: [Tensor<Flex, 2>; 2]| {
            tensor::<2>(autodiff::swiglu_forward(&flex(gate), &flex(up)).0)
        },
    )
}

/// Each position's log-probability of its target, `[batch, seq]`, from
/// logits `[batch, seq, vocab]`; or the logits back when the kernels do not
/// run on `B` or this dtype.
pub(crate) fn token_logps<B: Backend>(
    logits: Tensor<B, 3>,
    targets: &Tensor<B, 2, Int>,
) -> Result<Tensor<B, 2>, Tensor<B, 3>> {
    if !runs_on::<B>(logits.dtype()) {
        return Err(logits);
    }
    let targets: Arc<Vec<u32>> =
        Arc::new(targets.to_data().iter::<i64>().map(|t| t as u32).collect());
    let for_forward = targets.clone();
    route::<B, _, _, _, _, _, _>(
        &[logits.dtype()],
        logits,
        |logits: Tensor<Ad, 3>| autodiff::token_logps(logits, targets),
        |logits: Tensor<Flex, 3>| {
            tensor::<2>(autodiff::token_logps_forward(&flex(logits), for_forward).0)
        },
    )
}

/// A parameter, its gradient and its AdamW moments (none before the first
/// step), handed back where the kernel does not run.
pub type AdamWInputs<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>, Option<[Tensor<B, D>; 2]>);

/// One AdamW step of `param` by `grad`, bit-identical to burn-optim's
/// `AdamW` (without AMSGrad or cautious decay): the updated parameter and
/// moments, computed in place in one pass on burn-flex in f32; the inputs
/// back on any other backend or dtype (the caller runs burn's AdamW).
pub fn adamw_step<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<[Tensor<B, D>; 2]>,
    step: &AdamWStep,
) -> Result<[Tensor<B, D>; 3], AdamWInputs<B, D>> {
    let f32s = [&param, &grad]
        .into_iter()
        .chain(moments.iter().flatten())
        .all(|t| t.dtype() == DType::F32);
    if !f32s || kind::<B>() != Some(Kind::Flex) {
        return Err((param, grad, moments));
    }
    let shape = param.shape();
    let mut p = exclusive(flex(same::<_, Tensor<Flex, D>>(param)));
    let g = contiguous(&flex(same::<_, Tensor<Flex, D>>(grad)));
    let (mut m, mut v, first) = match moments {
        Some([m, v]) => (
            exclusive(flex(same::<_, Tensor<Flex, D>>(m))),
            exclusive(flex(same::<_, Tensor<Flex, D>>(v))),
            false,
        ),
        None => {
            let zeros = || FlexTensor::zeros(shape.clone(), DType::F32);
            (zeros(), zeros(), true)
        }
    };
    adamw::update(
        p.storage_mut::<f32>(),
        values(&g),
        m.storage_mut::<f32>(),
        v.storage_mut::<f32>(),
        step,
        first,
    );
    Ok([p, m, v].map(|t| same(tensor::<D>(t))))
}

/// `t` over a buffer of exactly its values, to update in place (a copy
/// when it is a view; `storage_mut` copies a buffer another tensor shares).
fn exclusive(t: FlexTensor) -> FlexTensor {
    let whole = t.layout().contiguous_offsets() == Some((0, t.storage::<f32>().len()));
    if whole { t } else { t.to_contiguous() }
}

/// A burn-flex tensor as a `Tensor`.
fn tensor<const D: usize>(t: FlexTensor) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn flex<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    t.into_primitive().tensor()
}

/// A contiguous f32 tensor of `shape` holding `values`.
fn from_vec(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `t`'s values, row-major (a copy only when `t` is a strided view).
fn contiguous(t: &FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// The f32 values of a contiguous tensor.
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .unwrap_or_else(|| unreachable!("fused kernels get contiguous f32 tensors"))
}

#[cfg(test)]
mod tests;
