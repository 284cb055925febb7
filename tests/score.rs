//! `clintune score` on a reference model: its losses are transformers'.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn scores_token_ids_and_text_with_transformers_losses() {
    let model = repo().join("tests/fixtures/llama/llama-gqa-rope3");
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("golden.json")).unwrap()).unwrap();
    let rows = golden["inputs"]["input_ids_batch"].as_array().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("inputs.txt");
    let text = "Seen by cardiology, discharged home.";
    let lines: Vec<String> = rows
        .iter()
        .map(Value::to_string)
        .chain([text.to_string()])
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let o = clintune(
        &["score", "--model", &s(&model), "--input", &s(&input)],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len(), 3);
    // transformers' batch loss is the mean over both rows' targets.
    let (sum, n) = out[..2].iter().fold((0.0, 0.0), |(s, n), r| {
        let k = r["num_targets"].as_f64().unwrap();
        (s + r["mean_loss"].as_f64().unwrap() * k, n + k)
    });
    let want = golden["loss_batch"].as_f64().unwrap();
    assert!((sum / n - want).abs() < 1e-5, "{} vs {want}", sum / n);
    assert!(out[0]["logprobs"][0].is_null());
    let tok = clintune_text::tokenizer::Tokenizer::load(&model).unwrap();
    let ids: Vec<u32> = serde_json::from_value(out[2]["tokens"].clone()).unwrap();
    assert_eq!(ids, tok.encode(text).unwrap());

    std::fs::write(&input, "[1, 99999]\n").unwrap();
    let o = clintune(
        &["score", "--model", &s(&model), "--input", &s(&input)],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("line 1") && err.contains("99999"),
        "{err}"
    );
}

#[test]
fn device_is_chosen_on_the_command_line_and_cuda_needs_the_feature() {
    let model = repo().join("tests/fixtures/llama/llama-gqa-rope3");
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("inputs.txt");
    std::fs::write(&input, "[1, 5, 9, 2]\n").unwrap();
    let run = |device: &str| {
        clintune(
            &[
                "score",
                "--model",
                &s(&model),
                "--input",
                &s(&input),
                "--device",
                device,
            ],
            None,
        )
    };
    let default = clintune(
        &["score", "--model", &s(&model), "--input", &s(&input)],
        None,
    );
    let cpu = run("cpu");
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    assert_eq!(cpu.stdout, default.stdout);

    let bad = run("gpu");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("cuda:N"), "{err}");
    if !cfg!(feature = "cuda") {
        let o = run("cuda:0");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("--features cuda"),
            "{err}"
        );
    }
}
