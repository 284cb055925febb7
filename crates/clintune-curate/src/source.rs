//! Reading a de-identification output, after verifying it.
//!
//! Curation only ever reads what `clintune deid` wrote: a directory whose
//! manifest has stage `deid` and whose every output still hashes to what the
//! manifest recorded. Anything else is refused before a record is read.

use crate::error::CurateError;
use arrow_array::{Array, Int32Array, RecordBatch, StringArray};
use clintune_core::{Cause, WithContext};
use clintune_lineage::{FileEntry, Manifest, verify_chain};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One de-identified record, as `clintune deid` wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `fhir` or `chat`.
    pub source: String,
    /// FHIR resource type, or `ChatTrace`.
    pub resource_type: String,
    /// Pseudonymous record key.
    pub record_key: String,
    /// Shifted event time (ISO 8601).
    pub timestamp: Option<String>,
    /// Age at the event, capped.
    pub age_years: Option<i32>,
    /// Kept fields.
    pub fields: serde_json::Value,
    /// De-identified free text.
    pub text: Option<String>,
}

/// A verified de-identification output, with its records grouped by patient.
#[derive(Debug)]
pub struct Source {
    /// The directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The record files read, as the manifest lists them.
    pub files: Vec<FileEntry>,
    /// Records by pseudonymous patient key, in file order (patient, then time).
    pub patients: BTreeMap<String, Vec<Record>>,
}

impl Source {
    /// Verifies `dir` and reads the records of the patients `keep` accepts.
    pub fn open(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Self, CurateError> {
        let manifest = verified_manifest(dir)?;
        let files: Vec<FileEntry> = manifest
            .outputs
            .iter()
            .filter(|f| f.kind.as_deref() == Some("parquet"))
            .cloned()
            .collect();
        if files.is_empty() {
            return Err(source_err(dir, "the manifest lists no record files"));
        }
        let mut patients: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for entry in &files {
            read_records(&dir.join(&entry.path), &keep, &mut patients)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            files,
            patients,
        })
    }
}

/// Reads the manifest of `dir`, requires stage `deid`, and verifies it.
pub fn verified_manifest(dir: &Path) -> Result<Manifest, CurateError> {
    let manifest = Manifest::read(dir).map_err(|e| {
        let context = "not a de-identification output (no readable manifest)";
        source_err(dir, WithContext::new(context, e))
    })?;
    if manifest.stage != "deid" {
        return Err(source_err(
            dir,
            format!(
                "manifest stage is `{}`; curation reads only `clintune deid` output",
                manifest.stage
            ),
        ));
    }
    verify_chain(dir).map_err(|e| {
        source_err(
            dir,
            WithContext::new("de-identification manifest does not verify", e),
        )
    })?;
    Ok(manifest)
}

fn source_err(path: &Path, cause: impl Into<Cause>) -> CurateError {
    CurateError::Source {
        path: path.to_path_buf(),
        source: cause.into(),
    }
}

fn read_records(
    path: &Path,
    keep: &impl Fn(&str) -> bool,
    out: &mut BTreeMap<String, Vec<Record>>,
) -> Result<(), CurateError> {
    let file = std::fs::File::open(path).map_err(CurateError::io(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(CurateError::parquet(path))?;
    for batch in reader {
        let batch = batch.map_err(CurateError::parquet(path))?;
        append_batch(path, &batch, keep, out)?;
    }
    Ok(())
}

fn append_batch(
    path: &Path,
    batch: &RecordBatch,
    keep: &impl Fn(&str) -> bool,
    out: &mut BTreeMap<String, Vec<Record>>,
) -> Result<(), CurateError> {
    let s = |name: &str| string_column(path, batch, name);
    let (patient, source, rtype, key) = (
        s("patient_key")?,
        s("source")?,
        s("resource_type")?,
        s("record_key")?,
    );
    let (timestamp, fields, text) = (s("timestamp")?, s("fields")?, s("text")?);
    let age = batch
        .column_by_name("age_years")
        .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
        .ok_or_else(|| column_err(path, "age_years"))?;
    for row in 0..batch.num_rows() {
        if !keep(patient.value(row)) {
            continue;
        }
        let fields_json =
            serde_json::from_str(fields.value(row)).map_err(|e| CurateError::Record {
                path: path.to_path_buf(),
                record: key.value(row).to_string(),
                field: "fields".into(),
                source: WithContext::new("not JSON", e).into(),
            })?;
        let opt = |a: &StringArray| (!a.is_null(row)).then(|| a.value(row).to_string());
        out.entry(patient.value(row).to_string())
            .or_default()
            .push(Record {
                source: source.value(row).to_string(),
                resource_type: rtype.value(row).to_string(),
                record_key: key.value(row).to_string(),
                timestamp: opt(timestamp),
                age_years: (!age.is_null(row)).then(|| age.value(row)),
                fields: fields_json,
                text: opt(text),
            });
    }
    Ok(())
}

fn string_column<'a>(
    path: &Path,
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a StringArray, CurateError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| column_err(path, name))
}

fn column_err(path: &Path, name: &str) -> CurateError {
    CurateError::Parquet {
        path: path.to_path_buf(),
        source: format!("column `{name}` is missing or has the wrong type").into(),
    }
}
