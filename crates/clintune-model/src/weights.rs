//! Safetensors weights, read one tensor at a time.
//!
//! Only each file's header is read up front; a tensor's bytes are read when
//! it is asked for, straight from its offset, so loading a model never holds
//! a second copy of the whole file. Sharded checkpoints are followed through
//! `model.safetensors.index.json`.

use clintune_core::WithContext;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Single-file weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Index of sharded weights.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Headers larger than this are refused rather than read (the format's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// Element types on disk that clintune converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
        }
    }

    fn from_safetensors(d: safetensors::Dtype) -> Option<Self> {
        match d {
            safetensors::Dtype::F32 => Some(Dtype::F32),
            safetensors::Dtype::F16 => Some(Dtype::F16),
            safetensors::Dtype::BF16 => Some(Dtype::BF16),
            _ => None,
        }
    }
}

/// Where one tensor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Element type on disk.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// The file holding it.
    pub file: PathBuf,
    /// Byte offset of its data in the file.
    pub start: u64,
    /// Byte length of its data.
    pub len: u64,
}

/// A model's weight files.
#[derive(Debug, Clone)]
pub struct WeightFiles {
    tensors: BTreeMap<String, TensorInfo>,
}

/// Why weights cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A file could not be read.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// A file is not valid safetensors, or an index is wrong.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong: the parser's error, or a sentence.
        source: clintune_core::Cause,
    },
    /// A tensor was asked for that the files do not hold.
    #[error("no tensor named {0}")]
    Unknown(String),
    /// The files do not hold what the configuration implies.
    #[error("weights do not match config.json:{}", describe(.missing, .unexpected, .misshaped))]
    Mismatch {
        /// Expected but absent.
        missing: Vec<String>,
        /// Present but not expected.
        unexpected: Vec<String>,
        /// Present with another shape: name, expected, found.
        misshaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
}

