//! Training recipes: one TOML file names the base model, the dataset and
//! every training choice, so the same recipe and seed give the same run.
//!
//! Parsing is strict: an unknown key is an error naming the file, line and
//! key, and values are checked with a message saying what is allowed.
//! `recipes/README.md` documents every field; `recipes/train.toml` lists
//! them with their defaults (a test keeps the two in step with this file).
//! Relative paths are relative to the directory the command runs in.

use crate::grader::{GraderSpec, Graders};
pub use crate::objective::config::{DpoLoss, GrpoSection, ObjectiveKind, ObjectiveSection};
use clintune_core::{ConfigError, Invalid};
use clintune_curate::config::CurateConfig;
use clintune_model::LoraConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A whole recipe. Tables of other stages (`[curate]`, `[deid]`,
/// `[export]`) may sit beside the training tables; `clintune run` uses them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The model to start from.
    pub model: ModelSection,
    /// The training data.
    pub data: DataSection,
    /// Full fine-tuning or LoRA.
    #[serde(default)]
    pub method: MethodSection,
    /// What is learnt: supervised fine-tuning, DPO or GRPO.
    #[serde(default, skip_serializing_if = "ObjectiveSection::is_default")]
    pub objective: ObjectiveSection,
    /// GRPO's settings (with `objective.kind = "grpo"`).
    #[serde(default, skip_serializing_if = "GrpoSection::is_default")]
    pub grpo: GrpoSection,
    /// GRPO's graders (`[[grader]]`), their rewards summed by weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grader: Vec<GraderSpec>,
    /// LoRA settings (with `method.kind = "lora"`).
    #[serde(default)]
    pub lora: LoraConfig,
    /// AdamW.
    #[serde(default)]
    pub optimizer: OptimizerSection,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleSection,
    /// Length, evaluation, checkpoints, seed, output.
    #[serde(default)]
    pub train: TrainSection,
    /// Where it runs.
    #[serde(default)]
    pub hardware: HardwareSection,
    /// Curation settings, for `clintune run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curate: Option<CurateConfig>,
    /// De-identification settings, for `clintune run` (read by that stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deid: Option<toml::Table>,
    /// Export settings, for `clintune run` (read by that stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<toml::Table>,
    /// Validation settings, for `clintune run` (read by that stage). Left
    /// out of the recipe's hash: they do not change what is trained.
    #[serde(default, skip_serializing)]
    pub validate: Option<toml::Table>,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face model directory (config.json, safetensors, tokenizer).
    pub base: PathBuf,
    /// For `clintune run`: create `base` with `clintune init-model` (these
    /// are its options) when it does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<toml::Table>,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A curated dataset directory (`clintune curate` output), verified
    /// through its manifest before training.
    pub dataset: PathBuf,
    /// Tokens per row.
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// Rows per micro-batch.
    #[serde(default = "default_micro_batch")]
    pub micro_batch: usize,
    /// Micro-batches per optimizer step; the step equals one batch this many
    /// times larger.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Pack several examples into each row (attention and positions reset
    /// at each example); `false` gives each example its own rows.
    #[serde(default = "yes")]
    pub packing: bool,
    /// Shuffle examples each epoch.
    #[serde(default = "yes")]
    pub shuffle: bool,
}

fn default_seq_len() -> usize {
    512
}
fn default_micro_batch() -> usize {
    4
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// How the model is adapted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Every weight trains.
    Full,
    /// Only LoRA adapters train (`[lora]`); the base is frozen.
    #[default]
    Lora,
}

/// `[method]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSection {
    /// `full` or `lora`.
    #[serde(default)]
    pub kind: Method,
}

/// `[optimizer]`: AdamW with decoupled weight decay (as PyTorch's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerSection {
    /// Peak learning rate.
    pub lr: f64,
    /// `[β1, β2]`.
    pub betas: [f64; 2],
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub grad_clip: f64,
}

impl Default for OptimizerSection {
    fn default() -> Self {
        Self {
            lr: 2e-4,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
            grad_clip: 1.0,
        }
    }
}

/// How the learning rate decays after warmup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Half a cosine from the peak to `min_lr`.
    #[default]
    Cosine,
    /// A straight line from the peak to `min_lr`.
    Linear,
    /// Stays at the peak.
    Constant,
}

