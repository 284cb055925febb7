//! Free-text scrubbing throughput on clinical notes.
//!
//! Notes are the bundled sample's DocumentReference attachments (Synthea) and
//! chat trace contents. Each note is scrubbed with its patient's known
//! identifiers, as the pipeline does, in both modes of the policy's
//! `[text] mode`. Criterion reports bytes per second for one thread; the
//! pipeline runs one such worker per core.

use base64::Engine;
use clintune_core::secret::{KeySource, SecretKey};
use clintune_deid::identity::KnownIdentifiers;
use clintune_deid::policy::{Replacement, TextMode};
use clintune_deid::pseudonym::Pseudonymizer;
use clintune_deid::scrub::{Dictionaries, KnownMatcher, ScrubContext, Scrubber, Tally};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use std::path::Path;

fn notes(root: &Path) -> Vec<String> {
    let bulk =
        std::fs::read_to_string(root.join("datasets/sample/bulk/DocumentReference.000.ndjson"))
            .expect("sample notes");
    let mut out: Vec<String> = bulk
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            v["content"][0]["attachment"]["data"]
                .as_str()
                .map(String::from)
        })
        .filter_map(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        .filter_map(|b| String::from_utf8(b).ok())
        .collect();
    let chat = std::fs::read_to_string(root.join("datasets/sample/chat/traces.jsonl"))
        .expect("sample chat");
    for line in chat.lines() {
        let v: Value = serde_json::from_str(line).expect("chat json");
        for m in v["messages"].as_array().into_iter().flatten() {
            out.extend(m["content"].as_str().map(String::from));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dictionaries =
        || Dictionaries::load(&root.join("deid/dictionaries")).expect("dictionaries");
    let scrubber = Scrubber::new(dictionaries());
    let strict = Scrubber::new(dictionaries()).with_mode(TextMode::Strict);
    // The rules deciding alone, as before the learned model: its cost.
    let rules_only = Scrubber::new(dictionaries()).without_model();
    let texts = notes(root);
    let bytes: usize = texts.iter().map(String::len).sum();
    let patient: Value = serde_json::from_str(
        std::fs::read_to_string(root.join("datasets/sample/bulk/Patient.000.ndjson"))
            .expect("patients")
            .lines()
            .last()
            .expect("a patient"),
    )
    .expect("patient json");
    let known = KnownMatcher::new(&KnownIdentifiers::from_patient(&patient));
    let key = SecretKey::from_bytes(
        b"bench-key-0123456789abcdef0123456789",
        KeySource::Env("BENCH".into()),
    )
    .expect("key");
    let pseudonymizer = Pseudonymizer::new(key);
    let ctx = ScrubContext {
        known: Some(&known),
        shift_days: -123,
        patient_key: "pt-bench",
        pseudonymizer: &pseudonymizer,
        names: Replacement::Surrogate,
        dates: Replacement::Surrogate,
        capped_birth_date: None,
        dob_cutoff_year: Some(1936),
    };
    let mut group = c.benchmark_group("scrub");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    for (name, s) in [
        ("notes_with_known_identifiers", &scrubber),
        ("notes_with_known_identifiers_strict", &strict),
        ("notes_with_known_identifiers_rules_only", &rules_only),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut tally = Tally::default();
                texts
                    .iter()
                    .map(|t| s.scrub(t, &ctx, &mut tally).len())
                    .sum::<usize>()
            })
        });
    }
    let patterns = clintune_deid::scrub::patterns::Patterns::new();
    group.bench_function("patterns_only", |b| {
        b.iter(|| {
            let mut spans = Vec::new();
            texts.iter().for_each(|t| patterns.find(t, &mut spans));
            spans.len()
        })
    });
    group.bench_function("names_only", |b| {
        b.iter(|| {
            let d = scrubber.dictionaries();
            texts
                .iter()
                .map(|t| {
                    // One text's spans at a time, as the scrubber calls it.
                    let mut spans = Vec::new();
                    clintune_deid::scrub::names::find(t, d, TextMode::Balanced, &mut spans);
                    spans.len()
                })
                .sum::<usize>()
        })
    });
    group.bench_function("detect_only", |b| {
        b.iter(|| {
            texts
                .iter()
                .map(|t| scrubber.detect(t, None).len())
                .sum::<usize>()
        })
    });
    group.finish();
    // All the notes as one text (a document in one field, 4 MB here): the
    // figure must match the per-note one, not fall with the text's length.
    let one_text = texts.join("\n").repeat((4 << 20) / bytes.max(1) + 1);
    let mut group = c.benchmark_group("scrub_one_long_text");
    group.throughput(Throughput::Bytes(one_text.len() as u64));
    group.sample_size(10);
    group.bench_function("detect_4mb", |b| {
        b.iter(|| scrubber.detect(&one_text, None).len())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
