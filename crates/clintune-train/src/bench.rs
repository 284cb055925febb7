//! Training throughput: training steps (forward, backward, AdamW) of a
//! randomly initialised model, all weights or LoRA adapters, in tokens per
//! second and model FLOPs utilisation.
//!
//! Model FLOPs follow PaLM's accounting (Chowdhery et al. 2022, appendix B),
//! as torchtitan computes it: a trained token costs `6·N + 12·L·H·S` FLOPs,
//! where `N` counts the weights that take part in matrix products (every
//! parameter but the embedding table; a tied table counts once, as the
//! output head), `L` the layers, `H` the hidden width and `S` the sequence
//! length (attention's two products; the causal mask is not credited). MFU is
//! achieved model FLOPs per second over the device's peak, which the caller
//! gives.

use crate::adamw::AdamW;
use crate::backend::{OnBackend, on_backend};
use crate::error::TrainError;
use crate::params::count;
use crate::recipe::Devices;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::backend::AutodiffBackend;
use clintune_core::rng::SplitMix64;
use clintune_model::loss::token_nll;
use clintune_model::{Batch, Llama, LoraConfig, ModelConfig};
use std::time::Instant;

/// Built-in model shapes, as `config.json` text: `small` (6 layers × 512,
/// vocabulary 8192: 28.8 M parameters, the CPU benchmark's model) and
/// `llama-1b` (Llama 3.2 1B's shape: 16 layers × 2048, GQA 32/8, vocabulary
/// 128256, tied: 1.24 B parameters).
pub fn preset(name: &str) -> Option<&'static str> {
    match name {
        "small" => Some(SMALL),
        "llama-1b" => Some(LLAMA_1B),
        _ => None,
    }
}

/// The names [`preset`] knows.
pub const PRESETS: [&str; 2] = ["small", "llama-1b"];

const SMALL: &str = r#"{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "vocab_size": 8192,
  "hidden_size": 512,
  "intermediate_size": 1536,
  "num_hidden_layers": 6,
  "num_attention_heads": 8,
  "num_key_value_heads": 8,
  "max_position_embeddings": 1024,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "hidden_act": "silu",
  "torch_dtype": "float32"
}"#;

const LLAMA_1B: &str = r#"{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "vocab_size": 128256,
  "hidden_size": 2048,
  "intermediate_size": 8192,
  "num_hidden_layers": 16,
  "num_attention_heads": 32,
  "num_key_value_heads": 8,
  "head_dim": 64,
  "max_position_embeddings": 131072,
  "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0,
  "tie_word_embeddings": true,
  "hidden_act": "silu",
  "torch_dtype": "bfloat16"
}"#;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The model's architecture (weights are random).
    pub model: ModelConfig,
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// Steps before timing (kernel compilation and caches).
    pub warmup: usize,
    /// Steps timed.
    pub steps: usize,
    /// The dtype activations are computed in.
    pub dtype: DType,
    /// Train these LoRA adapters instead of every weight.
    pub lora: Option<LoraConfig>,
}

/// What was measured.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// All parameters.
    pub params: usize,
    /// Model FLOPs of one trained token.
    pub flops_per_token: f64,
    /// Seconds per step (mean of the timed steps).
    pub step_seconds: f64,
    /// Trained tokens per second.
    pub tokens_per_s: f64,
    /// Achieved model FLOPs per second.
    pub flops_per_s: f64,
}

impl Throughput {
    /// Model FLOPs utilisation against a peak of `peak_flops_per_s`.
    pub fn mfu(&self, peak_flops_per_s: f64) -> f64 {
        self.flops_per_s / peak_flops_per_s
    }
}

/// PaLM's model FLOPs per trained token; see the module docs. Under LoRA
/// (`frozen`), the frozen weights need no weight gradients: 4 rather than 6
/// FLOPs per weight (the adapters' own are negligible and not counted).
pub fn flops_per_token(model: &ModelConfig, params: usize, seq: usize, frozen: bool) -> f64 {
    let table = model.vocab_size * model.hidden_size;
    // The lookup in the embedding table is not a matrix product; a tied
    // table is still one as the output head.
    let matmul_weights = if model.tie_word_embeddings {
        params
    } else {
        params - table
    };
    let attention = 12 * model.num_hidden_layers * model.hidden_size * seq;
    let per_weight = if frozen { 4 } else { 6 };
    (per_weight * matmul_weights + attention) as f64
}

/// Measures training throughput on `devices` (the first one).
pub fn measure(cfg: &BenchConfig, devices: &Devices) -> Result<Throughput, TrainError> {
    on_backend(devices, BenchWork(cfg))?
}

/// The bench, on whichever backend the devices call for.
struct BenchWork<'a>(&'a BenchConfig);

impl OnBackend for BenchWork<'_> {
    type Output = Result<Throughput, TrainError>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output {
        let device = devices
            .first()
            .ok_or(TrainError::Bug("a parsed device list is empty"))?;
        run::<B>(self.0, device)
    }
}

