//! GRPO's advantages and clipped loss, as TRL 1.16's `GRPOTrainer` computes
//! them, on the per-token log-probabilities of sampled completions; checked
//! against TRL's own `_compute_loss` (`tests/fixtures/grpo/make_golden.py`).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// How the per-token losses of a micro-batch become one loss (TRL's
/// `loss_type`; its default is `dapo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpoLossType {
    /// Each completion's mean over its tokens, then the mean over completions
    /// (favours short completions).
    Grpo,
    /// The mean over all tokens of the micro-batch.
    Bnpo,
    /// The sum over tokens divided by completions × `max_completion_length`
    /// (Dr. GRPO: no length bias).
    DrGrpo,
    /// The sum over tokens divided by the completion tokens of the whole
    /// generation batch.
    #[default]
    Dapo,
}

impl GrpoLossType {
    /// The name a recipe (and TRL) gives it.
    pub fn name(self) -> &'static str {
        match self {
            GrpoLossType::Grpo => "grpo",
            GrpoLossType::Bnpo => "bnpo",
            GrpoLossType::DrGrpo => "dr_grpo",
            GrpoLossType::Dapo => "dapo",
        }
    }
}

/// How rewards are scaled into advantages (TRL's `scale_rewards`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleRewards {
    /// By the standard deviation of the completion's group.
    #[default]
    Group,
    /// By the standard deviation over the whole batch.
    Batch,
    /// Not scaled: rewards minus the group's mean.
    None,
}

/// The loss's settings, with TRL 1.16's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpoLossConfig {
    /// How per-token losses are aggregated.
    pub loss_type: GrpoLossType,
    /// The ratio is clipped below at `1 - epsilon`.
    pub epsilon: f64,
    /// The ratio is clipped above at `1 + epsilon_high` (TRL: `epsilon` when
    /// unset; DAPO uses 0.28).
    pub epsilon_high: f64,
    /// Weight of the KL divergence to the reference model (0: no reference).
    pub beta: f64,
    /// The longest completion sampled (Dr. GRPO's denominator).
    pub max_completion_length: usize,
}

impl Default for GrpoLossConfig {
    fn default() -> Self {
        Self {
            loss_type: GrpoLossType::default(),
            epsilon: 0.2,
            epsilon_high: 0.2,
            beta: 0.0,
            max_completion_length: 512,
        }
    }
}

/// Added to the standard deviation before dividing by it, as TRL does, so
/// that a group of equal rewards gets advantages of 0.
const STD_FLOOR: f64 = 1e-4;

/// Each completion's advantage from its reward: the reward minus its group's
/// mean, scaled as `scale` says. Groups are `group` consecutive completions;
/// standard deviations are unbiased (n − 1), 0 for a group of one.
pub fn advantages(rewards: &[f64], group: usize, scale: ScaleRewards) -> Vec<f64> {
    scaled_advantages(rewards, group, scale, std_dev(rewards))
}

/// [`advantages`] of part of a generation batch, `batch_std` being the
/// deviation over all of it (it may span workers).
pub fn scaled_advantages(
    rewards: &[f64],
    group: usize,
    scale: ScaleRewards,
    batch_std: f64,
) -> Vec<f64> {
    rewards
        .chunks(group.max(1))
        .flat_map(|g| {
            let mean = g.iter().sum::<f64>() / g.len() as f64;
            let std = match scale {
                ScaleRewards::Batch => batch_std,
                _ => std_dev(g),
            };
            g.iter().map(move |r| match scale {
                ScaleRewards::None => r - mean,
                _ => (r - mean) / (std + STD_FLOOR),
            })
        })
        .collect()
}

