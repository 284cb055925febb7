//! Why an export cannot be made.

use std::path::{Path, PathBuf};

/// An export error; each names the directory or file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The run cannot be exported.
    #[error("run {path}: {message}")]
    Run {
        /// The run directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The export could not be written.
    #[error("{path}: {message}")]
    Write {
        /// What was being written.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl ExportError {
    /// An [`ExportError::Run`].
    pub fn run(path: &Path, message: impl ToString) -> Self {
        Self::Run {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    /// An [`ExportError::Write`].
    pub fn write(path: &Path, message: impl ToString) -> Self {
        Self::Write {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}
