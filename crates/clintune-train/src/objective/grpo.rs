//! GRPO (Shao et al., 2024) as TRL 1.16's `GRPOTrainer` runs it: the
//! dataset's prompts (chat and next-diagnosis examples: the tokens before the
//! first trained one, with the recorded answer as the graders' reference),
//! `num_generations` completions of each sampled by the policy, rewarded by
//! the recipe's graders, and the clipped loss over the completion tokens
//! ([`grpo_loss`], checked against TRL's own).
//!
//! Each worker samples the prompts of its own micro-batches; the sizes the
//! loss needs from the whole step (DAPO's completion tokens, the batch's
//! reward deviation) are summed across workers before any loss is taken.
//! A generation batch is trained on for `num_iterations` steps; with more
//! than one, the log-probabilities of the policy that sampled it are kept as
//! the "old" ones (else they are the policy's own, detached). A run stops
//! and checkpoints only between generation batches, so nothing of one needs
//! saving.

use super::config::{GrpoSection, ObjectiveKind};
use super::dpo::Reference;
use super::rollout::{Drawn, Group, Prompts, Rollout, prompt_tail};
use super::{EvalMetrics, Objective, StepHooks, StepOut, eval_batches};
use crate::data::Dataset;
use crate::error::TrainError;
use crate::grader::Graders;
use crate::recipe::Recipe;
use crate::trainer::Peer;
use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clintune_core::rng::mix64;
use clintune_curate::reader::{Cursor, PromptAnswer, ReaderError, read_prompts};
use clintune_model::loss::token_log_probs;
use clintune_model::{Batch, Llama, ModelConfig, Sampling};
use clintune_text::tokenizer::Tokenizer;
use std::collections::BTreeSet;
use std::path::Path;

/// Seeds evaluation's samples, apart from training's.
const EVAL_KEY: u64 = 0x6576_616c_7561_7465;

pub use super::grpo_loss::{
    GrpoInputs, GrpoLoss, GrpoLossConfig, GrpoLossType, ScaleRewards, advantages, grpo_loss,
    scaled_advantages, std_dev, std_from_sums,
};

/// GRPO over the dataset's prompts.
pub struct Grpo<B: AutodiffBackend> {
    cfg: GrpoSection,
    loss: GrpoLossConfig,
    rollout: Rollout,
    sampling: Sampling,
    names: FigureNames,
    pad_id: u32,
    micro_batch: usize,
    /// The KL term's reference, with `beta` > 0.
    reference: Option<Reference<B>>,
    train: Prompts,
    validation: Vec<PromptAnswer>,
    /// The generation batch being reused (`num_iterations` > 1).
    batch: Option<Generation>,
    device: B::Device,
}

/// A worker's share of a generation batch: its micro-batches' groups (by
/// index in the step), the old log-probabilities of each (with
/// `num_iterations` > 1), the whole batch's sums, and the steps left to
/// take on it.
struct Generation {
    mine: Vec<(usize, Vec<Group>)>,
    old: Vec<Option<Vec<f32>>>,
    whole: Sums,
    left: usize,
}

impl<B: AutodiffBackend> Grpo<B> {
    /// The dataset's prompts, the graders and the sampler's stop tokens.
    pub fn new(recipe: &Recipe, dataset: &Dataset, device: &B::Device) -> Result<Self, TrainError> {
        let dir = &recipe.data.dataset;
        let (train, validation) = prompt_splits(dir)?;
        let graders = Graders::new(&recipe.grader)?;
        let names = FigureNames::new(&graders.names());
        let config = ModelConfig::load(&recipe.model.base)
            .map_err(|e| TrainError::model(&recipe.model.base, e))?;
        let cfg = &recipe.grpo;
        for (split, prompts) in [("train", &train), ("validation", &validation)] {
            check_prompt_lengths(split, prompts, cfg, config.max_position_embeddings)
                .map_err(|e| TrainError::dataset(dir, e))?;
        }
        let tokenizer = dataset.tokenizer.clone();
        let stops = stop_tokens(&config, &tokenizer);
        Ok(Self {
            loss: cfg.loss_config(),
            rollout: Rollout::new(
                graders,
                tokenizer,
                stops,
                config.max_position_embeddings,
                cfg.max_prompt_length,
                cfg.max_completion_length,
            ),
            sampling: Sampling {
                temperature: cfg.temperature,
                top_p: cfg.top_p,
                top_k: cfg.top_k,
                repetition_penalty: 1.0,
                seed: 0,
            },
            names,
            cfg: cfg.clone(),
            pad_id: dataset.pad_id(),
            micro_batch: recipe.data.micro_batch,
            reference: (cfg.beta > 0.0)
                .then(|| Reference::new(recipe, device))
                .transpose()?,
            train: Prompts::new(train, recipe.train.seed, recipe.data.shuffle),
            validation,
            batch: None,
            device: device.clone(),
        })
    }

