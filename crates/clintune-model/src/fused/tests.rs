//! Every fused kernel against the unfused computation it replaces.

use super::attention::document_starts;
use crate::llama::{Attention, Context, HfLinear, Mask, Rotary};
use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::DType;
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
        q_norm: None,
        k_norm: None,
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
                rotary: Rotary::Repeated(vec![]),
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
        rotary: Rotary::Repeated(vec![]),
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

#[test]
fn fused_target_log_probs_match_log_softmax_and_gather_in_values_and_gradients() {
    use burn::tensor::activation::log_softmax;
    let (b, s, vocab) = (3, 7, 37);
    let mut rng = SplitMix64(5);
    let targets: Vec<i64> = (0..b * s).map(|_| rng.below(vocab as u64) as i64).collect();
    let targets =
        Tensor::<Ad, 2, Int>::from_data(TensorData::new(targets, [b, s]), &Default::default());
    // Some positions weigh nothing, as untrained tokens do.
    let weights = random::<Ad, 2>([b, s], 8).clamp_min(0.0);
    let run = |fused: bool| {
        let logits = (random::<Ad, 3>([b, s, vocab], 4) * 6.0).require_grad();
        let logp = if fused {
            super::token_logps(logits.clone(), &targets)
                .unwrap_or_else(|_| panic!("the kernel runs on Autodiff<Flex>"))
        } else {
            log_softmax(logits.clone(), 2)
                .gather(2, targets.clone().reshape([b, s, 1]))
                .reshape([b, s])
        };
        let grads = (logp.clone() * weights.clone()).sum().backward();
        (logp.inner(), logits.grad(&grads).expect("a gradient"))
    };
    let (fused, fused_grad) = run(true);
    let (plain, plain_grad) = run(false);
    assert_close(fused, plain, "log-probabilities");
    assert_close(fused_grad, plain_grad, "logits' gradient");
}

#[test]
fn fused_linear_matches_a_transposed_matmul_and_its_weight_gradient_is_contiguous() {
    let weights = random::<Ad, 2>([9, 5], 3);
    let run = |fused: bool| {
        let x = random::<Ad, 2>([9, 7], 1).require_grad();
        let w = random::<Ad, 2>([5, 7], 2).require_grad();
        let y = if fused {
            super::linear(x.clone(), w.clone())
                .unwrap_or_else(|_| panic!("the kernel runs on Autodiff<Flex>"))
        } else {
            x.clone().matmul(w.clone().transpose())
        };
        let grads = (y.clone() * weights.clone()).sum().backward();
        let grad = |t: &Tensor<Ad, 2>| t.grad(&grads).expect("a gradient");
        (y.inner(), grad(&x), grad(&w))
    };
    let (y, dx, dw) = run(true);
    let (want_y, want_dx, want_dw) = run(false);
    assert!(dw.clone().into_primitive().tensor().is_contiguous());
    assert_close(y, want_y, "output");
    assert_close(dx, want_dx, "input's gradient");
    assert_close(dw, want_dw, "weight's gradient");
}

#[test]
fn fused_rms_norm_matches_its_operations_in_values_and_gradients() {
    let (b, s, width) = (3, 5, 40);
    let upstream = random::<Ad, 3>([b, s, width], 7);
    let run = |fused: bool| {
        let x = (random::<Ad, 3>([b, s, width], 1) * 3.0).require_grad();
        let w = random::<Ad, 1>([width], 2).require_grad();
        let y = if fused {
            super::rms_norm(x.clone(), w.clone(), 1e-5)
                .unwrap_or_else(|_| panic!("the kernel runs on Autodiff<Flex>"))
        } else {
            crate::llama::rms_norm(x.clone(), w.clone(), 1e-5)
        };
        let grads = (y.clone() * upstream.clone()).sum().backward();
        let dx = x.grad(&grads).expect("a gradient");
        (y.inner(), dx, w.grad(&grads).expect("a gradient"))
    };
    let (y, dx, dw) = run(true);
    let (want_y, want_dx, want_dw) = run(false);
    assert_close(y, want_y, "output");
    assert_close(dx, want_dx, "input's gradient");
    assert_close(dw, want_dw, "weight's gradient");
}

