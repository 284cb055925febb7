//! The manifest format and how it is built, written and read.

use clintune_core::hash::{file_digest, sha256_hex};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io;
use std::path::{Path, PathBuf};

/// File name of a stage's manifest inside its output directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Version of the manifest format; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// The tool that produced a manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ToolInfo {
    /// Tool name.
    pub name: String,
    /// Tool version.
    pub version: String,
    /// Git commit the tool was built from.
    pub git_commit: String,
}

impl ToolInfo {
    /// The running build of clintune.
    pub fn current() -> Self {
        Self {
            name: clintune_core::TOOL_NAME.to_string(),
            version: clintune_core::TOOL_VERSION.to_string(),
            git_commit: clintune_core::GIT_COMMIT.to_string(),
        }
    }
}

/// One file read or written by a stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Path: relative to the manifest's directory for outputs; for inputs as
    /// given, or a keyed pseudonym when the name itself could identify someone.
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Number of records in the file, where that is meaningful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// What the file is (e.g. `fhir-bulk-ndjson`, `parquet`, `policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// True when `path` is a pseudonym rather than the real name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
    /// True when the content was compiled into the tool (the default
    /// de-identification policy), so no file on disk holds it; the hash
    /// still identifies it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub built_in: bool,
}

impl FileEntry {
    /// Hashes `file` on disk and records it under the name `path`.
    pub fn from_file(file: &Path, path: impl Into<String>, rows: Option<u64>) -> io::Result<Self> {
        let d = file_digest(file)?;
        Ok(Self {
            path: path.into(),
            sha256: d.sha256,
            bytes: d.bytes,
            rows,
            kind: None,
            redacted: false,
            built_in: false,
        })
    }

    /// Sets the kind of the file.
    pub fn with_kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.to_string());
        self
    }
}

/// A reference to the manifest a stage was derived from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ParentRef {
    /// Content id of the parent manifest.
    pub id: String,
    /// Stage of the parent.
    pub stage: String,
    /// Where the parent's directory was, relative to this manifest's directory
    /// when possible; a hint for `lineage show`, not part of the proof.
    pub path: String,
}

impl ParentRef {
    /// The parent's directory, as seen from the child manifest's directory.
    pub fn dir_from(&self, child_dir: &Path) -> PathBuf {
        crate::verify::resolve(child_dir, &self.path)
    }

    /// A reference to `parent` (the manifest in `parent_dir`) from a manifest
    /// to be written in `child_dir`: the path is relative when both resolve,
    /// so a tree of stage outputs can be moved together; absolute otherwise.
    pub fn locate(parent: &Manifest, parent_dir: &Path, child_dir: &Path) -> Self {
        let from = child_dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .canonicalize()
            .ok()
            .zip(child_dir.file_name())
            .map(|(dir, name)| dir.join(name));
        let to = parent_dir.canonicalize().ok();
        let path = match (from, to) {
            (Some(from), Some(to)) => relative(&from, &to),
            (_, Some(to)) => to,
            _ => parent_dir.to_path_buf(),
        };
        Self {
            id: parent.id.clone(),
            stage: parent.stage.clone(),
            path: path.display().to_string(),
        }
    }
}

/// The path from directory `from` to `to`, both absolute.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for part in &b[common..] {
        out.push(part);
    }
    out
}

/// How a manifest records an input path: absolute, so that `lineage verify`
/// finds the file from anywhere; as given when it cannot be resolved.
pub fn absolute_path(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// A stage's lineage manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version.
    pub format_version: u32,
    /// Content id: `sha256:` + hex SHA-256 over the canonical JSON of every
    /// other field except `created_at`.
    pub id: String,
    /// The stage that wrote it (`deid`, `curate`, `train`, `export`).
    pub stage: String,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// When it was written (RFC 3339, UTC); not part of the content id, so two
    /// identical runs have the same id.
    pub created_at: String,
    /// `sha256:` hash of the effective configuration or policy (never a secret).
    pub config_hash: String,
    /// Non-secret facts about the configuration worth reading (e.g. the key id).
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Files read.
    pub inputs: Vec<FileEntry>,
    /// Files written, relative to the manifest's directory.
    pub outputs: Vec<FileEntry>,
    /// Manifests this one was derived from.
    pub parents: Vec<ParentRef>,
    /// Counts that describe what the stage did.
    pub counts: Map<String, Value>,
}

impl Manifest {
    /// Recomputes the content id from the other fields.
    pub fn compute_id(&self) -> String {
        let mut value = serde_json::to_value(self).expect("manifest serializes");
        if let Value::Object(map) = &mut value {
            map.remove("id");
            map.remove("created_at");
        }
        content_hash(&value)
    }

