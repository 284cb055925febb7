//! `clintune eval`: a model on the held-out patients of its curated dataset,
//! by task, against a baseline.

use crate::progress::bar;
use anyhow::{Context, bail};
use burn::tensor::backend::Backend;
use clap::Args;
use clintune_lineage::Manifest;
use clintune_model::{Device, Llama, OnDevice, on_device};
use clintune_validate::eval::{EvalReport, SplitScores, Subject, Subjects, manifest_of};
use clintune_validate::summary::{ALL, Bootstrap};
use clintune_validate::{EvalConfig, evaluate, write_report};
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};

/// Arguments of `clintune eval`.
#[derive(Debug, Args)]
#[command(after_help = "\
Each task's loss, perplexity and token accuracy (the share of trained tokens the model ranks \
first) on the split's examples, and over all of them. With --baseline, the same figures for the \
baseline and the difference (model minus baseline) with a 95% interval from resampling patients: \
an interval that excludes 0 is a difference beyond chance.

Writes OUT/eval.json and OUT/manifest.json (parents: the model's, adapter's, baseline's and \
dataset's manifests, where they have one), atomically.

Examples:
  clintune eval --model checkpoints/quickstart/v1 --dataset datasets/curated-quickstart \\
      --baseline runs/quickstart-base --out evals/quickstart-v1
  clintune eval --model base/ --adapter runs/chat/adapter --dataset curated/ --split validation --out evals/chat")]
pub struct EvalArgs {
    /// The model: a Hugging Face directory (an export, a run's base, any Llama-family model).
    #[arg(long, short = 'm', value_name = "DIR")]
    model: PathBuf,
    /// A LoRA adapter in PEFT's format to apply to --model.
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// The curated dataset (`clintune curate` output) whose split is scored.
    #[arg(long, short = 'd', value_name = "DIR")]
    dataset: PathBuf,
    /// The split: `test` holds patients no training saw.
    #[arg(long, default_value = "test", value_name = "SPLIT")]
    split: String,
    /// A model to compare with, usually the base the model was tuned from.
    #[arg(long, value_name = "DIR")]
    baseline: Option<PathBuf>,
    /// A LoRA adapter to apply to --baseline.
    #[arg(long, value_name = "DIR", requires = "baseline")]
    baseline_adapter: Option<PathBuf>,
    /// Output directory for eval.json and its manifest.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Replace the output directory if it exists.
    #[arg(long)]
    force: bool,
    /// Tokens per packed row; default: the model's context, at most 1024.
    #[arg(long, value_name = "N")]
    seq_len: Option<usize>,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 4, value_name = "N")]
    batch_size: usize,
    /// Resampled patient sets for the intervals.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    bootstrap: u32,
    /// Seed of the resampling.
    #[arg(long, default_value_t = 0, value_name = "N")]
    seed: u64,
    /// Only score; skip answering next-diagnosis examples by generation.
    #[arg(long)]
    no_generate: bool,
    /// `cpu` or `cuda:N` (a build with the cuda feature).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: Device,
}

/// Runs `clintune eval`.
pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    on_device(a.device, Eval(a))?
}

struct Eval(EvalArgs);

impl OnDevice for Eval {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        eval::<B>(self.0, &device)
    }
}

fn eval<B: Backend>(a: EvalArgs, device: &B::Device) -> anyhow::Result<()> {
    // Manifests first: a wrong directory fails before minutes of scoring.
    let (subjects, mut parents) = subjects(
        &a.model,
        a.adapter.as_deref(),
        a.baseline.as_deref(),
        &a.dataset,
    )?;
    if let Some(dir) = &a.baseline_adapter
        && let Some(m) = manifest_of(dir)?
    {
        parents.push((m, dir.clone()));
    }
    let (config, model) = load::<B>(&a.model, a.adapter.as_deref(), device)?;
    let cfg = EvalConfig {
        split: a.split.clone(),
        seq_len: a
            .seq_len
            .unwrap_or(config.max_position_embeddings.min(1024)),
        batch_size: a.batch_size,
        bootstrap: Bootstrap {
            resamples: a.bootstrap,
            seed: a.seed,
        },
        generate: !a.no_generate,
    };
    let context = config.max_position_embeddings;
    if cfg.seq_len > context {
        bail!(
            "--seq-len {} is longer than the model's context ({context} positions)",
            cfg.seq_len
        );
    }
    let scores = score(&model, context, &a.dataset, &cfg, "model")?;
    drop(model);
    let baseline = match &a.baseline {
        Some(dir) => {
            let (base_config, base) = load::<B>(dir, a.baseline_adapter.as_deref(), device)?;
            let context = base_config.max_position_embeddings;
            Some(score(&base, context, &a.dataset, &cfg, "baseline")?)
        }
        None => None,
    };
    let report = EvalReport::new(cfg, subjects, &scores, baseline.as_ref());
    let manifest = write_report(&a.out, a.force, &report, &parents)?;
    print_table(&report);
    summary!(
        "wrote {} (manifest {})",
        a.out.join("eval.json").display(),
        manifest.id
    );
    Ok(())
}