#[test]
fn fused_swiglu_matches_silu_times_up_in_values_and_gradients() {
    use burn::tensor::activation::silu;
    // More elements than one task's chunk, and gates far into both tails.
    let (rows, width) = (70, 300);
    let upstream = random::<Ad, 2>([rows, width], 7);
    let run = |fused: bool| {
        let gate = (random::<Ad, 2>([rows, width], 1) * 30.0).require_grad();
        let up = random::<Ad, 2>([rows, width], 2).require_grad();
        let out = if fused {
            super::swiglu(gate.clone(), up.clone())
                .unwrap_or_else(|_| panic!("the kernel runs on Autodiff<Flex>"))
        } else {
            silu(gate.clone()) * up.clone()
        };
        let grads = (out.clone() * upstream.clone()).sum().backward();
        let grad = |t: &Tensor<Ad, 2>| t.grad(&grads).expect("a gradient");
        (out.inner(), grad(&gate), grad(&up))
    };
    let (out, dgate, dup) = run(true);
    let (want, want_dgate, want_dup) = run(false);
    assert_close(out, want, "output");
    assert_close(dgate, want_dgate, "gate's gradient");
    assert_close(dup, want_dup, "up's gradient");
}

#[test]
fn fused_rope_matches_its_operations_in_values_and_gradients() {
    let (b, s, heads, d) = (2, 5, 3, 8);
    let inv_freq = [1.0, 0.1, 0.01, 0.001];
    let positions: Vec<u32> = (0..(b * s) as u32).map(|p| p % 4 * 7).collect();
    let (cos, sin) = crate::rope::cos_sin(&inv_freq, &positions);
    let table = |v: &[f32]| {
        crate::llama::angle_table::<Ad>(v.to_vec(), [b, s, d], DType::F32, &Default::default())
            .repeat_dim(2, heads)
    };
    let (cos_t, sin_t) = (table(&cos), table(&sin));
    let (cos, sin) = (Arc::new(cos), Arc::new(sin));
    let upstream = random::<Ad, 4>([b, s, heads, d], 7);
    let run = |fused: bool| {
        let x = random::<Ad, 4>([b, s, heads, d], 1).require_grad();
        let y = if fused {
            super::rope(x.clone(), &cos, &sin)
                .unwrap_or_else(|_| panic!("the kernel runs on Autodiff<Flex>"))
        } else {
            crate::llama::rotate_with(x.clone(), &cos_t, &sin_t)
        };
        let grads = (y.clone() * upstream.clone()).sum().backward();
        (y.inner(), x.grad(&grads).expect("a gradient"))
    };
    let (y, dx) = run(true);
    let (want_y, want_dx) = run(false);
    assert_close(y, want_y, "output");
    assert_close(dx, want_dx, "input's gradient");
}

#[test]
fn dropout_draws_the_same_mask_in_f32_and_bf16_and_passes_gradients_through_it() {
    let layer = burn::nn::DropoutConfig::new(0.3).init();
    // The output and the input's gradient, as f32 values.
    let dropped = |dtype: DType| {
        super::reseed_dropout(11);
        let x = random::<Ad, 2>([8, 64], 5).cast(dtype).require_grad();
        let y = super::dropout(x.clone(), &layer);
        let grad = y.clone().sum().backward();
        let values = |t: Tensor<Flex, 2>| t.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
        (values(y.inner()), values(x.grad(&grad).unwrap()))
    };
    let (y32, dx32) = dropped(DType::F32);
    let (y16, dx16) = dropped(DType::BF16);
    let zeros = |v: &[f32]| v.iter().map(|&v| v == 0.0).collect::<Vec<_>>();
    let zeroed = zeros(&dx32);
    let share = zeroed.iter().filter(|&&z| z).count() as f64 / zeroed.len() as f64;
    assert!((share - 0.3).abs() < 0.06, "dropped share {share}");
    assert_eq!(zeroed, zeros(&dx16), "bf16 drops other elements");
    assert_eq!(zeroed, zeros(&y32), "the output is zero where dropped");
    // Kept elements are scaled by 1 / (1 - p), in the output and its
    // gradient; bf16 within its rounding (8 bits of mantissa).
    assert!(
        dx32.iter()
            .all(|&g| g == 0.0 || (g - 1.0 / 0.7).abs() < 1e-6)
    );
    for (what, a, b) in [("gradients", &dx32, &dx16), ("outputs", &y32, &y16)] {
        for (a, b) in a.iter().zip(b) {
            assert!((a - b).abs() <= a.abs() / 128.0, "{what}: {a} vs {b}");
        }
    }
}
