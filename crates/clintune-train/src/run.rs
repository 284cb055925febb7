//! A whole training run: pick the backend the recipe names, train, and
//! write the run's lineage manifest.

use crate::backend::{OnBackend, on_backend};
use crate::cluster::Cluster;
use crate::data::Dataset;
use crate::error::TrainError;
use crate::metrics::{METRICS_FILE, Metrics};
use crate::recipe::{Method, Recipe};
use crate::trainer::{Peer, RunOptions, RunSummary, Trainer, check_tokenizer};
use crate::watchdog::Watchdog;
use burn::collective::{self, CollectiveConfig, PeerId};
use burn::tensor::backend::AutodiffBackend;
use clintune_lineage::manifest::absolute_path;
use clintune_lineage::{FileEntry, Manifest, ManifestBuilder, ParentRef};
use serde_json::{Map, Value, json};
use std::path::Path;
use std::sync::Arc;

/// One finished optimizer step, as [`train`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The step's number, from 1.
    pub step: u64,
    /// Steps the run will take.
    pub total: u64,
    /// The step's mean loss over its trained tokens.
    pub loss: f64,
    /// Trained tokens in the step.
    pub tokens: f64,
    /// The objective's other figures of the step (DPO's rewards and
    /// log-probabilities, under TRL's names); none under SFT.
    pub figures: Vec<(&'static str, f64)>,
}

/// Progress of a run, as it goes.
pub type OnStep<'a> = &'a mut (dyn FnMut(&StepReport) + Send);

/// Trains as `recipe` (read from `recipe_path`) says.
pub fn train(
    recipe: &Recipe,
    recipe_path: &Path,
    opts: &RunOptions,
    on_step: OnStep<'_>,
) -> Result<RunSummary, TrainError> {
    check_nodes(recipe, opts.cluster.as_ref())?;
    let devices = recipe
        .hardware
        .parse_devices()
        .map_err(TrainError::Devices)?;
    let work = TrainWork {
        recipe,
        opts,
        on_step,
    };
    let summary = on_backend(&devices, work)??;
    let writes = opts.cluster.as_ref().is_none_or(|c| c.rank == 0);
    if writes && summary.complete && !already_recorded(&summary) {
        write_manifest(recipe, recipe_path, &summary)?;
    }
    Ok(summary)
}

/// A run's workers, on whichever backend its devices call for.
struct TrainWork<'a, 'b> {
    recipe: &'a Recipe,
    opts: &'a RunOptions,
    on_step: OnStep<'b>,
}

impl OnBackend for TrainWork<'_, '_> {
    type Output = Result<RunSummary, TrainError>;

    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output {
        train_on::<B>(self.recipe, devices, self.opts, self.on_step)
    }
}

/// Whether the recipe's node count and this process's place agree.
fn check_nodes(recipe: &Recipe, cluster: Option<&Cluster>) -> Result<(), TrainError> {
    let nodes = recipe.hardware.nodes;
    match cluster {
        None if nodes > 1 => Err(TrainError::Nodes(format!(
            "hardware.nodes = {nodes}: start clintune train on every node with its --node-rank and the \
             --orchestrator address (or under Slurm, which sets the rank); see the README's multi-node section"
        ))),
        Some(c) if c.nodes != nodes => Err(TrainError::Nodes(format!(
            "this node was started as one of {} nodes, but the recipe's hardware.nodes is {nodes}",
            c.nodes
        ))),
        _ => Ok(()),
    }
}

