//! The training loop: micro-batches → one optimizer step, evaluation,
//! checkpoints, metrics.
//!
//! Each step's loss is the negative log-likelihood summed over every trained
//! token of its micro-batches, divided by that count: `grad_accum` micro-
//! batches make exactly the update of one batch that many times larger. The
//! backend's random generator is reseeded from `(seed, step)` before each
//! step, so dropout draws do not depend on where a run was interrupted.

use crate::checkpoint::{self, Optim, TrainState};
use crate::data::{Dataset, Inputs, reader};
use crate::error::TrainError;
use crate::metrics::Metrics;
use crate::params::{clip_grad_norm, count, ids_from_paths};
use crate::recipe::{Method, Recipe};
use crate::schedule::Schedule;
use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clintune_core::rng::mix64;
use clintune_curate::reader::PackedReader;
use clintune_model::loss::token_nll;
use clintune_model::{Llama, ModelConfig, WeightFiles};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a run is started.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from the run directory's latest checkpoint.
    pub resume: bool,
    /// Stop (with a checkpoint) after this many steps of this invocation,
    /// e.g. to fit a scheduler's time slot; `--resume` continues.
    pub stop_after: Option<u64>,
}

/// Validation metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalMetrics {
    /// Mean negative log-likelihood per trained token.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Share of trained tokens the model ranks first.
    pub accuracy: f64,
    /// Tokens evaluated.
    pub tokens: u64,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Optimizer steps taken in total.
    pub steps: u64,
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

/// One step's figures.
struct StepStats {
    loss: f64,
    grad_norm: f64,
    tokens: usize,
}

