//! `clintune tokenizer`: train a tokenizer on de-identified records.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Tokenizer commands.
#[derive(Debug, Subcommand)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE tokenizer on the train split of a de-identified
    /// dataset. Writes tokenizer.json and tokenizer_config.json (with a ChatML chat
    /// template), which Python `tokenizers` and transformers load as they are.
    Train(TrainArgs),
}

/// Arguments of `clintune tokenizer train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A `clintune deid` output directory (its manifest is verified first).
    #[arg(long, short = 'i', value_name = "DIR")]
    input: PathBuf,
    /// Curation config: its tasks and split decide the training text, its
    /// [tokenizer] table the vocabulary size.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Vocabulary size, overriding the config's.
    #[arg(long, value_name = "N")]
    vocab_size: Option<usize>,
    /// Output directory.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Replace the output directory if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs `clintune tokenizer`.
pub fn run(command: TokenizerCommand) -> anyhow::Result<()> {
    let TokenizerCommand::Train(a) = command;
    let mut config = super::curate::load_config(a.config.as_deref())?;
    if let Some(n) = a.vocab_size {
        config.tokenizer.vocab_size = n;
        config.tokenizer.validate()?;
    }
    let (out, tokenizer) =
        clintune_curate::pipeline::train_tokenizer_into(&a.input, &config, &a.out, a.force)
            .context("tokenizer training failed; no output was written")?;
    summary!(
        "trained a byte-level BPE with {} tokens",
        tokenizer.vocab_size()
    );
    summary!("output: {}", out.display());
    Ok(())
}
