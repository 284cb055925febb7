//! `clintune score`: per-token log-probabilities of inputs under a model.

use super::PrecisionArg;
use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use clap::Args;
use clintune_model::{Batch, Device, Llama, OnDevice, on_device};
use clintune_text::tokenizer::Tokenizer;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `clintune score`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each output line is JSON: {\"index\", \"tokens\", \"logprobs\" (null for the first token), \"mean_loss\", \"num_targets\"}.\n\nExample:\n  clintune score --model tests/fixtures/llama/llama-gqa-rope3 --input notes.txt"
)]
pub struct ScoreArgs {
    /// A Hugging Face model directory (config.json, model.safetensors or shards,
    /// tokenizer.json).
    #[arg(long, short = 'm', value_name = "DIR")]
    model: PathBuf,
    /// Inputs, one per line: text (tokenized as transformers' `tokenizer(text)`
    /// does: with the special tokens the tokenizer.json post-processor adds, such
    /// as Llama 3's BOS, and no others) or a JSON array of token ids, scored as given.
    #[arg(long, short = 'i', value_name = "FILE")]
    input: PathBuf,
    /// `cpu` or `cuda:N` (a build with the cuda feature).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: Device,
    /// The precision activations are computed in; weights stay f32 and
    /// log-probabilities come out in f32 either way.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
}

/// Runs `clintune score`.
pub fn run(a: ScoreArgs) -> anyhow::Result<()> {
    on_device(a.device, Score(a))?
}

/// Scoring, on whichever backend the device calls for.
struct Score(ScoreArgs);

impl OnDevice for Score {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        score::<B>(self.0, &device)
    }
}

fn score<B: Backend>(a: ScoreArgs, device: &B::Device) -> anyhow::Result<()> {
    let (config, model) = super::load_model::<B>(&a.model, device)?;
    let model = model.with_compute_dtype(a.precision.dtype());
    let text = std::fs::read_to_string(&a.input)
        .with_context(|| format!("reading {}", a.input.display()))?;
    let mut tokenizer = None;
    let mut out = std::io::stdout().lock();
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let tokens = tokens_of(line, &a.model, &mut tokenizer, config.vocab_size)
            .with_context(|| format!("{}: line {}", a.input.display(), index + 1))?;
        writeln!(out, "{}", score_line(&model, index, tokens))?;
    }
    Ok(())
}

/// The ids of one input line.
fn tokens_of(
    line: &str,
    model_dir: &Path,
    tokenizer: &mut Option<Tokenizer>,
    vocab: usize,
) -> anyhow::Result<Vec<u32>> {
    let ids: Vec<u32> = match serde_json::from_str::<Vec<u32>>(line) {
        Ok(ids) => ids,
        Err(_) if line.trim_start().starts_with('[') => {
            bail!("looks like a JSON array but is not one of token ids")
        }
        Err(_) => {
            if tokenizer.is_none() {
                *tokenizer = Some(Tokenizer::load(model_dir)?);
            }
            let tok = tokenizer.as_ref().context("tokenizer")?;
            tok.encode_document_ids(line)?
        }
    };
    if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
        bail!("token id {bad} is outside the vocabulary ({vocab})");
    }
    if ids.len() < 2 {
        bail!("needs at least 2 tokens to score");
    }
    Ok(ids)
}

fn score_line<B: Backend>(model: &Llama<B>, index: usize, tokens: Vec<u32>) -> Value {
    let logprobs = model.token_log_probs(&Batch::unpacked(std::slice::from_ref(&tokens)));
    let scored: Vec<f64> = logprobs.iter().flatten().map(|&l| f64::from(l)).collect();
    let mean_loss = -scored.iter().sum::<f64>() / scored.len() as f64;
    json!({
        "index": index,
        "tokens": tokens,
        "logprobs": logprobs,
        "mean_loss": mean_loss,
        "num_targets": scored.len(),
    })
}
