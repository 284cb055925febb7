//! Text generation: a key/value cache, greedy and nucleus sampling, stop
//! tokens.
//!
//! The prompt runs once through the model, filling the cache; each new token
//! then runs alone, attending to the cached keys and values, so a step costs
//! one token's work rather than the whole sequence's.

use crate::llama::{Llama, Mask};
use burn::prelude::*;
use clintune_core::rng::SplitMix64;
use std::time::{Duration, Instant};

/// The keys and values one layer has seen, `[1, kv_heads, len, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct LayerCache<B: Backend> {
    kv: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
}

impl<B: Backend> LayerCache<B> {
    /// Appends this step's keys and values and returns all of them.
    pub fn append(&mut self, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let (k, v) = match self.kv.take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        self.kv = Some((k.clone(), v.clone()));
        (k, v)
    }
}

/// Every layer's cache, and how many tokens it holds.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model of `layers` layers.
    pub fn new(layers: usize) -> Self {
        Self {
            layers: (0..layers).map(|_| LayerCache::default()).collect(),
            len: 0,
        }
    }

    /// Tokens seen so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn layer(&mut self, l: usize) -> &mut LayerCache<B> {
        &mut self.layers[l]
    }

    /// Makes a cache of one row `rows` copies of it, to continue one prompt
    /// `rows` ways at once.
    fn repeat_rows(&mut self, rows: usize) {
        for layer in &mut self.layers {
            if let Some((k, v)) = layer.kv.take() {
                layer.kv = Some((k.repeat_dim(0, rows), v.repeat_dim(0, rows)));
            }
        }
    }
}

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; `0` picks the most likely token (greedy).
    pub temperature: f64,
    /// Nucleus sampling: draw only from the smallest set of most likely
    /// tokens whose probabilities sum to at least `top_p` (`1` = all).
    pub top_p: f64,
    /// Draw only from the `top_k` most likely tokens, before `top_p` (`0` =
    /// all), as transformers' `top_k`.
    pub top_k: usize,
    /// transformers' `repetition_penalty`: the logit of every token already
    /// in the prompt or the answer is divided by it (multiplied when
    /// negative) before anything else, greedy included (`1` = off).
    pub repetition_penalty: f64,
    /// Seed of the draws; the same seed gives the same text.
    pub seed: u64,
}

impl Sampling {
    /// Always the most likely token.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// At most this many new tokens.
    pub max_new_tokens: usize,
    /// Generation stops after any of these (the stop token is kept).
    pub stop_tokens: Vec<u32>,
    /// How tokens are chosen.
    pub sampling: Sampling,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop token was generated.
    StopToken,
    /// `max_new_tokens` were generated.
    Length,
    /// The model's context (`max_position_embeddings`) is full.
    Context,
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The new tokens, without the prompt.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub stop: StopReason,
    /// Time spent on the prompt.
    pub prefill: Duration,
    /// Time spent generating after the prompt.
    pub decode: Duration,
}

impl<B: Backend> Llama<B> {
    /// Runs `tokens` after those already in `cache` (batch of one) and
    /// returns the logits of the last one, `[vocab]`.
    pub fn step(&self, tokens: &[u32], cache: &mut KvCache<B>) -> Tensor<B, 1> {
        let (past, n) = (cache.len, tokens.len());
        let positions: Vec<u32> = (past..past + n).map(|p| p as u32).collect();
        let blocked: Vec<bool> = (0..n)
            .flat_map(|i| (0..past + n).map(move |j| j > past + i))
            .collect();
        let blocked = Tensor::<B, 4, Bool>::from_data(
            TensorData::new(blocked, [1, 1, n, past + n]),
            &self.device(),
        );
        let ctx = self.rotary_context(&positions, [1, n], Mask::Dense(blocked));
        let hidden = self.hidden(tokens, [1, n], &ctx, Some(cache));
        cache.len += n;
        let logits = self.logits(hidden.narrow(1, n - 1, 1));
        let vocab = logits.dims()[2];
        logits.reshape([vocab])
    }

    /// Continues `prompt` until a stop token, `max_new_tokens` or the end of
    /// the model's context; `on_token` sees each new token as it comes.
    pub fn generate(
        &self,
        prompt: &[u32],
        cfg: &GenerateConfig,
        max_context: usize,
        mut on_token: impl FnMut(u32),
    ) -> Generation {
        let mut cache = KvCache::new(self.model.layers.len());
        let mut row = Row::new(prompt, cfg.sampling.seed, cfg.sampling.repetition_penalty);
        let start = Instant::now();
        let mut logits = self.step(prompt, &mut cache);
        let prefill = start.elapsed();
        let stop = loop {
            let mut values = logits.into_data().to_vec::<f32>().unwrap_or_default();
            let drawn = row.tokens.len();
            let next = row.draw(&mut values, cfg, cache.len() + 1, max_context);
            if row.tokens.len() > drawn {
                on_token(next);
            }
            if let Some(stop) = row.stop {
                break stop;
            }
            logits = self.step(&[next], &mut cache);
        };
        Generation {
            tokens: row.tokens,
            stop,
            prefill,
            decode: start.elapsed() - prefill,
        }
    }
}