/// Runs one worker per device: the first on this thread (with the progress
/// callback; the run's rank 0 also writes metrics and checkpoints), the
/// others on their own threads.
fn train_on<B: AutodiffBackend>(
    recipe: &Recipe,
    devices: Vec<B::Device>,
    opts: &RunOptions,
    on_step: OnStep<'_>,
) -> Result<RunSummary, TrainError> {
    let run_dir = &recipe.train.output;
    let dataset = &Dataset::open(&recipe.data.dataset)?;
    check_tokenizer(recipe)?;
    std::fs::create_dir_all(run_dir).map_err(TrainError::io(run_dir))?;
    let local = devices.len();
    let (node, nodes) = opts.cluster.as_ref().map_or((0, 1), |c| (c.rank, c.nodes));
    let (first_rank, count) = (node * local, nodes * local);
    let config = match &opts.cluster {
        Some(c) => c.collective_config(local)?,
        None => CollectiveConfig::default().with_num_devices(local),
    };
    let config = &config;
    let mut devices = devices.into_iter();
    let first = devices
        .next()
        .ok_or(TrainError::Bug("a parsed device list is empty"))?;
    std::thread::scope(|scope| {
        let others: Vec<_> = devices
            .enumerate()
            .map(|(i, device)| {
                let peer = Peer {
                    rank: first_rank + i + 1,
                    count,
                };
                scope.spawn(move || worker::<B>(recipe, dataset, device, peer, config, opts, None))
            })
            .collect();
        let peer = Peer {
            rank: first_rank,
            count,
        };
        let summary = worker::<B>(recipe, dataset, first, peer, config, opts, Some(on_step));
        for handle in others {
            handle
                .join()
                .map_err(|_| TrainError::exchange("a worker thread panicked"))??;
        }
        summary
    })
}

