//! Verification: recompute every hash along a manifest chain.

use crate::chain::{Ancestry, ChainError};
use crate::manifest::{FileEntry, MANIFEST_FILE, Manifest, ManifestError};
use clintune_core::hash::file_digest;
use std::path::{Component, Path, PathBuf};

/// What a successful verification checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Manifests whose content id was recomputed.
    pub manifests: usize,
    /// Files whose hash was recomputed and matched.
    pub files_checked: usize,
    /// Input files not on disk (or recorded under a pseudonym) and so not checked.
    pub inputs_not_found: usize,
    /// Inputs compiled into clintune (the default policy): identified by
    /// hash, with no file to check.
    pub inputs_built_in: usize,
    /// Parents referenced but not on this machine (an export copied
    /// elsewhere), as `(stage, id)`: their ids are recorded, their content
    /// cannot be checked here.
    pub parents_not_here: Vec<(String, String)>,
}

/// How strict a verification is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// A parent that is not on disk fails the verification instead of being
    /// reported as not available here.
    pub require_parents: bool,
}

/// The first mismatch found.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The chain loops back on itself or is too deep to be real.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A manifest's content does not match its id.
    #[error(
        "{path}: content id mismatch: recorded {recorded}, recomputed {actual} (the manifest was edited)"
    )]
    ManifestId {
        /// The manifest file.
        path: PathBuf,
        /// The id written in it.
        recorded: String,
        /// The id its content hashes to.
        actual: String,
    },
    /// A file listed in a manifest is missing.
    #[error("{path}: missing (listed in {manifest})")]
    Missing {
        /// The missing file.
        path: PathBuf,
        /// The manifest that lists it.
        manifest: PathBuf,
    },
    /// A file's content differs from what the manifest recorded.
    #[error("{path}: {what} differs from {manifest}: recorded {recorded}, found {actual}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// `size` or `sha256`.
        what: &'static str,
        /// The manifest that lists it.
        manifest: PathBuf,
        /// The recorded value.
        recorded: String,
        /// The value found.
        actual: String,
    },
    /// A parent manifest on disk is not the one referenced.
    #[error("{path}: parent manifest id is {actual}, but {child} references {recorded}")]
    Parent {
        /// The parent manifest.
        path: PathBuf,
        /// The referencing manifest.
        child: PathBuf,
        /// The referenced id.
        recorded: String,
        /// The id found.
        actual: String,
    },
    /// A parent is not on disk and `require_parents` was asked for.
    #[error(
        "{child}: parent {stage} {id} is not available here ({path}); verifying without --require-parents checks what is here"
    )]
    ParentMissing {
        /// The referencing manifest.
        child: PathBuf,
        /// The parent's stage.
        stage: String,
        /// The parent's id.
        id: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// An I/O error while hashing.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
}

/// Verifies the manifest in `dir`, its outputs, the inputs still on disk, and
/// every parent manifest reachable on disk, recursively; stops at the first mismatch.
pub fn verify_chain(dir: &Path) -> Result<VerifyReport, VerifyError> {
    verify_chain_with(dir, VerifyOptions::default())
}

/// [`verify_chain`] with options.
pub fn verify_chain_with(dir: &Path, opts: VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport::default();
    let mut walk = Walk {
        path: Ancestry::default(),
        report: &mut report,
        opts,
    };
    verify_dir(dir, None, &mut walk)?;
    Ok(report)
}

/// The state of one verification.
struct Walk<'a> {
    path: Ancestry,
    report: &'a mut VerifyReport,
    opts: VerifyOptions,
}

fn verify_dir(
    dir: &Path,
    expected: Option<(&str, &Path)>,
    walk: &mut Walk<'_>,
) -> Result<(), VerifyError> {
    let (path, report) = (&mut walk.path, &mut *walk.report);
    path.enter(dir)?;
    let manifest = Manifest::read(dir)?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let actual = manifest.compute_id();
    if actual != manifest.id {
        return Err(VerifyError::ManifestId {
            path: manifest_path,
            recorded: manifest.id,
            actual,
        });
    }
    if let Some((id, child)) = expected
        && id != manifest.id
    {
        return Err(VerifyError::Parent {
            path: manifest_path,
            child: child.to_path_buf(),
            recorded: id.to_string(),
            actual: manifest.id,
        });
    }
    report.manifests += 1;
    for entry in &manifest.outputs {
        check_file(&dir.join(&entry.path), entry, &manifest_path)?;
        report.files_checked += 1;
    }
    for entry in &manifest.inputs {
        if entry.built_in {
            report.inputs_built_in += 1;
            continue;
        }
        let path = resolve(dir, &entry.path);
        if entry.redacted || !path.is_file() {
            report.inputs_not_found += 1;
            continue;
        }
        check_file(&path, entry, &manifest_path)?;
        report.files_checked += 1;
    }
    for parent in &manifest.parents {
        let parent_dir = resolve(dir, &parent.path);
        if parent_dir.join(MANIFEST_FILE).is_file() {
            verify_dir(&parent_dir, Some((&parent.id, &manifest_path)), walk)?;
        } else if walk.opts.require_parents {
            return Err(VerifyError::ParentMissing {
                child: manifest_path,
                stage: parent.stage.clone(),
                id: parent.id.clone(),
                path: parent_dir,
            });
        } else {
            let entry = (parent.stage.clone(), parent.id.clone());
            if !walk.report.parents_not_here.contains(&entry) {
                walk.report.parents_not_here.push(entry);
            }
        }
    }
    walk.path.leave();
    Ok(())
}

