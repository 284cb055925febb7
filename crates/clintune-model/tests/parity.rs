//! Reference parity: clintune's burn model gives transformers' logits and
//! losses on the reference models of `tests/fixtures/llama`, for a batch and
//! for a packed row of two documents.

mod common;

use clintune_model::Batch;
use common::{fixture, golden_tensor, ids, load, max_abs_diff};

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
