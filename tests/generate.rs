//! `clintune generate` on the reference models: greedy ids equal
//! transformers', chat prompts go through the template, sampling is
//! reproducible, and bad arguments get errors that say what is wrong.

mod common;

use common::*;
use serde_json::Value;

fn generate(args: &[&str]) -> (bool, Value, String) {
    let mut all = vec!["generate", "--format", "json"];
    all.extend_from_slice(args);
    let o = clintune(&all, None);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let json = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.success(), json, stderr)
}

fn fixture(name: &str) -> String {
    s(&repo().join("tests/fixtures/llama").join(name))
}

#[test]
fn greedy_ids_equal_transformers_generate() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/llama/generation.json")).unwrap(),
    )
    .unwrap();
    let case = &golden["cases"][0];
    let model = fixture(case["model"].as_str().unwrap());
    let prompt = case["prompt"].to_string();
    let want = &case["generated"];
    let n = want.as_array().unwrap().len().to_string();
    let (ok, out, err) = generate(&[
        "-m",
        &model,
        "--prompt-ids",
        &prompt,
        "--max-new-tokens",
        &n,
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    assert_eq!(&out["tokens"], want);
    assert_eq!(out["stop"], "Length");
}

#[test]
fn chat_prompts_use_the_template_and_sampling_repeats_with_its_seed() {
    let model = fixture("llama-gqa-rope3");
    let adapter = fixture("lora-peft");
    let run = |seed: &str| {
        generate(&[
            "-m",
            &model,
            "--adapter",
            &adapter,
            "--chat",
            "--system",
            "Be brief.",
            "-p",
            "Summarise the visit.",
            "--temperature",
            "0.9",
            "--top-p",
            "0.9",
            "--seed",
            seed,
            "--max-new-tokens",
            "10",
        ])
    };
    let (ok, first, err) = run("11");
    assert!(ok, "{err}");
    let (_, again, _) = run("11");
    assert_eq!(first["tokens"], again["tokens"]);
    // ChatML: the prompt starts with <|im_start|> (id 1 in the fixture tokenizer).
    assert_eq!(first["prompt_tokens"][0], 1);
    let n = first["tokens"].as_array().unwrap().len();
    assert!((1..=10).contains(&n));
    let (_, reseeded, _) = run("12");
    assert_ne!(first["tokens"], reseeded["tokens"]);
}

#[test]
fn bad_arguments_are_named() {
    let model = fixture("tied");
    for (args, says) in [
        (vec!["--prompt-ids", "[1, 99999]"], "outside the vocabulary"),
        (vec!["--prompt-ids", "[1, 2"], "not a JSON array"),
        (
            vec!["-p", "hello", "--adapter", "/nonexistent/adapter"],
            "/nonexistent/adapter",
        ),
        (vec!["-p", "hello", "--temperature=-1"], "--temperature"),
        (vec!["-p", "hello", "--stop", "<nope>"], "<nope>"),
        (vec!["-p", "hello", "--device", "gpu0"], "cuda:N"),
    ] {
        let mut all = vec!["-m", model.as_str()];
        all.extend(args);
        let (ok, _, err) = generate(&all);
        assert!(!ok);
        assert!(err.contains(says), "{says}: {err}");
    }
}
