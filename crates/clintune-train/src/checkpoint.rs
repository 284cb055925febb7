//! Checkpoints: everything a run needs to continue exactly, written
//! atomically.
//!
//! A checkpoint is a directory `checkpoints/step-NNNNNNNN/` in the run
//! directory holding the trained weights (the LoRA adapter in PEFT's format,
//! or the whole model as safetensors), the optimizer's moments
//! (`optimizer.mpk`, f32, exact), and `state.json` (step, data cursor,
//! counters). It is assembled under a hidden `.partial` name and renamed
//! into place only when complete, so an interrupted write (even `kill -9`)
//! leaves the previous checkpoint as the latest usable one.

use crate::error::TrainError;
use crate::recipe::{Method, Recipe};
use burn::optim::Optimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use clintune_core::WithContext;
use clintune_curate::reader::Cursor;
use clintune_model::Llama;
use clintune_model::save::{SaveDtype, write_safetensors};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The optimizer of a run.
pub type Optim<B> = OptimizerAdaptor<crate::adamw::AdamW, Llama<B>, B>;

/// The folder of checkpoints inside a run directory.
pub const CHECKPOINTS: &str = "checkpoints";
/// A checkpoint's counters.
pub const STATE_FILE: &str = "state.json";
/// A checkpoint's optimizer state (the recorder adds `.mpk`).
const OPTIMIZER: &str = "optimizer";
/// Weights of a full fine-tune.
pub const MODEL_FILE: &str = "model.safetensors";

/// Where a run stands after a step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Where the training data reader is.
    pub cursor: Cursor,
    /// Trained-on tokens so far.
    pub tokens: u64,
    /// Best validation loss so far.
    pub best_eval_loss: Option<f64>,
    /// Evaluations since the best one (early stopping).
    pub stale_evals: u64,
    /// The recipe the run follows; resuming under another is refused.
    pub recipe_hash: String,
    /// The manifest id of the dataset the run trains on; resuming on other
    /// data is refused. Empty in checkpoints written before it was recorded.
    #[serde(default)]
    pub dataset_id: String,
}

/// The directory of the checkpoint at `step`.
pub fn dir_of(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join(CHECKPOINTS).join(format!("step-{step:08}"))
}

/// Writes a checkpoint and keeps only the newest `keep_last`.
pub fn save<B: AutodiffBackend>(
    run_dir: &Path,
    state: &TrainState,
    model: &Llama<B>,
    optim: &Optim<B>,
    recipe: &Recipe,
) -> Result<PathBuf, TrainError> {
    let dir = dir_of(run_dir, state.step);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.with_file_name(format!(".{name}.partial"));
    let fail = |m: WithContext| TrainError::checkpoint(&tmp, m);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(TrainError::io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(TrainError::io(&tmp))?;
    write_weights(&tmp, model, recipe)?;
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
        .record(optim.to_record(), tmp.join(OPTIMIZER))
        .map_err(|e| fail(WithContext::new("optimizer state", e)))?;
    let text = clintune_core::json::to_pretty("the training state", state);
    clintune_core::staging::write_atomic(&tmp.join(STATE_FILE), text.as_bytes())
        .map_err(TrainError::io(&tmp))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(TrainError::io(&dir))?;
    }
    std::fs::rename(&tmp, &dir).map_err(TrainError::io(&dir))?;
    prune(run_dir, recipe.train.keep_last)?;
    Ok(dir)
}

fn write_weights<B: AutodiffBackend>(
    dir: &Path,
    model: &Llama<B>,
    recipe: &Recipe,
) -> Result<(), TrainError> {
    let fail = |e: clintune_model::WeightsError| TrainError::checkpoint(dir, e);
    match recipe.method.kind {
        Method::Lora => {
            let base = clintune_lineage::manifest::absolute_path(&recipe.model.base);
            model
                .save_peft_adapter(dir, &recipe.lora, &base)
                .map_err(fail)
        }
        Method::Full => {
            let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
            let path = dir.join(MODEL_FILE);
            write_safetensors(&path, model.weight_entries(), SaveDtype::F32, &meta)
                .map_err(fail)?;
            let config = recipe.model.base.join("config.json");
            std::fs::copy(&config, dir.join("config.json")).map_err(TrainError::io(&config))?;
            Ok(())
        }
    }
}

/// Completed checkpoints of a run, oldest first.
pub fn list(run_dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(CHECKPOINTS)) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path()
                .join(STATE_FILE)
                .is_file()
                .then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// The newest completed checkpoint of a run.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    list(run_dir).pop().map(|(_, p)| p)
}

fn prune(run_dir: &Path, keep: usize) -> Result<(), TrainError> {
    let all = list(run_dir);
    for (_, dir) in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(dir).map_err(TrainError::io(dir))?;
    }
    Ok(())
}

/// Reads a checkpoint's counters.
pub fn load_state(dir: &Path) -> Result<TrainState, TrainError> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(TrainError::io(&path))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::checkpoint(dir, WithContext::new(STATE_FILE, e)))
}

/// Restores the optimizer's moments from a checkpoint.
pub fn load_optimizer<B: AutodiffBackend>(
    dir: &Path,
    optim: Optim<B>,
    device: &B::Device,
) -> Result<Optim<B>, TrainError> {
    let record = NamedMpkFileRecorder::<FullPrecisionSettings>::new()
        .load(dir.join(OPTIMIZER), device)
        .map_err(|e| TrainError::checkpoint(dir, WithContext::new("optimizer state", e)))?;
    Ok(optim.load_record(record))
}
