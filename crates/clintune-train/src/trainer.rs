//! The training loop: micro-batches → one optimizer step, evaluation,
//! checkpoints, metrics.
//!
//! What a step learns from is the recipe's [`Objective`] (SFT or DPO), which
//! owns the data and the loss. Each step's loss is summed over its
//! micro-batches and divided by the step's size (trained tokens under SFT,
//! pairs under DPO): `grad_accum` micro-batches make exactly the update of
//! one batch that many times larger. The worker thread's dropout seeds
//! ([`clintune_model::reseed_dropout`]) restart from `(seed, step,
//! micro-batch)` before each micro-batch, so dropout draws depend neither on
//! where a run was interrupted nor on which worker runs the micro-batch.
//!
//! # Data parallelism
//!
//! With several workers ([`Peer`]), every worker reads the same sequence of
//! micro-batches and takes every `count`-th, starting at its rank: a step
//! covers `grad_accum × count` micro-batches. Each worker sizes all of them
//! (reading is cheap), so its share of the loss is already divided by the
//! step's total; the gradients and figures are then summed across workers
//! with burn-collective, and every worker applies the same update.
//! Only rank 0 writes metrics and checkpoints.

use crate::adamw::AdamW;
use crate::checkpoint::{self, Optim, TrainState};
use crate::data::Dataset;
use crate::error::TrainError;
use crate::metrics::Metrics;
use crate::objective::{self, Objective, StepHooks};
use crate::params::{clip_grad_norm, count, ids_from_paths};
use crate::recipe::{Method, Recipe};
use crate::schedule::Schedule;
use crate::watchdog::Watchdog;
use burn::collective::{PeerId, ReduceOperation};
use burn::module::AutodiffModule;
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn::tensor::backend::AutodiffBackend;
use clintune_core::rng::mix64;
use clintune_model::{Llama, ModelConfig, WeightFiles};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// How a run is started.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from the run directory's latest checkpoint.
    pub resume: bool,
    /// Stop (with a checkpoint) after this many steps of this invocation,
    /// e.g. to fit a scheduler's time slot; `--resume` continues.
    pub stop_after: Option<u64>,
    /// This process's place in a multi-node run; `None` on one node.
    pub cluster: Option<crate::cluster::Cluster>,
}

pub use crate::objective::EvalMetrics;
pub use crate::objective::sft::gradients;

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Optimizer steps taken in total.
    pub steps: u64,
    /// Optimizer steps taken by this invocation (0 when resuming a run
    /// that had already finished).
    pub steps_taken: u64,
    /// Trained-on tokens in total.
    pub tokens: u64,
    /// Loss of the last step.
    pub last_loss: f64,
    /// The last evaluation, if the dataset has a validation split.
    pub eval: Option<EvalMetrics>,
    /// The final checkpoint.
    pub checkpoint: PathBuf,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Whether the run reached its end (false after `stop_after`).
    pub complete: bool,
    /// `(all, trainable)` parameters.
    pub params: (usize, usize),
}

/// What the loop has seen so far.
#[derive(Default)]
struct Seen {
    loss: f64,
    steps: u64,
    eval: Option<EvalMetrics>,
    checkpoint: Option<PathBuf>,
    stopped_early: bool,
}

/// One step's figures.
struct StepStats {
    /// The objective's, `loss` first.
    figures: Vec<(&'static str, f64)>,
    grad_norm: f64,
    tokens: usize,
}

impl StepStats {
    fn loss(&self) -> f64 {
        self.figures.first().map_or(f64::NAN, |f| f.1)
    }
}

/// One worker of a data-parallel run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// This worker, from 0.
    pub rank: usize,
    /// Workers in all.
    pub count: usize,
}

impl Peer {
    /// The only worker of a run.
    pub const ALONE: Peer = Peer { rank: 0, count: 1 };

    fn id(self) -> PeerId {
        PeerId::from(self.rank)
    }
}

