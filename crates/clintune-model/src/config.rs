//! `config.json` of a Llama-family model.
//!
//! Covers Llama 2/3 (with `llama3` rope scaling), Mistral, Qwen2 (q/k/v
//! biases), Qwen3 (per-head RMSNorm of queries and keys) and SmolLM (a Llama): RMSNorm, rotary embeddings, grouped-query
//! attention, SwiGLU MLP, optional tied embeddings. Both the classic layout
//! (`rope_theta`, `rope_scaling`) and transformers 5's `rope_parameters` are
//! read. Anything else that would change the computation is an error that
//! names the key.

use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// File name of a model's configuration.
pub const CONFIG_FILE: &str = "config.json";

/// Model types clintune implements.
pub const SUPPORTED_MODEL_TYPES: [&str; 4] = ["llama", "mistral", "qwen2", "qwen3"];

/// The architecture of a Llama-family model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// `llama`, `mistral`, `qwen2` or `qwen3`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotary frequency scaling, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Longest sequence the model was trained for.
    pub max_position_embeddings: usize,
    /// Biases on the q, k and v projections (Qwen2).
    pub attention_bias: bool,
    /// Queries and keys are RMS-normalised per head before the rotation
    /// (Qwen3's `q_norm` and `k_norm`).
    pub qk_norm: bool,
    /// The output projection is the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids.
    pub eos_token_ids: Vec<u32>,
}

/// Llama 3's rotary frequency scaling (`rope_type = "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeScaling {
    /// Divisor of the low frequencies.
    pub factor: f64,
    /// Wavelength bound (in units of the original context) below which
    /// frequencies are scaled fully.
    pub low_freq_factor: f64,
    /// Wavelength bound above which frequencies are kept.
    pub high_freq_factor: f64,
    /// Context length of pre-training.
    pub original_max_position_embeddings: usize,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// Not JSON, or a field of the wrong type.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: serde_json::Error,
    },
    /// An architecture or option clintune does not implement.
    #[error("{path}: unsupported {key} = {value}: {why}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What is supported.
        why: String,
    },
}

/// The fields read from `config.json`; everything else is ignored unless
/// [`ModelConfig::load`] checks it.
#[derive(Debug, Deserialize)]
struct Raw {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    rope_parameters: Option<Value>,
    #[serde(default = "default_max_positions")]
    max_position_embeddings: usize,
    attention_bias: Option<bool>,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    tie_word_embeddings: bool,
    hidden_act: Option<String>,
    sliding_window: Option<Value>,
    use_sliding_window: Option<bool>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<Value>,
}

fn default_max_positions() -> usize {
    2048
}

impl ModelConfig {
    /// Reads `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|err| ConfigError::Io {
            path: path.clone(),
            err,
        })?;
        Self::parse(&text).map_err(|e| e.at(&path))
    }

    /// Parses the text of a `config.json`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            source: e,
        })?;
        check_supported(&raw)?;
        let (rope_theta, rope_scaling) = rope(&raw)?;
        let config = Self {
            head_dim: raw
                .head_dim
                .unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1)),
            num_key_value_heads: raw.num_key_value_heads.unwrap_or(raw.num_attention_heads),
            attention_bias: raw.attention_bias.unwrap_or(raw.model_type == "qwen2"),
            eos_token_ids: token_ids(raw.eos_token_id.as_ref()),
            qk_norm: raw.model_type == "qwen3",
            model_type: raw.model_type,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings,
            bos_token_id: raw.bos_token_id,
        };
        config.check_shapes()?;
        Ok(config)
    }

    /// Query heads share key/value heads evenly.
    fn check_shapes(&self) -> Result<(), ConfigError> {
        let heads = self.num_attention_heads;
        let kv = self.num_key_value_heads;
        if heads == 0 || kv == 0 || !heads.is_multiple_of(kv) {
            return Err(unsupported(
                "num_key_value_heads",
                kv,
                &format!("must divide num_attention_heads ({heads})"),
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(unsupported(
                "head_dim",
                self.head_dim,
                "must be even and positive",
            ));
        }
        Ok(())
    }

    /// Every tensor the model's safetensors must hold, with its shape, in
    /// Hugging Face's names and layout (linear weights `[out, in]`).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let (q, kv) = (self.num_attention_heads * d, self.num_key_value_heads * d);
        let mut out = vec![
            (
                "model.embed_tokens.weight".to_string(),
                vec![self.vocab_size, h],
            ),
            ("model.norm.weight".to_string(), vec![h]),
        ];
        if !self.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![self.vocab_size, h]));
        }
        for l in 0..self.num_hidden_layers {
            let p = |name: &str| format!("model.layers.{l}.{name}");
            out.extend([
                (p("input_layernorm.weight"), vec![h]),
                (p("post_attention_layernorm.weight"), vec![h]),
                (p("self_attn.q_proj.weight"), vec![q, h]),
                (p("self_attn.k_proj.weight"), vec![kv, h]),
                (p("self_attn.v_proj.weight"), vec![kv, h]),
                (p("self_attn.o_proj.weight"), vec![h, q]),
                (p("mlp.gate_proj.weight"), vec![i, h]),
                (p("mlp.up_proj.weight"), vec![i, h]),
                (p("mlp.down_proj.weight"), vec![h, i]),
            ]);
            if self.qk_norm {
                out.extend([
                    (p("self_attn.q_norm.weight"), vec![d]),
                    (p("self_attn.k_norm.weight"), vec![d]),
                ]);
            }
            if self.attention_bias {
                out.extend([
                    (p("self_attn.q_proj.bias"), vec![q]),
                    (p("self_attn.k_proj.bias"), vec![kv]),
                    (p("self_attn.v_proj.bias"), vec![kv]),
                ]);
            }
        }
        out
    }
}

