//! Errors of the curation stage.

use std::path::PathBuf;

/// Anything that stops a curation run. Messages name the file, and the record
/// or field where there is one; they never quote record content.
#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    /// The configuration is invalid.
    #[error("{path}: {source}")]
    Config {
        /// The configuration file (or the output, for a bad option).
        path: PathBuf,
        /// What is wrong and what is allowed.
        source: clintune_core::ConfigError,
    },
    /// The input is not a verified de-identification output.
    #[error("{path}: {source}")]
    Source {
        /// The input directory or file.
        path: PathBuf,
        /// What is wrong: the lineage error underneath, or a sentence.
        source: clintune_core::Cause,
    },
    /// A record could not be turned into an example.
    #[error("{path}: record {record}: field `{field}`: {source}")]
    Record {
        /// The Parquet file the record came from.
        path: PathBuf,
        /// The record's pseudonymous key.
        record: String,
        /// The field.
        field: String,
        /// What is wrong.
        source: clintune_core::Cause,
    },
    /// A chat template failed to render.
    #[error(transparent)]
    Template(#[from] clintune_text::template::TemplateError),
    /// Deduplication could not decide.
    #[error("dedup: {0}")]
    Dedup(#[from] crate::dedup::DedupError),
    /// Tokenizing failed.
    #[error(transparent)]
    Tokenizer(#[from] clintune_text::tokenizer::TokenizerError),
    /// Parquet or Arrow failure on a file.
    #[error("{path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The underlying error (Parquet's, Arrow's, or a missing column).
        source: clintune_core::Cause,
    },
    /// Shards given to `merge` do not belong together.
    #[error("{path}: {source}")]
    Shard {
        /// The shard directory.
        path: PathBuf,
        /// What is wrong: the lineage or JSON error underneath, or a sentence.
        source: clintune_core::Cause,
    },
    /// The output directory could not be staged or committed.
    #[error(transparent)]
    Staging(#[from] clintune_core::staging::StagingError),
    /// Writing a manifest failed.
    #[error(transparent)]
    Manifest(#[from] clintune_lineage::manifest::ManifestError),
    /// Other I/O failure on a file.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
}

impl CurateError {
    /// A closure that wraps an I/O error with its path, for `map_err`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |err| Self::Io { path, err }
    }

    /// A closure that wraps a Parquet or Arrow error with its path.
    pub fn parquet<E: std::error::Error + Send + Sync + 'static>(
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(E) -> Self {
        let path = path.into();
        move |e| Self::Parquet {
            path,
            source: Box::new(e),
        }
    }
}