/// A run in progress on one device.
pub struct Trainer<B: AutodiffBackend> {
    peer: Peer,
    recipe: Recipe,
    device: B::Device,
    model: Llama<B>,
    optim: Optim<B>,
    objective: Box<dyn Objective<B>>,
    state: TrainState,
    schedule: Schedule,
    total_steps: u64,
    run_dir: PathBuf,
    watchdog: Option<Arc<Watchdog>>,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Loads the model, the data of `dataset` (opened with [`Dataset::open`]
    /// and checked with [`check_tokenizer`] once per run, not per worker) and,
    /// when resuming, the latest checkpoint.
    pub fn new(
        recipe: &Recipe,
        dataset: &Dataset,
        device: B::Device,
        resume: bool,
        peer: Peer,
    ) -> Result<Self, TrainError> {
        let run_dir = recipe.train.output.clone();
        let mut objective = objective::build::<B>(recipe, dataset, &device)?;
        let resume_from = resume_point(&run_dir, resume)?;
        let mut state = match &resume_from {
            Some(dir) => checkpoint::load_state(dir)?,
            None => TrainState {
                recipe_hash: recipe.content_hash(),
                dataset_id: dataset.manifest.id.clone(),
                ..TrainState::default()
            },
        };
        check_same_run(&state, recipe, &dataset.manifest.id, &run_dir)?;
        state.dataset_id.clone_from(&dataset.manifest.id);
        objective
            .seek(state.cursor)
            .map_err(|e| TrainError::dataset(&recipe.data.dataset, e))?;
        let model = ids_from_paths(load_model::<B>(recipe, resume_from.as_deref(), &device)?)
            .with_compute_dtype(recipe.hardware.precision.dtype());
        let mut optim = optimizer::<B>(recipe);
        if let Some(dir) = &resume_from {
            optim = checkpoint::load_optimizer(dir, optim, &device)?;
        }
        let total_steps = total_steps(recipe, objective.as_ref(), peer.count);
        Ok(Self {
            peer,
            schedule: Schedule::new(recipe.optimizer.lr, &recipe.schedule, total_steps),
            recipe: recipe.clone(),
            device,
            model,
            optim,
            objective,
            state,
            total_steps,
            run_dir,
            watchdog: None,
        })
    }

    /// Has `watchdog` time this worker's exchanges with the others.
    pub fn with_watchdog(mut self, watchdog: Arc<Watchdog>) -> Self {
        self.watchdog = Some(watchdog);
        self
    }

    /// Runs the exchange `f` under the watchdog, if any.
    fn exchange<T>(&self, what: impl FnOnce() -> String, f: impl FnOnce() -> T) -> T {
        guarded(self.watchdog.as_deref(), what, f)
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }

    /// Steps already taken (non-zero after resuming).
    pub fn step(&self) -> u64 {
        self.state.step
    }

    /// The model being trained.
    pub fn model(&self) -> &Llama<B> {
        &self.model
    }

    /// Checks, across all workers, that every one starts from the same
    /// point (step, data cursor, counters, recipe, steps in all). A node
    /// that sees another run directory or recipe fails here, on every
    /// worker at once, rather than training on diverging states.
    pub fn check_agreement(&self) -> Result<(), TrainError> {
        let here =
            clintune_core::json::to_vec("the training state", &(&self.state, self.total_steps));
        let sums = self
            .exchange(
                || "where the run starts".into(),
                || all_reduce_sum::<B>(self.peer, fingerprint_bits(&here), &self.device),
            )
            .map_err(TrainError::exchange)?;
        let count = self.peer.count as f32;
        if sums.iter().all(|&s| s == 0.0 || s == count) {
            return Ok(());
        }
        Err(TrainError::Disagreement(format!(
            "the {} workers do not start from the same point (this one: step {}, {} tokens, recipe {}): \
             every node needs the same recipe, dataset and run directory (train.output on a filesystem \
             all nodes share), and --resume on all of them or none",
            self.peer.count, self.state.step, self.state.tokens, self.state.recipe_hash
        )))
    }

    /// Trains to the end (or early stop), evaluating, checkpointing and
    /// logging as the recipe says; `on_step` sees each step's number, its
    /// figures (`loss` first) and its trained tokens.
    pub fn run(
        mut self,
        mut metrics: Option<&mut Metrics>,
        stop_after: Option<u64>,
        mut on_step: impl FnMut(u64, &[(&'static str, f64)], f64),
    ) -> Result<RunSummary, TrainError> {
        let started = Instant::now();
        let first_tokens = self.state.tokens;
        // A pause falls between steps that share data, so resuming needs
        // none of it.
        let shared = self.objective.steps_per_batch().max(1);
        let stop_at = stop_after.map_or(u64::MAX, |n| {
            self.state.step.saturating_add(n).div_ceil(shared) * shared
        });
        let mut seen = Seen {
            loss: f64::NAN,
            ..Seen::default()
        };
        while self.state.step < self.total_steps.min(stop_at) {
            let stats = self.train_step()?;
            self.state.step += 1;
            self.state.tokens += stats.tokens as u64;
            seen.loss = stats.loss();
            seen.steps += 1;
            if let Some(m) = metrics.as_deref_mut() {
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                let rate = (self.state.tokens - first_tokens) as f64 / secs;
                self.log_step(m, &stats, rate)?;
            }
            on_step(self.state.step, &stats.figures, stats.tokens as f64);
            self.evaluate_and_checkpoint(metrics.as_deref_mut(), stop_at, &mut seen)?;
            if seen.stopped_early {
                break;
            }
        }
        self.summary(seen)
    }

    fn log_step(&self, metrics: &mut Metrics, s: &StepStats, rate: f64) -> Result<(), TrainError> {
        let step = self.state.step;
        if !(step.is_multiple_of(self.recipe.train.log_every) || step == self.total_steps) {
            return Ok(());
        }
        let mut figures = vec![
            ("loss", s.loss()),
            ("lr", self.schedule.lr(step - 1)),
            ("grad_norm", s.grad_norm),
            ("tokens", self.state.tokens as f64),
            ("tokens_per_s", rate),
        ];
        figures.extend(s.figures.iter().skip(1).copied());
        metrics.log("train", step, &figures)
    }

    /// Evaluates and checkpoints when the recipe says so after a step.
    fn evaluate_and_checkpoint(
        &mut self,
        mut metrics: Option<&mut Metrics>,
        stop_at: u64,
        seen: &mut Seen,
    ) -> Result<(), TrainError> {
        let t = &self.recipe.train;
        let step = self.state.step;
        let last = step == self.total_steps;
        let periodic_eval = t.eval_every > 0 && step.is_multiple_of(t.eval_every);
        if periodic_eval {
            seen.eval = self.evaluate_and_log(metrics.as_deref_mut())?;
            seen.stopped_early = self.should_stop();
        }
        let t = &self.recipe.train;
        let periodic = t.checkpoint_every > 0 && step.is_multiple_of(t.checkpoint_every);
        if !(seen.stopped_early || periodic || last || step == stop_at) {
            return Ok(());
        }
        if last && !periodic_eval {
            seen.eval = self.evaluate_and_log(metrics.as_deref_mut())?;
        }
        if let Some(metrics) = metrics {
            metrics.flush()?;
        }
        if self.peer.rank == 0 {
            seen.checkpoint = Some(self.save()?);
        }
        Ok(())
    }

    fn summary(&self, seen: Seen) -> Result<RunSummary, TrainError> {
        let checkpoint = match seen.checkpoint {
            Some(dir) => dir,
            // Rank 0 writes the checkpoints, maybe not yet.
            None if self.peer.rank > 0 => checkpoint::dir_of(&self.run_dir, self.state.step),
            None => checkpoint::latest(&self.run_dir).ok_or_else(|| {
                TrainError::checkpoint(&self.run_dir, "the run has no steps left and no checkpoint")
            })?,
        };
        Ok(RunSummary {
            run_dir: self.run_dir.clone(),
            steps: self.state.step,
            steps_taken: seen.steps,
            tokens: self.state.tokens,
            last_loss: seen.loss,
            eval: seen.eval,
            checkpoint,
            stopped_early: seen.stopped_early,
            complete: seen.stopped_early || self.state.step >= self.total_steps,
            params: count(&self.model),
        })
    }

    /// One optimizer step over `grad_accum` micro-batches of every worker.
    fn train_step(&mut self) -> Result<StepStats, TrainError> {
        let step = self.state.step;
        let peer = self.peer;
        let seed = mix64(self.recipe.train.seed ^ mix64(step));
        let device = self.device.clone();
        let micro = self.recipe.data.grad_accum * peer.count;
        let watchdog = self.watchdog.clone();
        let mut sum = |values| sum_across::<B>(peer, watchdog.as_deref(), &device, step, values);
        let mut hooks = StepHooks {
            before: &mut |j| clintune_model::reseed_dropout(mix64(seed ^ j)),
            sum: &mut sum,
        };
        let out = self.objective.step(&self.model, micro, peer, &mut hooks)?;
        self.state.cursor = self.objective.cursor();
        let (mut grads, mut figures) = (out.grads, out.figures);
        if peer.count > 1 {
            let what = || format!("the gradients of step {}", step + 1);
            let values: Vec<f32> = figures.iter().map(|f| f.1 as f32).collect();
            let (reduced, sums) = self
                .exchange(what, || {
                    let grads =
                        grads.all_reduce::<B::InnerBackend>(peer.id(), ReduceOperation::Sum)?;
                    let sums = all_reduce_sum::<B>(peer, values, &device)?;
                    Ok::<_, burn::collective::CollectiveError>((grads, sums))
                })
                .map_err(TrainError::exchange)?;
            grads = reduced;
            for (f, sum) in figures.iter_mut().zip(sums) {
                f.1 = f64::from(sum);
            }
        }
        let grad_norm = clip_grad_norm(&self.model, &mut grads, self.recipe.optimizer.grad_clip);
        if out.units > 0 {
            let lr = self.schedule.lr(step);
            self.model = self.optim.step(lr, self.model.clone(), grads);
        }
        // The figures were read back, so the step's GPU work has run.
        clintune_model::faults::check()?;
        Ok(StepStats {
            figures,
            grad_norm,
            tokens: out.tokens,
        })
    }

    /// The objective's figures on the validation split.
    pub fn evaluate(&mut self) -> Result<Option<EvalMetrics>, TrainError> {
        let model = self.model.valid();
        self.objective
            .evaluate(&model, self.recipe.train.eval_batches)
    }

    fn evaluate_and_log(
        &mut self,
        metrics: Option<&mut Metrics>,
    ) -> Result<Option<EvalMetrics>, TrainError> {
        let Some(e) = self.evaluate()? else {
            return Ok(None);
        };
        if let Some(metrics) = metrics {
            metrics.log("eval", self.state.step, &e.figures)?;
        }
        if self.state.best_eval_loss.is_none_or(|best| e.loss < best) {
            self.state.best_eval_loss = Some(e.loss);
            self.state.stale_evals = 0;
        } else {
            self.state.stale_evals += 1;
        }
        Ok(Some(e))
    }

    fn should_stop(&self) -> bool {
        let patience = self.recipe.train.early_stopping_patience;
        patience > 0 && self.state.stale_evals >= patience
    }

    fn save(&self) -> Result<PathBuf, TrainError> {
        // Weights computed after a failed GPU kernel are not written.
        clintune_model::faults::check()?;
        checkpoint::save(
            &self.run_dir,
            &self.state,
            &self.model,
            &self.optim,
            &self.recipe,
        )
    }
}

/// Sums `values` element-wise across the workers.
/// `values` summed across the workers (as f32), for an objective during
/// step `step`; as they are when alone.
fn sum_across<B: AutodiffBackend>(
    peer: Peer,
    watchdog: Option<&Watchdog>,
    device: &B::Device,
    step: u64,
    values: Vec<f64>,
) -> Result<Vec<f64>, TrainError> {
    if peer.count == 1 {
        return Ok(values);
    }
    let what = || format!("the objective's sizes of step {}", step + 1);
    let floats = values.iter().map(|&v| v as f32).collect();
    guarded(watchdog, what, || all_reduce_sum::<B>(peer, floats, device))
        .map(|sums| sums.into_iter().map(f64::from).collect())
        .map_err(TrainError::exchange)
}

/// Runs the exchange `f` under `watchdog`, if any.
fn guarded<T>(
    watchdog: Option<&Watchdog>,
    what: impl FnOnce() -> String,
    f: impl FnOnce() -> T,
) -> T {
    match watchdog {
        Some(w) => w.exchange(what, f),
        None => f(),
    }
}

fn all_reduce_sum<B: AutodiffBackend>(
    peer: Peer,
    mut values: Vec<f32>,
    device: &B::Device,
) -> Result<Vec<f32>, burn::collective::CollectiveError> {
    let len = values.len();
    // Between nodes, burn's ring all-reduce splits a tensor into one slice
    // per node, so it needs at least that many elements (there are no more
    // nodes than workers).
    values.resize(len.max(peer.count), 0.0);
    let padded = values.len();
    let t = Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(values, [padded]), device);
    let summed = burn::collective::all_reduce::<B::InnerBackend>(
        peer.id(),
        t.into_primitive().tensor(),
        ReduceOperation::Sum,
    )?;
    let summed = Tensor::<B::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(summed));
    Ok(summed.into_data().iter::<f32>().take(len).collect())
}

/// The 64 bits of a fingerprint as 0.0 / 1.0, so that a sum across workers
/// is exact: each sums to 0 or to the worker count when all agree.
fn fingerprint_bits(data: &[u8]) -> Vec<f32> {
    let hex = clintune_core::hash::sha256_hex(data);
    let word = u64::from_str_radix(&hex[..16], 16).unwrap_or(0);
    (0..64).map(|i| ((word >> i) & 1) as f32).collect()
}

/// The base model and the tokenizer the dataset was encoded with must be
/// the same, or every id means something else.
pub fn check_tokenizer(recipe: &Recipe) -> Result<(), TrainError> {
    let file = |dir: &Path| dir.join(clintune_text::tokenizer::TOKENIZER_FILE);
    let hash = |path: PathBuf| {
        clintune_core::hash::file_digest(&path)
            .map(|d| d.sha256)
            .map_err(TrainError::io(&path))
    };
    let (model, data) = (
        hash(file(&recipe.model.base))?,
        hash(file(&recipe.data.dataset))?,
    );
    if model != data {
        return Err(TrainError::model(
            &recipe.model.base,
            format!(
                "its tokenizer.json differs from the one {} was encoded with; curate with this model's tokenizer (curate --tokenizer {})",
                recipe.data.dataset.display(),
                recipe.model.base.display()
            ),
        ));
    }
    Ok(())
}

/// A checkpoint resumes only under the recipe and on the data it was made
/// with (a checkpoint that recorded no dataset predates the check).
pub fn check_same_run(
    state: &TrainState,
    recipe: &Recipe,
    dataset_id: &str,
    run_dir: &Path,
) -> Result<(), TrainError> {
    if state.recipe_hash != recipe.content_hash() {
        return Err(TrainError::RecipeChanged {
            run_dir: run_dir.to_path_buf(),
            recorded: state.recipe_hash.clone(),
            current: recipe.content_hash(),
        });
    }
    if !state.dataset_id.is_empty() && state.dataset_id != dataset_id {
        return Err(TrainError::DatasetChanged {
            run_dir: run_dir.to_path_buf(),
            dataset: recipe.data.dataset.clone(),
            recorded: state.dataset_id.clone(),
            current: dataset_id.to_string(),
        });
    }
    Ok(())
}

/// The checkpoint to resume from, or `None` for a fresh run; a fresh run in a
/// directory that already has checkpoints is refused rather than mixed in.
fn resume_point(run_dir: &Path, resume: bool) -> Result<Option<PathBuf>, TrainError> {
    match (resume, checkpoint::latest(run_dir)) {
        (false, Some(dir)) => Err(TrainError::checkpoint(
            &dir,
            "the run directory already has checkpoints: pass --resume to continue, or set another train.output",
        )),
        (_, latest) => Ok(latest),
    }
}

/// The model of a run: the base, with fresh or checkpointed adapters (LoRA),
/// or the checkpointed weights (full). Adapters stay unmerged.
pub fn load_model<B: Backend>(
    recipe: &Recipe,
    checkpoint: Option<&Path>,
    device: &B::Device,
) -> Result<Llama<B>, TrainError> {
    let base = &recipe.model.base;
    let config = ModelConfig::load(base).map_err(|e| TrainError::model(base, e))?;
    let weights_dir = match (recipe.method.kind, checkpoint) {
        (Method::Full, Some(dir)) => dir,
        _ => base.as_path(),
    };
    let weights = WeightFiles::open(weights_dir).map_err(|e| TrainError::model(weights_dir, e))?;
    let model = Llama::<B>::load(&config, &weights, device)
        .map_err(|e| TrainError::model(weights_dir, e))?;
    match (recipe.method.kind, checkpoint) {
        (Method::Full, _) => Ok(model),
        (Method::Lora, None) => Ok(model.with_lora(&recipe.lora, recipe.train.seed)),
        (Method::Lora, Some(dir)) => model
            .with_peft_adapter(dir)
            .map_err(|e| TrainError::checkpoint(dir, e)),
    }
}

fn optimizer<B: AutodiffBackend>(recipe: &Recipe) -> Optim<B> {
    let o = &recipe.optimizer;
    let betas = [o.betas[0] as f32, o.betas[1] as f32];
    AdamW::new(betas, o.eps as f32, o.weight_decay as f32).into()
}

/// `max_steps`, or the steps of `epochs` passes over the training split.
fn total_steps<B: AutodiffBackend>(
    recipe: &Recipe,
    objective: &dyn Objective<B>,
    workers: usize,
) -> u64 {
    if recipe.train.max_steps > 0 {
        return recipe.train.max_steps;
    }
    let batches: u64 = (0..recipe.train.epochs)
        .map(|e| objective.batches_in_epoch(e))
        .sum();
    batches.div_ceil((recipe.data.grad_accum * workers) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_resumes_only_on_its_recipe_and_data() {
        let recipe = Recipe::parse(
            "[model]\nbase = \"m\"\n[data]\ndataset = \"d\"\n[train]\nmax_steps = 2\n",
        )
        .unwrap();
        let state = TrainState {
            recipe_hash: recipe.content_hash(),
            dataset_id: "sha256:aa".into(),
            ..TrainState::default()
        };
        let run = Path::new("run");
        assert!(check_same_run(&state, &recipe, "sha256:aa", run).is_ok());
        let err = check_same_run(&state, &recipe, "sha256:bb", run).unwrap_err();
        assert!(matches!(err, TrainError::DatasetChanged { .. }), "{err}");
        assert!(err.to_string().contains("curated again"), "{err}");
        // Checkpoints from before the dataset was recorded still resume.
        let old = TrainState {
            dataset_id: String::new(),
            ..state.clone()
        };
        assert!(check_same_run(&old, &recipe, "sha256:bb", run).is_ok());
        let other = TrainState {
            recipe_hash: "sha256:cc".into(),
            ..state
        };
        let err = check_same_run(&other, &recipe, "sha256:aa", run).unwrap_err();
        assert!(matches!(err, TrainError::RecipeChanged { .. }), "{err}");
    }
}
