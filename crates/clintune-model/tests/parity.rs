//! Reference parity: clintune's burn model gives transformers' logits and
//! losses on the reference models of `tests/fixtures/llama`, for a batch and
//! for a packed row of two documents.

use burn::backend::Flex;
use clintune_model::{Batch, Llama, ModelConfig, WeightFiles};
use serde_json::Value;
use std::path::{Path, PathBuf};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/llama")
        .join(name)
}

/// A golden tensor as f32 values, with its shape.
fn golden_tensor(dir: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = file.tensor(name).unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (values, view.shape().to_vec())
}

fn ids(value: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(value.clone()).unwrap()
}

fn load(name: &str) -> (Llama<B>, Value) {
    let dir = fixture(name);
    let config = ModelConfig::load(&dir).unwrap();
    let model = Llama::<B>::load(
        &config,
        &WeightFiles::open(&dir).unwrap(),
        &Default::default(),
    )
    .unwrap();
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap();
    (model, golden)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Mean next-token cross-entropy over the positions `weights` marks.
fn loss(logits: &[f32], vocab: usize, tokens: &[u32], targets_ok: impl Fn(usize) -> bool) -> f64 {
    let (mut total, mut n) = (0.0f64, 0);
    for t in 0..tokens.len() - 1 {
        if !targets_ok(t + 1) {
            continue;
        }
        let row = &logits[t * vocab..(t + 1) * vocab];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max
            + row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln();
        total += lse - row[tokens[t + 1] as usize] as f64;
        n += 1;
    }
    total / n as f64
}

fn check(name: &str) {
    let dir = fixture(name);
    let (model, golden) = load(name);
    let inputs = &golden["inputs"];
    let rows = ids(&inputs["input_ids_batch"]);
    let logits = model
        .forward(&Batch::unpacked(&rows))
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let (want, shape) = golden_tensor(&dir, "logits_batch");
    let vocab = shape[2];
    let diff = max_abs_diff(&logits, &want);
    assert!(diff < 1e-4, "{name}: batch logits differ by {diff}");
    let per_row: f64 = rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            loss(
                &logits[r * row.len() * vocab..(r + 1) * row.len() * vocab],
                vocab,
                row,
                |_| true,
            ) * (row.len() - 1) as f64
        })
        .sum::<f64>()
        / rows.iter().map(|r| r.len() - 1).sum::<usize>() as f64;
    let want_loss = golden["loss_batch"].as_f64().unwrap();
    assert!(
        (per_row - want_loss).abs() < 1e-5,
        "{name}: loss {per_row} vs {want_loss}"
    );

    let packed = Batch {
        batch: 1,
        seq: 16,
        tokens: ids(&inputs["input_ids_packed"]).concat(),
        positions: ids(&inputs["position_ids_packed"]).concat(),
        documents: ids(&inputs["document_ids_packed"]).concat(),
    };
    let logits = model.forward(&packed).into_data().to_vec::<f32>().unwrap();
    let diff = max_abs_diff(&logits, &golden_tensor(&dir, "logits_packed").0);
    assert!(diff < 1e-4, "{name}: packed logits differ by {diff}");
    // Without the document mask the second document would see the first.
    let unmasked = Batch {
        documents: vec![0; 16],
        ..packed.clone()
    };
    let leaky = model
        .forward(&unmasked)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert!(
        max_abs_diff(&leaky, &logits) > 1e-2,
        "{name}: the document mask changes nothing"
    );
    let docs = &packed.documents;
    let packed_loss = loss(&logits, vocab, &packed.tokens, |t| docs[t] == docs[t - 1]);
    let want_loss = golden["loss_packed"].as_f64().unwrap();
    assert!(
        (packed_loss - want_loss).abs() < 1e-5,
        "{name}: packed loss {packed_loss} vs {want_loss}"
    );
}

#[test]
fn llama_with_gqa_and_llama3_rope_matches_transformers() {
    check("llama-gqa-rope3");
    let (model, golden) = load("llama-gqa-rope3");
    let want = golden["rope_llama3"]["inv_freq_llama3"].as_array().unwrap();
    for (ours, theirs) in model.inv_freq.iter().zip(want) {
        assert!(
            (ours - theirs.as_f64().unwrap() as f32).abs() <= 1e-9,
            "{ours} vs {theirs}"
        );
    }
}

#[test]
fn sharded_and_bf16_checkpoints_match_transformers() {
    check("llama-gqa-rope3-sharded");
    check("llama-gqa-rope3-bf16");
}

#[test]
fn qwen2_with_biases_matches_transformers() {
    check("qwen2-bias");
}

#[test]
fn tied_embeddings_match_transformers() {
    check("tied");
}