/// Times training steps of a random model on `device`.
fn run<B: AutodiffBackend>(
    cfg: &BenchConfig,
    device: &B::Device,
) -> Result<Throughput, TrainError> {
    let mut model = Llama::<B>::random(&cfg.model, 1, 0.02, device).with_compute_dtype(cfg.dtype);
    // The base's size, before any adapter.
    let params = count(&model).0;
    if let Some(lora) = &cfg.lora {
        model = model.with_lora(lora, 1);
    }
    // burn's AdamW defaults, computed as a training run computes them.
    let mut optim: OptimizerAdaptor<_, Llama<B>, B> = AdamW::new([0.9, 0.999], 1e-5, 1e-4).into();
    let (input, targets) = random_batch(cfg);
    let targets =
        Tensor::<B, 2, Int>::from_data(TensorData::new(targets, [cfg.batch, cfg.seq]), device);
    let weights = Tensor::<B, 2>::ones([cfg.batch, cfg.seq], device);
    let tokens = (cfg.batch * cfg.seq) as f64;
    let mut step = |model: Llama<B>| {
        let nll = token_nll(model.forward(&input), targets.clone(), weights.clone()) / tokens;
        let grads = GradientsParams::from_grads(nll.backward(), &model);
        let model = optim.step(1e-5, model, grads);
        // Reading a weight back waits for the device to finish the step.
        let _ = model.model.norm.weight.val().into_data();
        // A step whose kernels failed (out of GPU memory) still returns: a
        // time measured over it would mean nothing.
        clintune_model::faults::check()?;
        Ok::<_, TrainError>(model)
    };
    for _ in 0..cfg.warmup {
        model = step(model)?;
    }
    let started = Instant::now();
    for _ in 0..cfg.steps.max(1) {
        model = step(model)?;
    }
    let step_seconds = started.elapsed().as_secs_f64() / cfg.steps.max(1) as f64;
    let flops_per_token = flops_per_token(&cfg.model, params, cfg.seq, cfg.lora.is_some());
    let tokens_per_s = tokens / step_seconds;
    Ok(Throughput {
        params,
        flops_per_token,
        step_seconds,
        tokens_per_s,
        flops_per_s: tokens_per_s * flops_per_token,
    })
}

/// Random token rows and their next-token targets.
fn random_batch(cfg: &BenchConfig) -> (Batch, Vec<i64>) {
    let mut rng = SplitMix64(17);
    let vocab = cfg.model.vocab_size as u64;
    let rows: Vec<Vec<u32>> = (0..cfg.batch)
        .map(|_| (0..cfg.seq).map(|_| rng.below(vocab) as u32).collect())
        .collect();
    let targets = rows
        .iter()
        .flat_map(|r| r[1..].iter().chain(&r[..1]).map(|&t| i64::from(t)))
        .collect();
    (Batch::unpacked(&rows), targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_follow_palms_accounting() {
        // Llama 2 7B: 6.74 B parameters, 4096 wide, 32 layers, vocabulary
        // 32000, untied: N leaves out the embedding table.
        let model = ModelConfig::parse(
            r#"{"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096,
                "intermediate_size": 11008, "num_hidden_layers": 32,
                "num_attention_heads": 32, "num_key_value_heads": 32,
                "rms_norm_eps": 1e-5, "max_position_embeddings": 4096}"#,
        )
        .unwrap();
        let params = 6_738_415_616;
        let want = 6.0 * (params - 32000 * 4096) as f64 + 12.0 * 32.0 * 4096.0 * 4096.0;
        assert_eq!(flops_per_token(&model, params, 4096, false), want);
    }

    #[test]
    fn presets_have_their_documented_sizes() {
        for (name, want) in [("small", 28_842_496), ("llama-1b", 1_235_814_400)] {
            let model = ModelConfig::parse(preset(name).unwrap()).unwrap();
            let params: usize = model
                .expected_tensors()
                .iter()
                .map(|(_, shape)| shape.iter().product::<usize>())
                .sum();
            assert_eq!(params, want, "{name}");
        }
    }

    #[test]
    fn a_cpu_measurement_reports_consistent_figures() {
        let model = ModelConfig::parse(
            r#"{"model_type": "llama", "vocab_size": 64, "hidden_size": 16,
                "intermediate_size": 32, "num_hidden_layers": 1,
                "num_attention_heads": 2, "num_key_value_heads": 1,
                "rms_norm_eps": 1e-5, "max_position_embeddings": 64}"#,
        )
        .unwrap();
        let cfg = BenchConfig {
            model,
            batch: 2,
            seq: 8,
            warmup: 1,
            steps: 2,
            dtype: DType::F32,
            lora: None,
        };
        let t = measure(&cfg, &Devices::Cpu(1)).unwrap();
        assert!(t.step_seconds > 0.0 && t.tokens_per_s > 0.0);
        assert!((t.tokens_per_s * t.step_seconds - 16.0).abs() < 1e-6);
        assert!((t.mfu(t.flops_per_s * 2.0) - 0.5).abs() < 1e-12);
        // LoRA counts the base's parameters and no weight gradients for them.
        let lora = measure(
            &BenchConfig {
                lora: Some(LoraConfig::default()),
                ..cfg.clone()
            },
            &Devices::Cpu(1),
        )
        .unwrap();
        assert_eq!(lora.params, t.params);
        assert!(lora.flops_per_token < t.flops_per_token);
    }
}