/// The unbiased standard deviation of `n` values from their sum and sum of
/// squares, 0 for fewer than two.
pub fn std_from_sums(n: f64, sum: f64, sum_sq: f64) -> f64 {
    if n < 2.0 {
        return 0.0;
    }
    ((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0).sqrt()
}

/// The unbiased standard deviation, 0 for fewer than two values.
pub fn std_dev(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    (squares / (n - 1) as f64).sqrt()
}

/// One micro-batch's GRPO loss and TRL's figures of it.
#[derive(Debug, Clone)]
pub struct GrpoLoss<B: Backend> {
    /// The loss, `[1]`, for a step without gradient accumulation (the
    /// trainer divides by the accumulation steps, as for every objective).
    pub loss: Tensor<B, 1>,
    /// Share of scored tokens whose ratio fell below `1 - epsilon` with a
    /// negative advantage (`clip_ratio/low_mean`).
    pub clip_low: f64,
    /// Share above `1 + epsilon_high` with a positive advantage
    /// (`clip_ratio/high_mean`).
    pub clip_high: f64,
    /// Either (`clip_ratio/region_mean`).
    pub clip_region: f64,
    /// Mean per-token KL divergence to the reference, when `beta` > 0.
    pub kl: Option<f64>,
}

/// The completions' log-probabilities and what they are compared with,
/// `[completions, tokens]` each.
#[derive(Debug, Clone)]
pub struct GrpoInputs<B: Backend> {
    /// The policy's log-probability of each completion token (with grad).
    pub logps: Tensor<B, 2>,
    /// The same under the policy that sampled them (no grad); equal to
    /// `logps` when each generation is used once.
    pub old_logps: Tensor<B, 2>,
    /// The reference model's, needed when `beta` > 0.
    pub ref_logps: Option<Tensor<B, 2>>,
    /// Each completion's advantage, `[completions]`.
    pub advantages: Tensor<B, 1>,
    /// 1 on completion tokens, 0 on padding.
    pub mask: Tensor<B, 2>,
    /// Completion tokens in the whole generation batch (DAPO's denominator).
    pub num_items_in_batch: f64,
}

/// TRL's clipped surrogate loss with token-level importance ratios, and an
/// optional KL term (`exp(ref - logp) - (ref - logp) - 1` per token).
pub fn grpo_loss<B: Backend>(input: GrpoInputs<B>, cfg: &GrpoLossConfig) -> GrpoLoss<B> {
    let [completions, _] = input.logps.dims();
    let advantages = input.advantages.reshape([completions, 1]);
    let ratio = (input.logps.clone() - input.old_logps).exp();
    let clipped = ratio
        .clone()
        .clamp(1.0 - cfg.epsilon, 1.0 + cfg.epsilon_high);
    let mut per_token = (ratio.clone() * advantages.clone())
        .min_pair(clipped * advantages.clone())
        .neg();
    let mut kl = None;
    if cfg.beta != 0.0
        && let Some(reference) = input.ref_logps
    {
        let gap = reference - input.logps;
        let per_token_kl = gap.clone().exp() - gap - 1.0;
        kl = Some(masked_mean(&per_token_kl, &input.mask));
        per_token = per_token + per_token_kl * cfg.beta;
    }
    let mask = input.mask;
    let masked = per_token * mask.clone();
    let loss = match cfg.loss_type {
        GrpoLossType::Grpo => (masked.sum_dim(1) / mask.clone().sum_dim(1).clamp_min(1.0))
            .mean()
            .reshape([1]),
        GrpoLossType::Bnpo => masked.sum() / mask.clone().sum().clamp_min(1.0),
        GrpoLossType::DrGrpo => masked.sum() / (completions * cfg.max_completion_length) as f64,
        GrpoLossType::Dapo => masked.sum() / input.num_items_in_batch.max(1.0),
    };
    let (clip_low, clip_high, clip_region) = clip_shares(&ratio, &advantages, &mask, cfg);
    GrpoLoss {
        loss,
        clip_low,
        clip_high,
        clip_region,
        kl,
    }
}

/// The mean of `x` over the tokens `mask` keeps.
fn masked_mean<B: Backend>(x: &Tensor<B, 2>, mask: &Tensor<B, 2>) -> f64 {
    let (x, mask) = (host(x), host(mask));
    let kept: f64 = mask.iter().map(|&m| f64::from(m)).sum();
    let total: f64 = x.iter().zip(&mask).map(|(&v, &m)| f64::from(v * m)).sum();
    total / kept.max(1.0)
}

/// Shares of kept tokens clipped low, high and either, as TRL counts them.
fn clip_shares<B: Backend>(
    ratio: &Tensor<B, 2>,
    advantages: &Tensor<B, 2>,
    mask: &Tensor<B, 2>,
    cfg: &GrpoLossConfig,
) -> (f64, f64, f64) {
    let [completions, tokens] = ratio.dims();
    let (ratio, advantages, mask) = (host(ratio), host(advantages), host(mask));
    let (mut low, mut high, mut kept) = (0.0, 0.0, 0.0);
    for c in 0..completions {
        let a = advantages[c];
        for t in 0..tokens {
            let (r, m) = (
                f64::from(ratio[c * tokens + t]),
                f64::from(mask[c * tokens + t]),
            );
            kept += m;
            if r < 1.0 - cfg.epsilon && a < 0.0 {
                low += m;
            }
            if r > 1.0 + cfg.epsilon_high && a > 0.0 {
                high += m;
            }
        }
    }
    let share = |n: f64| n / kept.max(1.0);
    (share(low), share(high), share(low + high))
}

fn host<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Vec<f32> {
    t.clone().into_data().iter::<f32>().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rewards_give_no_advantage_and_groups_are_separate() {
        let a = advantages(&[1.0, 1.0, 1.0, 0.0, 2.0, 1.0], 3, ScaleRewards::Group);
        assert_eq!(&a[..3], &[0.0, 0.0, 0.0]);
        // Group 2: mean 1, unbiased std 1.
        assert!(
            (a[3] + 1.0 / 1.0001).abs() < 1e-12 && a[5].abs() < 1e-12,
            "{a:?}"
        );
        let none = advantages(&[3.0, 1.0], 2, ScaleRewards::None);
        assert_eq!(none, [1.0, -1.0]);
        assert_eq!(advantages(&[5.0], 1, ScaleRewards::Batch), [0.0]);
    }

    #[test]
    fn the_deviation_from_sums_is_the_two_pass_one() {
        let v = [0.5, 1.0, 0.0, 0.25, 1.0];
        let (sum, sq) = (v.iter().sum::<f64>(), v.iter().map(|x| x * x).sum::<f64>());
        assert!((std_from_sums(5.0, sum, sq) - std_dev(&v)).abs() < 1e-12);
        assert_eq!(std_from_sums(1.0, 2.0, 4.0), 0.0);
        assert_eq!(std_from_sums(3.0, 3.0, 3.0), 0.0);
    }
}
