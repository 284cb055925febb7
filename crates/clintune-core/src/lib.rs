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

/// A cause with what was being done when it happened ("lineage does not
/// verify"): shown as `context: cause`, and the cause stays its `source()`.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct WithContext {
    /// What was being done.
    pub context: String,
    /// The error underneath.
    pub source: Cause,
}

impl WithContext {
    /// `source`, while doing `context`.
    pub fn new(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// An error and its causes joined by ": ", as anyhow's `{:#}` does, but a
/// cause whose text the message already holds is not repeated: errors here
/// keep their cause as `source()` and may also show it in their own message.
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    message
}

/// Name of the tool as recorded in lineage manifests.
pub const TOOL_NAME: &str = "clintune";

/// Version of the tool as recorded in lineage manifests.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Git commit the tool was built from, or `unknown` outside a git checkout.
pub const GIT_COMMIT: &str = env!("CLINTUNE_GIT_COMMIT");

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn with_context_shows_both_and_keeps_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = WithContext::new("optimizer state", io);
        assert_eq!(e.to_string(), "optimizer state: no such file");
        let cause = e.source().expect("a source");
        assert!(cause.downcast_ref::<std::io::Error>().is_some());
    }
}
