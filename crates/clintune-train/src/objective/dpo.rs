//! Direct preference optimisation (Rafailov et al., 2023) on a dataset's
//! `preference` pairs, with TRL's losses and figures.
//!
//! A micro-batch of `P` pairs is `2P` rows: every chosen answer after its
//! prompt, then every rejected one (TRL's order). A row's log-probability is
//! the sum over its answer's scored tokens. The reference is the base model:
//! under LoRA the policy with its adapters switched off (no second copy of
//! the weights), under full fine-tuning a frozen copy loaded once. Its
//! log-probabilities are computed beside the policy's at each micro-batch,
//! so a resumed run needs nothing but its checkpoint.
//!
//! The step's loss is the mean over its pairs: each micro-batch's summed
//! pair losses are divided by the pairs of the whole step, as SFT divides by
//! tokens, so micro-batches and workers add up to one larger batch.

use super::config::{DpoLoss, ObjectiveKind, ObjectiveSection};
use super::{EvalMetrics, Objective, StepHooks, StepOut, eval_batches};
use crate::data::Dataset;
use crate::error::TrainError;
use crate::recipe::{Method, Recipe};
use crate::trainer::{Peer, load_model};
use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, relu};
use burn::tensor::backend::AutodiffBackend;
use clintune_curate::pairs::{PairReader, PairTokens, read_pairs};
use clintune_curate::reader::{Cursor, ReaderError};
use clintune_model::loss::token_log_probs;
use clintune_model::{Batch, Llama};
use std::path::Path;

/// What the policy is compared with. It runs on the policy's own backend
/// (untracked, so no graph is built): the same kernels give the same
/// numbers, and a policy equal to its reference scores exactly 0 rewards.
pub(super) enum Reference<B: AutodiffBackend> {
    /// LoRA: the policy without its adapters.
    AdaptersOff,
    /// Full fine-tuning: the base, frozen.
    Frozen(Box<Llama<B>>),
}

impl<B: AutodiffBackend> Reference<B> {
    /// The recipe's reference: the policy without its adapters under LoRA,
    /// a frozen copy of the base under full fine-tuning.
    pub(super) fn new(recipe: &Recipe, device: &B::Device) -> Result<Self, TrainError> {
        Ok(match recipe.method.kind {
            Method::Lora => Reference::AdaptersOff,
            Method::Full => {
                let base = load_model::<B>(&base_only(recipe), None, device)?;
                let dtype = recipe.hardware.precision.dtype();
                Reference::Frozen(Box::new(base.no_grad().with_compute_dtype(dtype)))
            }
        })
    }

    /// The reference model beside `policy` during training (a clone shares
    /// the weights).
    pub(super) fn beside(&self, policy: &Llama<B>) -> Llama<B> {
        match self {
            Reference::AdaptersOff => policy.clone().without_lora(),
            Reference::Frozen(model) => (**model).clone(),
        }
    }
}

/// DPO over the dataset's pairs.
pub struct Dpo<B: AutodiffBackend> {
    cfg: ObjectiveSection,
    seq_len: usize,
    pad_id: u32,
    train: PairReader,
    validation: Option<PairReader>,
    reference: Reference<B>,
    device: B::Device,
}

impl<B: AutodiffBackend> Dpo<B> {
    /// Readers over the dataset's train and validation pairs, and the
    /// reference model.
    pub fn new(recipe: &Recipe, dataset: &Dataset, device: &B::Device) -> Result<Self, TrainError> {
        let dir = &recipe.data.dataset;
        let d = &recipe.data;
        let seed = recipe.train.seed;
        let train = PairReader::new(pairs(dir, "train")?, d.micro_batch, seed, d.shuffle)
            .map_err(|e| TrainError::dataset(dir, e))?;
        let validation = match pairs(dir, "validation") {
            Ok(p) if !p.is_empty() => Some(
                PairReader::new(p, d.micro_batch, seed, false)
                    .map_err(|e| TrainError::dataset(dir, e))?,
            ),
            Ok(_) | Err(TrainError::NoPairs { .. }) => None,
            Err(e) => return Err(e),
        };
        report_cut(&train, d.seq_len);
        let reference = Reference::new(recipe, device)?;
        Ok(Self {
            cfg: recipe.objective.clone(),
            seq_len: d.seq_len,
            pad_id: dataset.pad_id(),
            train,
            validation,
            reference,
            device: device.clone(),
        })
    }

