//! Recipe-driven fine-tuning of Llama-family models.
//!
//! A [`recipe`] (TOML, strictly parsed) names the base model, the curated
//! dataset and every training choice; the [`objective`] (supervised
//! fine-tuning or DPO) decides what the weights learn from.

pub mod adamw;
pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cluster;
pub mod data;
pub mod error;
pub mod grader;
pub mod memory;
pub mod metrics;
pub mod objective;
pub mod params;
pub mod recipe;
pub mod run;
pub mod schedule;
pub mod tensorboard;
pub mod trainer;
pub mod watchdog;

pub use cluster::Cluster;
pub use recipe::Recipe;
pub use run::{StepReport, train};
pub use trainer::{EvalMetrics, RunOptions, RunSummary};