    /// The groups of one micro-batch's prompts, sampled by `model`.
    fn groups(
        &self,
        model: &Llama<B::InnerBackend>,
        drawn: &[Drawn],
    ) -> Result<Vec<Group>, TrainError> {
        drawn
            .iter()
            .map(|d| {
                let item = (d.index, &self.train.items[d.index]);
                let n = self.cfg.num_generations;
                self.rollout.group(model, item, d.key, n, &self.sampling)
            })
            .collect()
    }

    /// The model rows of `groups`' completions.
    fn rows(&self, groups: &[Group]) -> CompletionRows {
        let pairs = groups.iter().flat_map(|g| {
            let prompt = self.rollout.context(&self.train.items[g.prompt].prompt);
            g.completions.iter().map(move |c| (prompt, c.as_slice()))
        });
        CompletionRows::new(pairs, self.pad_id)
    }

    /// A new generation batch: the step's prompts drawn (by every worker:
    /// cheap, and it keeps the cursor the same everywhere), this worker's
    /// sampled and graded, the whole batch's sums exchanged, and with
    /// `num_iterations` > 1 the sampling policy's log-probabilities kept.
    fn generate(
        &mut self,
        model: &Llama<B>,
        micro: usize,
        peer: Peer,
        hooks: &mut StepHooks<'_>,
    ) -> Result<Generation, TrainError> {
        let drawn: Vec<Vec<Drawn>> = (0..micro)
            .map(|_| (0..self.micro_batch).map(|_| self.train.next()).collect())
            .collect();
        let sampler = model.valid();
        let mut mine = Vec::new();
        for (j, batch) in drawn.iter().enumerate() {
            if j % peer.count == peer.rank {
                mine.push((j, self.groups(&sampler, batch)?));
            }
        }
        let graders = self.names.graders.len();
        let local = Sums::of(mine.iter().flat_map(|(_, g)| g), graders);
        let whole = Sums((hooks.sum)(local.0)?);
        let reused = self.cfg.num_iterations > 1;
        let old = mine
            .iter()
            .map(|(_, groups)| {
                reused.then(|| {
                    let logps = self.rows(groups).logps(&sampler, &sampler.device());
                    logps.into_data().iter::<f32>().collect()
                })
            })
            .collect();
        Ok(Generation {
            mine,
            old,
            whole,
            left: self.cfg.num_iterations,
        })
    }

    /// The loss of `groups` (one micro-batch) and its share of the figures.
    fn micro_loss(
        &self,
        model: &Llama<B>,
        groups: &[Group],
        old: Option<&[f32]>,
        step: &StepSize,
    ) -> (Tensor<B, 1>, Tally) {
        let rows = self.rows(groups);
        let rewards: Vec<f64> = groups
            .iter()
            .flat_map(|g| g.rewards.total.iter().copied())
            .collect();
        let g = self.cfg.num_generations;
        let scale = self.cfg.scale_rewards;
        let advantages: Vec<f32> = scaled_advantages(&rewards, g, scale, step.batch_std)
            .into_iter()
            .map(|a| a as f32)
            .collect();
        let logps = rows.logps(model, &self.device);
        // The base: under LoRA the policy without its adapters, at no memory
        // cost; under full fine-tuning a frozen copy.
        let reference = self
            .reference
            .as_ref()
            .map(|r| rows.logps(&r.beside(model), &self.device).detach());
        let n = advantages.len();
        // A batch used once was sampled by this very policy.
        let old_logps = match old {
            Some(old) => {
                Tensor::from_data(TensorData::new(old.to_vec(), logps.dims()), &self.device)
            }
            None => logps.clone().detach(),
        };
        let out = grpo_loss(
            GrpoInputs {
                old_logps,
                logps,
                ref_logps: reference,
                advantages: Tensor::from_data(TensorData::new(advantages, [n]), &self.device),
                mask: rows.mask(&self.device),
                num_items_in_batch: step.tokens as f64,
            },
            &self.loss,
        );
        // TRL divides the mean-style losses by the accumulation steps; DAPO's
        // denominator already spans the step.
        let loss = match self.loss.loss_type {
            GrpoLossType::Dapo => out.loss.clone(),
            _ => out.loss.clone() / step.micro as f64,
        };
        let mut tally = Tally::of(groups, &out, step, scale);
        tally.loss = f64::from(loss.clone().into_scalar().elem::<f32>());
        (loss, tally)
    }
}

