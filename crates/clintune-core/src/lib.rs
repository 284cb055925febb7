//! Shared building blocks of clintune.
//!
//! Every stage (de-identification, curation, training, export) writes its
//! results through these helpers so that the same guarantees hold everywhere:
//! outputs appear atomically or not at all ([`staging`]), files are identified
//! by content ([`hash`]), and secrets never reach a log line ([`secret`]).

pub mod hash;
pub mod invalid;
pub mod json;
pub mod progress;
pub mod rng;
pub mod secret;
pub mod staging;
pub mod toml_text;

/// The cause an error keeps as its `source()`: the library error underneath,
/// or a sentence where there is none.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

pub use invalid::{ConfigError, Invalid};

/// Name of the tool as recorded in lineage manifests.
pub const TOOL_NAME: &str = "clintune";

/// Version of the tool as recorded in lineage manifests.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Git commit the tool was built from, or `unknown` outside a git checkout.
pub const GIT_COMMIT: &str = env!("CLINTUNE_GIT_COMMIT");