    /// The reference's log-probabilities of `rows` during training, on the
    /// host.
    fn reference_logps(&self, policy: &Llama<B>, rows: &Rows) -> Vec<f32> {
        host(sequence_logps(
            &self.reference.beside(policy),
            rows,
            &self.device,
        ))
    }

    /// The same in evaluation, beside a policy on the inner backend.
    fn reference_logps_valid(&self, policy: &Llama<B::InnerBackend>, rows: &Rows) -> Vec<f32> {
        let logps = match &self.reference {
            Reference::AdaptersOff => {
                sequence_logps(&policy.clone().without_lora(), rows, &self.device)
            }
            Reference::Frozen(model) => sequence_logps(&model.valid(), rows, &self.device),
        };
        host(logps)
    }

    /// Loss and figures of `batches` of pairs under `model` (validation).
    fn score(
        &self,
        model: &Llama<B::InnerBackend>,
        reader: &mut PairReader,
        batches: u64,
    ) -> Tally {
        let mut tally = Tally::default();
        for _ in 0..batches {
            let batch = reader.next_batch();
            let rows = Rows::new(reader.pairs(), &batch.pairs, self.seq_len, self.pad_id);
            let reference = self.reference_logps_valid(model, &rows);
            let policy = sequence_logps(model, &rows, &self.device);
            let losses = pair_losses(&self.cfg, policy.clone(), &reference, &rows.scored);
            tally.add(&self.cfg, &host(losses), &host(policy), &reference);
        }
        tally
    }

    /// Figures on the validation split; `None` without one.
    fn validate(
        &mut self,
        model: &Llama<B::InnerBackend>,
        max_batches: u64,
    ) -> Option<EvalMetrics> {
        let mut reader = self.validation.take()?;
        let evaluated = reader.seek(Cursor::default()).ok().map(|()| {
            let batches = eval_batches(max_batches, reader.batches_in_epoch());
            self.score(model, &mut reader, batches)
        });
        self.validation = Some(reader);
        let tally = evaluated?;
        (tally.pairs > 0).then(|| {
            let figures = tally.figures(tally.pairs as f64);
            EvalMetrics {
                loss: figures[0].1,
                figures,
                units: tally.pairs as u64,
                unit: "pairs",
            }
        })
    }
}

/// The recipe with full fine-tuning's method, so that `load_model` loads
/// the base itself (no adapter, no checkpoint).
fn base_only(recipe: &Recipe) -> Recipe {
    let mut r = recipe.clone();
    r.method.kind = Method::Full;
    r
}

/// The pairs of `split`; [`TrainError::NoPairs`] when it has none.
fn pairs(dir: &Path, split: &str) -> Result<Vec<PairTokens>, TrainError> {
    let no_pairs = || TrainError::NoPairs {
        dataset: dir.to_path_buf(),
        split: split.to_owned(),
    };
    match read_pairs(dir, split) {
        Ok(p) if p.is_empty() => Err(no_pairs()),
        Ok(p) => Ok(p),
        Err(ReaderError::MissingSplit { .. }) => Err(no_pairs()),
        Err(e @ ReaderError::MissingColumn { .. }) => Err(TrainError::dataset(
            dir,
            format!("{e}: it was curated before preference pairs existed; curate it again"),
        )),
        Err(e) => Err(TrainError::dataset(dir, e)),
    }
}

/// Says how many training pairs do not fit in `seq_len` and are cut.
fn report_cut(train: &PairReader, seq_len: usize) {
    let longer = |p: &PairTokens| p.prompt.len() + p.chosen.len().max(p.rejected.len()) > seq_len;
    let cut = train.pairs().iter().filter(|p| longer(p)).count();
    if cut > 0 {
        tracing::warn!(
            cut,
            pairs = train.pairs().len(),
            seq_len,
            "pairs longer than data.seq_len are cut: the prompt loses its start, then an answer its end"
        );
    }
}

