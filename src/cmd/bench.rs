//! `clintune bench`: training throughput and model FLOPs utilisation.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use clintune_model::ModelConfig;
use clintune_train::bench::{BenchConfig, PRESETS, measure, preset};
use clintune_train::recipe::{HardwareSection, Precision};
use std::path::Path;

/// Arguments of `clintune bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "Times full fine-tuning steps (forward, backward, AdamW) of a randomly \
    initialised model and prints a table: seconds per step, tokens/s, model TFLOP/s (PaLM's \
    6·N + 12·L·H·S per token) and, with --peak-tflops, MFU.\n\n\
    Examples:\n  \
    clintune bench                                          # small model, CPU, f32\n  \
    clintune bench --model llama-1b --device cuda:0 --precision bf16 --batch 4 --seq 2048 \\\n    \
    --peak-tflops 989                                       # H100 SXM, dense bf16\n  \
    clintune bench --model path/to/model/config.json --device cuda:0"
)]
pub struct BenchArgs {
    /// A built-in shape (small, llama-1b) or a model's config.json (or its directory);
    /// weights are random either way.
    #[arg(long, default_value = "small")]
    model: String,
    /// Rows per step.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Tokens per row.
    #[arg(long, default_value_t = 256)]
    seq: usize,
    /// Steps timed.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps first (GPU kernels compile on first use).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// `cpu` or `cuda:N` (a build with the cuda feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The precision activations are computed in.
    #[arg(long, value_enum, default_value_t = BenchPrecision::F32)]
    precision: BenchPrecision,
    /// The device's peak dense TFLOP/s at this precision, for MFU (H100 SXM: 989 bf16).
    #[arg(long, value_name = "TFLOPS")]
    peak_tflops: Option<f64>,
}

/// `--precision`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum BenchPrecision {
    F32,
    Bf16,
}

/// Runs `clintune bench`.
pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    let model = model_config(&a.model)?;
    let hardware = HardwareSection {
        devices: a.device.clone(),
        ..HardwareSection::default()
    };
    let devices = hardware.parse_devices().map_err(anyhow::Error::msg)?;
    let precision = match a.precision {
        BenchPrecision::F32 => Precision::F32,
        BenchPrecision::Bf16 => Precision::Bf16,
    };
    if a.batch == 0 || a.seq == 0 {
        bail!("--batch and --seq must be at least 1");
    }
    let cfg = BenchConfig {
        model,
        batch: a.batch,
        seq: a.seq,
        warmup: a.warmup,
        steps: a.steps,
        dtype: precision.dtype(),
    };
    tracing::info!(
        "timing {} steps after {} warm-up steps of {} × {} tokens on {}",
        a.steps,
        a.warmup,
        a.batch,
        a.seq,
        a.device
    );
    let t = measure(&cfg, &devices)?;
    let mfu = match a.peak_tflops {
        Some(peak) => format!("{:.1}%", 100.0 * t.mfu(peak * 1e12)),
        None => "(give --peak-tflops)".into(),
    };
    println!(
        "| model | parameters | batch × seq | precision | device | s/step | tokens/s | model TFLOP/s | MFU |"
    );
    println!("|---|---:|---|---|---|---:|---:|---:|---:|");
    println!(
        "| {} | {:.1} M | {} × {} | {} | {} | {:.3} | {:.0} | {:.3} | {} |",
        a.model,
        t.params as f64 / 1e6,
        a.batch,
        a.seq,
        format!("{:?}", a.precision).to_lowercase(),
        a.device,
        t.step_seconds,
        t.tokens_per_s,
        t.flops_per_s / 1e12,
        mfu
    );
    Ok(())
}

/// A preset's config, or the config.json at `spec` (a file or a model directory).
fn model_config(spec: &str) -> anyhow::Result<ModelConfig> {
    if let Some(text) = preset(spec) {
        return Ok(ModelConfig::parse(text)?);
    }
    let path = Path::new(spec);
    if !path.exists() {
        bail!(
            "--model {spec:?} is neither a built-in shape ({}) nor a file",
            PRESETS.join(", ")
        );
    }
    let file = if path.is_dir() {
        path.join("config.json")
    } else {
        path.to_path_buf()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    ModelConfig::parse(&text).with_context(|| format!("{}", file.display()))
}
