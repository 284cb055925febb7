//! Exports: a finished training run becomes a versioned, immutable Hugging
//! Face model directory under `ROOT/NAME/vN/` that transformers and vLLM load
//! as it is, with the LoRA adapter in PEFT's format beside it, a model card
//! and a lineage manifest whose parent is the run.

pub mod card;
pub mod error;
pub mod export;
pub mod registry;
pub mod verify;

pub use error::ExportError;
pub use export::{ExportOptions, Exported, export};