    /// Reads `manifest.json` from `dir`.
    pub fn read(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|err| ManifestError::Io {
            path: path.clone(),
            err,
        })?;
        serde_json::from_str(&text).map_err(|err| ManifestError::Parse { path, err })
    }

    /// Writes `manifest.json` into `dir` atomically.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let mut text = serde_json::to_string_pretty(self).expect("manifest serializes");
        text.push('\n');
        clintune_core::staging::write_atomic(&path, text.as_bytes()).map_err(|err| {
            ManifestError::Io {
                path: path.clone(),
                err,
            }
        })?;
        Ok(path)
    }

    /// A count by name, as an integer, when present.
    pub fn count(&self, name: &str) -> Option<u64> {
        self.counts.get(name).and_then(Value::as_u64)
    }
}

/// `sha256:` hash of a JSON value in its canonical form: the id of a
/// configuration or manifest, the same whatever the key order.
pub fn content_hash(value: &Value) -> String {
    format!("sha256:{}", sha256_hex(canonical_json(value).as_bytes()))
}

/// Serializes JSON with object keys sorted at every level, so the content id
/// does not depend on insertion order.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&map[k]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(value)).expect("JSON value serializes")
}

/// Errors reading or writing manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// I/O error on the manifest file.
    #[error("{path}: {err}")]
    Io {
        /// The manifest path.
        path: PathBuf,
        /// The error.
        err: io::Error,
    },
    /// The manifest is not valid.
    #[error("{path}: not a clintune manifest: {err}")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// The error.
        err: serde_json::Error,
    },
}

/// Builds a manifest for one stage run.
#[derive(Debug)]
pub struct ManifestBuilder {
    manifest: Manifest,
}

impl ManifestBuilder {
    /// Starts a manifest for `stage` with the hash of its effective configuration.
    pub fn new(stage: &str, config_hash: String) -> Self {
        Self {
            manifest: Manifest {
                format_version: FORMAT_VERSION,
                id: String::new(),
                stage: stage.to_string(),
                tool: ToolInfo::current(),
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                config_hash,
                config: Map::new(),
                inputs: Vec::new(),
                outputs: Vec::new(),
                parents: Vec::new(),
                counts: Map::new(),
            },
        }
    }

    /// Records a non-secret configuration fact.
    pub fn config(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.manifest.config.insert(key.to_string(), value.into());
        self
    }

    /// Records an input file.
    pub fn input(mut self, entry: FileEntry) -> Self {
        self.manifest.inputs.push(entry);
        self
    }

    /// Records an output file.
    pub fn output(mut self, entry: FileEntry) -> Self {
        self.manifest.outputs.push(entry);
        self
    }

    /// Records a parent manifest.
    pub fn parent(mut self, parent: ParentRef) -> Self {
        self.manifest.parents.push(parent);
        self
    }

    /// Records the stage's counts.
    pub fn counts(mut self, counts: Map<String, Value>) -> Self {
        self.manifest.counts = counts;
        self
    }

    /// Sorts files by path and computes the content id.
    pub fn finish(mut self) -> Manifest {
        self.manifest.inputs.sort_by(|a, b| a.path.cmp(&b.path));
        self.manifest.outputs.sort_by(|a, b| a.path.cmp(&b.path));
        self.manifest.id = self.manifest.compute_id();
        self.manifest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut counts = Map::new();
        counts.insert("records".into(), 3.into());
        ManifestBuilder::new("deid", "sha256:abc".into())
            .output(FileEntry {
                path: "b".into(),
                sha256: "00".into(),
                bytes: 1,
                rows: Some(3),
                kind: None,
                redacted: false,
                built_in: false,
            })
            .counts(counts)
            .finish()
    }

    #[test]
    fn relative_paths_between_directories() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b)).display().to_string();
        assert_eq!(r("/d/curated", "/d/deid"), "../deid");
        assert_eq!(r("/d/a/b", "/d"), "../..");
        assert_eq!(r("/x", "/x/y"), "y");
    }

    #[test]
    fn id_ignores_creation_time_but_not_content() {
        let a = sample();
        let mut b = a.clone();
        b.created_at = "1999-01-01T00:00:00Z".into();
        assert_eq!(a.compute_id(), b.compute_id());
        assert_eq!(a.id, a.compute_id());
        b.outputs[0].bytes = 2;
        assert_ne!(a.id, b.compute_id());
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v: Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).unwrap();
        assert_eq!(canonical_json(&v), r#"{"a":{"c":3,"d":2},"b":1}"#);
    }

    #[test]
    fn round_trip_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let m = sample();
        m.write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), m);
    }

    #[test]
    fn metrics_read_back_to_the_same_content_id() {
        // Values a training run records; serde_json's default float parser
        // reads some of them back one ulp off, which changed the id.
        let mut counts = Map::new();
        for (i, v) in [
            0.000_477_594_584_492_711_5,
            7.391_090_222_285_076,
            1_621.472_915_562_088_2,
        ]
        .into_iter()
        .enumerate()
        {
            counts.insert(format!("m{i}"), serde_json::json!(v));
        }
        let m = ManifestBuilder::new("train", "sha256:x".into())
            .counts(counts)
            .finish();
        let dir = tempfile::tempdir().unwrap();
        m.write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap().compute_id(), m.id);
    }
}
