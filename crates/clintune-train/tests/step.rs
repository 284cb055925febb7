//! One optimizer step's arithmetic on the reference Llama: gradient
//! accumulation equals a larger batch, and packing examples into one row
//! gives the loss of the examples run alone.

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use clintune_core::rng::SplitMix64;
use clintune_curate::reader::{PackConfig, PackedReader};
use clintune_model::loss::token_nll;
use clintune_model::{Llama, ModelConfig, WeightFiles};
use clintune_train::data::Inputs;
use clintune_train::trainer::gradients;
use std::path::Path;

type Ad = Autodiff<Flex>;

fn model<B: Backend>(full: bool) -> Llama<B> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llama/llama-gqa-rope3");
    let config = ModelConfig::load(&dir).unwrap();
    let model = Llama::load(
        &config,
        &WeightFiles::open(&dir).unwrap(),
        &Default::default(),
    )
    .unwrap();
    if full {
        model
    } else {
        model.with_lora(
            &clintune_model::LoraConfig {
                dropout: 0.0,
                ..Default::default()
            },
            3,
        )
    }
}

/// Documents of random length with a loss mask on their second half.
fn documents(n: usize) -> Vec<(Vec<u32>, Vec<u8>)> {
    let mut rng = SplitMix64(11);
    (0..n)
        .map(|_| {
            let len = 5 + rng.below(20) as usize;
            let ids = (0..len).map(|_| rng.below(1024) as u32).collect();
            let mask = (0..len).map(|i| u8::from(i >= len / 2)).collect();
            (ids, mask)
        })
        .collect()
}

fn reader(batch_size: usize, pack: bool) -> PackedReader {
    let cfg = PackConfig {
        seq_len: 32,
        batch_size,
        seed: 1,
        shuffle: false,
        pack,
        pad_id: 3,
    };
    PackedReader::from_documents(documents(12), cfg).unwrap()
}

/// Every gradient of the model, flattened in visiting order.
struct Collect<'a> {
    grads: &'a GradientsParams,
    out: Vec<f32>,
}

impl ModuleVisitor<Ad> for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Ad, D>>) {
        if let Some(g) = self.grads.get::<Flex, D>(p.id) {
            self.out.extend(g.into_data().to_vec::<f32>().unwrap());
        }
    }
}

fn flat(model: &Llama<Ad>, grads: &GradientsParams) -> Vec<f32> {
    let mut c = Collect {
        grads,
        out: Vec::new(),
    };
    model.visit(&mut c);
    c.out
}

fn step(model: &Llama<Ad>, micro_batch: usize, accum: usize) -> (Vec<f32>, f64, usize) {
    let mut r = reader(micro_batch, true);
    let micro: Vec<(u64, Inputs<Ad>)> = (0..accum)
        .map(|j| (j as u64, Inputs::new(&r.next_batch(), &Default::default())))
        .collect();
    let tokens = micro.iter().map(|(_, m)| m.trained).sum();
    let (grads, loss) = gradients(model, micro, tokens, &mut |_| {});
    (flat(model, &grads), loss, tokens)
}

#[test]
fn accumulated_micro_batches_equal_one_larger_batch() {
    for full in [true, false] {
        let model = model::<Ad>(full);
        let (whole, loss, tokens) = step(&model, 4, 1);
        assert!(tokens > 20 && loss > 1.0, "{tokens} {loss}");
        let scale = whole.iter().fold(0f32, |m, g| m.max(g.abs()));
        assert!(scale > 0.0);
        for (micro_batch, accum) in [(2, 2), (1, 4)] {
            let (parts, part_loss, part_tokens) = step(&model, micro_batch, accum);
            assert_eq!(part_tokens, tokens);
            assert!((part_loss - loss).abs() < 1e-5, "{part_loss} vs {loss}");
            assert_eq!(parts.len(), whole.len());
            let diff = parts
                .iter()
                .zip(&whole)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff <= 1e-5 * scale,
                "full={full} {micro_batch}x{accum}: {diff} (scale {scale})"
            );
        }
    }
}

#[test]
fn a_packed_row_scores_like_its_examples_alone() {
    let model = model::<Flex>(true);
    let nll = |pack: bool| {
        let mut r = reader(12, pack);
        let m = Inputs::<Flex>::new(&r.next_batch(), &Default::default());
        let sum = token_nll(model.forward(&m.batch), m.targets, m.weights).into_scalar();
        (f64::from(sum), m.trained)
    };
    let (packed, packed_tokens) = nll(true);
    let (alone, alone_tokens) = nll(false);
    assert_eq!(packed_tokens, alone_tokens);
    assert!(packed_tokens > 50);
    assert!(
        (packed - alone).abs() < 1e-3 * alone.abs().max(1.0),
        "{packed} vs {alone}"
    );
    // Packing really did put several examples in a row.
    let mut r = reader(12, true);
    let batch = r.next_batch();
    assert!(batch.pieces.iter().any(|p| p.column > 0));
}
