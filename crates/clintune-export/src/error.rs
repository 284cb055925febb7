//! Why an export cannot be made.

use std::path::{Path, PathBuf};

pub use clintune_core::Cause;

/// An export error; each names the directory or file it concerns and keeps
/// its cause as [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The run cannot be exported.
    #[error("run {path}: {source}")]
    Run {
        /// The run directory.
        path: PathBuf,
        /// What is wrong.
        source: Cause,
    },
    /// The export could not be written.
    #[error("{path}: {source}")]
    Write {
        /// What was being written.
        path: PathBuf,
        /// What went wrong.
        source: Cause,
    },
}

impl ExportError {
    /// An [`ExportError::Run`].
    pub fn run(path: &Path, cause: impl Into<Cause>) -> Self {
        Self::Run {
            path: path.to_path_buf(),
            source: cause.into(),
        }
    }

    /// An [`ExportError::Write`].
    pub fn write(path: &Path, cause: impl Into<Cause>) -> Self {
        Self::Write {
            path: path.to_path_buf(),
            source: cause.into(),
        }
    }
}
