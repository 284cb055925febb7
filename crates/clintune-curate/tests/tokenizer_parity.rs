//! Parity of clintune's tokenizer with Python `tokenizers`.
//!
//! The fixture in `tests/fixtures/tokenizer/` is a tokenizer clintune trained
//! on the sample chat traces, plus the encodings Python `tokenizers` 0.23.2
//! produced with it (`encode_golden.py`). CI has no Python, so those golden
//! ids are committed; when Python is present the script is also run live.
//!
//! To recreate the fixture after a deliberate change to training:
//!
//! ```text
//! CLINTUNE_UPDATE_FIXTURES=1 cargo test -p clintune-curate --test tokenizer_parity
//! python3 tests/fixtures/tokenizer/encode_golden.py
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clintune_curate::tokenizer::{TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, Tokenizer, TrainConfig};
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture_dir() -> PathBuf {
    repo_root().join("tests/fixtures/tokenizer")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `content` of every message of the sample traces, in file order.
fn training_texts() -> Vec<String> {
    let path = repo_root().join("datasets/sample/chat/traces.jsonl");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut texts = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
        let messages = record["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{}:{}: no messages array", path.display(), n + 1));
        for message in messages {
            let content = message["content"]
                .as_str()
                .unwrap_or_else(|| panic!("{}:{}: content is not a string", path.display(), n + 1));
            texts.push(content.to_string());
        }
    }
    assert!(!texts.is_empty(), "{}: no messages", path.display());
    texts
}

fn train_fixture_tokenizer() -> Tokenizer {
    let cfg = TrainConfig {
        vocab_size: 1024,
        min_frequency: 2,
    };
    Tokenizer::train(training_texts().into_iter(), &cfg).expect("training")
}

#[test]
fn fixture_is_clintunes_own_deterministic_training_output() {
    let tokenizer = train_fixture_tokenizer();
    if std::env::var("CLINTUNE_UPDATE_FIXTURES").as_deref() == Ok("1") {
        tokenizer.save(&fixture_dir()).expect("writing the fixture");
        return;
    }
    let fresh = tempfile::tempdir().expect("tempdir");
    tokenizer.save(fresh.path()).expect("saving");
    for file in [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE] {
        assert!(
            read_json(&fresh.path().join(file)) == read_json(&fixture_dir().join(file)),
            "retraining gave a different {file} than the committed fixture; if training changed \
             on purpose, rerun with CLINTUNE_UPDATE_FIXTURES=1 and regenerate golden-ids.json"
        );
    }
}

/// Converts byte offsets into `text` to the char offsets Python reports.
fn to_char_offsets(text: &str, offsets: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let chars = |b: usize| text[..b].chars().count();
    offsets.iter().map(|&(s, e)| (chars(s), chars(e))).collect()
}

fn as_pairs(v: &Value) -> Vec<(usize, usize)> {
    let pairs = v.as_array().expect("char_offsets is an array");
    pairs
        .iter()
        .map(|p| {
            let n = |i: usize| p[i].as_u64().expect("offset is a number") as usize;
            (n(0), n(1))
        })
        .collect()
}

/// Checks clintune's encodings of texts.json against a golden file written
/// by `encode_golden.py`.
fn assert_matches_golden(golden: &Value, source: &str) {
    let tokenizer = Tokenizer::load(&fixture_dir()).expect("loading the fixture");
    // The golden ids check the fast byte-level route, which the fixture takes.
    assert!(tokenizer.is_fast());
    let texts: Vec<String> = serde_json::from_value(read_json(&fixture_dir().join("texts.json")))
        .expect("texts.json is a list of strings");
    let cases = golden["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), texts.len(), "{source} is stale: regenerate it");
    for (i, (case, text)) in cases.iter().zip(&texts).enumerate() {
        assert_eq!(
            case["text"].as_str(),
            Some(text.as_str()),
            "{source} case {i} is stale"
        );
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).expect("ids");
        let (ids, offsets) = tokenizer.encode_with_offsets(text).expect("encoding");
        assert_eq!(ids, want, "case {i}: ids differ from {source}");
        assert_eq!(tokenizer.encode(text).expect("encoding"), want, "case {i}");
        assert_eq!(
            to_char_offsets(text, &offsets),
            as_pairs(&case["char_offsets"]),
            "case {i}: offsets differ from {source}"
        );
        let decoded = tokenizer.decode(&ids).expect("decoding");
        assert_eq!(
            Some(decoded.as_str()),
            case["decoded"].as_str(),
            "case {i}: decode differs from {source}"
        );
        assert_eq!(&decoded, text, "case {i}: does not round-trip");
    }
}

#[test]
fn encodings_match_committed_python_golden() {
    let golden = read_json(&fixture_dir().join("golden-ids.json"));
    assert_eq!(golden["tokenizers_version"], "0.23.2");
    assert_matches_golden(&golden, "golden-ids.json");
}

/// Whether Python `tokenizers` of the version the golden file was made with
/// is installed; other versions are not what the fixture promises.
fn python_tokenizers_available() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import sys, tokenizers; sys.exit(tokenizers.__version__ != '0.23.2')",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn encodings_match_live_python_when_installed() {
    if !python_tokenizers_available() {
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let golden_path = out.path().join("golden-ids.json");
    let run = Command::new("python3")
        .arg(fixture_dir().join("encode_golden.py"))
        .arg(&golden_path)
        .output()
        .expect("running encode_golden.py");
    assert!(
        run.status.success(),
        "encode_golden.py failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_matches_golden(&read_json(&golden_path), "live Python tokenizers");
}

/// Every text of the bundled sample (notes, messages), through the fast
/// byte-level route and through the crate's own pipeline, with the fixture
/// and with a production-sized vocabulary.
#[test]
fn the_fast_route_equals_the_crate_on_the_bundled_sample() {
    let mut texts = training_texts();
    let notes = repo_root().join("datasets/sample/bulk/DocumentReference.000.ndjson");
    for line in fs::read_to_string(&notes).expect("sample notes").lines() {
        let v: Value = serde_json::from_str(line).expect("ndjson");
        if let Some(data) = v["content"][0]["attachment"]["data"].as_str() {
            texts.push(
                String::from_utf8(STANDARD.decode(data).expect("base64 note")).expect("utf-8 note"),
            );
        }
    }
    let big = Tokenizer::train(
        texts.iter(),
        &TrainConfig {
            vocab_size: 4096,
            min_frequency: 1,
        },
    )
    .expect("training");
    for tokenizer in [Tokenizer::load(&fixture_dir()).expect("fixture"), big] {
        assert!(tokenizer.is_fast());
        for text in &texts {
            assert_eq!(
                tokenizer.encode_with_offsets(text).expect("fast"),
                tokenizer.encode_with_offsets_by_crate(text).expect("crate"),
                "{text:?}"
            );
        }
    }
}
