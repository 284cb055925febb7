//! `clintune export verify`: re-reads an export the way a serving stack
//! would and checks it against its own description.
//!
//! Hashes: every file against the manifest, and the whole chain down to the
//! source records. Structure: every tensor `config.json` implies is in
//! `model.safetensors` with its shape (and nothing else), all in the dtype
//! `config.json` names; the adapter, when there is one, holds exactly the
//! tensors its `adapter_config.json` implies for this model.

use crate::error::ExportError;
use crate::export::ADAPTER_DIR;
use clintune_lineage::{VerifyReport, verify_chain};
use clintune_model::weights::Dtype;
use clintune_model::{ModelConfig, WeightFiles, peft};
use std::collections::BTreeMap;
use std::path::Path;

/// What a verification checked.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The hash check of the chain.
    pub lineage: VerifyReport,
    /// Model tensors checked.
    pub tensors: usize,
    /// Adapter tensors checked (0 without an adapter).
    pub adapter_tensors: usize,
}

/// Verifies the export in `dir`: hashes first, then structure.
pub fn verify(dir: &Path) -> Result<ExportReport, ExportError> {
    let lineage = verify_chain(dir).map_err(|e| ExportError::run(dir, e))?;
    let (tensors, adapter_tensors) = check_structure(dir)?;
    Ok(ExportReport {
        lineage,
        tensors,
        adapter_tensors,
    })
}

/// The structural checks alone; returns the model and adapter tensor counts.
pub fn check_structure(dir: &Path) -> Result<(usize, usize), ExportError> {
    let config = ModelConfig::load(dir).map_err(|e| ExportError::run(dir, e))?;
    let weights = WeightFiles::open(dir).map_err(|e| ExportError::run(dir, e))?;
    let expected = config.expected_tensors();
    weights
        .check(&expected)
        .map_err(|e| ExportError::run(dir, e))?;
    let dtype = declared_dtype(dir)?;
    for name in weights.names() {
        let found = weights.get(name).map(|t| t.dtype);
        if dtype.is_some() && found != dtype {
            return Err(ExportError::run(
                dir,
                format!("{name} is {found:?} but config.json says {dtype:?}"),
            ));
        }
    }
    let adapter = dir.join(ADAPTER_DIR);
    let adapter_tensors = if adapter.is_dir() {
        check_adapter(&adapter, &expected)?
    } else {
        0
    };
    Ok((expected.len(), adapter_tensors))
}

/// The dtype `torch_dtype` (or `dtype`) of `config.json` names.
fn declared_dtype(dir: &Path) -> Result<Option<Dtype>, ExportError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ExportError::run(&path, e))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ExportError::run(&path, e))?;
    let name = config["torch_dtype"].as_str().or(config["dtype"].as_str());
    Ok(match name {
        Some("float32") => Some(Dtype::F32),
        Some("bfloat16") => Some(Dtype::BF16),
        Some("float16") => Some(Dtype::F16),
        _ => None,
    })
}

/// Checks an adapter against the model's shapes; returns its tensor count.
fn check_adapter(dir: &Path, model: &[(String, Vec<usize>)]) -> Result<usize, ExportError> {
    let cfg = peft::read_config(dir).map_err(|e| ExportError::run(dir, e))?;
    let shapes: BTreeMap<&str, &Vec<usize>> = model.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let layers = model
        .iter()
        .filter(|(n, _)| n.ends_with("input_layernorm.weight"))
        .count();
    let mut expected = Vec::new();
    for layer in 0..layers {
        for &target in &cfg.targets {
            let base = format!("model.layers.{layer}.{}.weight", target.layer_path());
            let Some(&[out, inp]) = shapes.get(base.as_str()).map(|s| s.as_slice()) else {
                return Err(ExportError::run(dir, format!("the model has no {base}")));
            };
            expected.push((peft::tensor_name(layer, target, "A"), vec![cfg.rank, inp]));
            expected.push((peft::tensor_name(layer, target, "B"), vec![out, cfg.rank]));
        }
    }
    let files = WeightFiles::open_file(&dir.join(peft::WEIGHTS_FILE))
        .map_err(|e| ExportError::run(dir, e))?;
    files
        .check(&expected)
        .map_err(|e| ExportError::run(dir, e))?;
    Ok(expected.len())
}
