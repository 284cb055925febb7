//! Training and inference throughput of the Llama-family decoder on the CPU
//! backend, in tokens per second.
//!
//! `fwd_bwd`: one forward and backward pass (causal LM loss over every
//! token) of a batch, as in a full fine-tuning step without the optimizer.
//! `fwd_bwd_bf16`: the same in bf16 mixed precision. `forward`: the same
//! batch without gradients. The model is the small
//! config below (6 layers, hidden 512), randomly initialised.
//!
//! Whole training steps beside PyTorch (both shapes, full and LoRA) are
//! `benches/model_vs_torch.py`'s, through `clintune bench`. Threads: burn's
//! CPU backend uses rayon's global pool, so `RAYON_NUM_THREADS` sets them.

/// The allocator and setting of the `clintune` binary's `train`, so that
/// the figures are the ones a training run gets.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use clintune_core::rng::SplitMix64;
use clintune_model::loss::token_nll;
use clintune_model::{Batch, Llama, ModelConfig};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::time::Duration;

/// A small Llama: 6 layers, hidden 512, 8 heads, SwiGLU 1536, vocabulary 8192
/// (the size of a clintune-trained tokenizer): 28.8 M parameters.
fn config_text() -> &'static str {
    clintune_train::bench::preset("small").expect("a built-in preset")
}

/// Rows per batch.
const BATCH: usize = 4;
/// Tokens per row.
const SEQ: usize = 256;

fn batch() -> (Batch, Vec<i64>) {
    let mut rng = SplitMix64(17);
    let tokens: Vec<u32> = (0..BATCH * SEQ).map(|_| rng.below(8192) as u32).collect();
    let rows: Vec<Vec<u32>> = tokens.chunks(SEQ).map(<[u32]>::to_vec).collect();
    // Next-token targets; the last position predicts the first (a stand-in).
    let targets = rows
        .iter()
        .flat_map(|r| r[1..].iter().chain(&r[..1]).map(|&t| i64::from(t)))
        .collect();
    (Batch::unpacked(&rows), targets)
}

fn bench(c: &mut Criterion) {
    clintune_train::memory::keep_freed_memory();
    let config = ModelConfig::parse(config_text()).expect("bench config");
    let (input, targets) = batch();
    let mut group = c.benchmark_group("model");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements((BATCH * SEQ) as u64));

    type Ad = Autodiff<Flex>;
    let device = Default::default();
    let model = Llama::<Ad>::random(&config, 1, 0.02, &device);
    let targets_t =
        Tensor::<Ad, 2, Int>::from_data(TensorData::new(targets, [BATCH, SEQ]), &device);
    let weights = Tensor::<Ad, 2>::ones([BATCH, SEQ], &device);
    let fwd_bwd = |model: &Llama<Ad>| {
        let logits = model.forward(&input);
        let loss = token_nll(logits, targets_t.clone(), weights.clone()) / (BATCH * SEQ) as f64;
        loss.backward()
    };
    group.bench_function("fwd_bwd", |b| b.iter(|| fwd_bwd(&model)));
    // Mixed precision (recipe `precision = "bf16"`): f32 weights, bf16
    // activations. Flex widens bf16 to f32 for its matmuls, so on the CPU
    // this measures the cost of the casts, not a speed-up.
    let mixed = model.with_compute_dtype(burn::tensor::DType::BF16);
    group.bench_function("fwd_bwd_bf16", |b| b.iter(|| fwd_bwd(&mixed)));

    let model = Llama::<Flex>::random(&config, 1, 0.02, &device);
    group.bench_function("forward", |b| b.iter(|| model.forward(&input).into_data()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
