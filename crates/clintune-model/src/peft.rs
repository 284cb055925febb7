//! LoRA adapters in PEFT's format: `adapter_config.json` beside
//! `adapter_model.safetensors`, tensors named
//! `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`.
//!
//! Only what clintune's adapters can express is read; any PEFT option that
//! would change the computation (DoRA, rsLoRA, per-layer ranks, trained
//! biases, extra saved modules) is refused by name rather than ignored.

use crate::llama::Llama;
use crate::lora::{Lora, LoraConfig, Target};
use crate::weights::{WeightFiles, WeightsError, format_err, io_err};
use burn::module::Param;
use burn::nn::DropoutConfig;
use burn::prelude::*;
use clintune_core::WithContext;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The adapter's settings file.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The adapter's tensors.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// The name PEFT gives adapter matrix `which` (`"A"` or `"B"`) of `target`
/// in `layer`.
pub fn tensor_name(layer: usize, target: Target, which: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.lora_{which}.weight",
        target.layer_path()
    )
}

/// PEFT's `adapter_config.json` for adapters of `cfg` on `base_model` (a
/// name or path recorded for whoever loads the adapter).
pub fn config_json(cfg: &LoraConfig, base_model: &str) -> Value {
    let mut targets: Vec<&str> = cfg.targets.iter().map(|t| t.module_name()).collect();
    targets.sort_unstable();
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": cfg.rank,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "layers_to_transform": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "init_lora_weights": true,
        "inference_mode": true,
    })
}

/// The fields of `adapter_config.json` clintune reads.
#[derive(Debug, Deserialize)]
struct PeftConfig {
    peft_type: String,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    target_modules: Value,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// Options that change what an adapter computes, with the value under which
/// they do not.
const NEUTRAL: &[(&str, &str)] = &[
    ("use_dora", "false"),
    ("use_rslora", "false"),
    ("bias", "\"none\""),
    ("fan_in_fan_out", "false"),
    ("layers_to_transform", "null"),
    ("modules_to_save", "null"),
    ("rank_pattern", "{}"),
    ("alpha_pattern", "{}"),
    ("lora_bias", "false"),
    ("target_parameters", "null"),
    ("trainable_token_indices", "null"),
];

/// Reads `adapter_config.json` in `dir` as a [`LoraConfig`].
pub fn read_config(dir: &Path) -> Result<LoraConfig, WeightsError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let peft: PeftConfig = serde_json::from_str(&text)
        .map_err(|e| format_err(&path, WithContext::new("not a PEFT adapter config", e)))?;
    if peft.peft_type != "LORA" {
        return Err(format_err(
            &path,
            format!("peft_type {} is not supported (only LORA)", peft.peft_type),
        ));
    }
    for (key, neutral) in NEUTRAL {
        let neutral: Value = serde_json::from_str(neutral).unwrap_or(Value::Null);
        match peft.rest.get(*key) {
            Some(value) if value != &neutral && !(is_empty(value) && is_empty(&neutral)) => {
                return Err(format_err(
                    &path,
                    format!("{key} = {value} is not supported (clintune needs {neutral})"),
                ));
            }
            _ => {}
        }
    }
    let names: Vec<String> = serde_json::from_value(peft.target_modules.clone()).map_err(|_| {
        format_err(
            &path,
            format!(
                "target_modules must be a list of module names, got {}",
                peft.target_modules
            ),
        )
    })?;
    let mut targets = Vec::new();
    for name in &names {
        let target = Target::ALL
            .into_iter()
            .find(|t| t.module_name() == name)
            .ok_or_else(|| {
                format_err(
                    &path,
                    format!("target module {name} is not a decoder projection"),
                )
            })?;
        targets.push(target);
    }
    targets.sort();
    let cfg = LoraConfig {
        rank: peft.r,
        alpha: peft.lora_alpha,
        dropout: peft.lora_dropout,
        targets,
    };
    cfg.validate().map_err(|e| format_err(&path, e))?;
    Ok(cfg)
}

/// `null`, `{}` or `[]`: PEFT writes any of them for "not used".
fn is_empty(value: &Value) -> bool {
    value.is_null()
        || value.as_object().is_some_and(|o| o.is_empty())
        || value.as_array().is_some_and(|a| a.is_empty())
}

impl<B: Backend> Llama<B> {
    /// Attaches the PEFT LoRA adapter saved in `dir`, freezing the base.
    /// Every adapter tensor must be there with the right shape, and nothing
    /// else may be: all differences are reported at once.
    pub fn with_peft_adapter(self, dir: &Path) -> Result<Self, WeightsError> {
        let cfg = read_config(dir)?;
        let files = WeightFiles::open_file(&dir.join(WEIGHTS_FILE))?;
        let mut model = self.no_grad();
        let mut expected = Vec::new();
        for layer in 0..model.model.layers.len() {
            for &target in &cfg.targets {
                let [out, inp] = model.linear(layer, target).weight.dims();
                expected.push((tensor_name(layer, target, "A"), vec![cfg.rank, inp]));
                expected.push((tensor_name(layer, target, "B"), vec![out, cfg.rank]));
            }
        }
        files.check(&expected)?;
        let device = model.device();
        let read = |name: String, shape: [usize; 2]| -> Result<Param<Tensor<B, 2>>, WeightsError> {
            let values = files.read_f32(&name)?;
            Ok(Param::from_data(TensorData::new(values, shape), &device))
        };
        for layer in 0..model.model.layers.len() {
            for &target in &cfg.targets {
                let [out, inp] = model.linear(layer, target).weight.dims();
                let lora = Lora {
                    a: read(tensor_name(layer, target, "A"), [cfg.rank, inp])?,
                    b: read(tensor_name(layer, target, "B"), [out, cfg.rank])?,
                    scale: cfg.scale(),
                    dropout: DropoutConfig::new(cfg.dropout).init(),
                };
                model.linear_mut(layer, target).lora = Some(lora);
            }
        }
        Ok(model)
    }
}