/// The train split's prompts, which must exist, and the validation
/// split's (none when there is no validation split).
fn prompt_splits(dir: &Path) -> Result<(Vec<PromptAnswer>, Vec<PromptAnswer>), TrainError> {
    let train = read_prompts(dir, "train").map_err(|e| TrainError::dataset(dir, e))?;
    if train.is_empty() {
        return Err(TrainError::dataset(
            dir,
            "its train split has no prompts to sample for: GRPO needs chat or next-diagnosis \
             examples (plain text has no prompt)",
        ));
    }
    let validation = match read_prompts(dir, "validation") {
        Ok(v) => v,
        Err(ReaderError::MissingSplit { .. } | ReaderError::EmptySplit { .. }) => Vec::new(),
        Err(e) => return Err(TrainError::dataset(dir, e)),
    };
    Ok((train, validation))
}

/// Where sampling stops: the model's end-of-sequence tokens, the
/// tokenizer's, and its chat template's end of turn.
fn stop_tokens(config: &ModelConfig, tokenizer: &Tokenizer) -> Vec<u32> {
    let mut stops: BTreeSet<u32> = config.eos_token_ids.iter().copied().collect();
    stops.extend(tokenizer.eos_id());
    if let Ok(Some(turn)) = clintune_text::template::end_of_turn(tokenizer) {
        stops.insert(turn);
    }
    stops.into_iter().collect()
}

/// Every prompt, as the policy sees it, must leave room in the model's
/// context for a completion.
fn check_prompt_lengths(
    split: &str,
    prompts: &[PromptAnswer],
    cfg: &GrpoSection,
    context: usize,
) -> Result<(), String> {
    let seen = |p: &PromptAnswer| prompt_tail(&p.prompt, cfg.max_prompt_length).len();
    match prompts.iter().position(|p| seen(p) >= context) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{split} prompt {} is {} tokens, and the model's context holds {context}: set \
             grpo.max_prompt_length (the prompt's last tokens are kept) below {context}",
            i + 1,
            prompts[i].prompt.len()
        )),
    }
}

/// The size of a whole step (all workers): what the loss is taken over.
struct StepSize {
    /// Micro-batches.
    micro: usize,
    groups: usize,
    /// Completion tokens (DAPO's denominator).
    tokens: usize,
    /// The deviation of all the step's rewards (`scale_rewards = "batch"`).
    batch_std: f64,
}

/// Sums over a step's completions, a worker's own first and then, summed
/// across workers, the whole step's: completion tokens, truncated
/// completions, and the sum and sum of squares of the rewards (the total,
/// then each grader's).
struct Sums(Vec<f64>);

impl Sums {
    fn of<'a>(groups: impl Iterator<Item = &'a Group> + Clone, graders: usize) -> Self {
        let tokens: usize = groups
            .clone()
            .flat_map(|g| &g.completions)
            .map(Vec::len)
            .sum();
        let truncated: usize = groups.clone().map(|g| g.truncated).sum();
        let mut out = vec![tokens as f64, truncated as f64];
        let moments = |values: &mut dyn Iterator<Item = f64>| {
            values.fold([0.0, 0.0], |[s, q], r| [s + r, q + r * r])
        };
        out.extend(moments(
            &mut groups.clone().flat_map(|g| g.rewards.total.iter().copied()),
        ));
        for k in 0..graders {
            let mut values = groups
                .clone()
                .flat_map(move |g| g.rewards.per_grader[k].iter().copied());
            out.extend(moments(&mut values));
        }
        Self(out)
    }

    /// The mean and deviation of reward `k` (0 the total, then each
    /// grader's) over `n` completions.
    fn reward(&self, k: usize, n: f64) -> (f64, f64) {
        let (sum, sq) = (self.0[2 + 2 * k], self.0[3 + 2 * k]);
        (sum / n.max(1.0), std_from_sums(n, sum, sq))
    }

    /// TRL's figures of the whole step's completions and rewards.
    fn figures(&self, names: &FigureNames, n: usize) -> Vec<(&'static str, f64)> {
        let n = n as f64;
        let (reward, reward_std) = self.reward(0, n);
        let mut out = vec![
            ("reward", reward),
            ("reward_std", reward_std),
            ("completions/mean_length", self.0[0] / n.max(1.0)),
            ("completions/clipped_ratio", self.0[1] / n.max(1.0)),
        ];
        for (k, (mean, std)) in names.graders.iter().enumerate() {
            let (m, s) = self.reward(k + 1, n);
            out.extend([(*mean, m), (*std, s)]);
        }
        out
    }
}

