//! The registry of a model name: `ROOT/NAME/index.json` lists every version
//! with its content id, parent and creation time. Versions only ever get
//! added; an existing version directory is never written again.

use crate::error::ExportError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The registry file of a model name.
pub const INDEX_FILE: &str = "index.json";

/// One exported version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// 1, 2, …
    pub version: u32,
    /// Its directory, relative to the name's directory (`v1`).
    pub path: String,
    /// Its manifest's content id.
    pub manifest_id: String,
    /// The id of the training run it came from.
    pub parent_id: String,
    /// When it was made (RFC 3339, UTC).
    pub created_at: String,
}

/// `index.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// The model name.
    pub name: String,
    /// Every version, oldest first.
    pub versions: Vec<Version>,
}

impl Index {
    /// Reads the registry of `name_dir`, empty when there is none yet.
    pub fn read(name_dir: &Path, name: &str) -> Result<Self, ExportError> {
        let path = name_dir.join(INDEX_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| ExportError::write(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                name: name.to_string(),
                versions: Vec::new(),
            }),
            Err(e) => Err(ExportError::write(&path, e)),
        }
    }

    /// The next version number: one past every version listed or on disk.
    pub fn next_version(&self, name_dir: &Path) -> u32 {
        let listed = self.versions.iter().map(|v| v.version).max().unwrap_or(0);
        let on_disk = std::fs::read_dir(name_dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix('v')?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        listed.max(on_disk) + 1
    }

    /// Adds `version` and writes the registry atomically.
    pub fn add(&mut self, name_dir: &Path, version: Version) -> Result<PathBuf, ExportError> {
        self.versions.push(version);
        let path = name_dir.join(INDEX_FILE);
        let text = clintune_core::json::to_pretty("the export index", self);
        clintune_core::staging::write_atomic(&path, text.as_bytes())
            .map_err(|e| ExportError::write(&path, e))?;
        Ok(path)
    }
}

/// A model name usable as a directory: letters, digits, `-`, `_`, `.`.
pub fn check_name(name: &str) -> Result<(), clintune_core::Invalid> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(clintune_core::Invalid::new(
            "the model name",
            format!("{name:?} must use letters, digits, '-', '_' and '.', not starting with '.'"),
        ))
    }
}
