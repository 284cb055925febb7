//! `clintune eval` end to end on the curated sample and the reference Llama:
//! its figures equal those made from `clintune score`'s per-token
//! log-probabilities, a model compared with itself differs by nothing, the
//! report's lineage verifies, and a wrong dataset fails before anything is
//! written.

mod common;

use clintune_curate::labels::read_labels;
use clintune_curate::reader::{PackConfig, PackedReader};
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const MODEL: &str = "tests/fixtures/llama/llama-gqa-rope3";
/// The fixture's context.
const SEQ_LEN: usize = 256;
/// The split evaluated: under the tests' key only the sample's train split
/// holds every task.
const SPLIT: &str = "train";

fn eval(args: &[&str]) -> std::process::Output {
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    clintune(&all, None)
}

/// Per task, (summed NLL, trained tokens) from `clintune score`: each
/// document cut into SEQ_LEN-token pieces as the packer cuts it, each piece
/// scored alone, targets counted where the loss mask is 1.
fn scored_by_hand(tmp: &Path, dataset: &Path) -> BTreeMap<String, (f64, u64)> {
    let cfg = PackConfig {
        seq_len: SEQ_LEN,
        batch_size: 1,
        seed: 0,
        shuffle: false,
        pad_id: 0,
        pack: false,
    };
    let mut reader = PackedReader::open(dataset, SPLIT, cfg).unwrap();
    let labels = read_labels(dataset, SPLIT).unwrap();
    let (mut lines, mut pieces) = (Vec::new(), Vec::new());
    for _ in 0..reader.batches_in_epoch(0) {
        let batch = reader.next_batch();
        let piece = batch.pieces[0];
        let ids: Vec<u32> = batch.tokens[..piece.len].to_vec();
        lines.push(serde_json::to_string(&ids).unwrap());
        pieces.push((piece.document, batch.loss_mask[..piece.len].to_vec()));
    }
    let input = tmp.join("pieces.txt");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let o = clintune(&["score", "--model", MODEL, "--input", &s(&input)], None);
    ok(&o);
    let mut by_task: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    let out = String::from_utf8(o.stdout).unwrap();
    for (line, (doc, mask)) in out.lines().zip(&pieces) {
        let scored: Value = serde_json::from_str(line).unwrap();
        let logprobs = scored["logprobs"].as_array().unwrap();
        for task in [labels[*doc].task.as_str(), "all"] {
            let e = by_task.entry(task.to_string()).or_default();
            for (t, lp) in logprobs.iter().enumerate().skip(1) {
                if mask[t] == 1 {
                    e.0 -= lp.as_f64().unwrap();
                    e.1 += 1;
                }
            }
        }
    }
    by_task
}

#[test]
fn eval_figures_are_the_scored_log_likelihoods_and_the_report_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = curated_sample(tmp.path(), MODEL);
    let out = tmp.path().join("eval");
    let o = eval(&[
        "--model",
        MODEL,
        "--dataset",
        &s(&dataset),
        "--baseline",
        MODEL,
        "--split",
        SPLIT,
        "--out",
        &s(&out),
    ]);
    ok(&o);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("perplexity") && table.contains("all"),
        "{table}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    let want = scored_by_hand(tmp.path(), &dataset);
    let tasks = report["tasks"].as_object().unwrap();
    assert_eq!(
        tasks.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (task, (nll, tokens)) in &want {
        let t = &tasks[task];
        assert_eq!(t["tokens"].as_u64(), Some(*tokens), "{task}");
        let loss = t["model"]["loss"].as_f64().unwrap();
        assert!(
            (loss - nll / *tokens as f64).abs() < 1e-4,
            "{task}: {loss} vs {}",
            nll / *tokens as f64
        );
        let acc = t["model"]["token_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        // The baseline is the same model: no difference, however resampled.
        for figure in ["loss", "perplexity", "token_accuracy"] {
            let d = &t["difference"][figure];
            assert_eq!(d["value"].as_f64(), Some(0.0), "{task} {figure}");
            assert_eq!(d["ci95"], serde_json::json!([0.0, 0.0]), "{task} {figure}");
        }
    }
    // next-diagnosis examples go to generation; the fixture's 256-token
    // context is shorter than their prompts, so each is counted as too long
    // rather than answered (generation itself: diagnosis::tests).
    let d = &tasks["next-diagnosis"]["diagnoses"];
    let answered = d["examples"].as_u64().unwrap() + d["too_long"].as_u64().unwrap();
    assert_eq!(Some(answered), tasks["next-diagnosis"]["examples"].as_u64());
    // Held-out patients only: none of them is in the train split.
    let train: std::collections::BTreeSet<String> = read_labels(&dataset, "train")
        .unwrap()
        .into_iter()
        .map(|l| l.patient_key)
        .collect();
    let test = read_labels(&dataset, "test").unwrap();
    assert!(!test.is_empty() && test.iter().all(|l| !train.contains(&l.patient_key)));

    let manifest = read_manifest(&out);
    assert_eq!(manifest["stage"], "eval");
    let dataset_id = read_manifest(&dataset)["id"].clone();
    let parents = manifest["parents"].as_array().unwrap();
    assert!(parents.iter().any(|p| p["id"] == dataset_id), "{parents:?}");
    ok(&clintune(&["lineage", "verify", &s(&out)], None));
}

#[test]
fn a_directory_that_is_not_a_curated_dataset_fails_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("eval");
    let o = eval(&["--model", MODEL, "--dataset", MODEL, "--out", &s(&out)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--dataset") && err.contains("clintune curate"),
        "{err}"
    );
    assert!(!out.exists());

    let deid = deid_sample(tmp.path());
    let o = eval(&["--model", MODEL, "--dataset", &s(&deid), "--out", &s(&out)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is a `deid` output"), "{err}");
    assert!(!out.exists());
}
