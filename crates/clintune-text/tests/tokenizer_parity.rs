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
//!
//! `tests/fixtures/tokenizer/mistral-7b-v0.1/` holds a real model's
//! tokenizer, Mistral-7B-v0.1's unchanged `tokenizer.json`, with the
//! encodings Python `tokenizers` 0.23.2 made of synthetic clinical notes
//! (`make_golden.py`; provenance and sha256 in its README.md).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clintune_text::tokenizer::{TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, Tokenizer, TrainConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};

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

/// A real model's tokenizer: Mistral-7B-v0.1's `tokenizer.json`, unchanged
/// (see the README.md beside it). Unlike clintune's own byte-level BPE it is
/// a SentencePiece-style BPE (Metaspace, byte fallback, `<s>` prepended by a
/// template post-processor), so it checks the route every other tokenizer
/// takes.
fn mistral_dir() -> PathBuf {
    fixture_dir().join("mistral-7b-v0.1")
}

/// sha256 of the upstream `tokenizer.json`; a different file would make the
/// golden ids meaningless.
const MISTRAL_TOKENIZER_SHA256: &str =
    "11c08db21487c885d8c792180f0be237f6a261b89a46f128a6a80a3aa4bd1720";

/// Checks clintune's encodings of every text of a golden file written by the
/// Mistral fixture's `make_golden.py`, with and without special tokens.
fn assert_mistral_matches_golden(golden: &Value, source: &str) {
    let path = mistral_dir().join(TOKENIZER_FILE);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        MISTRAL_TOKENIZER_SHA256,
        "{} is not the upstream file",
        path.display()
    );
    assert_eq!(golden["tokenizer_sha256"], MISTRAL_TOKENIZER_SHA256);
    let tokenizer = Tokenizer::load(&mistral_dir()).expect("loading the Mistral fixture");
    assert_eq!(tokenizer.vocab_size(), 32000);
    let cases = golden["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "{source} has no cases");
    for (i, case) in cases.iter().enumerate() {
        let text = case["text"].as_str().expect("text");
        let ids = |key: &str| -> Vec<u32> {
            serde_json::from_value(case[key].clone()).unwrap_or_else(|e| panic!("{key}: {e}"))
        };

        let want = ids("ids");
        let (got, offsets) = tokenizer.encode_with_offsets(text).expect("encoding");
        assert_eq!(got, want, "case {i}: ids differ from {source}");
        assert_eq!(
            to_char_offsets(text, &offsets),
            as_pairs(&case["char_offsets"]),
            "case {i}: offsets differ from {source}"
        );
        assert_eq!(
            tokenizer
                .encode_with_offsets_by_crate(text)
                .expect("encoding"),
            (got, offsets),
            "case {i}"
        );
        assert_eq!(tokenizer.encode(text).expect("encoding"), want, "case {i}");
        assert_eq!(
            Some(tokenizer.decode(&want).expect("decoding").as_str()),
            case["decoded"].as_str(),
            "case {i}: decode differs from {source}"
        );

        let want = ids("ids_with_special");
        // What `tokenizer(text)` gives, as score and curation encode documents.
        let (got, offsets) = tokenizer.encode_document(text).expect("encoding");
        assert_eq!(
            got, want,
            "case {i}: ids with special tokens differ from {source}"
        );
        assert_eq!(
            to_char_offsets(text, &offsets),
            as_pairs(&case["char_offsets_with_special"]),
            "case {i}: offsets with special tokens differ from {source}"
        );
        assert_eq!(
            Some(tokenizer.decode(&want).expect("decoding").as_str()),
            case["decoded_with_special"].as_str(),
            "case {i}: decode with special tokens differs from {source}"
        );
    }
}

#[test]
fn mistral_7b_v0_1_matches_committed_python_golden() {
    let golden = read_json(&mistral_dir().join("golden.json"));
    assert_eq!(golden["tokenizers_version"], "0.23.2");
    assert_mistral_matches_golden(&golden, "mistral-7b-v0.1/golden.json");
}

#[test]
fn mistral_7b_v0_1_matches_live_python_when_installed() {
    if !python_tokenizers_available() {
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let golden_path = out.path().join("golden.json");
    let run = Command::new("python3")
        .arg(mistral_dir().join("make_golden.py"))
        .arg(&golden_path)
        .output()
        .expect("running make_golden.py");
    assert!(
        run.status.success(),
        "make_golden.py failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let live = read_json(&golden_path);
    assert!(
        live == read_json(&mistral_dir().join("golden.json")),
        "live Python tokenizers gives a different golden.json than the committed one"
    );
    assert_mistral_matches_golden(&live, "live Python tokenizers");
}
