//! `clintune recipe check`: validate a recipe without running it.

use anyhow::Context;
use clap::{Args, Subcommand};
use clintune_model::ModelConfig;
use clintune_train::Recipe;
use clintune_train::recipe::{Method, ObjectiveKind};
use std::path::PathBuf;

/// `clintune recipe …`.
#[derive(Debug, Subcommand)]
pub enum RecipeCommand {
    /// Parse a recipe strictly, check its values and that the model and dataset it
    /// names exist, and print the effective recipe (defaults filled in).
    Check(CheckArgs),
}

/// Arguments of `clintune recipe check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The recipe (TOML).
    #[arg(value_name = "RECIPE")]
    recipe: PathBuf,
}

/// Runs `clintune recipe …`.
pub fn run(c: RecipeCommand) -> anyhow::Result<()> {
    let RecipeCommand::Check(a) = c;
    let recipe = Recipe::load(&a.recipe)?;
    let base = &recipe.model.base;
    let model =
        ModelConfig::load(base).with_context(|| format!("model.base = {}", base.display()))?;
    let dataset = &recipe.data.dataset;
    clintune_lineage::Manifest::read(dataset)
        .with_context(|| format!("data.dataset = {}", dataset.display()))?;
    let effective = toml::to_string_pretty(&recipe).context("printing the recipe")?;
    println!("{effective}");
    let method = match recipe.method.kind {
        Method::Full => "full fine-tuning".to_string(),
        Method::Lora => format!(
            "LoRA rank {} on {:?}",
            recipe.lora.rank, recipe.lora.targets
        ),
    };
    let d = &recipe.data;
    let o = &recipe.objective;
    let (objective, step) = match o.kind {
        ObjectiveKind::Sft => (
            "SFT".to_string(),
            format!("{} tokens", d.seq_len * d.micro_batch * d.grad_accum),
        ),
        ObjectiveKind::Dpo => (
            format!(
                "DPO ({} loss, beta {}, against the base)",
                o.loss.as_str(),
                o.beta
            ),
            format!(
                "{} preference pairs of up to {} tokens each",
                d.micro_batch * d.grad_accum,
                d.seq_len
            ),
        ),
        ObjectiveKind::Grpo => (
            format!(
                "GRPO ({} loss, {} grader(s))",
                recipe.grpo.loss_type.name(),
                recipe.grader.len()
            ),
            format!(
                "{} prompts × {} sampled completions of up to {} tokens",
                d.micro_batch * d.grad_accum,
                recipe.grpo.num_generations,
                recipe.grpo.max_completion_length
            ),
        ),
    };
    eprintln!(
        "{}: valid. {}, objective {objective}, of a {}-layer {} model (vocabulary {}), {step} per optimizer step.",
        a.recipe.display(),
        method,
        model.num_hidden_layers,
        model.model_type,
        model.vocab_size,
    );
    Ok(())
}
