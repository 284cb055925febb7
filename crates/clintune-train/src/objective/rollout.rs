//! GRPO's rollouts: the dataset's prompts in a seeded order, each continued
//! `num_generations` ways by the policy and graded.
//!
//! A prompt's completions are seeded by the run's seed, the prompt's place in
//! the run (epoch and position) and the completion's index in its group, so
//! whichever worker samples a prompt, before or after a resume, draws the
//! same completions from the same weights.

use crate::error::TrainError;
use crate::grader::{Graded, Graders, Rewards};
use burn::prelude::*;
use clintune_core::rng::mix64;
use clintune_curate::reader::{Cursor, PromptAnswer, document_order};
use clintune_model::{GenerateConfig, Llama, Sampling, StopReason};
use clintune_text::tokenizer::Tokenizer;

/// The training prompts in a seeded order per epoch, with a cursor.
pub(super) struct Prompts {
    pub items: Vec<PromptAnswer>,
    seed: u64,
    shuffle: bool,
    pub cursor: Cursor,
    order: Vec<usize>,
}

/// A prompt drawn for a step: its index and the key its completions are
/// seeded with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Drawn {
    pub index: usize,
    pub key: u64,
}

impl Prompts {
    pub fn new(items: Vec<PromptAnswer>, seed: u64, shuffle: bool) -> Self {
        let order = document_order(items.len(), seed, 0, shuffle);
        Self {
            items,
            seed,
            shuffle,
            cursor: Cursor::default(),
            order,
        }
    }

    pub fn seek(&mut self, cursor: Cursor) {
        self.order = document_order(self.items.len(), self.seed, cursor.epoch, self.shuffle);
        self.cursor = cursor;
    }

    /// The next prompt, going on into the next epoch at the end of one.
    pub fn next(&mut self) -> Drawn {
        if self.cursor.position as usize >= self.items.len() {
            self.seek(Cursor {
                epoch: self.cursor.epoch + 1,
                ..Cursor::default()
            });
        }
        let index = self.order[self.cursor.position as usize];
        let place = mix64(self.cursor.epoch) ^ self.cursor.position;
        self.cursor.position += 1;
        Drawn {
            index,
            key: mix64(self.seed ^ mix64(place)),
        }
    }
}

/// What the policy sees of `prompt`: its last `max` tokens (all when 0).
/// Graders see the whole prompt.
pub(super) fn prompt_tail(prompt: &[u32], max: usize) -> &[u32] {
    match max {
        0 => prompt,
        max => &prompt[prompt.len().saturating_sub(max)..],
    }
}

/// One prompt's completions (a final stop token kept) and their rewards.
pub(super) struct Group {
    /// The prompt's index in the split.
    pub prompt: usize,
    pub completions: Vec<Vec<u32>>,
    /// Completions cut off by the length limit or the context.
    pub truncated: usize,
    pub rewards: Rewards,
}

/// Samples and grades groups.
pub(super) struct Rollout {
    graders: Graders,
    tokenizer: Tokenizer,
    stops: Vec<u32>,
    max_context: usize,
    max_prompt: usize,
    max_new_tokens: usize,
}

impl Rollout {
    pub fn new(
        graders: Graders,
        tokenizer: Tokenizer,
        stops: Vec<u32>,
        max_context: usize,
        max_prompt: usize,
        max_new_tokens: usize,
    ) -> Self {
        Self {
            graders,
            tokenizer,
            stops,
            max_context,
            max_prompt,
            max_new_tokens,
        }
    }

    /// What the policy sees of `prompt` ([`prompt_tail`]).
    pub fn context<'a>(&self, prompt: &'a [u32]) -> &'a [u32] {
        prompt_tail(prompt, self.max_prompt)
    }

    /// `n` completions of `item` by `model`, sampled as one batch with
    /// `sampling` (its seed replaced by one per completion, from `key`), and
    /// their rewards.
    pub fn group<B: Backend>(
        &self,
        model: &Llama<B>,
        (index, item): (usize, &PromptAnswer),
        key: u64,
        n: usize,
        sampling: &Sampling,
    ) -> Result<Group, TrainError> {
        let cfg = GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            stop_tokens: self.stops.clone(),
            sampling: sampling.clone(),
        };
        let seeds: Vec<u64> = (0..n as u64).map(|g| mix64(key ^ mix64(g + 1))).collect();
        let prompt = self.context(&item.prompt);
        let generations = model.generate_group(prompt, &cfg, &seeds, self.max_context);
        let truncated = generations
            .iter()
            .filter(|g| g.stop != StopReason::StopToken)
            .count();
        let completions: Vec<Vec<u32>> = generations.into_iter().map(|g| g.tokens).collect();
        let rewards = self.grade(item, &completions)?;
        Ok(Group {
            prompt: index,
            completions,
            truncated,
            rewards,
        })
    }

    /// The graders' rewards for `completions` of `item`, on decoded text
    /// (stop tokens aside).
    fn grade(&self, item: &PromptAnswer, completions: &[Vec<u32>]) -> Result<Rewards, TrainError> {
        let text = |ids: &[u32]| {
            self.tokenizer
                .decode(self.without_stop(ids))
                .unwrap_or_default()
        };
        let (prompt, reference) = (text(&item.prompt), text(&item.answer));
        let completions: Vec<String> = completions.iter().map(|c| text(c)).collect();
        let items: Vec<Graded<'_>> = completions
            .iter()
            .map(|completion| Graded {
                prompt: &prompt,
                completion,
                reference: &reference,
            })
            .collect();
        Ok(self.graders.grade(&items)?)
    }

    /// `ids` without a final stop token.
    fn without_stop<'a>(&self, ids: &'a [u32]) -> &'a [u32] {
        match ids.split_last() {
            Some((last, rest)) if self.stops.contains(last) => rest,
            _ => ids,
        }
    }
}
