//! Hugging Face model families as transformers 5 saves and uses them
//! (`tests/fixtures/hf-families`, made by its `make_fixtures.py`): token ids
//! of documents and chat prompts, rendered templates, log-probabilities and
//! greedy tokens equal transformers'; a recipe tunes such a model and its
//! export keeps the chat template.

mod common;

use clintune_text::Message;
use clintune_text::template::{ChatTemplate, end_of_turn};
use clintune_text::tokenizer::{CHAT_TEMPLATE_FILE, TemplateSource, Tokenizer};
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const FAMILIES: [&str; 5] = ["llama3", "qwen2", "qwen3", "smollm2", "mistral"];

fn family(name: &str) -> PathBuf {
    repo().join("tests/fixtures/hf-families").join(name)
}

fn golden(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn messages(v: &Value) -> Vec<Message> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            Message::new(
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn documents_and_chats_tokenize_as_transformers() {
    for name in FAMILIES {
        let dir = family(name);
        let g = golden(&dir);
        let tok = Tokenizer::load(&dir).unwrap();
        assert_eq!(tok.template_source(), &TemplateSource::JinjaFile, "{name}");
        for t in g["texts"].as_array().unwrap() {
            let text = t["text"].as_str().unwrap();
            let kind = &t["kind"];
            assert_eq!(
                tok.encode_document_ids(text).unwrap(),
                ids(&t["ids"]),
                "{name} {kind}"
            );
            assert_eq!(
                tok.encode(text).unwrap(),
                ids(&t["ids_plain"]),
                "{name} {kind}"
            );
        }
        let template = ChatTemplate::for_tokenizer(&tok).unwrap();
        for (i, c) in g["chats"].as_array().unwrap().iter().enumerate() {
            let conv = messages(&c["messages"]);
            if let Some(why) = c["prompt_error"].as_str() {
                let err = template.render(&conv, true).unwrap_err().to_string();
                let why = why.trim_start_matches("TemplateError: ");
                assert!(err.contains(why), "{name} {i}: {err}");
                continue;
            }
            let prompt = template.render(&conv, true).unwrap();
            assert_eq!(
                prompt,
                c["prompt_text"].as_str().unwrap(),
                "{name} chat {i}"
            );
            assert_eq!(
                tok.encode(&prompt).unwrap(),
                ids(&c["prompt_ids"]),
                "{name} chat {i}"
            );
            let mut full = conv.clone();
            full.extend(messages(&c["full_messages_appended"]));
            let rendered = template.render(&full, false).unwrap();
            assert_eq!(
                rendered,
                c["full_text"].as_str().unwrap(),
                "{name} chat {i}"
            );
            assert_eq!(
                tok.encode(&rendered).unwrap(),
                ids(&c["full_ids"]),
                "{name} chat {i}"
            );
            // The loss mask covers each answer and nothing of the prompts.
            let r = template.render_with_answers(&full).unwrap();
            let answers: Vec<&Message> = full.iter().filter(|m| m.role == "assistant").collect();
            assert_eq!(r.answers.len(), answers.len(), "{name} chat {i}");
            for (span, m) in r.answers.iter().zip(&answers) {
                let trained = &r.text[span.clone()];
                assert!(trained.contains(&m.content), "{name} chat {i}: {trained:?}");
                assert!(!trained.contains("user"), "{name} chat {i}: {trained:?}");
            }
            let last = r.answers.last().unwrap();
            assert_eq!(
                last.clone(),
                prompt.len()..rendered.len(),
                "{name} chat {i}"
            );
        }
        let turn_end = end_of_turn(&tok).unwrap();
        assert_eq!(
            turn_end,
            g["end_of_turn_id"].as_u64().map(|i| i as u32),
            "{name}"
        );
    }
}

#[test]
fn score_gives_transformers_ids_and_log_probabilities() {
    let tmp = tempfile::tempdir().unwrap();
    for name in FAMILIES {
        let dir = family(name);
        let g = golden(&dir);
        // One text a line: texts holding a newline are covered above.
        let texts: Vec<&Value> = g["texts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| !t["text"].as_str().unwrap().contains('\n'))
            .collect();
        let input = tmp.path().join(format!("{name}.txt"));
        let lines: Vec<&str> = texts.iter().map(|t| t["text"].as_str().unwrap()).collect();
        std::fs::write(&input, lines.join("\n")).unwrap();
        let o = clintune(&["score", "-m", &s(&dir), "-i", &s(&input)], None);
        ok(&o);
        let out: Vec<Value> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(out.len(), texts.len(), "{name}");
        for (row, t) in out.iter().zip(&texts) {
            assert_eq!(ids(&row["tokens"]), ids(&t["ids"]), "{name} {}", t["kind"]);
            let ours = &row["logprobs"].as_array().unwrap()[1..];
            let want = t["logprobs"].as_array().unwrap();
            assert_eq!(ours.len(), want.len(), "{name}");
            for (a, b) in ours.iter().zip(want) {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                assert!((a - b).abs() < 1e-4, "{name} {}: {a} vs {b}", t["kind"]);
            }
        }
    }
}

/// `generate --chat`'s prompt ids and greedy tokens.
fn chat_greedy(dir: &Path, conv: &[Message], new_tokens: usize) -> (Vec<u32>, Vec<u32>) {
    let user = conv.last().unwrap();
    let mut args = vec![
        "generate".to_string(),
        "-m".into(),
        s(dir),
        "--chat".into(),
        "--prompt".into(),
        user.content.clone(),
        "--format".into(),
        "json".into(),
        "--max-new-tokens".into(),
        new_tokens.to_string(),
        // The golden run is greedy without a penalty, whatever the
        // generation config says.
        "--temperature".into(),
        "0".into(),
        "--repetition-penalty".into(),
        "1".into(),
    ];
    if let [system, _] = conv {
        args.extend(["--system".into(), system.content.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = clintune(&args, None);
    ok(&o);
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    (ids(&out["prompt_tokens"]), ids(&out["tokens"]))
}

#[test]
fn generate_prompts_with_the_template_and_continues_as_transformers() {
    for name in FAMILIES {
        let dir = family(name);
        let g = golden(&dir);
        let greedy = &g["greedy"];
        let chat = &g["chats"][greedy["chat_index"].as_u64().unwrap() as usize];
        let conv = messages(&chat["messages"]);
        let (prompt, tokens) = chat_greedy(&dir, &conv, 8);
        assert_eq!(prompt, ids(&chat["prompt_ids"]), "{name}");
        // Generation may stop early at an end token; up to there, the same.
        let want = ids(&greedy["new_ids"]);
        assert!(
            !tokens.is_empty() && want.starts_with(&tokens),
            "{name}: {tokens:?} vs {want:?}"
        );
    }
}

/// `recipes/byom.toml` with the SmolLM2 fixture as its downloaded model,
/// two steps, and its paths moved into `dir`.
fn byom_recipe(dir: &Path, base: &Path) -> PathBuf {
    let t = |name: &str| format!("\"{}\"", s(&dir.join(name)));
    let text = std::fs::read_to_string(repo().join("recipes/byom.toml"))
        .unwrap()
        .replace("\"datasets/sample/", &format!("\"{}/", s(&sample())))
        .replace("\"datasets/deid-byom\"", &t("deid"))
        .replace("\"datasets/curated-byom\"", &t("curated"))
        .replace(
            "\"models/SmolLM2-135M-Instruct\"",
            &format!("\"{}\"", s(base)),
        )
        .replace("\"runs/byom\"", &t("run"))
        .replace("epochs = 1", "max_steps = 2")
        .replace(
            "name = \"byom\"",
            &format!("name = \"byom\"\nroot = {}", t("exports")),
        );
    assert!(
        !text.lines().any(|l| l.starts_with("[curate")),
        "the recipe shows a run without [curate]"
    );
    let recipe = dir.join("byom.toml");
    std::fs::write(&recipe, text).unwrap();
    recipe
}

#[test]
fn the_byom_recipe_tunes_a_transformers_model_and_its_export_chats() {
    let tmp = tempfile::tempdir().unwrap();
    let base = family("smollm2");
    let recipe = byom_recipe(tmp.path(), &base);
    ok(&clintune(&["run", &s(&recipe)], Some(KEY_A)));
    let export = tmp.path().join("exports/byom/v1");
    let want = std::fs::read_to_string(base.join(CHAT_TEMPLATE_FILE)).unwrap();
    let carried = std::fs::read_to_string(export.join(CHAT_TEMPLATE_FILE)).unwrap();
    assert_eq!(carried, want);
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(export.join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["chat_template"].as_str(), Some(want.as_str()));
    // The other keys of the base's config are kept.
    assert_eq!(config["tokenizer_class"], "GPT2Tokenizer");
    let conv = messages(&golden(&base)["chats"][0]["messages"]);
    let (on_export, _) = chat_greedy(&export, &conv, 1);
    let (on_base, _) = chat_greedy(&base, &conv, 1);
    assert_eq!(on_export, on_base);
}

/// `generate`'s new ids for a plain prompt, with `extra` arguments.
fn generated(dir: &Path, extra: &[&str]) -> Vec<u32> {
    let mut args = vec![
        "generate",
        "-m",
        dir.to_str().unwrap(),
        "--prompt",
        "Patient",
    ];
    args.extend_from_slice(&["--format", "json", "--max-new-tokens", "16"]);
    args.extend_from_slice(extra);
    let o = clintune(&args, None);
    ok(&o);
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    ids(&out["tokens"])
}

#[test]
fn generation_config_decides_how_to_sample_unless_told() {
    // Llama 3's generation config samples (temperature 0.6, top_p 0.9):
    // seeds differ, and greedy is asked for by --temperature 0.
    let llama3 = family("llama3");
    let by_seed = |seed: &str| generated(&llama3, &["--seed", seed]);
    assert_ne!(by_seed("1"), by_seed("2"));
    assert_eq!(by_seed("1"), by_seed("1"));
    let greedy = generated(&llama3, &["--temperature", "0"]);
    assert_eq!(
        greedy,
        generated(&llama3, &["--temperature", "0", "--seed", "9"])
    );
    // SmolLM2's does not sample: the seed changes nothing.
    let smollm2 = family("smollm2");
    assert_eq!(
        generated(&smollm2, &["--seed", "1"]),
        generated(&smollm2, &["--seed", "2"])
    );
    // A bad setting in the file is named.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&smollm2, tmp.path());
    std::fs::write(
        tmp.path().join("generation_config.json"),
        r#"{"do_sample": true, "top_p": 1.5}"#,
    )
    .unwrap();
    let o = clintune(&["generate", "-m", &s(tmp.path()), "--prompt", "x"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("generation_config.json") && err.contains("1.5"),
        "{err}"
    );
}