impl<B: AutodiffBackend> Objective<B> for Dpo<B> {
    fn kind(&self) -> ObjectiveKind {
        ObjectiveKind::Dpo
    }

    fn cursor(&self) -> Cursor {
        self.train.cursor()
    }

    fn seek(&mut self, cursor: Cursor) -> Result<(), ReaderError> {
        self.train.seek(cursor)
    }

    fn batches_in_epoch(&self, _epoch: u64) -> u64 {
        self.train.batches_in_epoch()
    }

    fn step(
        &mut self,
        model: &Llama<B>,
        micro: usize,
        peer: Peer,
        hooks: &mut StepHooks<'_>,
    ) -> Result<StepOut, TrainError> {
        let batches: Vec<_> = (0..micro).map(|_| self.train.next_batch()).collect();
        // Every worker sizes the whole step; each builds the rows of its own
        // micro-batches only.
        let all = self.train.pairs();
        let pairs: usize = batches.iter().map(|b| b.pairs.len()).sum();
        let tokens: usize = batches
            .iter()
            .map(|b| scored_tokens(all, &b.pairs, self.seq_len))
            .sum();
        let mut accumulator = GradientsAccumulator::<Llama<B>>::new();
        let mut tally = Tally::default();
        for (j, batch) in batches.iter().enumerate() {
            if j % peer.count != peer.rank {
                continue;
            }
            (hooks.before)(j as u64);
            let rows = &Rows::new(all, &batch.pairs, self.seq_len, self.pad_id);
            let reference = self.reference_logps(model, rows);
            let policy = sequence_logps(model, rows, &self.device);
            let losses = pair_losses(&self.cfg, policy.clone(), &reference, &rows.scored);
            let loss = losses.clone().sum() / pairs.max(1) as f64;
            tally.add(&self.cfg, &host(losses), &host(policy), &reference);
            let grads = GradientsParams::from_grads(loss.backward(), model);
            accumulator.accumulate(model, grads);
        }
        Ok(StepOut {
            grads: accumulator.grads(),
            units: pairs,
            tokens,
            figures: tally.figures(pairs.max(1) as f64),
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

/// A micro-batch of pairs as model rows, on the host.
pub struct Rows {
    /// Chosen rows, then rejected rows, padded to the longest.
    pub batch: Batch,
    /// `[2P, seq]` next-token ids.
    pub targets: Vec<u32>,
    /// `[2P, seq]` 1 where the next token is a scored answer token.
    pub weights: Vec<f32>,
    /// Scored tokens of each row.
    pub scored: Vec<usize>,
    /// Pairs (`P`).
    pub pairs: usize,
}

impl Rows {
    /// The rows of `chosen` pairs of `all`, each cut to `seq_len` tokens.
    pub fn new(all: &[PairTokens], chosen: &[usize], seq_len: usize, pad_id: u32) -> Self {
        let rows: Vec<(Vec<u32>, Vec<u8>)> = [true, false]
            .into_iter()
            .flat_map(|preferred| {
                chosen.iter().map(move |&i| {
                    let p = &all[i];
                    let (answer, mask) = if preferred {
                        (&p.chosen, &p.chosen_mask)
                    } else {
                        (&p.rejected, &p.rejected_mask)
                    };
                    row(&p.prompt, answer, mask, seq_len)
                })
            })
            .collect();
        let seq = rows.iter().map(|(t, _)| t.len()).max().unwrap_or(1);
        let n = rows.len() * seq;
        let (mut tokens, mut positions) = (vec![pad_id; n], vec![0u32; n]);
        let (mut documents, mut targets) = (vec![0u32; n], vec![pad_id; n]);
        let mut weights = vec![0f32; n];
        let mut scored = Vec::with_capacity(rows.len());
        for (r, (ids, mask)) in rows.iter().enumerate() {
            let at = r * seq;
            tokens[at..at + ids.len()].copy_from_slice(ids);
            documents[at..at + ids.len()].fill(1);
            for (t, p) in positions[at..at + ids.len()].iter_mut().zip(0u32..) {
                *t = p;
            }
            for t in 0..ids.len() - 1 {
                targets[at + t] = ids[t + 1];
                weights[at + t] = f32::from(mask[t + 1]);
            }
            scored.push(mask[1..].iter().map(|&m| usize::from(m)).sum());
        }
        Self {
            batch: Batch {
                batch: rows.len(),
                seq,
                tokens,
                positions,
                documents,
            },
            targets,
            weights,
            scored,
            pairs: chosen.len(),
        }
    }
}

/// A prompt and an answer in at most `seq_len` tokens: the answer keeps its
/// start (at most `seq_len - 1` tokens), the prompt its end.
fn row(prompt: &[u32], answer: &[u32], mask: &[u8], seq_len: usize) -> (Vec<u32>, Vec<u8>) {
    let (prompt_keep, answer_keep) = kept(prompt.len(), answer.len(), seq_len);
    let prompt = &prompt[prompt.len() - prompt_keep..];
    let ids = [prompt, &answer[..answer_keep]].concat();
    let bits = std::iter::repeat_n(0, prompt.len())
        .chain(mask[..answer_keep].iter().copied())
        .collect();
    (ids, bits)
}

/// How many tokens of a prompt and of an answer [`row`] keeps.
fn kept(prompt: usize, answer: usize, seq_len: usize) -> (usize, usize) {
    let answer_keep = answer.min(seq_len.saturating_sub(1).max(1));
    let prompt_keep = prompt.min(seq_len.saturating_sub(answer_keep).max(1));
    (prompt_keep, answer_keep)
}

/// The scored tokens of both answers of the pairs `chosen` of `all`, as
/// [`Rows::new`] counts them, without building the rows.
fn scored_tokens(all: &[PairTokens], chosen: &[usize], seq_len: usize) -> usize {
    let answer = |prompt: usize, mask: &[u8]| -> usize {
        let (_, keep) = kept(prompt, mask.len(), seq_len);
        mask[..keep].iter().map(|&m| usize::from(m)).sum()
    };
    chosen
        .iter()
        .map(|&i| {
            let p = &all[i];
            answer(p.prompt.len(), &p.chosen_mask) + answer(p.prompt.len(), &p.rejected_mask)
        })
        .sum()
}

/// A vector's values on the host.
fn host<B: Backend>(t: Tensor<B, 1>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Each row's summed log-probability of its scored tokens, `[2P]`.
pub fn sequence_logps<B: Backend>(
    model: &Llama<B>,
    rows: &Rows,
    device: &B::Device,
) -> Tensor<B, 1> {
    let shape = [rows.batch.batch, rows.batch.seq];
    let targets = Tensor::<B, 2, Int>::from_data(
        TensorData::new(rows.targets.iter().map(|&t| i64::from(t)).collect(), shape),
        device,
    );
    let weights = Tensor::<B, 2>::from_data(TensorData::new(rows.weights.clone(), shape), device);
    let logits = model.forward(&rows.batch);
    (token_log_probs(logits, targets) * weights)
        .sum_dim(1)
        .reshape([shape[0]])
}

/// Each pair's loss, `[P]`, from the policy's `[2P]` log-probabilities, the
/// reference's, and each row's scored tokens (IPO averages per token).
pub fn pair_losses<B: Backend>(
    cfg: &ObjectiveSection,
    policy: Tensor<B, 1>,
    reference: &[f32],
    scored: &[usize],
) -> Tensor<B, 1> {
    let device = policy.device();
    let n = reference.len();
    let p = n / 2;
    let reference = Tensor::<B, 1>::from_data(TensorData::new(reference.to_vec(), [n]), &device);
    let mut ratios = policy - reference;
    if cfg.loss == DpoLoss::Ipo {
        let per_token: Vec<f32> = scored.iter().map(|&s| 1.0 / s.max(1) as f32).collect();
        ratios = ratios * Tensor::<B, 1>::from_data(TensorData::new(per_token, [n]), &device);
    }
    let delta = ratios.clone().narrow(0, 0, p) - ratios.narrow(0, p, n - p);
    let beta = cfg.beta;
    match cfg.loss {
        DpoLoss::Sigmoid => {
            let e = cfg.label_smoothing;
            let clean = log_sigmoid(delta.clone() * beta) * -(1.0 - e);
            if e > 0.0 {
                clean - log_sigmoid(delta * -beta) * e
            } else {
                clean
            }
        }
        DpoLoss::Ipo => (delta - 1.0 / (2.0 * beta)).powi_scalar(2),
        DpoLoss::Hinge => relu(delta * -beta + 1.0),
    }
}

/// TRL's figures of one batch of pairs (means over its pairs), `loss`
/// first: from each pair's loss and the policy's and reference's `[2P]`
/// log-probabilities.
pub fn pair_figures(
    cfg: &ObjectiveSection,
    losses: &[f32],
    policy: &[f32],
    reference: &[f32],
) -> Vec<(&'static str, f64)> {
    let mut tally = Tally::default();
    tally.add(cfg, losses, policy, reference);
    tally.figures(tally.pairs.max(1) as f64)
}

/// Sums of a run of pairs' losses and TRL's figures.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    pairs: usize,
    loss: f64,
    chosen: f64,
    rejected: f64,
    correct: f64,
    logps_chosen: f64,
    logps_rejected: f64,
}

impl Tally {
    /// Adds a micro-batch: its pairs' losses, the policy's and reference's
    /// `[2P]` log-probabilities.
    fn add(&mut self, cfg: &ObjectiveSection, losses: &[f32], policy: &[f32], reference: &[f32]) {
        let p = losses.len();
        for i in 0..p {
            let reward = |r: usize| cfg.beta * (f64::from(policy[r]) - f64::from(reference[r]));
            let (chosen, rejected) = (reward(i), reward(p + i));
            self.loss += f64::from(losses[i]);
            self.chosen += chosen;
            self.rejected += rejected;
            self.correct += f64::from(u8::from(chosen > rejected));
            self.logps_chosen += f64::from(policy[i]);
            self.logps_rejected += f64::from(policy[p + i]);
        }
        self.pairs += p;
    }

    /// The sums divided by `over`: means when it is the pairs counted, a
    /// worker's share of the step's means when it is the step's pairs.
    fn figures(&self, over: f64) -> Vec<(&'static str, f64)> {
        vec![
            ("loss", self.loss / over),
            ("rewards/chosen", self.chosen / over),
            ("rewards/rejected", self.rejected / over),
            ("rewards/accuracies", self.correct / over),
            ("rewards/margins", (self.chosen - self.rejected) / over),
            ("logps/chosen", self.logps_chosen / over),
            ("logps/rejected", self.logps_rejected / over),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_counts_the_scored_tokens_its_rows_hold_also_when_pairs_are_cut() {
        let pair = |prompt: usize, chosen: Vec<u8>, rejected: Vec<u8>| PairTokens {
            example_id: String::new(),
            prompt: vec![7; prompt],
            chosen: vec![8; chosen.len()],
            chosen_mask: chosen,
            rejected: vec![9; rejected.len()],
            rejected_mask: rejected,
        };
        let all = [
            pair(3, vec![1, 0, 1], vec![1]),
            pair(9, vec![1; 6], vec![0, 1, 1, 1, 1, 1, 1, 1]),
        ];
        for seq_len in [2, 4, 6, 64] {
            let rows = Rows::new(&all, &[0, 1], seq_len, 0);
            assert!(rows.batch.seq <= seq_len.max(2));
            let held: usize = rows.scored.iter().sum();
            assert_eq!(
                scored_tokens(&all, &[0, 1], seq_len),
                held,
                "seq_len {seq_len}"
            );
        }
    }
}