impl<B: Backend> Llama<B> {
    /// Continues `prompt` once per seed, the continuations sampled side by
    /// side as one batch: the prompt runs once and its cache is copied to
    /// every row, then each step runs all rows together. Row `i` draws with
    /// `seeds[i]` (`cfg.sampling.seed` is not used) and ends as
    /// [`Llama::generate`] does (both draw through one `Row`); a finished
    /// row rides along until all have finished, its further tokens dropped.
    /// The result depends only on the prompt, the seeds and the weights,
    /// not on other work.
    pub fn generate_group(
        &self,
        prompt: &[u32],
        cfg: &GenerateConfig,
        seeds: &[u64],
        max_context: usize,
    ) -> Vec<Generation> {
        let rows = seeds.len();
        let mut cache = KvCache::new(self.model.layers.len());
        let start = Instant::now();
        let first = self.step(prompt, &mut cache);
        let prefill = start.elapsed();
        cache.repeat_rows(rows);
        let vocab = first.dims()[0];
        let mut logits = first
            .into_data()
            .to_vec::<f32>()
            .unwrap_or_default()
            .repeat(rows);
        let mut group: Vec<Row> = seeds
            .iter()
            .map(|&seed| Row::new(prompt, seed, cfg.sampling.repetition_penalty))
            .collect();
        let mut last = vec![0; rows];
        while group.iter().any(|r| r.stop.is_none()) {
            for (i, row) in group.iter_mut().enumerate() {
                if row.stop.is_none() {
                    last[i] = row.draw(
                        &mut logits[i * vocab..(i + 1) * vocab],
                        cfg,
                        cache.len() + 1,
                        max_context,
                    );
                }
            }
            if group.iter().all(|r| r.stop.is_some()) {
                break;
            }
            logits = self.step_rows(&last, &mut cache);
        }
        let decode = start.elapsed() - prefill;
        group
            .into_iter()
            .map(|row| Generation {
                tokens: row.tokens,
                stop: row.stop.unwrap_or(StopReason::Length),
                prefill,
                decode,
            })
            .collect()
    }

    /// Runs one token per row after `cache` (all rows as long) and returns
    /// the logits, `[rows × vocab]` row-major.
    fn step_rows(&self, tokens: &[u32], cache: &mut KvCache<B>) -> Vec<f32> {
        let (past, rows) = (cache.len, tokens.len());
        let positions = vec![past as u32; rows];
        // Every row sees all its cached tokens and itself.
        let open = Tensor::<B, 4, Bool>::from_data(
            TensorData::new(vec![false; rows * (past + 1)], [rows, 1, 1, past + 1]),
            &self.device(),
        );
        let ctx = self.rotary_context(&positions, [rows, 1], Mask::Dense(open));
        let hidden = self.hidden(tokens, [rows, 1], &ctx, Some(cache));
        cache.len += 1;
        self.logits(hidden)
            .into_data()
            .to_vec::<f32>()
            .unwrap_or_default()
    }
}

/// One continuation of a group in progress.
struct Row {
    rng: SplitMix64,
    seen: Seen,
    tokens: Vec<u32>,
    stop: Option<StopReason>,
}

impl Row {
    fn new(prompt: &[u32], seed: u64, penalty: f64) -> Self {
        Self {
            rng: SplitMix64(seed),
            seen: Seen::new(prompt, penalty),
            tokens: Vec::new(),
            stop: None,
        }
    }

    /// Draws the next token from `logits` and records whether the row ends
    /// here (`cached` tokens are in the cache once it is run): at a stop
    /// token, a full context or `max_new_tokens`. A row with
    /// `max_new_tokens` already drawn draws nothing.
    fn draw(
        &mut self,
        logits: &mut [f32],
        cfg: &GenerateConfig,
        cached: usize,
        max_context: usize,
    ) -> u32 {
        if self.tokens.len() >= cfg.max_new_tokens {
            self.stop = Some(StopReason::Length);
            return 0;
        }
        self.seen.penalize(logits);
        let next = choose(logits, &cfg.sampling, &mut self.rng);
        self.seen.add(next);
        self.tokens.push(next);
        if cfg.stop_tokens.contains(&next) {
            self.stop = Some(StopReason::StopToken);
        } else if cached >= max_context {
            self.stop = Some(StopReason::Context);
        } else if self.tokens.len() >= cfg.max_new_tokens {
            self.stop = Some(StopReason::Length);
        }
        next
    }
}