/// `[schedule]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSection {
    /// Steps of linear warmup from 0 to the peak.
    pub warmup_steps: u64,
    /// Decay after warmup.
    pub decay: Decay,
    /// The rate at the last step.
    pub min_lr: f64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            warmup_steps: 0,
            decay: Decay::Cosine,
            min_lr: 0.0,
        }
    }
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Optimizer steps; when 0, `epochs` decides.
    pub max_steps: u64,
    /// Passes over the training split (used when `max_steps` is 0).
    pub epochs: u64,
    /// Evaluate on the validation split every this many steps (0 = only at
    /// the end).
    pub eval_every: u64,
    /// Validation micro-batches per evaluation (0 = the whole split).
    pub eval_batches: u64,
    /// Stop when the validation loss has not improved for this many
    /// evaluations (0 = never).
    pub early_stopping_patience: u64,
    /// Write a checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (the newest); at least 1.
    pub keep_last: usize,
    /// Seed of adapter initialisation, data order and dropout.
    pub seed: u64,
    /// The run directory.
    pub output: PathBuf,
    /// Log a line (and TensorBoard scalars) every this many steps.
    pub log_every: u64,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            max_steps: 0,
            epochs: 1,
            eval_every: 0,
            eval_batches: 0,
            early_stopping_patience: 0,
            checkpoint_every: 0,
            keep_last: 2,
            seed: 42,
            output: PathBuf::from("runs/run"),
            log_every: 1,
        }
    }
}

/// The precision training computes in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats throughout.
    #[default]
    F32,
    /// Mixed precision: weights, gradients and optimizer state stay f32;
    /// activations are computed in bfloat16 (RMSNorm, the attention softmax
    /// and the loss in f32).
    Bf16,
}

impl Precision {
    /// The dtype activations are computed in.
    pub fn dtype(self) -> burn::tensor::DType {
        match self {
            Precision::F32 => burn::tensor::DType::F32,
            Precision::Bf16 => burn::tensor::DType::BF16,
        }
    }
}

/// `[hardware]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardwareSection {
    /// `cpu`, `cpu:WORKERS`, or `cuda:0,1,…` (needs a build with the `cuda`
    /// feature); one data-parallel worker per device.
    pub devices: String,
    /// f32, or bf16 mixed precision.
    pub precision: Precision,
    /// Processes (nodes) taking part; see the README for multi-node runs.
    pub nodes: usize,
    /// Seconds one exchange between workers may wait for the others before
    /// the run is ended (a worker or node has failed or hangs).
    pub exchange_timeout_s: u64,
}

impl Default for HardwareSection {
    fn default() -> Self {
        Self {
            devices: "cpu".into(),
            precision: Precision::F32,
            nodes: 1,
            exchange_timeout_s: 1800,
        }
    }
}

/// Where a run's workers compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// This many data-parallel workers on the CPU (1 for `cpu`; more is
    /// mostly for testing data parallelism without GPUs).
    Cpu(usize),
    /// These CUDA devices, one worker each.
    Cuda(Vec<usize>),
}

impl Devices {
    /// True when a GPU is named more than once (its workers share it).
    pub fn shares_a_gpu(&self) -> bool {
        match self {
            Devices::Cpu(_) => false,
            Devices::Cuda(ids) => (1..ids.len()).any(|i| ids[..i].contains(&ids[i])),
        }
    }

    /// How many data-parallel workers.
    pub fn workers(&self) -> usize {
        match self {
            Devices::Cpu(n) => *n,
            Devices::Cuda(ids) => ids.len(),
        }
    }
}

