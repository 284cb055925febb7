//! `clintune train`: fine-tune a model as a recipe says.

use anyhow::{Context, bail};
use clap::Args;
use clintune_train::cluster::{DEFAULT_DATA_PORT, DEFAULT_ORCHESTRATOR_PORT};
use clintune_train::{Cluster, Recipe, RunOptions, RunSummary, StepReport};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `clintune train`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    clintune recipe check recipes/train.toml\n  \
    clintune train recipes/train.toml\n  \
    clintune train recipes/train.toml --resume     # after an interruption: continues exactly\n\n\
    The objective is [objective] kind: \"sft\" (the default), \"dpo\" (preference pairs) or\n\
    \"grpo\" (completions sampled and rewarded by [[grader]] tables: recipes/grpo.toml).\n\n\
    The run directory (train.output) receives checkpoints/step-N/ (adapter or weights,\n\
    optimizer state, data cursor), metrics.jsonl, tensorboard/ and manifest.json.\n\
    Watch it with: tensorboard --logdir <train.output>/tensorboard\n\n\
    Multi-node (the recipe's hardware.nodes > 1; train.output on a shared filesystem):\n  \
    clintune orchestrator --port 3030                      # once, anywhere the nodes reach\n  \
    clintune train RECIPE --node-rank 0 --orchestrator ws://head:3030   # on node 0\n  \
    clintune train RECIPE --node-rank 1 --orchestrator ws://head:3030   # on node 1, …\n\
    Under Slurm the rank comes from SLURM_NODEID; see the README for an sbatch script.")]
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
    /// Multi-node runs: this node's rank, from 0 (node 0 writes checkpoints, metrics
    /// and the manifest). Under Slurm it defaults to SLURM_NODEID.
    #[arg(long, env = "CLINTUNE_NODE_RANK", value_name = "R")]
    node_rank: Option<usize>,
    /// Multi-node runs: the address of `clintune orchestrator`.
    #[arg(long, env = "CLINTUNE_ORCHESTRATOR", value_name = "ws://HOST:PORT")]
    orchestrator: Option<String>,
    /// Multi-node runs: where the other nodes reach this one; this node listens on its
    /// port [default: ws://<SLURMD_NODENAME or host name>:3031].
    #[arg(long, env = "CLINTUNE_NODE_ADDRESS", value_name = "ws://HOST:PORT")]
    node_address: Option<String>,
}

/// Runs `clintune train`.
pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(&a.recipe)?;
    if recipe
        .hardware
        .parse_devices()
        .is_ok_and(|d| d.shares_a_gpu())
    {
        tracing::warn!(
            "hardware.devices = {:?} names a GPU more than once: its workers share it, which \
             tests data parallelism but is no faster than one worker",
            recipe.hardware.devices
        );
    }
    let opts = RunOptions {
        resume: a.resume,
        stop_after: a.stop_after,
        cluster: cluster(&recipe, &a)?,
    };
    if let Some(c) = &opts.cluster {
        tracing::info!("multi-node run: {c}");
    }
    let summary = train(&recipe, &a.recipe, &opts)?;
    let writer = opts.cluster.as_ref().is_none_or(|c| c.rank == 0);
    report(&summary, writer);
    Ok(())
}