fn describe(
    missing: &[String],
    unexpected: &[String],
    misshaped: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let mut s = String::new();
    if !missing.is_empty() {
        s.push_str(&format!("\n  missing: {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        s.push_str(&format!("\n  unexpected: {}", unexpected.join(", ")));
    }
    for (name, want, got) in misshaped {
        s.push_str(&format!("\n  {name}: shape {got:?}, expected {want:?}"));
    }
    s
}

pub(crate) fn format_err(path: &Path, cause: impl Into<clintune_core::Cause>) -> WeightsError {
    WeightsError::Format {
        path: path.to_path_buf(),
        source: cause.into(),
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WeightsError + '_ {
    move |err| WeightsError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// `model.safetensors.index.json`: which file holds which tensor.
#[derive(Debug, Deserialize)]
struct Index {
    weight_map: BTreeMap<String, String>,
}

impl WeightFiles {
    /// Opens the weights of the model directory `dir`: the index of shards
    /// when there is one, else `model.safetensors`.
    pub fn open(dir: &Path) -> Result<Self, WeightsError> {
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            return Self::open_sharded(dir, &index);
        }
        Self::open_file(&dir.join(WEIGHTS_FILE))
    }

    /// Opens one safetensors file, whatever its name.
    pub fn open_file(path: &Path) -> Result<Self, WeightsError> {
        let mut tensors = BTreeMap::new();
        read_header(path, &mut tensors)?;
        Ok(Self { tensors })
    }

    fn open_sharded(dir: &Path, index_path: &Path) -> Result<Self, WeightsError> {
        let text = std::fs::read_to_string(index_path).map_err(io_err(index_path))?;
        let index: Index = serde_json::from_str(&text)
            .map_err(|e| format_err(index_path, WithContext::new("not a safetensors index", e)))?;
        let files: BTreeSet<&String> = index.weight_map.values().collect();
        let mut tensors = BTreeMap::new();
        for file in files {
            if Path::new(file).components().count() != 1 {
                return Err(format_err(
                    index_path,
                    format!("shard `{file}` is not a file name in the model directory"),
                ));
            }
            read_header(&dir.join(file), &mut tensors)?;
        }
        for (name, file) in &index.weight_map {
            let found = tensors.get(name).and_then(|t| t.file.file_name());
            if found != Some(std::ffi::OsStr::new(file)) {
                return Err(format_err(
                    index_path,
                    format!("{name} is mapped to {file}, which does not hold it"),
                ));
            }
        }
        Ok(Self { tensors })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Where tensor `name` is.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// Checks the files hold exactly `expected` (name, shape); every
    /// difference is reported at once.
    pub fn check(&self, expected: &[(String, Vec<usize>)]) -> Result<(), WeightsError> {
        let wanted: BTreeMap<&str, &Vec<usize>> =
            expected.iter().map(|(n, s)| (n.as_str(), s)).collect();
        let missing: Vec<String> = wanted
            .keys()
            .filter(|n| !self.tensors.contains_key(**n))
            .map(|n| n.to_string())
            .collect();
        let unexpected: Vec<String> = self
            .names()
            .filter(|n| !wanted.contains_key(n))
            .map(str::to_string)
            .collect();
        let misshaped: Vec<(String, Vec<usize>, Vec<usize>)> = wanted
            .iter()
            .filter_map(|(n, want)| {
                let got = &self.tensors.get(*n)?.shape;
                (got != *want).then(|| (n.to_string(), (*want).clone(), got.clone()))
            })
            .collect();
        if missing.is_empty() && unexpected.is_empty() && misshaped.is_empty() {
            return Ok(());
        }
        Err(WeightsError::Mismatch {
            missing,
            unexpected,
            misshaped,
        })
    }

    /// Reads tensor `name` as f32 values (row-major), converting from f16 or
    /// bf16; only that tensor's bytes are read, through a small buffer, so
    /// memory holds the result and little else.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, WeightsError> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| WeightsError::Unknown(name.to_string()))?;
        let mut file = File::open(&info.file).map_err(io_err(&info.file))?;
        file.seek(SeekFrom::Start(info.start))
            .map_err(io_err(&info.file))?;
        let mut out = Vec::with_capacity(info.len as usize / info.dtype.size());
        let mut buffer = vec![0u8; (info.len as usize).min(READ_CHUNK)];
        let mut left = info.len as usize;
        while left > 0 {
            let chunk = &mut buffer[..left.min(READ_CHUNK)];
            file.read_exact(chunk).map_err(io_err(&info.file))?;
            extend_f32(&mut out, chunk, info.dtype);
            left -= chunk.len();
        }
        Ok(out)
    }
}

/// Bytes read at a time; a multiple of every element size.
const READ_CHUNK: usize = 1 << 20;

fn extend_f32(out: &mut Vec<f32>, bytes: &[u8], dtype: Dtype) {
    match dtype {
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        Dtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        Dtype::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
    }
}

/// Reads one file's header and adds its tensors, checking that each lies
/// inside the file with the size its shape and type imply.
fn read_header(path: &Path, out: &mut BTreeMap<String, TensorInfo>) -> Result<(), WeightsError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| format_err(path, "too short for a safetensors header"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || 8 + n > file_len {
        return Err(format_err(
            path,
            format!("header length {n} does not fit the file"),
        ));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io_err(path))?;
    let metadata: safetensors::tensor::Metadata = serde_json::from_slice(&header)
        .map_err(|e| format_err(path, WithContext::new("invalid safetensors header", e)))?;
    let data_start = 8 + n;
    for (name, info) in metadata.tensors() {
        let entry = tensor_entry(path, &name, info, data_start, file_len)?;
        if out.insert(name.clone(), entry).is_some() {
            return Err(format_err(path, format!("{name} is also in another shard")));
        }
    }
    Ok(())
}

fn tensor_entry(
    path: &Path,
    name: &str,
    info: &safetensors::tensor::TensorInfo,
    data_start: u64,
    file_len: u64,
) -> Result<TensorInfo, WeightsError> {
    let dtype = Dtype::from_safetensors(info.dtype).ok_or_else(|| {
        format_err(
            path,
            format!(
                "{name}: dtype {:?} is not a float type clintune reads (F32, F16, BF16)",
                info.dtype
            ),
        )
    })?;
    let (begin, end) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
    let elements: u64 = info.shape.iter().map(|&d| d as u64).product();
    if end < begin || end - begin != elements * dtype.size() as u64 || data_start + end > file_len {
        return Err(format_err(
            path,
            format!(
                "{name}: data offsets {begin}..{end} do not match shape {:?} or the file",
                info.shape
            ),
        ));
    }
    Ok(TensorInfo {
        dtype,
        shape: info.shape.clone(),
        file: path.to_path_buf(),
        start: data_start + begin,
        len: end - begin,
    })
}