/// What a validation reads, each with its manifest id, and the manifests
/// (with their directories) that become the report's parents. The dataset
/// must be a `clintune curate` output.
pub(super) fn subjects(
    model: &Path,
    adapter: Option<&Path>,
    baseline: Option<&Path>,
    dataset: &Path,
) -> anyhow::Result<(Subjects, Vec<(Manifest, PathBuf)>)> {
    match manifest_of(dataset)? {
        None => bail!(
            "{} has no manifest.json: give a `clintune curate` output as --dataset",
            dataset.display()
        ),
        Some(m) if m.stage != clintune_curate::pipeline::STAGE => bail!(
            "{} is a `{}` output: give a `clintune curate` output as --dataset",
            dataset.display(),
            m.stage
        ),
        Some(_) => {}
    }
    let mut parents = Vec::new();
    let mut subject = |dir: &Path| -> anyhow::Result<Subject> {
        let manifest = manifest_of(dir)?;
        let s = Subject::new(dir, manifest.as_ref());
        if let Some(m) = manifest {
            parents.push((m, dir.to_path_buf()));
        }
        Ok(s)
    };
    let subjects = Subjects {
        model: subject(model)?,
        adapter: adapter.map(&mut subject).transpose()?,
        baseline: baseline.map(&mut subject).transpose()?,
        dataset: subject(dataset)?,
    };
    Ok((subjects, parents))
}

pub(super) fn load<B: Backend>(
    dir: &Path,
    adapter: Option<&Path>,
    device: &B::Device,
) -> anyhow::Result<(clintune_model::ModelConfig, Llama<B>)> {
    let (config, mut model) = super::load_model::<B>(dir, device)?;
    if let Some(adapter) = adapter {
        model = model
            .with_peft_adapter(adapter)
            .with_context(|| format!("loading the adapter {}", adapter.display()))?;
    }
    Ok((config, model))
}

fn score<B: Backend>(
    model: &Llama<B>,
    context: usize,
    dataset: &Path,
    cfg: &EvalConfig,
    what: &str,
) -> anyhow::Result<SplitScores> {
    let mut shown: Option<(String, ProgressBar)> = None;
    let scores = evaluate(model, context, dataset, cfg, &mut |phase, done, all| {
        if shown.as_ref().is_none_or(|(p, _)| p != phase) {
            let unit = if phase == "scoring" {
                "batches"
            } else {
                "examples"
            };
            if let Some((_, old)) =
                shown.replace((phase.into(), bar(all, &format!("{what}: {phase}"), unit)))
            {
                old.finish_and_clear();
            }
        }
        if let Some((_, b)) = &shown {
            b.set_position(done);
        }
    })?;
    if let Some((_, b)) = shown {
        b.finish_and_clear();
    }
    Ok(scores)
}

/// The figures as a table, tasks first and `all` last.
fn print_table(report: &EvalReport) {
    let rows = report
        .tasks
        .iter()
        .filter(|(t, _)| *t != ALL)
        .chain(report.tasks.get_key_value(ALL));
    summary!(
        "{:<16} {:>8} {:>8} {:>9} {:>8} {:>10} {:>9} {:>24}",
        "task",
        "examples",
        "patients",
        "tokens",
        "loss",
        "perplexity",
        "accuracy",
        "Δ loss [95% CI]"
    );
    for (task, t) in rows {
        let Some(m) = &t.model else { continue };
        let delta = t.difference.map_or(String::from("-"), |d| {
            format!(
                "{:+.4} [{:+.4}, {:+.4}]",
                d.loss.value, d.loss.ci95[0], d.loss.ci95[1]
            )
        });
        summary!(
            "{:<16} {:>8} {:>8} {:>9} {:>8.4} {:>10.2} {:>9.4} {:>24}",
            task,
            t.examples,
            t.patients,
            t.tokens,
            m.loss,
            m.perplexity,
            m.token_accuracy,
            delta
        );
    }
    let answered = report.tasks.values().filter_map(|t| t.diagnoses.as_ref());
    for d in answered {
        let Some(m) = &d.model else { continue };
        let delta = d.difference.map_or(String::new(), |x| {
            format!(
                "; Δ F1 {:+.3} [{:+.3}, {:+.3}]",
                x.f1.value, x.f1.ci95[0], x.f1.ci95[1]
            )
        });
        summary!(
            "next-diagnosis answered by generation ({} examples): precision {:.3}, recall {:.3}, F1 {:.3}{delta}",
            d.examples,
            m.precision,
            m.recall,
            m.f1
        );
    }
}
