//! Errors of the de-identification stage.
//!
//! Messages name the file, the line (record) and the field, but never a value
//! from the record: a value could be PHI, and error messages end up in logs.

use std::path::PathBuf;

/// A problem with one input record.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{file}: {record}: {field}: {problem}")]
pub struct RecordError {
    /// The input file.
    pub file: String,
    /// Which record: `line N` (NDJSON, JSONL) or `entry N` (Bundle), 1-based.
    pub record: String,
    /// Path of the offending field, e.g. `content[0].attachment.data`.
    pub field: String,
    /// What is wrong, without any value from the record.
    pub problem: String,
}

impl RecordError {
    /// A short, value-free reason used as a counting key under `--skip-invalid`
    /// (details in parentheses, such as a parser's line and column, left out
    /// so that the same fault is counted under one key).
    pub fn reason(&self) -> String {
        let problem = self.problem.split(" (").next().unwrap_or(&self.problem);
        format!("{}: {}", self.field, problem)
    }
}

/// Errors of a de-identification run.
#[derive(Debug, thiserror::Error)]
pub enum DeidError {
    /// A record is invalid and `--skip-invalid` was not given.
    #[error("invalid record: {0}\n(pass --skip-invalid to drop and count invalid records instead)")]
    Record(#[from] RecordError),
    /// The policy file is invalid.
    #[error("policy {path}: {source}")]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong.
        source: clintune_core::ConfigError,
    },
    /// A dictionary file is missing or invalid.
    #[error("dictionary {path}: {source}")]
    Dictionary {
        /// The dictionary file.
        path: PathBuf,
        /// What is wrong: the I/O or decoding error, or a sentence.
        source: clintune_core::Cause,
    },
    /// Nothing to de-identify.
    #[error(
        "no input records found in {0}: expected FHIR NDJSON (Bulk Data), FHIR Bundle JSON or chat JSONL files"
    )]
    NoInput(String),
    /// An I/O error on a named path.
    #[error("{path}: {err}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// A file could not be scanned.
    #[error("scanning {path}: {source}")]
    Scan {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: clintune_core::Cause,
    },
    /// Writing Parquet failed.
    #[error("writing {path}: {source}")]
    Output {
        /// The output file.
        path: PathBuf,
        /// What went wrong: Parquet's error, or a sentence.
        source: clintune_core::Cause,
    },
    /// Atomic output handling failed.
    #[error(transparent)]
    Staging(#[from] clintune_core::staging::StagingError),
    /// Writing the manifest failed.
    #[error(transparent)]
    Manifest(#[from] clintune_lineage::manifest::ManifestError),
}

impl DeidError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |err| DeidError::Io { path, err }
    }
}
