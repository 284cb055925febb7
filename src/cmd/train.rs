//! `clintune train`: fine-tune a model as a recipe says.

use anyhow::Context;
use clap::Args;
use clintune_train::{Recipe, RunOptions, RunSummary};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `clintune train`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    clintune recipe check recipes/train.toml\n  \
    clintune train recipes/train.toml\n  \
    clintune train recipes/train.toml --resume     # after an interruption: continues exactly\n\n\
    The run directory (train.output) receives checkpoints/step-N/ (adapter or weights,\n\
    optimizer state, data cursor), metrics.jsonl, tensorboard/ and manifest.json.\n\
    Watch it with: tensorboard --logdir <train.output>/tensorboard")]
pub struct TrainArgs {
    /// The recipe (TOML); see recipes/README.md for every field.
    #[arg(value_name = "RECIPE")]
    recipe: PathBuf,
    /// Continue from the run directory's latest checkpoint. Without it, a run
    /// directory that already holds checkpoints is refused.
    #[arg(long)]
    resume: bool,
    /// Stop with a checkpoint after N steps of this invocation (to fit a job's time
    /// slot); run again with --resume to continue.
    #[arg(long, value_name = "N")]
    stop_after: Option<u64>,
}

/// Runs `clintune train`.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(&a.recipe)?;
    let summary = train(&recipe, &a.recipe, a.resume, a.stop_after)?;
    report(&summary);
    Ok(())
}

/// Trains with a progress bar on a terminal, log lines otherwise.
fn train(
    recipe: &Recipe,
    path: &std::path::Path,
    resume: bool,
    stop_after: Option<u64>,
) -> anyhow::Result<RunSummary> {
    let opts = RunOptions { resume, stop_after };
    let terminal = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let started = Instant::now();
    let mut tokens = 0.0;
    let log_every = recipe.train.log_every;
    let mut on_step = |step: u64, total: u64, loss: f64, step_tokens: f64| {
        tokens += step_tokens;
        let rate = tokens / started.elapsed().as_secs_f64().max(1e-9);
        let message = format!("loss {loss:.4} | {rate:.0} tok/s");
        if terminal {
            let b = bar.get_or_insert_with(|| {
                let b = clintune_core::progress::bar(total, "training", "steps");
                b.set_position(step - 1);
                b
            });
            b.set_position(step);
            b.set_message(message);
        } else if step.is_multiple_of(log_every) || step == total {
            tracing::info!("step {step}/{total} | {message}");
        }
    };
    let summary = clintune_train::train(recipe, path, &opts, &mut on_step)
        .with_context(|| format!("training with {}", path.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(summary)
}

fn report(s: &RunSummary) {
    tracing::info!(
        "trained {} steps on {} tokens ({} of {} parameters trainable); last loss {:.4}",
        s.steps,
        s.tokens,
        s.params.1,
        s.params.0,
        s.last_loss
    );
    if let Some(e) = s.eval {
        tracing::info!(
            "validation: loss {:.4}, perplexity {:.2}, token accuracy {:.3} over {} tokens",
            e.loss,
            e.perplexity,
            e.accuracy,
            e.tokens
        );
    }
    if s.stopped_early {
        tracing::info!("stopped early: validation loss stopped improving");
    }
    if !s.complete {
        tracing::info!("paused after --stop-after; continue with --resume");
    }
    tracing::info!(
        "checkpoint {}; manifest {}",
        s.checkpoint.display(),
        s.run_dir.join("manifest.json").display()
    );
}
