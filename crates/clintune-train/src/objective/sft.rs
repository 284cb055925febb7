//! Supervised fine-tuning: the summed negative log-likelihood of every
//! trained token of a step, divided by their count, so that `grad_accum`
//! micro-batches (or workers) make exactly the update of one larger batch.

use super::{EvalMetrics, Objective, ObjectiveKind, StepHooks, StepOut, eval_batches};
use crate::data::{Dataset, Inputs, reader, trained_tokens, validation_reader};
use crate::error::TrainError;
use crate::recipe::Recipe;
use crate::trainer::Peer;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clintune_curate::reader::{Cursor, PackedReader, ReaderError};
use clintune_model::Llama;
use clintune_model::loss::token_nll;

/// Next-token likelihood over packed examples.
pub struct Sft<B: AutodiffBackend> {
    train: PackedReader,
    validation: Option<PackedReader>,
    device: B::Device,
}

impl<B: AutodiffBackend> Sft<B> {
    /// Readers over the dataset's train and validation splits.
    pub fn new(recipe: &Recipe, dataset: &Dataset, device: &B::Device) -> Result<Self, TrainError> {
        let pad = dataset.pad_id();
        Ok(Self {
            train: reader(&recipe.data.dataset, "train", recipe, pad)?,
            validation: validation_reader(&recipe.data.dataset, recipe, pad)?,
            device: device.clone(),
        })
    }

    /// Figures on the validation split; `None` without one.
    fn validate(
        &mut self,
        model: &Llama<B::InnerBackend>,
        max_batches: u64,
    ) -> Option<EvalMetrics> {
        let reader = self.validation.as_mut()?;
        reader.seek(Cursor::default()).ok()?;
        let batches = eval_batches(max_batches, reader.batches_in_epoch(0));
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
                figures: vec![
                    ("loss", loss),
                    ("perplexity", loss.exp()),
                    ("accuracy", correct as f64 / tokens as f64),
                ],
                units: tokens,
                unit: "tokens",
            }
        })
    }
}

impl<B: AutodiffBackend> Objective<B> for Sft<B> {
    fn kind(&self) -> ObjectiveKind {
        ObjectiveKind::Sft
    }

    fn cursor(&self) -> Cursor {
        self.train.cursor()
    }

    fn seek(&mut self, cursor: Cursor) -> Result<(), ReaderError> {
        self.train.seek(cursor)
    }

    fn batches_in_epoch(&self, epoch: u64) -> u64 {
        self.train.batches_in_epoch(epoch)
    }

    fn step(
        &mut self,
        model: &Llama<B>,
        micro: usize,
        peer: Peer,
        hooks: &mut StepHooks<'_>,
    ) -> Result<StepOut, TrainError> {
        let batches: Vec<_> = (0..micro).map(|_| self.train.next_batch()).collect();
        let tokens: usize = batches.iter().map(trained_tokens).sum();
        let mine: Vec<(u64, Inputs<B>)> = batches
            .iter()
            .enumerate()
            .filter(|(j, _)| j % peer.count == peer.rank)
            .map(|(j, b)| (j as u64, Inputs::new(b, &self.device)))
            .collect();
        let (grads, loss) = gradients(model, mine, tokens, hooks.before);
        Ok(StepOut {
            grads,
            units: tokens,
            tokens,
            figures: vec![("loss", loss)],
        })
    }

    fn evaluate(
        &mut self,
        model: &Llama<B::InnerBackend>,
        max_batches: u64,
    ) -> Result<Option<EvalMetrics>, TrainError> {
        Ok(self.validate(model, max_batches))
    }
}

/// The gradients of `micro` micro-batches (each with its index in the step)
/// and their share of the step's loss: the summed token negative
/// log-likelihood divided by `step_tokens`, the trained tokens of the whole
/// step. Splitting a step's batch into micro-batches, or across workers,
/// therefore changes nothing but rounding. `before` runs ahead of each
/// micro-batch with its index (to seed dropout).
pub fn gradients<B: AutodiffBackend>(
    model: &Llama<B>,
    micro: Vec<(u64, Inputs<B>)>,
    step_tokens: usize,
    before: &mut dyn FnMut(u64),
) -> (GradientsParams, f64) {
    let mut accumulator = GradientsAccumulator::<Llama<B>>::new();
    let mut loss = 0.0;
    for (index, m) in micro {
        before(index);
        let logits = model.forward(&m.batch);
        let nll = token_nll(logits, m.targets, m.weights) / step_tokens.max(1) as f64;
        loss += f64::from(nll.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(nll.backward(), model);
        accumulator.accumulate(model, grads);
    }
    (accumulator.grads(), loss)
}