impl HardwareSection {
    /// Parses `devices`.
    pub fn parse_devices(&self) -> Result<Devices, Invalid> {
        let spec = self.devices.trim();
        let bad = || {
            Invalid::new(
                "hardware.devices",
                format!(
                    "must be \"cpu\", \"cpu:WORKERS\" or \"cuda:N[,M…]\" (e.g. \"cuda:0,1\"), got {:?}",
                    self.devices
                ),
            )
        };
        if spec == "cpu" {
            return Ok(Devices::Cpu(1));
        }
        if let Some(n) = spec.strip_prefix("cpu:") {
            return match n.trim().parse() {
                Ok(n) if n >= 1 => Ok(Devices::Cpu(n)),
                _ => Err(bad()),
            };
        }
        let list = spec.strip_prefix("cuda:").ok_or_else(bad)?;
        // A device named twice runs two workers on it, as `cpu:2` does on
        // the CPU: the data-parallel path on a machine with one GPU.
        let ids: Vec<usize> = list
            .split(',')
            .map(|s| s.trim().parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        Ok(Devices::Cuda(ids))
    }
}

/// Why a recipe cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The file could not be read.
    #[error("{path}: {err}")]
    Io {
        /// The recipe.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// The file is not a valid recipe.
    #[error("{path}: {source}")]
    Invalid {
        /// The recipe.
        path: PathBuf,
        /// Where and what (TOML errors carry line and column).
        source: ConfigError,
    },
}

impl Recipe {
    /// Reads and checks the recipe at `path`.
    pub fn load(path: &Path) -> Result<Self, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|err| RecipeError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        Self::parse(&text).map_err(|source| RecipeError::Invalid {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses and checks recipe text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let recipe: Self = ConfigError::parse_toml(text)?;
        recipe.validate()?;
        Ok(recipe)
    }

    /// Checks values the types allow but training cannot use.
    pub fn validate(&self) -> Result<(), Invalid> {
        let d = &self.data;
        for (name, zero) in [
            ("data.seq_len", d.seq_len == 0),
            ("data.micro_batch", d.micro_batch == 0),
            ("data.grad_accum", d.grad_accum == 0),
            ("train.keep_last", self.train.keep_last == 0),
            ("hardware.nodes", self.hardware.nodes == 0),
            (
                "hardware.exchange_timeout_s",
                self.hardware.exchange_timeout_s == 0,
            ),
            ("train.log_every", self.train.log_every == 0),
        ] {
            if zero {
                return Err(Invalid::new(name, "must be at least 1"));
            }
        }
        if self.train.max_steps == 0 && self.train.epochs == 0 {
            return Err(Invalid::new(
                "train.max_steps or train.epochs",
                "must be set (both are 0)",
            ));
        }
        self.check_optimizer()?;
        self.objective.validate()?;
        if self.objective.kind == ObjectiveKind::Dpo && d.seq_len < 2 {
            // A pair's row holds at least one prompt and one answer token.
            return Err(Invalid::new(
                "data.seq_len",
                "must be at least 2 with objective.kind = \"dpo\"",
            ));
        }
        if self.objective.kind == ObjectiveKind::Grpo {
            self.grpo.validate()?;
            Graders::new(&self.grader).map_err(|e| Invalid::new("grader", e.to_string()))?;
            let every = self.train.checkpoint_every;
            if every > 0 && !every.is_multiple_of(self.grpo.num_iterations as u64) {
                return Err(Invalid::new(
                    "train.checkpoint_every",
                    format!(
                        "must be a multiple of grpo.num_iterations ({}): a checkpoint falls between generation batches",
                        self.grpo.num_iterations
                    ),
                ));
            }
        } else if !self.grader.is_empty() || !self.grpo.is_default() {
            return Err(Invalid::new(
                "grader / grpo",
                "apply to objective.kind = \"grpo\" only",
            ));
        }
        if self.method.kind == Method::Lora {
            self.lora.validate()?;
        }
        self.hardware.parse_devices()?;
        if let Some(curate) = &self.curate {
            curate.validate().map_err(|e| e.within("curate"))?;
        }
        Ok(())
    }

    fn check_optimizer(&self) -> Result<(), Invalid> {
        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(Invalid::new(
                "optimizer.lr",
                format!("must be > 0, got {}", o.lr),
            ));
        }
        if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(Invalid::new(
                "optimizer.betas",
                format!("must be in [0, 1), got {:?}", o.betas),
            ));
        }
        // Written so that NaN fails too.
        for (name, v, ok, allowed) in [
            ("optimizer.eps", o.eps, o.eps > 0.0, "> 0"),
            (
                "optimizer.weight_decay",
                o.weight_decay,
                o.weight_decay >= 0.0,
                "≥ 0",
            ),
            (
                "optimizer.grad_clip",
                o.grad_clip,
                o.grad_clip >= 0.0,
                "≥ 0",
            ),
        ] {
            if !ok {
                return Err(Invalid::new(name, format!("must be {allowed}, got {v}")));
            }
        }
        let s = &self.schedule;
        if !(0.0..=o.lr).contains(&s.min_lr) {
            return Err(Invalid::new(
                "schedule.min_lr",
                format!(
                    "must be between 0 and optimizer.lr ({}), got {}",
                    o.lr, s.min_lr
                ),
            ));
        }
        Ok(())
    }