/// The tokens of the prompt and answer so far, for the repetition penalty.
struct Seen {
    ids: Vec<u32>,
    penalty: f32,
}

impl Seen {
    fn new(prompt: &[u32], penalty: f64) -> Self {
        let mut seen = Self {
            ids: Vec::new(),
            penalty: penalty as f32,
        };
        for &id in prompt {
            seen.add(id);
        }
        seen
    }

    fn add(&mut self, id: u32) {
        if self.penalty != 1.0
            && let Err(at) = self.ids.binary_search(&id)
        {
            self.ids.insert(at, id);
        }
    }

    /// transformers' `RepetitionPenaltyLogitsProcessor`.
    fn penalize(&self, logits: &mut [f32]) {
        for &id in &self.ids {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = if *l < 0.0 {
                    *l * self.penalty
                } else {
                    *l / self.penalty
                };
            }
        }
    }
}

/// The next token from `logits` under `sampling`.
pub fn choose(logits: &[f32], sampling: &Sampling, rng: &mut SplitMix64) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &l)| {
                if l > best.1 { (i, l) } else { best }
            })
            .0 as u32
    };
    if sampling.temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            (
                i as u32,
                ((f64::from(l - max)) / sampling.temperature).exp(),
            )
        })
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if sampling.top_k > 0 {
        probs.truncate(sampling.top_k);
    }
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut kept = 0.0;
    let mut cut = probs.len();
    for (i, p) in probs.iter().enumerate() {
        kept += p.1 / total;
        if kept >= sampling.top_p {
            cut = i + 1;
            break;
        }
    }
    probs.truncate(cut);
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut draw = rng.next_f64() * mass;
    for &(id, p) in &probs {
        if draw < p {
            return id;
        }
        draw -= p;
    }
    probs.last().map_or_else(argmax, |p| p.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut rng = SplitMix64(1);
        assert_eq!(
            choose(&[0.1, 3.0, 3.0, -1.0], &Sampling::greedy(), &mut rng),
            1
        );
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // Probabilities ∝ e^4, e^3, e^0, e^0: the top two hold ~96%.
        let logits = [4.0, 3.0, 0.0, 0.0];
        let sampling = Sampling {
            temperature: 1.0,
            top_p: 0.9,
            top_k: 0,
            repetition_penalty: 1.0,
            seed: 7,
        };
        let mut rng = SplitMix64(sampling.seed);
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[choose(&logits, &sampling, &mut rng) as usize] += 1;
        }
        assert_eq!(seen[2] + seen[3], 0, "{seen:?}");
        // Renormalised over the nucleus, token 0 has e/(e+1) ≈ 0.73.
        let share = seen[0] as f64 / 2000.0;
        assert!((share - 0.731).abs() < 0.04, "{share}");
    }

    #[test]
    fn the_repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        let seen = Seen::new(&[0, 2, 2], 2.0);
        let mut logits = [4.0, 3.0, -1.0, 1.0];
        seen.penalize(&mut logits);
        assert_eq!(logits, [2.0, 3.0, -2.0, 1.0]);
        // Greedy now prefers the unseen token 1.
        assert_eq!(choose(&logits, &Sampling::greedy(), &mut SplitMix64(0)), 1);
        let off = Seen::new(&[0], 1.0);
        let mut same = [4.0, 3.0];
        off.penalize(&mut same);
        assert_eq!(same, [4.0, 3.0]);
    }

    #[test]
    fn top_k_comes_before_top_p() {
        // ∝ e^2, e^2, e^1.9, e^0: top_k 2 leaves the first two, each ½, and
        // top_p 0.6 then needs both of them.
        let logits = [2.0, 2.0, 1.9, 0.0];
        let sampling = Sampling {
            temperature: 1.0,
            top_p: 0.6,
            top_k: 2,
            repetition_penalty: 1.0,
            seed: 5,
        };
        let mut rng = SplitMix64(sampling.seed);
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[choose(&logits, &sampling, &mut rng) as usize] += 1;
        }
        assert_eq!(seen[2] + seen[3], 0, "{seen:?}");
        assert!(seen[0] > 800 && seen[1] > 800, "{seen:?}");
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let logits = [1.0, 0.0];
        let share = |temperature: f64| {
            let s = Sampling {
                temperature,
                top_p: 1.0,
                top_k: 0,
                repetition_penalty: 1.0,
                seed: 3,
            };
            let mut rng = SplitMix64(s.seed);
            (0..4000)
                .filter(|_| choose(&logits, &s, &mut rng) == 0)
                .count() as f64
                / 4000.0
        };
        // softmax([1, 0] / T)[0]: T = 0.25 → 0.982, T = 4 → 0.562.
        assert!((share(0.25) - 0.982).abs() < 0.02);
        assert!((share(4.0) - 0.562).abs() < 0.03);
    }
}