/// One data-parallel worker from start to end.
fn worker<B: AutodiffBackend>(
    recipe: &Recipe,
    dataset: &Dataset,
    device: B::Device,
    peer: Peer,
    config: &CollectiveConfig,
    opts: &RunOptions,
    mut on_step: Option<OnStep<'_>>,
) -> Result<RunSummary, TrainError> {
    let mut trainer = Trainer::<B>::new(recipe, dataset, device.clone(), opts.resume, peer)?;
    let timeout = std::time::Duration::from_secs(recipe.hardware.exchange_timeout_s);
    let watchdog = (peer.count > 1).then(|| Arc::new(Watchdog::start(timeout)));
    if let Some(w) = &watchdog {
        trainer = trainer.with_watchdog(w.clone());
    }
    let id = PeerId::from(peer.rank);
    if let Some(w) = &watchdog {
        let register = || collective::register::<B::InnerBackend>(id, device, config.clone());
        w.exchange(
            || "their registration (every node must start)".into(),
            register,
        )
        .map_err(TrainError::exchange)?;
        match trainer.check_agreement() {
            Ok(()) => {}
            Err(e @ TrainError::Disagreement(_)) => {
                // Every worker sees the disagreement. Finishing together
                // keeps one from leaving while another still reads its share
                // of the exchange, which burn reports as a panic instead.
                let finish = || collective::finish_collective::<B::InnerBackend>(id);
                let _ = w.exchange(|| "stopping together".into(), finish);
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
    // Opened once the workers agree on where the run starts: opening cuts
    // metrics.jsonl back to the checkpoint and starts an event file.
    let mut metrics = match peer.rank {
        0 => {
            let resumed = (trainer.step() > 0).then(|| trainer.step());
            Some(Metrics::open(&recipe.train.output, resumed)?)
        }
        _ => None,
    };
    let total = trainer.total_steps();
    let summary = trainer.run(
        metrics.as_mut(),
        opts.stop_after,
        |step, figures, tokens| {
            if let Some(f) = on_step.as_mut() {
                f(&StepReport {
                    step,
                    total,
                    loss: figures.first().map_or(f64::NAN, |f| f.1),
                    tokens,
                    figures: figures.iter().skip(1).copied().collect(),
                })
            }
        },
    )?;
    if let Some(w) = &watchdog {
        let finish = || collective::finish_collective::<B::InnerBackend>(id);
        w.exchange(|| "the end of the run".into(), finish)
            .map_err(TrainError::exchange)?;
    }
    Ok(summary)
}

/// The recipe as the run's manifest records it: without the `[deid]` table,
/// whose input paths the de-identification manifest records under keyed
/// pseudonyms when a name could identify someone.
fn recorded_recipe(recipe: &Recipe) -> Value {
    let mut value = clintune_core::json::to_value("the recipe", recipe);
    if let Some(map) = value.as_object_mut() {
        map.remove("deid");
    }
    value
}

/// Whether the run's manifest already records this many steps (a finished
/// run resumed again): it is kept, evaluation and all.
fn already_recorded(summary: &RunSummary) -> bool {
    Manifest::read(&summary.run_dir)
        .ok()
        .and_then(|m| m.count("steps"))
        .is_some_and(|steps| steps == summary.steps)
}

/// The run's manifest: parent the dataset (and the base model, when it is a
/// clintune export or run with a manifest of its own: a partner's run on an
/// institution's released model keeps both branches), inputs the recipe and
/// the base model's files, outputs the final checkpoint and the metrics.
fn write_manifest(
    recipe: &Recipe,
    recipe_path: &Path,
    summary: &RunSummary,
) -> Result<(), TrainError> {
    let run_dir = &summary.run_dir;
    let data = &recipe.data.dataset;
    let dataset = Manifest::read(data).map_err(|e| TrainError::dataset(data, e))?;
    let mut b = ManifestBuilder::new("train", recipe.content_hash())
        .parent(ParentRef::locate(&dataset, data, run_dir))
        .config("method", json!(recipe.method.kind))
        .config("base_model", absolute_path(&recipe.model.base))
        .config("recipe", recorded_recipe(recipe))
        .input(entry(recipe_path, absolute_path(recipe_path), "recipe")?);
    let base = &recipe.model.base;
    if base
        .join(clintune_lineage::manifest::MANIFEST_FILE)
        .is_file()
    {
        let manifest = Manifest::read(base).map_err(|e| TrainError::model(base, e))?;
        b = b.parent(ParentRef::locate(&manifest, base, run_dir));
    }
    for file in base_model_files(&recipe.model.base)? {
        b = b.input(entry(&file, absolute_path(&file), "base-model")?);
    }
    let checkpoint = &summary.checkpoint;
    for file in files_in(checkpoint)? {
        let rel = file
            .strip_prefix(run_dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        b = b.output(entry(&file, rel, "checkpoint")?);
    }
    let metrics = run_dir.join(METRICS_FILE);
    b = b.output(entry(&metrics, METRICS_FILE.into(), "metrics")?);
    b.counts(counts(recipe, summary))
        .finish()
        .write(run_dir)
        .map_err(|e| TrainError::checkpoint(run_dir, e))?;
    Ok(())
}

fn entry(file: &Path, name: String, kind: &str) -> Result<FileEntry, TrainError> {
    Ok(FileEntry::from_file(file, name, None)
        .map_err(TrainError::io(file))?
        .with_kind(kind))
}

fn counts(recipe: &Recipe, s: &RunSummary) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("steps".into(), s.steps.into());
    c.insert("tokens".into(), s.tokens.into());
    c.insert("params".into(), s.params.0.into());
    c.insert("trainable_params".into(), s.params.1.into());
    c.insert("last_train_loss".into(), json!(s.last_loss));
    if let Some(e) = &s.eval {
        for (name, value) in &e.figures {
            c.insert(format!("eval_{name}"), json!(value));
        }
    }
    c.insert("stopped_early".into(), s.stopped_early.into());
    if recipe.method.kind == Method::Lora {
        c.insert("lora_rank".into(), recipe.lora.rank.into());
    }
    c
}

/// The files of a model directory that define the model: its configs,
/// tokenizer and weights (other files there are not the model).
fn base_model_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, TrainError> {
    const DEFINING: [&str; 8] = [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "chat_template.json",
        "special_tokens_map.json",
        "model.safetensors.index.json",
    ];
    Ok(files_in(dir)?
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            DEFINING.contains(&name)
                || (name.starts_with("model") && name.ends_with(".safetensors"))
        })
        .collect())
}

/// The files directly in `dir`, sorted.
fn files_in(dir: &Path) -> Result<Vec<std::path::PathBuf>, TrainError> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(TrainError::io(dir))? {
        let path = e.map_err(TrainError::io(dir))?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
