//! De-identification stage of clintune.
//!
//! Longitudinal patient records (FHIR R4 Bulk Data NDJSON, FHIR R4 Bundles,
//! chat-format JSONL traces) go in; HIPAA Safe Harbor de-identified records
//! come out as Parquet, with an audit report and a lineage manifest.
//!
//! The stage is fail-closed: a [`policy::Policy`] lists the fields kept per
//! resource type and everything else is dropped and counted. Dates move by one
//! keyed shift per patient ([`dates`]), identifiers become keyed pseudonyms
//! ([`pseudonym`]), and free text goes through the PHI [`scrub`]ber, which
//! also knows each patient's own identifiers from the structured record.
//!
//! Entry points: [`pipeline::run`] de-identifies inputs into a directory;
//! [`eval`] scores the free-text detector against an annotated corpus.

pub mod audit;
pub mod builtin;
pub mod dates;
pub mod error;
pub mod eval;
pub mod identity;
pub mod input;
pub mod learn;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod process;
pub mod pseudonym;
pub mod resource;
pub mod scan;
pub mod scrub;
pub mod terminology;

pub use error::{DeidError, RecordError};
pub use pipeline::{DeidOptions, DeidSummary, run, run_with_progress};
pub use policy::Policy;
