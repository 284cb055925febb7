//! Walking a manifest chain from a manifest up to its sources: the path of
//! manifests being read, so that a manifest naming itself or a descendant as
//! its parent is named as a cycle instead of being followed forever.

use crate::manifest::ManifestError;
use std::path::{Path, PathBuf};

/// More manifests in one chain than any pipeline writes (records → deid →
/// curate → train → export → release is six): past this the chain is broken.
pub const MAX_DEPTH: usize = 64;

/// Why a chain cannot be walked.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A manifest is its own ancestor.
    #[error(
        "lineage cycle: {} (a manifest names itself or a manifest derived from it as its parent)",
        show_cycle(.cycle)
    )]
    Cycle {
        /// The manifests' directories, from the first on the cycle back to it.
        cycle: Vec<PathBuf>,
    },
    /// The chain is longer than [`MAX_DEPTH`].
    #[error("{}: more than {MAX_DEPTH} manifests deep; the lineage is broken", .dir.display())]
    TooDeep {
        /// The manifest directory past the limit.
        dir: PathBuf,
    },
}

fn show_cycle(cycle: &[PathBuf]) -> String {
    cycle
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The directories of the manifests from the start of a walk down to the
/// one being read.
#[derive(Debug, Default)]
pub(crate) struct Ancestry(Vec<PathBuf>);

impl Ancestry {
    /// Steps into `dir`; fails when it is already on the path or the path is
    /// too long. Directories compare by their canonical form, so `a/../b`
    /// and `b` are one manifest.
    pub(crate) fn enter(&mut self, dir: &Path) -> Result<(), ChainError> {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if let Some(first) = self.0.iter().position(|d| *d == key) {
            let mut cycle = self.0[first..].to_vec();
            cycle.push(key);
            return Err(ChainError::Cycle { cycle });
        }
        if self.0.len() >= MAX_DEPTH {
            return Err(ChainError::TooDeep { dir: key });
        }
        self.0.push(key);
        Ok(())
    }

    /// Steps back out of the directory entered last.
    pub(crate) fn leave(&mut self) {
        self.0.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_met_again_on_the_path_is_a_cycle_but_not_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let mut path = Ancestry::default();
        path.enter(&a).unwrap();
        path.enter(&b).unwrap();
        path.leave();
        // A sibling visit of b again is fine (a shared parent).
        path.enter(&b).unwrap();
        let err = path.enter(&tmp.path().join("b/../a")).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ChainError::Cycle { ref cycle } if cycle.len() == 3),
            "{text}"
        );
        assert!(
            text.contains("lineage cycle") && text.contains(" → "),
            "{text}"
        );
    }

    #[test]
    fn a_chain_deeper_than_any_pipeline_is_refused() {
        let mut path = Ancestry::default();
        for i in 0..MAX_DEPTH {
            path.enter(Path::new(&format!("/nonexistent/{i}"))).unwrap();
        }
        assert!(matches!(
            path.enter(Path::new("/nonexistent/last")),
            Err(ChainError::TooDeep { .. })
        ));
    }
}
