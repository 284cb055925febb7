//! Curation throughput: tokenize and write Parquet, in MB of text per second
//! on one thread.
//!
//! The goal is at least 10 MB/s per core end to end (`encode_and_write`),
//! shown beside what the `tokenizers` crate alone reaches on the same text
//! (`tokenizers_alone`) and what clintune's tokenization reaches through its
//! faster byte-level route (`tokenize`, see `clintune_text::bytelevel`), so
//! that the cost of rendering, masking, dedup keys and Parquet is visible. Every loop runs on the calling thread: the
//! pipeline spreads drafts over one rayon worker per core, and a single
//! `tokenizers` `encode` call never uses rayon (only batch encoding and
//! training do), so no thread-count setting is needed for a per-core figure.
//!
//! Text: the Synthea notes of `../shared/records/synthea-bulk-10pt` when that
//! corpus is present (about 1,200 notes), otherwise the bundled sample's
//! notes and chat traces. Throughput counts the bytes of note and message
//! text, not of the rendered chat markup, so all three figures share one
//! denominator.

/// The allocator of the `clintune` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use base64::Engine;
use clintune_curate::dedup::DedupConfig;
use clintune_curate::encode::{Encoder, Example};
use clintune_curate::store::{self, Layout};
use clintune_curate::tasks::{Content, Draft, Message, Task};
use clintune_text::tokenizer::{Tokenizer, TrainConfig};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Where the larger corpus may be: beside the checkout, or inside it on a
/// machine that carries `shared/` along.
const SHARED_NOTES: [&str; 2] = [
    "../shared/records/synthea-bulk-10pt/DocumentReference.000.ndjson",
    "shared/records/synthea-bulk-10pt/DocumentReference.000.ndjson",
];

/// One timeline draft per base64 `text/plain` note of a Bulk Data file. Real
/// timelines join several notes and events per draft; tokenizing and writing
/// cost the same per byte either way.
fn note_drafts(ndjson: &str) -> Vec<Draft> {
    ndjson
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let data = v["content"][0]["attachment"]["data"].as_str()?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .ok()?;
            let text = String::from_utf8(bytes).ok()?;
            Some(Draft {
                patient_key: v["subject"]["reference"]
                    .as_str()
                    .unwrap_or("Patient/unknown")
                    .to_string(),
                task: Task::Timeline,
                content: Content::Text(text),
                record_keys: vec![v["id"].as_str().unwrap_or("").to_string()],
            })
        })
        .collect()
}

fn chat_drafts(jsonl: &str) -> Vec<Draft> {
    jsonl
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line).expect("chat json");
            let messages = v["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    Some(Message {
                        role: m["role"].as_str()?.to_string(),
                        content: m["content"].as_str()?.to_string(),
                    })
                })
                .collect();
            Draft {
                patient_key: v["patient_id"].as_str().unwrap_or("unknown").to_string(),
                task: Task::Chat,
                content: Content::Chat(messages),
                record_keys: vec![format!("chat-{i}")],
            }
        })
        .collect()
}

/// The drafts to encode and the corpus they came from.
fn corpus(root: &Path) -> (String, Vec<Draft>) {
    for rel in SHARED_NOTES {
        let path = root.join(rel);
        if let Ok(ndjson) = std::fs::read_to_string(&path) {
            let drafts = note_drafts(&ndjson);
            if !drafts.is_empty() {
                return (
                    format!("synthea-bulk-10pt notes ({})", path.display()),
                    drafts,
                );
            }
        }
    }
    let sample = root.join("datasets/sample");
    let notes = std::fs::read_to_string(sample.join("bulk/DocumentReference.000.ndjson"))
        .expect("sample notes");
    let chat = std::fs::read_to_string(sample.join("chat/traces.jsonl")).expect("sample chat");
    let mut drafts = note_drafts(&notes);
    drafts.extend(chat_drafts(&chat));
    ("bundled sample notes and chat traces".to_string(), drafts)
}

/// The texts a draft says: the note, or each message's content.
fn texts(drafts: &[Draft]) -> Vec<&str> {
    drafts.iter().flat_map(|d| d.content.texts()).collect()
}

fn encode_all(encoder: &Encoder<'_>, drafts: &[Draft]) -> Vec<Example> {
    // The pipeline clones each draft into `encode` too, so the clone is part
    // of the measured cost.
    drafts
        .iter()
        .map(|d| encoder.encode(d.clone(), "train").expect("encode a draft"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (name, drafts) = corpus(root);
    let texts = texts(&drafts);
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    // The fixture tokenizer has 1,024 tokens; a production-sized vocabulary
    // trained on the same text gives realistic merge depth and token counts.
    let tokenizer = Tokenizer::train(
        texts.iter().copied(),
        &TrainConfig {
            vocab_size: 8192,
            min_frequency: 2,
        },
    )
    .expect("train the bench tokenizer");
    // The figures are only worth having if the fast route is exact: check
    // it against the crate on the whole corpus first.
    for text in &texts {
        assert_eq!(
            tokenizer.encode_with_offsets(text).expect("fast route"),
            tokenizer.encode_with_offsets_by_crate(text).expect("crate"),
            "fast byte-level route differs from tokenizers"
        );
    }
    let encoder = Encoder::new(&tokenizer, &DedupConfig::default()).expect("encoder");
    eprintln!(
        "curate bench: {name}: {} drafts, {:.2} MB of text, vocabulary {}",
        drafts.len(),
        bytes as f64 / 1e6,
        tokenizer.vocab_size()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("train.parquet");

    let mut group = c.benchmark_group("curate");
    // Decimal MB, the unit of the 10 MB/s goal.
    group.throughput(Throughput::BytesDecimal(bytes as u64));
    // An iteration takes a good fraction of a second; flat sampling keeps
    // the run near a minute where linear sampling would need 55 iterations.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("tokenizers_alone", |b| {
        b.iter(|| {
            texts
                .iter()
                .map(|t| tokenizer.inner().encode(*t, false).expect("tokenize").len())
                .sum::<usize>()
        })
    });
    group.bench_function("tokenize", |b| {
        b.iter(|| {
            texts
                .iter()
                .map(|t| tokenizer.encode_with_offsets(t).expect("tokenize").0.len())
                .sum::<usize>()
        })
    });
    group.bench_function("encode", |b| b.iter(|| encode_all(&encoder, &drafts).len()));
    group.bench_function("encode_and_write", |b| {
        b.iter(|| {
            let examples = encode_all(&encoder, &drafts);
            let refs: Vec<&Example> = examples.iter().collect();
            store::write(&out, &refs, Layout::Dataset, "curate", "bench").expect("write parquet");
            refs.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
