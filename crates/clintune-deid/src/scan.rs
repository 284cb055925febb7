//! `clintune scan`: the PHI detector run over everything a dataset or an
//! export holds as text, to catch what de-identification missed before it
//! leaves the institution.
//!
//! What is read, under a directory and its subdirectories: every string
//! column of every Parquet file (a curated dataset's text and chat turns),
//! every vocabulary entry and added token of `tokenizer.json` (byte-level
//! markers turned back into spaces and newlines), every string of the other
//! JSON files (configs, adapter config, chat template), and Markdown files
//! (the model card). Findings name the file and place; the matched text is
//! shown masked, since a report of PHI must not be a copy of it. The words
//! of the scanned folder's own name are judged by the rules alone (see
//! `own_names`).

use crate::error::DeidError;
use crate::scrub::{Rule, Scrubber};
use arrow_array::{Array, LargeStringArray, StringArray};
use clintune_core::WithContext;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// One detection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The file, relative to the scanned directory.
    pub file: String,
    /// Where in it: `row 12, column text`, a JSON path, `vocab`.
    pub place: String,
    /// PHI category (`name`, `date`, …).
    pub category: &'static str,
    /// The rule that fired.
    pub rule: &'static str,
    /// The match, masked: its first character and length.
    pub masked: String,
}

/// What a scan read and found.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Files read.
    pub files: usize,
    /// Strings checked.
    pub strings: u64,
    /// Every finding.
    pub findings: Vec<Finding>,
}

/// Scans every text under `dir` with `scrubber`'s detector.
pub fn scan(dir: &Path, scrubber: &Scrubber) -> Result<ScanReport, DeidError> {
    let mut report = ScanReport::default();
    let own = own_names(dir, scrubber);
    let files = clintune_core::hash::files_under(dir).map_err(DeidError::io(dir))?;
    for path in files {
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        // The model weighs the contexts of prose (dataset text, the model
        // card); a config value or a vocabulary entry has none, and the
        // rules alone judge it, as they judge folder names.
        let prose = matches!(ext, "parquet" | "md");
        let mut check = |place: String, text: &str| {
            report.strings += 1;
            let spans = if prose {
                scrubber.detect(text, None)
            } else {
                scrubber.detect_with(text, None, None)
            };
            let spans = spans
                .into_iter()
                .filter(|s| !(s.rule == Rule::Model && only_words_of(&text[s.start..s.end], &own)));
            for span in spans {
                report.findings.push(Finding {
                    file: name.clone(),
                    place: place.clone(),
                    category: span.category.as_str(),
                    rule: span.rule.as_str(),
                    masked: mask(&text[span.start..span.end]),
                });
            }
        };
        let read = match ext {
            "parquet" => parquet_strings(&path, &mut check),
            "json" => json_strings(&path, &mut check),
            "md" => std::fs::read_to_string(&path)
                .map(|t| check("text".into(), &t))
                .map_err(DeidError::io(&path)),
            _ => continue,
        };
        read?;
        report.files += 1;
    }
    Ok(report)
}

/// The words of the scanned folder's own name and its parent's
/// (`quickstart` and `v1` of `checkpoints/quickstart/v1`) that the rules
/// alone find clean, as they judge folder names in a lineage manifest: an
/// export's card names the export, and the model, which never saw such
/// names in training, must not refuse a release for its own name. A name
/// the rules find stays a finding wherever it stands.
fn own_names(dir: &Path, scrubber: &Scrubber) -> BTreeSet<String> {
    let full = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut own = BTreeSet::new();
    for name in full.iter().rev().take(2).filter_map(|c| c.to_str()) {
        if scrubber.detect_with(name, None, None).is_empty() {
            own.extend(words(name).map(str::to_ascii_lowercase));
        }
    }
    own
}

/// Runs of ASCII letters.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
}

/// True when `text` has words and every one is in `own`.
fn only_words_of(text: &str, own: &BTreeSet<String>) -> bool {
    let mut any = false;
    let all = words(text).all(|w| {
        any = true;
        own.contains(&w.to_ascii_lowercase())
    });
    any && all
}

/// The first character and the length: enough to find it, not to read it.
fn mask(s: &str) -> String {
    let first: String = s.chars().take(1).collect();
    format!("{first}… ({} chars)", s.chars().count())
}

fn parquet_strings(path: &Path, check: &mut impl FnMut(String, &str)) -> Result<(), DeidError> {
    let file = std::fs::File::open(path).map_err(DeidError::io(path))?;
    let bad = |e: clintune_core::Cause| DeidError::Scan {
        path: path.to_path_buf(),
        source: WithContext::new("not readable Parquet", e).into(),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| bad(e.into()))?;
    let mut row0 = 0;
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.into()))?;
        for (c, field) in batch.schema().fields().iter().enumerate() {
            let column = batch.column(c);
            let strings: Vec<Option<&str>> =
                if let Some(a) = column.as_any().downcast_ref::<StringArray>() {
                    a.iter().collect()
                } else if let Some(a) = column.as_any().downcast_ref::<LargeStringArray>() {
                    a.iter().collect()
                } else {
                    continue;
                };
            for (r, s) in strings.into_iter().enumerate() {
                if let Some(s) = s {
                    check(format!("row {}, column {}", row0 + r, field.name()), s);
                }
            }
        }
        row0 += batch.num_rows();
    }
    Ok(())
}

fn json_strings(path: &Path, check: &mut impl FnMut(String, &str)) -> Result<(), DeidError> {
    let text = std::fs::read_to_string(path).map_err(DeidError::io(path))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| DeidError::Scan {
        path: path.to_path_buf(),
        source: WithContext::new("not JSON", e).into(),
    })?;
    if let Some(vocab) = value["model"]["vocab"].as_object() {
        for token in vocab.keys() {
            check("vocab".into(), &byte_level_text(token));
        }
        for added in value["added_tokens"].as_array().into_iter().flatten() {
            if let Some(t) = added["content"].as_str() {
                check("added_tokens".into(), t);
            }
        }
        return Ok(());
    }
    walk(&value, "$".into(), check);
    Ok(())
}

fn walk(value: &Value, at: String, check: &mut impl FnMut(String, &str)) {
    match value {
        Value::String(s) => check(at, s),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{at}[{i}]"), check);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, format!("{at}.{k}"), check);
            }
        }
        _ => {}
    }
}

/// GPT-2 byte-level tokens mark a space as `Ġ` and a newline as `Ċ`.
fn byte_level_text(token: &str) -> String {
    token.replace('Ġ', " ").replace('Ċ', "\n").replace('▁', " ")
}
