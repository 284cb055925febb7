//! `clintune audit memorization`: canary exposure and verbatim extraction.

use super::eval::{load, subjects};
use crate::progress::bar;
use anyhow::Context;
use burn::tensor::backend::Backend;
use clap::{Args, Subcommand};
use clintune_model::{Device, OnDevice, on_device};
use clintune_text::tokenizer::Tokenizer;
use clintune_validate::memorization::{
    AuditConfig, AuditReport, exposures, extraction, read_canaries, write_report,
};
use std::path::PathBuf;

/// `clintune audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Whether a model gives back what it was trained on: canary exposure and verbatim extraction.
    Memorization(MemorizationArgs),
}

/// Arguments of `clintune audit memorization`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exposure (Carlini et al., \"The Secret Sharer\", 2019): each canary the dataset planted \
(curate with `[audit] canaries = N`) is ranked, by the model's likelihood, among --candidates \
random secrets of its format; exposure = log2(candidates scored) - log2(rank), in bits. About 0: \
not memorized; log2(candidates scored), the canary ranked first: memorized. Compare the canaries \
planted 16 times with those planted once.

Extraction: the first --prefix-tokens tokens of training examples are continued greedily; the \
share that reproduces the next --suffix-tokens tokens exactly, beside the same share for \
validation examples the model never saw.

Writes OUT/audit.json and OUT/manifest.json (parents: the model's and dataset's manifests).

Example:
  clintune audit memorization --model checkpoints/site/v2 --dataset datasets/curated --out audits/site-v2")]
pub struct MemorizationArgs {
    /// The model: a Hugging Face directory (an export, a run's base).
    #[arg(long, short = 'm', value_name = "DIR")]
    model: PathBuf,
    /// A LoRA adapter in PEFT's format to apply to --model.
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// The curated dataset the model was trained on (with canaries planted).
    #[arg(long, short = 'd', value_name = "DIR")]
    dataset: PathBuf,
    /// Output directory for audit.json and its manifest.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Replace the output directory if it exists.
    #[arg(long)]
    force: bool,
    /// Random same-format secrets each canary is ranked among.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    candidates: usize,
    /// Examples per split (train, validation) whose prefixes are continued.
    #[arg(long, default_value_t = 64, value_name = "N")]
    extraction_examples: usize,
    /// Tokens given as the prefix.
    #[arg(long, default_value_t = 32, value_name = "N")]
    prefix_tokens: usize,
    /// Tokens the continuation must reproduce.
    #[arg(long, default_value_t = 32, value_name = "N")]
    suffix_tokens: usize,
    /// Seed of the candidates.
    #[arg(long, default_value_t = 0, value_name = "N")]
    seed: u64,
    /// `cpu` or `cuda:N` (a build with the cuda feature).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: Device,
}

/// Runs `clintune audit …`.
pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Memorization(a) => {
            let device = a.device;
            on_device(device, Memorization(a))?
        }
    }
}

struct Memorization(MemorizationArgs);

impl OnDevice for Memorization {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        memorization::<B>(self.0, &device)
    }
}

fn memorization<B: Backend>(a: MemorizationArgs, device: &B::Device) -> anyhow::Result<()> {
    let (subjects, parents) = subjects(&a.model, a.adapter.as_deref(), None, &a.dataset)?;
    let canaries = read_canaries(&a.dataset)?;
    let tokenizer = Tokenizer::load(&a.dataset)
        .with_context(|| format!("loading the tokenizer of {}", a.dataset.display()))?;
    let (_, model) = load::<B>(&a.model, a.adapter.as_deref(), device)?;
    let cfg = AuditConfig {
        candidates: a.candidates,
        seed: a.seed,
        extraction_examples: a.extraction_examples,
        prefix_tokens: a.prefix_tokens,
        suffix_tokens: a.suffix_tokens,
        ..AuditConfig::default()
    };
    let shown = bar(canaries.len() as u64, "exposure", "canaries");
    let ranked = exposures(&model, &tokenizer, &canaries, &cfg, &mut |d, _| {
        shown.set_position(d)
    })?;
    shown.finish_and_clear();
    let shown = bar(0, "extraction", "examples");
    let extracted = extraction(&model, &a.dataset, &cfg, &mut |d, n| {
        shown.set_length(n);
        shown.set_position(d);
    })?;
    shown.finish_and_clear();
    let report = AuditReport::new(cfg, subjects, ranked, extracted);
    let manifest = write_report(&a.out, a.force, &report, &parents)?;
    print_summary(&report);
    summary!(
        "wrote {} (manifest {})",
        a.out.join("audit.json").display(),
        manifest.id
    );
    Ok(())
}

fn print_summary(report: &AuditReport) {
    summary!(
        "{:<10} {:>7} {:>8} {:>8} {:>9}",
        "canary",
        "planted",
        "rank",
        "of",
        "exposure"
    );
    for c in &report.canaries {
        summary!(
            "{:<10} {:>7} {:>8} {:>8} {:>6.2} bits",
            c.id,
            c.repeats,
            c.rank,
            c.scored,
            c.exposure
        );
    }
    let x = &report.extraction;
    summary!(
        "verbatim extraction: train {}/{} ({:.1}%), validation {}/{} ({:.1}%)",
        x.train.reproduced,
        x.train.examples,
        100.0 * x.train.rate,
        x.validation.reproduced,
        x.validation.examples,
        100.0 * x.validation.rate
    );
}
