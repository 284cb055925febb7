//! Why an evaluation cannot be made.

use clintune_core::Cause;
use std::path::{Path, PathBuf};

/// An evaluation error; each names the directory it concerns and keeps its
/// cause as [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The dataset (or its split) cannot be read.
    #[error("dataset {path}: {source}")]
    Dataset {
        /// The dataset directory.
        path: PathBuf,
        /// What is wrong.
        source: Cause,
    },
    /// A model, adapter or its manifest cannot be used.
    #[error("model {path}: {source}")]
    Model {
        /// The model directory.
        path: PathBuf,
        /// What is wrong.
        source: Cause,
    },
    /// The settings cannot be evaluated with.
    #[error(transparent)]
    Invalid(#[from] clintune_core::Invalid),
    /// The output directory could not be staged or committed.
    #[error(transparent)]
    Staging(#[from] clintune_core::staging::StagingError),
    /// Writing the report or its manifest failed.
    #[error("{path}: {source}")]
    Output {
        /// The file.
        path: PathBuf,
        /// The error.
        source: Cause,
    },
    /// An invariant of clintune itself does not hold: a bug, not bad input.
    #[error("bug: {0}; please report it")]
    Bug(&'static str),
}

impl EvalError {
    /// An [`EvalError::Dataset`].
    pub fn dataset(path: &Path, cause: impl Into<Cause>) -> Self {
        Self::Dataset {
            path: path.to_path_buf(),
            source: cause.into(),
        }
    }

    /// An [`EvalError::Model`].
    pub fn model(path: &Path, cause: impl Into<Cause>) -> Self {
        Self::Model {
            path: path.to_path_buf(),
            source: cause.into(),
        }
    }

    /// An [`EvalError::Output`].
    pub fn output(path: &Path, cause: impl Into<Cause>) -> Self {
        Self::Output {
            path: path.to_path_buf(),
            source: cause.into(),
        }
    }
}
