//! Fused kernels for the CPU backend, with their own backward passes.
//!
//! burn-flex runs a decoder as dozens of separate tensor operations, each a
//! pass over memory, and burn-autodiff records each one. Where a step of
//! the model is one known computation (attention over packed documents),
//! computing it in one kernel with a hand-written backward saves most of
//! those passes and never builds the intermediates.
//!
//! burn 0.21 lets a backend gain an operation only through a new backend
//! trait that every generic signature would then carry. Instead, the model
//! stays generic over `B: Backend` and each fused entry point checks which
//! backend `B` is: burn-flex (inference) and `Autodiff<Flex>` (training)
//! run the kernels; any other backend, or a dtype other than f32, gets its
//! inputs back and the caller computes the unfused way (CUDA's backend fuses
//! on its own). Tests hold every kernel to the unfused computation, values
//! and gradients.

pub(crate) mod attention;
mod autodiff;
mod dropout;
mod gemm;
mod linear;
mod logprob;
mod norm;
mod swiglu;
mod vector;

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::{DType, Distribution, TensorPrimitive};
use std::any::{Any, TypeId};
use std::sync::Arc;

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

/// Causal attention of queries `[batch, seq, heads, head_dim]` over keys
/// and values `[batch, seq, kv_heads, head_dim]`, each query seeing its own
/// document up to itself (`starts`: per token, where its document starts).
/// Returns `[batch, seq, heads, head_dim]`, or the inputs when the kernels
/// do not run on `B` or this dtype.
pub(crate) fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    starts: &Arc<Vec<u32>>,
) -> Result<Tensor<B, 4>, [Tensor<B, 4>; 3]> {
    if !runs_on::<B>(q.dtype()) || k.dtype() != DType::F32 || v.dtype() != DType::F32 {
        return Err([q, k, v]);
    }
    match kind::<B>() {
        Some(Kind::Autodiff) => Ok(same(autodiff::attention(same(q), same(k), same(v), starts))),
        Some(Kind::Flex) => {
            let [q, k, v] = [q, k, v].map(|t| flex(same::<_, Tensor<Flex, 4>>(t)));
            let (out, _) = autodiff::attention_forward(&q, &k, &v, starts);
            Ok(same(Tensor::<Flex, 4>::from_primitive(
                TensorPrimitive::Float(out),
            )))
        }
        None => Err([q, k, v]),
    }
}

/// Dropout with probability `prob` while training (autodiff), drawing the
/// mask in parallel where the kernels run and with burn's `Dropout`
/// elsewhere. The mask's seed is drawn from the backend's generator.
pub(crate) fn dropout<B: Backend>(x: Tensor<B, 2>, prob: f64) -> Tensor<B, 2> {
    let device = x.device();
    if !runs_on::<B>(x.dtype()) || !B::ad_enabled(&device) || prob == 0.0 {
        return burn::nn::DropoutConfig::new(prob).init().forward(x);
    }
    let bits = Tensor::<B, 1>::random([2], Distribution::Default, &device)
        .into_data()
        .iter::<f32>()
        .fold(0u64, |h, v| {
            clintune_core::rng::mix64(h ^ u64::from(v.to_bits()))
        });
    let mask = dropout::keep_mask(bits, x.shape().num_elements(), 1.0 - prob);
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, x.dims()), &device);
    x * mask
}

/// `x · wᵀ` for `x` `[rows, in]` and `w` `[out, in]`; or the inputs back
/// when the kernels do not run on `B` or these dtypes.
pub(crate) fn linear<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
) -> Result<Tensor<B, 2>, [Tensor<B, 2>; 2]> {
    if !runs_on::<B>(x.dtype()) || w.dtype() != DType::F32 {
        return Err([x, w]);
    }
    match kind::<B>() {
        Some(Kind::Autodiff) => Ok(same(autodiff::linear(same(x), same(w)))),
        Some(Kind::Flex) => {
            let [x, w] = [x, w].map(|t| flex(same::<_, Tensor<Flex, 2>>(t)));
            let (y, _) = autodiff::linear_forward(&x, &w);
            Ok(same(Tensor::<Flex, 2>::from_primitive(
                TensorPrimitive::Float(y),
            )))
        }
        None => Err([x, w]),
    }
}

/// RMSNorm of `x` `[batch, seq, width]` with weight `w` `[width]`; or the
/// inputs back when the kernels do not run on `B` or these dtypes.
pub(crate) fn rms_norm<B: Backend>(
    x: Tensor<B, 3>,
    w: Tensor<B, 1>,
    eps: f64,
) -> Result<Tensor<B, 3>, (Tensor<B, 3>, Tensor<B, 1>)> {
    if !runs_on::<B>(x.dtype()) || w.dtype() != DType::F32 {
        return Err((x, w));
    }
    match kind::<B>() {
        Some(Kind::Autodiff) => Ok(same(autodiff::rms_norm(same(x), same(w), eps as f32))),
        Some(Kind::Flex) => {
            let x = flex(same::<_, Tensor<Flex, 3>>(x));
            let w = flex(same::<_, Tensor<Flex, 1>>(w));
            let (y, _) = autodiff::rms_norm_forward(&x, &w, eps as f32);
            Ok(same(Tensor::<Flex, 3>::from_primitive(
                TensorPrimitive::Float(y),
            )))
        }
        None => Err((x, w)),
    }
}

/// `silu(gate) · up` for two `[rows, width]` tensors; or the inputs back
/// when the kernels do not run on `B` or these dtypes.
pub(crate) fn swiglu<B: Backend>(
    gate: Tensor<B, 2>,
    up: Tensor<B, 2>,
) -> Result<Tensor<B, 2>, [Tensor<B, 2>; 2]> {
    if !runs_on::<B>(gate.dtype()) || up.dtype() != DType::F32 {
        return Err([gate, up]);
    }
    match kind::<B>() {
        Some(Kind::Autodiff) => Ok(same(autodiff::swiglu(same(gate), same(up)))),
        Some(Kind::Flex) => {
            let [gate, up] = [gate, up].map(|t| flex(same::<_, Tensor<Flex, 2>>(t)));
            let (out, _) = autodiff::swiglu_forward(&gate, &up);
            Ok(same(Tensor::<Flex, 2>::from_primitive(
                TensorPrimitive::Float(out),
            )))
        }
        None => Err([gate, up]),
    }
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
    match kind::<B>() {
        Some(Kind::Autodiff) => Ok(same(autodiff::token_logps(same(logits), targets))),
        Some(Kind::Flex) => {
            let logits = flex(same::<_, Tensor<Flex, 3>>(logits));
            let (logp, _) = autodiff::token_logps_forward(&logits, targets);
            Ok(same(Tensor::<Flex, 2>::from_primitive(
                TensorPrimitive::Float(logp),
            )))
        }
        None => Err(logits),
    }
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
