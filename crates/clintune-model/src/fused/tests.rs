//! Every fused kernel against the unfused computation it replaces.

use super::attention::document_starts;
use crate::llama::{Attention, Context, HfLinear, Mask};
use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::prelude::*;
use clintune_core::rng::SplitMix64;
use std::sync::Arc;

type Ad = Autodiff<Flex>;

fn random<B: Backend, const D: usize>(shape: [usize; D], seed: u64) -> Tensor<B, D> {
    let mut rng = SplitMix64(seed);
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn assert_close<const D: usize>(got: Tensor<Flex, D>, want: Tensor<Flex, D>, what: &str) {
    let (got, want) = (got.into_data(), want.into_data());
    assert_eq!(got.shape, want.shape, "{what}");
    let (got, want) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 2e-5 * scale,
        "{what}: differs by {worst} (scale {scale})"
    );
}

/// An attention block of these sizes; its projections are never used.
fn attention<B: Backend>(heads: usize, kv_heads: usize, head_dim: usize) -> Attention<B> {
    let unused = || HfLinear {
        weight: Param::from_tensor(Tensor::zeros([1, 1], &Default::default())),
        bias: None,
        lora: None,
    };
    Attention {
        q_proj: unused(),
        k_proj: unused(),
        v_proj: unused(),
        o_proj: unused(),
        heads,
        kv_heads,
        head_dim,
    }
}

#[test]
fn document_starts_follow_packed_documents_and_refuse_a_resumed_one() {
    let starts = document_starts(&[0, 0, 1, 1, 1, 7, 7, 7], 4).unwrap();
    assert_eq!(starts, [0, 0, 2, 2, 0, 1, 1, 1]);
    assert_eq!(document_starts(&[0, 1, 0, 2], 4), None);
}

/// Two rows of 70 tokens (two blocks of queries, the second partial): the
/// first packs documents of 5, 60 and 5 tokens, the second is one document.
fn packed_starts() -> Arc<Vec<u32>> {
    let docs: Vec<u32> = (0..70)
        .map(|t| match t {
            0..5 => 3,
            5..65 => 4,
            _ => 5,
        })
        .chain(std::iter::repeat_n(0, 70))
        .collect();
    Arc::new(document_starts(&docs, 70).unwrap())
}

#[test]
fn fused_attention_matches_the_unfused_operations_in_values_and_gradients() {
    let (b, s, heads, kv_heads, d) = (2, 70, 4, 2, 8);
    let starts = packed_starts();
    let inputs = |seed| {
        [
            random::<Ad, 4>([b, s, heads, d], seed),
            random::<Ad, 4>([b, s, kv_heads, d], seed + 1),
            random::<Ad, 4>([b, s, kv_heads, d], seed + 2),
        ]
        .map(Tensor::require_grad)
    };
    let weights = random::<Ad, 4>([b, s, heads, d], 9);
    let run = |fused: bool| {
        let [q, k, v] = inputs(1);
        let out = if fused {
            super::attention(q.clone(), k.clone(), v.clone(), &starts)
                .unwrap_or_else(|_| panic!("the kernel runs on Autodiff<Flex>"))
        } else {
            let ctx = Context {
                rotary: vec![],
                mask: Mask::Documents(starts.clone()),
            };
            attention(heads, kv_heads, d).attend(q.clone(), k.clone(), v.clone(), &ctx, None)
        };
        let grads = (out.clone() * weights.clone()).sum().backward();
        let grad = |t: &Tensor<Ad, 4>| t.grad(&grads).expect("a gradient");
        (out.inner(), [grad(&q), grad(&k), grad(&v)])
    };
    let (fused, fused_grads) = run(true);
    let (plain, plain_grads) = run(false);
    assert_close(fused, plain, "output");
    for ((got, want), name) in fused_grads
        .into_iter()
        .zip(plain_grads)
        .zip(["q", "k", "v"])
    {
        assert_close(got, want, name);
    }
}

#[test]
fn fused_attention_without_autodiff_gives_the_same_output() {
    let (b, s, heads, kv_heads, d) = (2, 70, 4, 2, 8);
    let starts = packed_starts();
    let q = random::<Flex, 4>([b, s, heads, d], 1);
    let k = random::<Flex, 4>([b, s, kv_heads, d], 2);
    let v = random::<Flex, 4>([b, s, kv_heads, d], 3);
    let ctx = Context {
        rotary: vec![],
        mask: Mask::Documents(starts.clone()),
    };
    let plain = attention(heads, kv_heads, d).attend(q.clone(), k.clone(), v.clone(), &ctx, None);
    let fused =
        super::attention(q, k, v, &starts).unwrap_or_else(|_| panic!("the kernel runs on Flex"));
    assert_close(fused, plain, "output");
}

#[test]
fn other_dtypes_get_their_inputs_back() {
    let q = random::<Flex, 4>([1, 4, 2, 8], 1).cast(burn::tensor::DType::BF16);
    let k = random::<Flex, 4>([1, 4, 2, 8], 2);
    let starts = Arc::new(vec![0; 4]);
    assert!(super::attention(q, k.clone(), k, &starts).is_err());
}