/// Resolves a recorded path: absolute as is, relative against the manifest's
/// directory, with `..` folded so that messages name the file plainly.
pub(crate) fn resolve(dir: &Path, recorded: &str) -> PathBuf {
    let p = Path::new(recorded);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn check_file(path: &Path, entry: &FileEntry, manifest: &Path) -> Result<(), VerifyError> {
    if !path.is_file() {
        return Err(VerifyError::Missing {
            path: path.to_path_buf(),
            manifest: manifest.to_path_buf(),
        });
    }
    let digest = file_digest(path).map_err(|err| VerifyError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    if digest.bytes != entry.bytes {
        return Err(VerifyError::Mismatch {
            path: path.to_path_buf(),
            what: "size",
            manifest: manifest.to_path_buf(),
            recorded: entry.bytes.to_string(),
            actual: digest.bytes.to_string(),
        });
    }
    if digest.sha256 != entry.sha256 {
        return Err(VerifyError::Mismatch {
            path: path.to_path_buf(),
            what: "sha256",
            manifest: manifest.to_path_buf(),
            recorded: entry.sha256.clone(),
            actual: digest.sha256,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ManifestBuilder, ParentRef};

    fn stage(dir: &Path, stage: &str, content: &[u8], parent: Option<ParentRef>) -> Manifest {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("data.bin"), content).unwrap();
        let mut b = ManifestBuilder::new(stage, "sha256:00".into())
            .output(FileEntry::from_file(&dir.join("data.bin"), "data.bin", Some(1)).unwrap());
        if let Some(p) = parent {
            b = b.parent(p);
        }
        let m = b.finish();
        m.write(dir).unwrap();
        m
    }

    #[test]
    fn verifies_chain_and_names_flipped_file() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        let b = root.path().join("b");
        let ma = stage(&a, "deid", b"hello", None);
        stage(
            &b,
            "curate",
            b"world",
            Some(ParentRef {
                id: ma.id.clone(),
                stage: "deid".into(),
                path: "../a".into(),
            }),
        );
        let report = verify_chain(&b).unwrap();
        assert_eq!(report.manifests, 2);
        assert_eq!(report.files_checked, 2);

        // Flip one byte in the parent's output: the error names that file.
        std::fs::write(a.join("data.bin"), b"hellp").unwrap();
        let err = verify_chain(&b).unwrap_err().to_string();
        assert!(err.contains("data.bin") && err.contains("sha256"), "{err}");
        assert!(err.contains(&a.display().to_string()), "{err}");
    }

    #[test]
    fn edited_manifest_is_detected() {
        let root = tempfile::tempdir().unwrap();
        stage(root.path(), "deid", b"x", None);
        let path = root.path().join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"deid\"", "\"curate\"")).unwrap();
        let err = verify_chain(root.path()).unwrap_err();
        assert!(matches!(err, VerifyError::ManifestId { .. }), "{err}");
    }

    #[test]
    fn cycles_are_named_by_verify_show_and_openlineage() {
        // a → b → a, and c naming itself: written by hand, as an attacker or a
        // bad copy would, so the ids cannot be consistent; the walk must end
        // on the cycle before it checks them.
        let root = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            root.path().join("a"),
            root.path().join("b"),
            root.path().join("c"),
        );
        let parent = |stage: &str, path: &str| ParentRef {
            id: "sha256:0".into(),
            stage: stage.into(),
            path: path.into(),
        };
        stage(&a, "deid", b"x", Some(parent("curate", "../b")));
        stage(&b, "curate", b"y", Some(parent("deid", "../a")));
        stage(&c, "train", b"z", Some(parent("train", ".")));
        // Verify stops at the first mismatch: a's id, before b comes round
        // again; c names itself, which is the cycle.
        let err = verify_chain(&b).unwrap_err().to_string();
        assert!(err.contains(&a.display().to_string()), "{err}");
        let err = verify_chain(&c).unwrap_err().to_string();
        assert!(
            err.contains("lineage cycle") && err.contains(&c.display().to_string()),
            "{err}"
        );
        for dir in [&b, &c] {
            let shown = crate::show::render_chain(dir).unwrap();
            assert!(shown.contains("LINEAGE CYCLE"), "{shown}");
            let err = crate::openlineage::events(dir).unwrap_err().to_string();
            assert!(err.contains("lineage cycle"), "{err}");
        }
    }
}
