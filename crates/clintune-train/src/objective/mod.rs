//! What a run learns from: each objective owns its data (train and
//! validation readers) and its loss, and the trainer stays the same for all.
//!
//! A new objective (KTO, ORPO, …) is one more file implementing
//! [`Objective`] and one more [`ObjectiveKind`].

pub mod config;
pub mod dpo;
pub mod grpo;
pub mod grpo_loss;
mod rollout;
pub mod sft;

use crate::data::Dataset;
use crate::error::TrainError;
use crate::recipe::Recipe;
use crate::trainer::Peer;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use clintune_curate::reader::{Cursor, ReaderError};
use clintune_model::Llama;
pub use config::{DpoLoss, ObjectiveKind, ObjectiveSection};

/// Validation figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalMetrics {
    /// The objective's loss: mean negative log-likelihood per trained token
    /// (SFT), mean loss per pair (DPO). Early stopping watches it.
    pub loss: f64,
    /// Every figure, by the name it is logged under, `loss` first.
    pub figures: Vec<(&'static str, f64)>,
    /// Tokens (SFT), pairs (DPO) or completions (GRPO) evaluated.
    pub units: u64,
    /// What `units` counts: `tokens`, `pairs` or `completions`.
    pub unit: &'static str,
}

impl EvalMetrics {
    /// The figure called `name`.
    pub fn figure(&self, name: &str) -> Option<f64> {
        self.figures.iter().find(|(n, _)| *n == name).map(|f| f.1)
    }
}

/// One step of this worker.
pub struct StepOut {
    /// This worker's gradients, already scaled by the step's `units`.
    pub grads: GradientsParams,
    /// What the step's loss is averaged over, all workers together:
    /// trained tokens (SFT) or pairs (DPO). No update when 0.
    pub units: usize,
    /// Trained-on tokens of the step, all workers together.
    pub tokens: usize,
    /// This worker's share of each figure, `loss` first: summed across
    /// workers they are the step's figures.
    pub figures: Vec<(&'static str, f64)>,
}

/// What the trainer lends an objective for one step.
pub struct StepHooks<'a> {
    /// Runs ahead of each micro-batch with its index in the step (it seeds
    /// dropout, so a micro-batch draws the same masks on any worker).
    pub before: &'a mut dyn FnMut(u64),
    /// Sums values across the workers (returns them as they are when
    /// alone): for sizes known only once a worker has computed its share,
    /// such as the tokens of sampled completions.
    pub sum: &'a mut dyn FnMut(Vec<f64>) -> Result<Vec<f64>, TrainError>,
}

/// A training objective with its data.
pub trait Objective<B: AutodiffBackend> {
    /// Which one it is.
    fn kind(&self) -> ObjectiveKind;
    /// Where the training data reader is (saved in checkpoints).
    fn cursor(&self) -> Cursor;
    /// Restores a saved cursor.
    fn seek(&mut self, cursor: Cursor) -> Result<(), ReaderError>;
    /// Micro-batches in one epoch of the training split.
    fn batches_in_epoch(&self, epoch: u64) -> u64;
    /// Steps that share data read once (GRPO's `num_iterations`): a run
    /// pauses (`--stop-after`) only between such runs of steps, and
    /// periodic checkpoints fall between them.
    fn steps_per_batch(&self) -> u64 {
        1
    }
    /// Reads the step's `micro` micro-batches (those of every worker: reading
    /// is cheap, and each worker then knows the step's size) and computes
    /// this worker's gradients on its share, every `peer.count`-th from its
    /// rank. An error (a grader's, an exchange's) stops the run.
    fn step(
        &mut self,
        model: &Llama<B>,
        micro: usize,
        peer: Peer,
        hooks: &mut StepHooks<'_>,
    ) -> Result<StepOut, TrainError>;
    /// Figures on the validation split (at most `max_batches` micro-batches,
    /// 0 for all); `None` without validation data. An error (a grader's)
    /// stops the run.
    fn evaluate(
        &mut self,
        model: &Llama<B::InnerBackend>,
        max_batches: u64,
    ) -> Result<Option<EvalMetrics>, TrainError>;
}

/// The recipe's objective over `dataset`, on `device`.
pub fn build<B: AutodiffBackend>(
    recipe: &Recipe,
    dataset: &Dataset,
    device: &B::Device,
) -> Result<Box<dyn Objective<B>>, TrainError> {
    Ok(match recipe.objective.kind {
        ObjectiveKind::Sft => Box::new(sft::Sft::<B>::new(recipe, dataset, device)?),
        ObjectiveKind::Dpo => Box::new(dpo::Dpo::<B>::new(recipe, dataset, device)?),
        ObjectiveKind::Grpo => Box::new(grpo::Grpo::<B>::new(recipe, dataset, device)?),
    })
}

/// How many micro-batches to evaluate: `max` of `available`, all when 0.
fn eval_batches(max: u64, available: u64) -> u64 {
    match max {
        0 => available,
        n => n.min(available),
    }
}
