//! The fused kernels as burn-autodiff operations: the forward runs the
//! kernel on the inner burn-flex tensors, and a tracked call registers a
//! backward step that runs the kernel's backward.

use super::attention::{self, Dims, Saved};
use super::{contiguous, from_vec, values};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use std::sync::Arc;

type Ad = Autodiff<Flex>;

/// What attention's backward reads: the inputs, the output and the
/// log-sum-exps (all contiguous).
#[derive(Debug, Clone)]
struct AttentionState {
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
        let shape = |t: &FlexTensor| t.layout().shape().to_vec();
        let [q, k, v] = ops.parents;
        for (parent, grad, like) in [(q, g.dq, &s.q), (k, g.dk, &s.k), (v, g.dv, &s.v)] {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, from_vec(grad, shape(like)));
            }
        }
    }
}

/// The sizes of an attention call on these tensors.
fn dims(q: &FlexTensor, k: &FlexTensor) -> Dims {
    let (qs, ks) = (q.layout().shape(), k.layout().shape());
    Dims {
        batch: qs[0],
        seq: qs[1],
        heads: qs[2],
        kv_heads: ks[2],
        head_dim: qs[3],
    }
}

/// Attention's forward on burn-flex tensors: the output, and what the
/// backward needs.
pub(super) fn attention_forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    starts: &Arc<Vec<u32>>,
) -> (FlexTensor, AttentionSaved) {
    let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
    let dims = dims(&q, &k);
    let fwd = attention::forward(dims, starts, values(&q), values(&k), values(&v));
    let out = from_vec(fwd.out, q.layout().shape().to_vec());
    let saved = AttentionSaved {
        dims,
        q,
        k,
        v,
        lse: Arc::new(fwd.lse),
    };
    (out, saved)
}

/// The contiguous inputs and log-sum-exps of one forward.
pub(super) struct AttentionSaved {
    dims: Dims,
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    lse: Arc<Vec<f32>>,
}

/// Attention under autodiff (see [`super::attention`]).
pub(super) fn attention(
    q: Tensor<Ad, 4>,
    k: Tensor<Ad, 4>,
    v: Tensor<Ad, 4>,
    starts: &Arc<Vec<u32>>,
) -> Tensor<Ad, 4> {
    let [q, k, v] = [q, k, v].map(|t| t.into_primitive().tensor());
    let (out, saved) = attention_forward(&q.primitive, &k.primitive, &v.primitive, starts);
    let prep = AttentionBackward
        .prepare::<NoCheckpointing>([q.node.clone(), k.node.clone(), v.node.clone()])
        .compute_bound()
        .stateful();
    let result = match prep {
        OpsKind::Tracked(prep) => {
            let state = AttentionState {
                dims: saved.dims,
                starts: starts.clone(),
                q: saved.q,
                k: saved.k,
                v: saved.v,
                out: out.clone(),
                lse: saved.lse,
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(result))
}