/// A run in progress on one device.
pub struct Trainer<B: AutodiffBackend> {
    recipe: Recipe,
    device: B::Device,
    model: Llama<B>,
    optim: Optim<B>,
    train: PackedReader,
    validation: Option<PackedReader>,
    state: TrainState,
    schedule: Schedule,
    total_steps: u64,
    run_dir: PathBuf,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Loads the model, data and (when resuming) the latest checkpoint.
    pub fn new(recipe: &Recipe, device: B::Device, resume: bool) -> Result<Self, TrainError> {
        let run_dir = recipe.train.output.clone();
        let dataset = Dataset::open(&recipe.data.dataset)?;
        check_tokenizer(recipe)?;
        let pad = dataset.pad_id();
        let mut train = reader(&recipe.data.dataset, "train", recipe, pad)?;
        let validation = reader(&recipe.data.dataset, "validation", recipe, pad).ok();
        let resume_from = resume_point(&run_dir, resume)?;
        let state = match &resume_from {
            Some(dir) => checkpoint::load_state(dir)?,
            None => TrainState {
                recipe_hash: recipe.content_hash(),
                ..TrainState::default()
            },
        };
        if state.recipe_hash != recipe.content_hash() {
            return Err(TrainError::Unsupported(format!(
                "{}: the run was started with another recipe (hash {}); resuming needs the same recipe",
                run_dir.display(),
                state.recipe_hash
            )));
        }
        train
            .seek(state.cursor)
            .map_err(|e| TrainError::dataset(&recipe.data.dataset, e))?;
        let model = ids_from_paths(load_model::<B>(recipe, resume_from.as_deref(), &device)?);
        let mut optim = optimizer::<B>(recipe);
        if let Some(dir) = &resume_from {
            optim = checkpoint::load_optimizer(dir, optim, &device)?;
        }
        let total_steps = total_steps(recipe, &train);
        Ok(Self {
            schedule: Schedule::new(recipe.optimizer.lr, &recipe.schedule, total_steps),
            recipe: recipe.clone(),
            device,
            model,
            optim,
            train,
            validation,
            state,
            total_steps,
            run_dir,
        })
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

    /// Trains to the end (or early stop), evaluating, checkpointing and
    /// logging as the recipe says; `on_step` sees each step's number and loss.
    pub fn run(
        mut self,
        metrics: &mut Metrics,
        stop_after: Option<u64>,
        mut on_step: impl FnMut(u64, f64, f64),
    ) -> Result<RunSummary, TrainError> {
        let t = self.recipe.train.clone();
        let (mut last_loss, mut eval, mut stopped_early) = (f64::NAN, None, false);
        let mut last_checkpoint = None;
        let started = Instant::now();
        let (first, first_tokens) = (self.state.step, self.state.tokens);
        let stop_at = stop_after.map_or(u64::MAX, |n| first.saturating_add(n));
        while self.state.step < self.total_steps.min(stop_at) {
            let stats = self.train_step();
            self.state.step += 1;
            self.state.tokens += stats.tokens as u64;
            last_loss = stats.loss;
            let step = self.state.step;
            if step.is_multiple_of(t.log_every) || step == self.total_steps {
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                metrics.log(
                    "train",
                    step,
                    &[
                        ("loss", stats.loss),
                        ("lr", self.schedule.lr(step - 1)),
                        ("grad_norm", stats.grad_norm),
                        ("tokens", self.state.tokens as f64),
                        (
                            "tokens_per_s",
                            (self.state.tokens - first_tokens) as f64 / secs,
                        ),
                    ],
                )?;
            }
            on_step(step, stats.loss, stats.tokens as f64);
            if t.eval_every > 0 && step.is_multiple_of(t.eval_every) && step < self.total_steps {
                eval = self.evaluate_and_log(metrics)?;
                if self.should_stop() {
                    stopped_early = true;
                }
            }
            if stopped_early
                || (t.checkpoint_every > 0 && step.is_multiple_of(t.checkpoint_every))
                || step == self.total_steps
                || step == stop_at
            {
                if step == self.total_steps || stopped_early {
                    eval = self.evaluate_and_log(metrics)?;
                }
                metrics.flush()?;
                last_checkpoint = Some(self.save()?);
            }
            if stopped_early {
                break;
            }
        }
        let checkpoint = match last_checkpoint {
            Some(dir) => dir,
            None => checkpoint::latest(&self.run_dir).ok_or_else(|| {
                TrainError::checkpoint(&self.run_dir, "the run has no steps left and no checkpoint")
            })?,
        };
        Ok(RunSummary {
            run_dir: self.run_dir.clone(),
            steps: self.state.step,
            tokens: self.state.tokens,
            last_loss,
            eval,
            checkpoint,
            stopped_early,
            complete: stopped_early || self.state.step >= self.total_steps,
            params: count(&self.model),
        })
    }

    /// One optimizer step over `grad_accum` micro-batches.
    fn train_step(&mut self) -> StepStats {
        let step = self.state.step;
        B::seed(&self.device, mix64(self.recipe.train.seed ^ mix64(step)));
        let micro: Vec<Inputs<B>> = (0..self.recipe.data.grad_accum)
            .map(|_| {
                let batch = self.train.next_batch();
                self.state.cursor = batch.cursor_after;
                Inputs::new(&batch, &self.device)
            })
            .collect();
        let (mut grads, loss, tokens) = gradients(&self.model, micro);
        let grad_norm = clip_grad_norm(&self.model, &mut grads, self.recipe.optimizer.grad_clip);
        if tokens > 0 {
            let lr = self.schedule.lr(step);
            self.model = self.optim.step(lr, self.model.clone(), grads);
        }
        StepStats {
            loss,
            grad_norm,
            tokens,
        }
    }

    /// Loss, perplexity and token accuracy on the validation split.
    pub fn evaluate(&mut self) -> Option<EvalMetrics> {
        let reader = self.validation.as_mut()?;
        reader.seek(Default::default()).ok()?;
        let batches = match self.recipe.train.eval_batches {
            0 => reader.batches_in_epoch(0),
            n => n.min(reader.batches_in_epoch(0)),
        };
        let model = self.model.valid();
        let device = model.device();
        let (mut nll, mut correct, mut tokens) = (0.0f64, 0u64, 0u64);
        for _ in 0..batches {
            let m = Inputs::<B::InnerBackend>::new(&reader.next_batch(), &device);
            let logits = model.forward(&m.batch);
            let hits = logits
                .clone()
                .argmax(2)
                .squeeze_dim::<2>(2)
                .equal(m.targets.clone())
                .float()
                * m.weights.clone();
            correct += hits.sum().into_scalar().elem::<f64>() as u64;
            nll += f64::from(
                token_nll(logits, m.targets, m.weights)
                    .into_scalar()
                    .elem::<f32>(),
            );
            tokens += m.trained as u64;
        }
        (tokens > 0).then(|| {
            let loss = nll / tokens as f64;
            EvalMetrics {
                loss,
                perplexity: loss.exp(),
                accuracy: correct as f64 / tokens as f64,
                tokens,
            }
        })
    }

    fn evaluate_and_log(
        &mut self,
        metrics: &mut Metrics,
    ) -> Result<Option<EvalMetrics>, TrainError> {
        let Some(e) = self.evaluate() else {
            return Ok(None);
        };
        metrics.log(
            "eval",
            self.state.step,
            &[
                ("loss", e.loss),
                ("perplexity", e.perplexity),
                ("accuracy", e.accuracy),
            ],
        )?;
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
        checkpoint::save(
            &self.run_dir,
            &self.state,
            &self.model,
            &self.optim,
            &self.recipe,
        )
    }
}

/// The gradients of one optimizer step over `micro` micro-batches, the
/// step's loss and its trained-token count. The loss is the summed token
/// negative log-likelihood over all micro-batches divided by their total
/// trained tokens, so splitting a batch into micro-batches changes nothing
/// but rounding.
pub fn gradients<B: AutodiffBackend>(
    model: &Llama<B>,
    micro: Vec<Inputs<B>>,
) -> (GradientsParams, f64, usize) {
    let tokens: usize = micro.iter().map(|m| m.trained).sum();
    let mut accumulator = GradientsAccumulator::<Llama<B>>::new();
    let mut loss = 0.0;
    for m in micro.into_iter().filter(|m| m.trained > 0) {
        let logits = model.forward(&m.batch);
        let nll = token_nll(logits, m.targets, m.weights) / tokens as f64;
        loss += f64::from(nll.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(nll.backward(), model);
        accumulator.accumulate(model, grads);
    }
    (accumulator.grads(), loss, tokens)
}

/// The base model and the tokenizer the dataset was encoded with must be
/// the same, or every id means something else.
fn check_tokenizer(recipe: &Recipe) -> Result<(), TrainError> {
    let file = |dir: &Path| dir.join(clintune_curate::tokenizer::TOKENIZER_FILE);
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

/// The checkpoint to resume from, or `None` for a fresh run; a fresh run in a
/// directory that already has checkpoints is refused rather than mixed in.
fn resume_point(run_dir: &Path, resume: bool) -> Result<Option<PathBuf>, TrainError> {
    let latest = checkpoint::latest(run_dir);
    match (resume, latest) {
        (true, Some(dir)) => Ok(Some(dir)),
        (true, None) => Ok(None),
        (false, Some(dir)) => Err(TrainError::checkpoint(
            &dir,
            "the run directory already has checkpoints: pass --resume to continue, or set another train.output",
        )),
        (false, None) => Ok(None),
    }
}

/// The model to train: the base, with fresh or checkpointed adapters (LoRA),
/// or the checkpointed weights (full).
fn load_model<B: AutodiffBackend>(
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
    AdamWConfig::new()
        .with_beta_1(o.betas[0] as f32)
        .with_beta_2(o.betas[1] as f32)
        .with_epsilon(o.eps as f32)
        .with_weight_decay(o.weight_decay as f32)
        .init::<B, Llama<B>>()
}

/// `max_steps`, or the steps of `epochs` passes over the training split.
fn total_steps(recipe: &Recipe, train: &PackedReader) -> u64 {
    if recipe.train.max_steps > 0 {
        return recipe.train.max_steps;
    }
    let batches: u64 = (0..recipe.train.epochs)
        .map(|e| train.batches_in_epoch(e))
        .sum();
    batches.div_ceil(recipe.data.grad_accum as u64)
}
