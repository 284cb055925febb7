//! Curation stage of clintune.
//!
//! De-identified records (the output of `clintune deid`, verified through its
//! manifest) become training examples by configurable tasks (a patient's
//! timeline, next-diagnosis chat examples, chat traces as they are). Examples
//! are filtered, deduplicated exactly and approximately ([`dedup`]), split by
//! patient ([`split`]), tokenized ([`encode`], with `clintune-text`'s tokenizer and
//! chat template) and written as
//! Parquet shards with a lineage manifest and a dataset card.
//!
//! The trainer reads a split back as packed fixed-length sequences with a
//! resumable cursor through [`reader`], and preference pairs through [`pairs`].

pub mod canary;
pub mod card;
pub mod config;
pub mod dedup;
pub mod diagnoses;
pub mod encode;
pub mod error;
pub mod events;
pub mod finalize;
pub mod labels;
pub mod merge;
pub mod pairs;
pub mod pipeline;
pub mod reader;
pub mod schema;
pub mod source;
pub mod split;
pub mod stats;
pub mod store;
pub mod tasks;

pub use clintune_core::rng;
