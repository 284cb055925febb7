//! Where the dictionary files are read from: a folder laid out as
//! `deid/dictionaries/`, or the copy compiled into clintune.

use crate::builtin;
use crate::error::DeidError;
use clintune_core::WithContext;
use clintune_core::hash::{files_with_extension, sha256_hex};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The learned model's weights file, under the dictionaries folder.
pub const MODEL: &str = "phi-model.txt";

/// The dictionary files of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DictionaryFiles {
    /// A folder laid out as `deid/dictionaries/`.
    Dir(PathBuf),
    /// The files compiled into clintune ([`crate::builtin`]).
    Builtin,
}

impl DictionaryFiles {
    /// The word list at `rel` (e.g. `philter/safe-words.txt.zst`), one word
    /// per line, lower-cased, comments and blank lines dropped; `.zst` files
    /// are decompressed.
    pub(crate) fn list(&self, rel: &str) -> Result<Vec<String>, DeidError> {
        let bad = |cause: clintune_core::Cause| DeidError::Dictionary {
            path: self.describe(rel),
            source: cause,
        };
        let raw = self.read(rel).map_err(|e| bad(e.into()))?;
        let bytes = if rel.ends_with(".zst") {
            let text = zstd::decode_all(raw.as_ref())
                .map_err(|e| bad(WithContext::new("not a zstd file", e).into()))?;
            Cow::Owned(text)
        } else {
            raw
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        Ok(parse_list(text))
    }

    /// The learned model (`phi-model.txt`), if the files have one.
    pub(crate) fn model(&self) -> Result<Option<super::model::PhiModel>, DeidError> {
        let bad = |cause: clintune_core::Cause| DeidError::Dictionary {
            path: self.describe(MODEL),
            source: cause,
        };
        let raw = match self.read(MODEL) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(e.into())),
        };
        let text = std::str::from_utf8(&raw).map_err(|_| bad("not UTF-8 text".into()))?;
        let what = self.describe(MODEL).display().to_string();
        super::model::PhiModel::parse(text, &what)
            .map(Some)
            .map_err(|e| bad(e.into()))
    }

    fn read(&self, rel: &str) -> std::io::Result<Cow<'static, [u8]>> {
        match self {
            DictionaryFiles::Dir(dir) => std::fs::read(dir.join(rel)).map(Cow::Owned),
            DictionaryFiles::Builtin => builtin::dictionary(rel)
                .map(Cow::Borrowed)
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not built in")),
        }
    }

    /// The path messages name for the file at `rel`.
    pub fn describe(&self, rel: &str) -> PathBuf {
        match self {
            DictionaryFiles::Dir(dir) => dir.join(rel),
            DictionaryFiles::Builtin => Path::new("built-in deid/dictionaries").join(rel),
        }
    }

    /// One hash over the word lists (`*.txt` by name, then `philter/*.zst`),
    /// so that a changed list changes a stage's configuration hash. The
    /// built-in files hash as the same files in a folder do.
    pub fn hash(&self) -> Result<String, DeidError> {
        let mut lines = String::new();
        let mut add = |name: &str, bytes: &[u8]| {
            lines.push_str(&format!("{name} {}\n", sha256_hex(bytes)));
        };
        match self {
            DictionaryFiles::Builtin => {
                for (rel, bytes) in builtin::DICTIONARIES {
                    add(file_name(Path::new(rel)), bytes);
                }
            }
            DictionaryFiles::Dir(dir) => {
                let philter = dir.join("philter");
                let mut paths = files_with_extension(dir, "txt").map_err(DeidError::io(dir))?;
                paths.extend(
                    files_with_extension(&philter, "zst").map_err(DeidError::io(&philter))?,
                );
                for p in paths {
                    let bytes = std::fs::read(&p).map_err(DeidError::io(&p))?;
                    add(file_name(&p), &bytes);
                }
            }
        }
        Ok(sha256_hex(lines.as_bytes()))
    }
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or_default()
}

/// One lower-cased word or phrase per line; blank lines and `#` comments dropped.
pub(crate) fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_dir() -> DictionaryFiles {
        DictionaryFiles::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deid/dictionaries"))
    }

    #[test]
    fn built_in_files_are_the_folders_files_with_the_same_hash() {
        let dir = repo_dir();
        assert_eq!(
            DictionaryFiles::Builtin.hash().unwrap(),
            dir.hash().unwrap()
        );
        for (rel, _) in builtin::DICTIONARIES {
            assert_eq!(
                DictionaryFiles::Builtin.list(rel).unwrap(),
                dir.list(rel).unwrap(),
                "{rel}"
            );
        }
    }

    #[test]
    fn a_missing_or_broken_list_is_named() {
        let err = DictionaryFiles::Builtin
            .list("nope.txt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("built-in deid/dictionaries/nope.txt"), "{err}");
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x.txt.zst"), b"plain text").unwrap();
        let files = DictionaryFiles::Dir(tmp.path().to_path_buf());
        let err = files.list("x.txt.zst").unwrap_err().to_string();
        assert!(err.contains("x.txt.zst") && err.contains("zstd"), "{err}");
    }
}