/// Trains with a progress bar on a terminal, log lines otherwise.
fn train(recipe: &Recipe, path: &std::path::Path, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    let terminal = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let started = Instant::now();
    let mut tokens = 0.0;
    let log_every = recipe.train.log_every;
    let mut on_step = |r: &StepReport| {
        let StepReport {
            step, total, loss, ..
        } = *r;
        tokens += r.tokens;
        let rate = tokens / started.elapsed().as_secs_f64().max(1e-9);
        let mut message = format!("loss {loss:.4}");
        // DPO's step line shows whether the preferred answer wins, and by how
        // much; GRPO's the mean reward of its completions.
        for (name, label) in [
            ("rewards/accuracies", "reward acc"),
            ("rewards/margins", "margin"),
            ("reward", "reward"),
        ] {
            if let Some((_, v)) = r.figures.iter().find(|(n, _)| *n == name) {
                message.push_str(&format!(" | {label} {v:.2}"));
            }
        }
        message.push_str(&format!(" | {rate:.0} tok/s"));
        if terminal {
            let b = bar.get_or_insert_with(|| {
                let b = crate::progress::bar(total, "training", "steps");
                b.set_position(step - 1);
                b
            });
            b.set_position(step);
            b.set_message(message);
        } else if step.is_multiple_of(log_every) || step == total {
            tracing::info!("step {step}/{total} | {message}");
        }
    };
    let summary = clintune_train::train(recipe, path, opts, &mut on_step)
        .with_context(|| format!("training with {}", path.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(summary)
}

/// This process's place in a multi-node run, from the flags or Slurm's
/// environment; `None` when the recipe runs on one node.
fn cluster(recipe: &Recipe, a: &TrainArgs) -> anyhow::Result<Option<Cluster>> {
    let nodes = recipe.hardware.nodes;
    let slurm = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if nodes == 1 {
        if a.orchestrator.is_some() || a.node_rank.is_some() {
            tracing::warn!(
                "the recipe's hardware.nodes is 1: ignoring --node-rank and --orchestrator"
            );
        }
        return Ok(None);
    }
    if let Some(n) = slurm("SLURM_NNODES")
        && n.parse::<usize>().ok() != Some(nodes)
    {
        bail!(
            "Slurm gave this job {n} nodes (SLURM_NNODES), but the recipe's hardware.nodes is {nodes}"
        );
    }
    let rank = match (a.node_rank, slurm("SLURM_NODEID")) {
        (Some(r), _) => r,
        (None, Some(id)) => id
            .parse()
            .with_context(|| format!("SLURM_NODEID is {id:?}, not a node rank"))?,
        (None, None) => bail!(
            "the recipe's hardware.nodes is {nodes}: give this node's --node-rank (0 to {}), or run under Slurm",
            nodes - 1
        ),
    };
    let orchestrator = a.orchestrator.as_deref().with_context(|| {
        format!(
            "the recipe's hardware.nodes is {nodes}: give --orchestrator ws://HOST:{DEFAULT_ORCHESTRATOR_PORT} \
             (start it with `clintune orchestrator`) or set CLINTUNE_ORCHESTRATOR"
        )
    })?;
    let node_address = match &a.node_address {
        Some(address) => address.clone(),
        None => format!(
            "ws://{}:{DEFAULT_DATA_PORT}",
            host_name(slurm("SLURMD_NODENAME"))?
        ),
    };
    Ok(Some(Cluster::new(
        nodes,
        rank,
        orchestrator,
        &node_address,
    )?))
}

/// The name other nodes know this one by: Slurm's, else the kernel's.
fn host_name(slurm: Option<String>) -> anyhow::Result<String> {
    if let Some(name) = slurm {
        return Ok(name);
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .context("cannot tell this machine's host name: give --node-address ws://HOST:PORT")
}

/// Logs what the run did; `writer` is false on the nodes other than node 0,
/// which write no checkpoint or manifest.
fn report(s: &RunSummary, writer: bool) {
    if s.steps_taken == 0 && s.complete {
        tracing::info!(
            "nothing to train: the run in {} was already complete at step {}",
            s.run_dir.display(),
            s.steps
        );
        return;
    }
    tracing::info!(
        "trained {} steps on {} tokens ({} of {} parameters trainable); last loss {:.4}",
        s.steps,
        s.tokens,
        s.params.1,
        s.params.0,
        s.last_loss
    );
    if let Some(e) = &s.eval {
        let figures: Vec<String> = e
            .figures
            .iter()
            .map(|(name, value)| format!("{name} {value:.4}"))
            .collect();
        tracing::info!(
            "validation: {} over {} {}",
            figures.join(", "),
            e.units,
            e.unit
        );
    }
    if s.stopped_early {
        tracing::info!("stopped early: validation loss stopped improving");
    }
    if !s.complete {
        tracing::info!("paused after --stop-after; continue with --resume");
    }
    if !writer {
        tracing::info!("node 0 writes the checkpoints and the manifest");
        return;
    }
    tracing::info!(
        "checkpoint {}; manifest {}",
        s.checkpoint.display(),
        s.run_dir.join("manifest.json").display()
    );
}
