//! Reference parity: clintune's burn model gives transformers' logits and
//! losses on the reference models of `tests/fixtures/llama`, for a batch and
//! for a packed row of two documents.

mod common;

use clintune_model::Batch;
use common::{f32_tensor, fixture, golden_tensor, ids, load, max_abs_diff};

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

#[test]
fn a_bf16_forward_pass_errs_no_more_than_transformers_in_bf16() {
    let name = "llama-gqa-rope3-bf16";
    let dir = fixture(name);
    let (model, golden) = load(name);
    let rows = ids(&golden["inputs"]["input_ids_batch"]);
    let batch = Batch::unpacked(&rows);
    let f32_logits = model.forward(&batch).into_data().to_vec::<f32>().unwrap();
    let model = model.with_compute_dtype(burn::tensor::DType::BF16);
    let logits = model.forward(&batch);
    assert_eq!(logits.dtype(), burn::tensor::DType::F32);
    let logits = logits.into_data().to_vec::<f32>().unwrap();
    let (theirs, _) = f32_tensor(&dir.join("bf16_forward.safetensors"), "logits_batch");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bf16_forward.json")).unwrap())
            .unwrap();
    let their_error = |key: &str| info[key].as_f64().unwrap() as f32;
    let (their_max, their_mean) = (
        their_error("max_abs_diff_vs_float32_logits"),
        their_error("mean_abs_diff_vs_float32_logits"),
    );
    let mean = |a: &[f32], b: &[f32]| {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    };
    let our_mean = mean(&logits, &f32_logits);
    eprintln!(
        "bf16 vs f32, mean: clintune {our_mean}, transformers {their_mean}; \
         clintune vs transformers (both bf16): max {}, mean {}",
        max_abs_diff(&logits, &theirs),
        mean(&logits, &theirs)
    );
    // The computation really is in bf16, not f32 with a cast at the end…
    assert!(our_mean > their_mean / 4.0, "only {our_mean} from f32");
    // …its rounding error is no larger than transformers'…
    assert!(our_mean < their_mean * 1.25, "{our_mean} vs {their_mean}");
    // …and it lands within bf16 rounding of transformers' bf16 logits.
    let apart = max_abs_diff(&logits, &theirs);
    assert!(
        apart < their_max,
        "{apart} apart (bf16 rounding: {their_max})"
    );
}