/// The completions of a micro-batch as model rows: prompt then completion,
/// padded on the right to the longest. Log-probabilities and the mask are
/// laid out by row position (`[rows, seq - 1]`), not by completion token.
pub struct CompletionRows {
    rows: Vec<Vec<u32>>,
    /// Per row, 1 where the next token is a completion token.
    weights: Vec<Vec<f32>>,
}

impl CompletionRows {
    /// Rows of `(prompt, completion)` pairs, padded with `pad_id`.
    pub fn new<'a>(pairs: impl Iterator<Item = (&'a [u32], &'a [u32])>, pad_id: u32) -> Self {
        let mut rows = Vec::new();
        let mut weights = Vec::new();
        for (prompt, completion) in pairs {
            let mut row = prompt.to_vec();
            row.extend(completion);
            // Targets are the next tokens: the completion's first is the
            // target at the prompt's last position.
            let mut w = vec![0.0; row.len().saturating_sub(1)];
            for x in w.iter_mut().skip(prompt.len().saturating_sub(1)) {
                *x = 1.0;
            }
            rows.push(row);
            weights.push(w);
        }
        let longest = rows.iter().map(Vec::len).max().unwrap_or(2).max(2);
        for (row, w) in rows.iter_mut().zip(&mut weights) {
            row.resize(longest, pad_id);
            w.resize(longest - 1, 0.0);
        }
        Self { rows, weights }
    }

    /// Each position's log-probability of its next token, `[rows, seq - 1]`.
    pub fn logps<B: Backend>(&self, model: &Llama<B>, device: &B::Device) -> Tensor<B, 2> {
        let (n, seq) = (self.rows.len(), self.rows[0].len());
        let inputs: Vec<Vec<u32>> = self.rows.iter().map(|r| r[..seq - 1].to_vec()).collect();
        let targets: Vec<i64> = self
            .rows
            .iter()
            .flat_map(|r| r[1..].iter().map(|&t| i64::from(t)))
            .collect();
        let targets =
            Tensor::<B, 2, Int>::from_data(TensorData::new(targets, [n, seq - 1]), device);
        token_log_probs(model.forward(&Batch::unpacked(&inputs)), targets)
    }

    /// 1 where a position's next token is a completion token.
    pub fn mask<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        let (n, cols) = (self.weights.len(), self.weights[0].len());
        Tensor::from_data(TensorData::new(self.weights.concat(), [n, cols]), device)
    }
}

/// Each grader's figures' names, as TRL's (`rewards/NAME/mean`, `/std`).
struct FigureNames {
    graders: Vec<(&'static str, &'static str)>,
}

impl FigureNames {
    fn new(graders: &[String]) -> Self {
        // Figures are named by `&'static str`; a run has a handful of
        // graders, named once, so their names are leaked once.
        let name =
            |n: &str, what: &str| &*Box::leak(format!("rewards/{n}/{what}").into_boxed_str());
        let graders = graders
            .iter()
            .map(|n| (name(n, "mean"), name(n, "std")))
            .collect();
        Self { graders }
    }
}

/// A worker's share of the figures of its micro-batches (summed over
/// workers, they are the step's).
#[derive(Debug, Default)]
struct Tally {
    loss: f64,
    zero_std: f64,
    clip_low: f64,
    clip_high: f64,
    clip_region: f64,
    kl: f64,
}

impl Tally {
    fn of<B: Backend>(
        groups: &[Group],
        out: &GrpoLoss<B>,
        step: &StepSize,
        scale: ScaleRewards,
    ) -> Self {
        // Each micro-batch counts by its share of the step's groups.
        let mine = groups.len() as f64 / step.groups.max(1) as f64;
        // TRL's `frac_reward_zero_std`: completions whose advantage was
        // scaled by a deviation of 0 (their group's, or the batch's).
        let zero = |std: f64| f64::from(u8::from(std.abs() <= 1e-8));
        let zero_std = match scale {
            ScaleRewards::Batch => zero(step.batch_std) * mine,
            _ => {
                let groups_zero: f64 = groups.iter().map(|g| zero(std_dev(&g.rewards.total))).sum();
                groups_zero / step.groups.max(1) as f64
            }
        };
        Self {
            loss: 0.0,
            zero_std,
            clip_low: out.clip_low * mine,
            clip_high: out.clip_high * mine,
            clip_region: out.clip_region * mine,
            kl: out.kl.unwrap_or(0.0) * mine,
        }
    }

