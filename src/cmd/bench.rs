//! `clintune bench`: training throughput and model FLOPs utilisation.

use super::PrecisionArg;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use clintune_model::{LoraConfig, ModelConfig};
use clintune_train::bench::{BenchConfig, PRESETS, Throughput, measure, preset};
use clintune_train::recipe::HardwareSection;
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
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
    /// Train LoRA adapters of this rank on q, k, v and o (alpha 2·rank,
    /// dropout 0.05: a recipe's defaults) instead of every weight.
    #[arg(long, value_name = "RANK")]
    lora: Option<usize>,
    /// The device's peak dense TFLOP/s at this precision, for MFU (H100 SXM: 989 bf16).
    #[arg(long, value_name = "TFLOPS")]
    peak_tflops: Option<f64>,
    /// `table` for people; `json` (one object, with the model's config.json)
    /// for scripts such as benches/gpu/check.sh.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// Runs `clintune bench`.
pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    let (config_text, model) = model_config(&a.model)?;
    let hardware = HardwareSection {
        devices: a.device.clone(),
        ..HardwareSection::default()
    };
    let devices = hardware.parse_devices().map_err(anyhow::Error::msg)?;
    if a.batch == 0 || a.seq == 0 {
        bail!("--batch and --seq must be at least 1");
    }
    let cfg = BenchConfig {
        model,
        batch: a.batch,
        seq: a.seq,
        warmup: a.warmup,
        steps: a.steps,
        dtype: a.precision.dtype(),
        lora: a.lora.map(|rank| LoraConfig {
            rank,
            alpha: 2.0 * rank as f64,
            ..LoraConfig::default()
        }),
    };
    if let Some(lora) = &cfg.lora {
        lora.validate().map_err(anyhow::Error::msg)?;
    }
    tracing::info!(
        "timing {} steps after {} warm-up steps of {} × {} tokens on {}",
        a.steps,
        a.warmup,
        a.batch,
        a.seq,
        a.device
    );
    let t = measure(&cfg, &devices)?;
    let mfu = a.peak_tflops.map(|peak| t.mfu(peak * 1e12));
    match a.format {
        Format::Table => print_table(&a, &t, mfu),
        Format::Json => {
            let config: serde_json::Value = serde_json::from_str(&config_text)?;
            println!(
                "{}",
                serde_json::json!({
                    "model": a.model,
                    "config": config,
                    "parameters": t.params,
                    "batch": a.batch,
                    "seq": a.seq,
                    "precision": a.precision.name(),
                    "lora_rank": a.lora,
                    "device": a.device,
                    "step_seconds": t.step_seconds,
                    "tokens_per_s": t.tokens_per_s,
                    "flops_per_token": t.flops_per_token,
                    "model_tflops": t.flops_per_s / 1e12,
                    "mfu": mfu,
                })
            );
        }
    }
    Ok(())
}

fn print_table(a: &BenchArgs, t: &Throughput, mfu: Option<f64>) {
    let mfu = match mfu {
        Some(m) => format!("{:.1}%", 100.0 * m),
        None => "(give --peak-tflops)".into(),
    };
    let method = a.lora.map_or("full".to_string(), |r| format!("LoRA r{r}"));
    println!(
        "| model | method | parameters | batch × seq | precision | device | s/step | tokens/s | model TFLOP/s | MFU |"
    );
    println!("|---|---|---:|---|---|---|---:|---:|---:|---:|");
    println!(
        "| {} | {method} | {:.1} M | {} × {} | {} | {} | {:.3} | {:.0} | {:.3} | {} |",
        a.model,
        t.params as f64 / 1e6,
        a.batch,
        a.seq,
        a.precision.name(),
        a.device,
        t.step_seconds,
        t.tokens_per_s,
        t.flops_per_s / 1e12,
        mfu
    );
}

/// A preset's config, or the config.json at `spec` (a file or a model
/// directory): its text and what it parses to.
fn model_config(spec: &str) -> anyhow::Result<(String, ModelConfig)> {
    if let Some(text) = preset(spec) {
        return Ok((text.to_string(), ModelConfig::parse(text)?));
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
    let config = ModelConfig::parse(&text).with_context(|| format!("{}", file.display()))?;
    Ok((text, config))
}
