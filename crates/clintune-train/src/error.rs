//! Why training cannot go on.

use std::path::{Path, PathBuf};

pub use clintune_core::Cause;

/// A training error; each names the file or directory it concerns and keeps
/// its cause as [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A grader could not give rewards.
    #[error(transparent)]
    Grader(#[from] crate::grader::GraderError),
    /// The recipe is unreadable or invalid.
    #[error(transparent)]
    Recipe(#[from] crate::recipe::RecipeError),
    /// The dataset cannot be used.
    #[error("dataset {path}: {source}")]
    Dataset {
        /// The dataset directory.
        path: PathBuf,
        /// What is wrong.
        source: Cause,
    },
    /// A DPO run's dataset split holds no preference pairs.
    #[error(
        "dataset {}: its {split} split holds no preference pairs; DPO (objective.kind = \"dpo\") \
         trains on pairs: de-identify Azure AI Foundry DPO or TRL preference files and curate \
         with the preference task on",
        dataset.display()
    )]
    NoPairs {
        /// The dataset directory.
        dataset: PathBuf,
        /// The split.
        split: String,
    },
    /// The model or its weights cannot be used.
    #[error("model {path}: {source}")]
    Model {
        /// The model (or checkpoint) directory.
        path: PathBuf,
        /// What is wrong.
        source: Cause,
    },
    /// A checkpoint cannot be written or read.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        source: Cause,
    },
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// TensorBoard events could not be written.
    #[error(transparent)]
    Tensorboard(#[from] crate::tensorboard::TensorboardError),
    /// Workers could not exchange gradients.
    #[error("{0}")]
    Collective(#[source] Cause),
    /// The workers exchanged where they start, and do not agree.
    #[error("{0}")]
    Disagreement(String),
    /// Something the recipe asks for is not available in this build or
    /// on this machine.
    #[error("{0}")]
    Unsupported(String),
    /// `--resume` of a run that was started with another recipe.
    #[error(
        "{}: the run was started with another recipe (hash {recorded}, now {current}); resuming needs the same recipe",
        run_dir.display()
    )]
    RecipeChanged {
        /// The run directory.
        run_dir: PathBuf,
        /// The recipe hash its checkpoint recorded.
        recorded: String,
        /// The hash of the recipe given now.
        current: String,
    },
    /// `--resume` of a run that was trained on another dataset (or another
    /// curation of it).
    #[error(
        "{}: the run was trained on dataset {recorded}, but {} is now {current} (curated again?); \
         resuming needs the same data: set another train.output, or move the run away to start over",
        run_dir.display(),
        dataset.display()
    )]
    DatasetChanged {
        /// The run directory.
        run_dir: PathBuf,
        /// The recipe's dataset directory.
        dataset: PathBuf,
        /// The dataset manifest id its checkpoint recorded.
        recorded: String,
        /// The manifest id of the dataset there now.
        current: String,
    },
    /// This process's place among the nodes of a multi-node run (rank,
    /// node count, addresses) does not fit the recipe.
    #[error("{0}")]
    Nodes(String),
    /// The recipe's `hardware.devices` is not a device list.
    #[error(transparent)]
    Devices(clintune_core::Invalid),
    /// A GPU kernel failed (most often: out of GPU memory).
    #[error(transparent)]
    Device(#[from] clintune_model::faults::Fault),
    /// An invariant of clintune itself does not hold: a bug, not bad input.
    #[error("bug: {0}; please report it")]
    Bug(&'static str),
}

impl TrainError {
    /// A failed exchange between workers, with what to do about it.
    pub fn exchange(err: impl std::fmt::Debug) -> Self {
        Self::Collective(Cause::from(format!(
            "data-parallel exchange failed ({err:?}): a worker or node stopped or lost its connection; \
             once all have stopped, start them again with --resume (the orchestrator of a \
             multi-node run can stay up)"
        )))
    }

    /// An [`TrainError::Io`] maker for `map_err`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |err| Self::Io {
            path: path.to_path_buf(),
            err,
        }
    }

    /// A [`TrainError::Dataset`].
    pub fn dataset(path: &Path, cause: impl Into<Cause>) -> Self {
        Self::Dataset {
            path: path.to_path_buf(),
            source: cause.into(),
        }
    }

    /// A [`TrainError::Model`].
    pub fn model(path: &Path, cause: impl Into<Cause>) -> Self {
        Self::Model {
            path: path.to_path_buf(),
            source: cause.into(),
        }
    }

    /// A [`TrainError::Checkpoint`].
    pub fn checkpoint(path: &Path, cause: impl Into<Cause>) -> Self {
        Self::Checkpoint {
            path: path.to_path_buf(),
            source: cause.into(),
        }
    }
}
