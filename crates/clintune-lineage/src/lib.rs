//! Lineage: every stage of clintune writes a `manifest.json` beside its outputs.
//!
//! A manifest names the stage, the tool version and commit, a hash of the
//! effective configuration, every input and output file by SHA-256, bytes and
//! rows, the manifests it was derived from, and counts of what the stage did.
//! Its content id is a hash over all of that, so a reviewer can follow a model
//! back to its source files and prove nothing changed on the way
//! ([`verify::verify_chain`]).

pub mod chain;
pub mod manifest;
pub mod openlineage;
pub mod show;
pub mod verify;

pub use chain::ChainError;
pub use manifest::{FileEntry, MANIFEST_FILE, Manifest, ManifestBuilder, ParentRef, ToolInfo};
pub use verify::{VerifyError, VerifyOptions, VerifyReport, verify_chain, verify_chain_with};
