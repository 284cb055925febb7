//! Input discovery: which files are records, and of which format.
//!
//! Formats are detected by content, not by name: a FHIR Bulk Data NDJSON
//! file (one resource per line), a FHIR Bundle JSON file, a chat-format
//! JSONL file (`{"messages": [...]}` per line), or a preference-pair JSONL
//! file (Azure AI Foundry DPO or TRL, see [`preference`]). Other files are
//! skipped and counted.

pub mod preference;
pub mod route;

use crate::error::DeidError;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Detected format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// FHIR R4 Bulk Data NDJSON.
    BulkNdjson,
    /// FHIR R4 Bundle.
    Bundle,
    /// Chat-format JSONL traces.
    ChatJsonl,
    /// Preference pairs, one per line.
    PreferenceJsonl,
}

impl InputKind {
    /// Stable name used in the manifest and audit report.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::BulkNdjson => "fhir-bulk-ndjson",
            InputKind::Bundle => "fhir-bundle",
            InputKind::ChatJsonl => "chat-jsonl",
            InputKind::PreferenceJsonl => "preference-jsonl",
        }
    }
}

/// An input file.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Path on disk.
    pub path: PathBuf,
    /// Detected format.
    pub kind: InputKind,
}

impl InputFile {
    /// The path as shown in error messages.
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

/// Walks `paths` (files or directories, recursively) and classifies each file.
/// Returns the record files, sorted by path, and the number of other files.
pub fn discover(paths: &[PathBuf]) -> Result<(Vec<InputFile>, u64), DeidError> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    files.sort();
    files.dedup();
    let mut inputs = Vec::new();
    let mut skipped = 0;
    for path in files {
        match detect(&path)? {
            Some(kind) => inputs.push(InputFile { path, kind }),
            None => skipped += 1,
        }
    }
    Ok((inputs, skipped))
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), DeidError> {
    let meta = std::fs::metadata(p).map_err(DeidError::io(p))?;
    if meta.is_file() {
        out.push(p.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(p).map_err(DeidError::io(p))? {
        let entry = entry.map_err(DeidError::io(p))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        collect(&entry.path(), out)?;
    }
    Ok(())
}

/// Classifies one file by its first bytes.
pub fn detect(path: &Path) -> Result<Option<InputKind>, DeidError> {
    let file = std::fs::File::open(path).map_err(DeidError::io(path))?;
    let mut reader = BufReader::new(file);
    let mut first = String::new();
    // Skip blank lines; read at most 64 MiB for the first line.
    loop {
        first.clear();
        let n = (&mut reader)
            .take(64 << 20)
            .read_line(&mut first)
            .map_err(DeidError::io(path))?;
        if n == 0 {
            return Ok(None);
        }
        if !first.trim().is_empty() {
            break;
        }
    }
    let trimmed = first.trim_start_matches('\u{feff}').trim();
    // JSON nested past the parser's limit says nothing about its kind; read
    // as records, the first line is then reported as too deeply nested
    // instead of the file being skipped as no record file.
    // (serde_json's `IgnoredAny` has no depth limit: parse a `Value`.)
    let parsed = (trimmed.starts_with('{') || trimmed.starts_with('['))
        .then(|| serde_json::from_str::<Value>(trimmed));
    if let Some(Err(e)) = &parsed
        && too_deep(e)
    {
        return Ok(Some(InputKind::BulkNdjson));
    }
    if !trimmed.starts_with('{') {
        return Ok(None);
    }
    if let Some(Ok(Value::Object(obj))) = parsed {
        if obj.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
            return Ok(Some(InputKind::Bundle));
        }
        if obj.contains_key("resourceType") {
            return Ok(Some(InputKind::BulkNdjson));
        }
        if preference::looks_like_pair(&obj) {
            return Ok(Some(InputKind::PreferenceJsonl));
        }
        if obj.contains_key("messages") {
            return Ok(Some(InputKind::ChatJsonl));
        }
        return Ok(None);
    }
    // A pretty-printed document: a Bundle if its head says so. A file whose
    // first line is broken NDJSON is also reported here, as a bad record.
    let mut head = first.clone();
    let _ = (&mut reader).take(64 << 10).read_to_string(&mut head);
    if head.contains("\"resourceType\"") && head.contains("\"Bundle\"") && !trimmed.ends_with('}') {
        return Ok(Some(InputKind::Bundle));
    }
    if head.contains("\"resourceType\"") {
        return Ok(Some(InputKind::BulkNdjson));
    }
    if head.contains("\"messages\"") {
        return Ok(Some(InputKind::ChatJsonl));
    }
    Ok(None)
}

/// True when `e` is serde_json's nesting limit (128 levels), which it
/// reports only in its message.
fn too_deep(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("recursion limit exceeded")
}

/// What is wrong with a record or document that did not parse as JSON,
/// without any of its content.
pub(crate) fn json_problem(e: &serde_json::Error) -> String {
    if too_deep(e) {
        format!(
            "nested deeper than JSON records go (the parser stops at 128 levels: {e}); \
             not a FHIR resource, a chat trace or a preference pair"
        )
    } else if e.is_eof() {
        format!("not valid JSON ({e}); a truncated file ends this way")
    } else {
        format!("not valid JSON ({e})")
    }
}
