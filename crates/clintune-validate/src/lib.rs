//! Validation before release: how a tuned model does on the held-out
//! patients of its curated dataset, against a baseline (usually its base
//! model), with intervals that say whether a difference is more than chance.
//!
//! [`score`] runs a model over a split and keeps each example's summed loss,
//! correct guesses and trained tokens; [`summary`] groups those by task and
//! patient and bootstraps over patients; [`eval`] ties them together and
//! writes `eval.json` with a lineage manifest. Nothing here prints.

pub mod diagnosis;
pub mod error;
pub mod eval;
pub mod gate;
pub mod memorization;
pub mod report;
pub mod score;
pub mod summary;

pub use error::EvalError;
pub use eval::{EvalConfig, EvalReport, evaluate, write_report};