    fn add(&mut self, other: Tally) {
        self.loss += other.loss;
        self.zero_std += other.zero_std;
        self.clip_low += other.clip_low;
        self.clip_high += other.clip_high;
        self.clip_region += other.clip_region;
        self.kl += other.kl;
    }

    /// The figures under TRL's names, `loss` first, with `whole` (the
    /// step's, which rank 0 carries) after it.
    fn figures(&self, whole: Vec<(&'static str, f64)>, beta: bool) -> Vec<(&'static str, f64)> {
        let mut out = vec![("loss", self.loss)];
        out.extend(whole);
        out.extend([
            ("frac_reward_zero_std", self.zero_std),
            ("clip_ratio/low_mean", self.clip_low),
            ("clip_ratio/high_mean", self.clip_high),
            ("clip_ratio/region_mean", self.clip_region),
        ]);
        if beta {
            out.push(("kl", self.kl));
        }
        out
    }
}

impl<B: AutodiffBackend> Objective<B> for Grpo<B> {
    fn kind(&self) -> ObjectiveKind {
        ObjectiveKind::Grpo
    }

    fn cursor(&self) -> Cursor {
        self.train.cursor
    }

    fn seek(&mut self, cursor: Cursor) -> Result<(), ReaderError> {
        self.train.seek(cursor);
        Ok(())
    }

    fn batches_in_epoch(&self, _epoch: u64) -> u64 {
        // Each generation batch is trained on num_iterations times.
        let batches = self.train.items.len().div_ceil(self.micro_batch.max(1));
        (batches * self.cfg.num_iterations) as u64
    }

    fn steps_per_batch(&self) -> u64 {
        self.cfg.num_iterations as u64
    }

    fn step(
        &mut self,
        model: &Llama<B>,
        micro: usize,
        peer: Peer,
        hooks: &mut StepHooks<'_>,
    ) -> Result<StepOut, TrainError> {
        let batch = match self.batch.take() {
            Some(batch) if batch.left > 0 => batch,
            _ => self.generate(model, micro, peer, hooks)?,
        };
        let whole = &batch.whole;
        let groups = micro * self.micro_batch;
        let completions = groups * self.cfg.num_generations;
        let step = StepSize {
            micro,
            groups,
            tokens: whole.0[0].round() as usize,
            batch_std: whole.reward(0, completions as f64).1,
        };
        let mut accumulator = GradientsAccumulator::<Llama<B>>::new();
        let mut tally = Tally::default();
        for ((j, groups), old) in batch.mine.iter().zip(&batch.old) {
            (hooks.before)(*j as u64);
            let (loss, t) = self.micro_loss(model, groups, old.as_deref(), &step);
            tally.add(t);
            let grads = GradientsParams::from_grads(loss.backward(), model);
            accumulator.accumulate(model, grads);
        }
        // The step's own figures are the same on every worker: rank 0
        // carries them, so that the sum over workers is them.
        let mut whole = whole.figures(&self.names, completions);
        if peer.rank > 0 {
            whole.iter_mut().for_each(|f| f.1 = 0.0);
        }
        self.batch = Some(Generation {
            left: batch.left - 1,
            ..batch
        });
        Ok(StepOut {
            grads: accumulator.grads(),
            units: completions,
            tokens: step.tokens,
            figures: tally.figures(whole, self.cfg.beta > 0.0),
        })
    }

    /// The mean reward of `num_generations` completions of each validation
    /// prompt, sampled as in training (as TRL evaluates) from seeds fixed by
    /// the prompt, so evaluations differ only by the weights; its loss is
    /// minus that.
    fn evaluate(
        &mut self,
        model: &Llama<B::InnerBackend>,
        max_batches: u64,
    ) -> Result<Option<EvalMetrics>, TrainError> {
        let batches = eval_batches(
            max_batches,
            self.validation.len().div_ceil(self.micro_batch.max(1)) as u64,
        );
        let prompts = (batches as usize * self.micro_batch).min(self.validation.len());
        if prompts == 0 {
            return Ok(None);
        }
        let g = self.cfg.num_generations;
        let groups = self.validation[..prompts]
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let key = mix64(EVAL_KEY ^ i as u64);
                self.rollout.group(model, (i, item), key, g, &self.sampling)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = prompts * g;
        let whole = Sums::of(groups.iter(), self.names.graders.len()).figures(&self.names, n);
        let reward = whole[0].1;
        let mut figures = vec![("loss", -reward)];
        figures.extend(whole);
        Ok(Some(EvalMetrics {
            loss: -reward,
            figures,
            units: n as u64,
            unit: "completions",
        }))
    }
}