impl ConfigError {
    fn at(self, file: &Path) -> Self {
        match self {
            Self::Parse { source, .. } => Self::Parse {
                path: file.to_path_buf(),
                source,
            },
            Self::Unsupported {
                key, value, why, ..
            } => Self::Unsupported {
                path: file.to_path_buf(),
                key,
                value,
                why,
            },
            other => other,
        }
    }
}

fn unsupported(key: &str, value: impl std::fmt::Display, why: &str) -> ConfigError {
    ConfigError::Unsupported {
        path: PathBuf::new(),
        key: key.to_string(),
        value: value.to_string(),
        why: why.to_string(),
    }
}

fn check_supported(raw: &Raw) -> Result<(), ConfigError> {
    if !SUPPORTED_MODEL_TYPES.contains(&raw.model_type.as_str()) {
        return Err(unsupported(
            "model_type",
            &raw.model_type,
            &format!("clintune implements {}", SUPPORTED_MODEL_TYPES.join(", ")),
        ));
    }
    if let Some(act) = raw.hidden_act.as_deref().filter(|a| *a != "silu") {
        return Err(unsupported(
            "hidden_act",
            act,
            "only silu (SwiGLU) is implemented",
        ));
    }
    if raw.mlp_bias {
        return Err(unsupported(
            "mlp_bias",
            true,
            "MLP biases are not implemented",
        ));
    }
    let window = raw.sliding_window.as_ref().filter(|w| !w.is_null());
    let sliding = match raw.use_sliding_window {
        Some(used) => used && window.is_some(),
        None => window.is_some(),
    };
    if sliding {
        let value = window.map(Value::to_string).unwrap_or_default();
        return Err(unsupported(
            "sliding_window",
            value,
            "sliding-window attention is not implemented",
        ));
    }
    Ok(())
}

/// The rotary base and scaling, from `rope_parameters` (transformers 5) or
/// `rope_theta` + `rope_scaling`.
fn rope(raw: &Raw) -> Result<(f64, Option<RopeScaling>), ConfigError> {
    let params = raw.rope_parameters.as_ref().or(raw.rope_scaling.as_ref());
    let theta = raw
        .rope_theta
        .or_else(|| params?.get("rope_theta")?.as_f64())
        .unwrap_or(10_000.0);
    let Some(params) = params.filter(|p| !p.is_null()) else {
        return Ok((theta, None));
    };
    let kind = params
        .get("rope_type")
        .or_else(|| params.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => Ok((theta, None)),
        "llama3" => llama3(params).map(|s| (theta, Some(s))),
        other => Err(unsupported(
            "rope_type",
            other,
            "clintune implements default and llama3 rotary embeddings",
        )),
    }
}

fn llama3(p: &Value) -> Result<RopeScaling, ConfigError> {
    let num = |key: &str| {
        p.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| unsupported(key, "missing", "llama3 rope scaling needs it"))
    };
    Ok(RopeScaling {
        factor: num("factor")?,
        low_freq_factor: num("low_freq_factor")?,
        high_freq_factor: num("high_freq_factor")?,
        original_max_position_embeddings: num("original_max_position_embeddings")? as usize,
    })
}

fn token_ids(value: Option<&Value>) -> Vec<u32> {
    match value {
        Some(Value::Number(n)) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_u64().map(|v| v as u32))
            .collect(),
        _ => Vec::new(),
    }
}