    /// `sha256:` hash of the effective recipe (defaults filled in), for the
    /// run's manifest.
    pub fn content_hash(&self) -> String {
        let value = clintune_core::json::to_value("the recipe", self);
        clintune_lineage::manifest::content_hash(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[model]\nbase = \"m\"\n[data]\ndataset = \"d\"\n";

    #[test]
    fn a_minimal_recipe_takes_the_defaults() {
        let r = Recipe::parse(MINIMAL).unwrap();
        assert_eq!(r.method.kind, Method::Lora);
        assert_eq!(r.data.seq_len, 512);
        assert_eq!(r.hardware.parse_devices().unwrap(), Devices::Cpu(1));
        assert_eq!(r.lora, LoraConfig::default());
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let text = format!("{MINIMAL}[optimizer]\nlr = 1e-4\nmomentum = 0.9\n");
        let err = Recipe::parse(&text).unwrap_err().to_string();
        assert!(err.contains("momentum"), "{err}");
        assert!(err.contains("line 7"), "{err}");
    }

    #[test]
    fn bad_values_say_what_is_allowed() {
        for (extra, says) in [
            ("[optimizer]\nlr = 0.0\n", "optimizer.lr must be > 0"),
            ("[data]\n", "duplicate"),
            ("[hardware]\ndevices = \"gpu\"\n", "cuda:N"),
            ("[hardware]\nprecision = \"fp16\"\n", "bf16"),
            ("[method]\nkind = \"qlora\"\n", "full"),
            ("[lora]\nrank = 0\n", "lora.rank"),
            ("[lora]\ntargets = [\"q\", \"lm_head\"]\n", "lm_head"),
            (
                "[train]\nmax_steps = 0\nepochs = 0\n",
                "train.max_steps or train.epochs",
            ),
            ("[schedule]\nmin_lr = 1.0\n", "schedule.min_lr"),
        ] {
            let err = Recipe::parse(&format!("{MINIMAL}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{extra}: {err}");
        }
    }

    #[test]
    fn the_documented_recipe_holds_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/train.toml");
        let documented = Recipe::load(&path).unwrap();
        let defaults = Recipe::parse(&format!(
            "[model]\nbase = {:?}\n[data]\ndataset = {:?}\n",
            documented.model.base, documented.data.dataset
        ))
        .unwrap();
        assert_eq!(documented, defaults);
    }

    #[test]
    fn the_sample_grpo_recipe_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/grpo.toml");
        let recipe = Recipe::load(&path).unwrap();
        assert_eq!(recipe.objective.kind, ObjectiveKind::Grpo);
        assert_eq!(recipe.grader.len(), 1);
        assert_eq!(recipe.grpo.max_completion_length, 6);
    }

    #[test]
    fn cuda_device_lists_parse() {
        let hw = HardwareSection {
            devices: "cuda:0, 2".into(),
            ..Default::default()
        };
        assert_eq!(hw.parse_devices().unwrap(), Devices::Cuda(vec![0, 2]));
        let shared = HardwareSection {
            devices: "cuda:0,0".into(),
            ..HardwareSection::default()
        };
        assert_eq!(shared.parse_devices().unwrap().workers(), 2);
        assert!(shared.parse_devices().unwrap().shares_a_gpu());
        assert!(!hw.parse_devices().unwrap().shares_a_gpu());
        let hw = HardwareSection {
            devices: "cpu:2".into(),
            ..Default::default()
        };
        assert_eq!(hw.parse_devices().unwrap().workers(), 2);
    }
}
