//! `[objective]`: what the weights learn from, apart from how they change
//! (`[method]`: full or LoRA).

use super::grpo::{GrpoLossConfig, GrpoLossType, ScaleRewards};
use clintune_core::Invalid;
use serde::{Deserialize, Serialize};

/// What a run optimises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// Supervised fine-tuning: next-token likelihood of the trained tokens.
    #[default]
    Sft,
    /// Direct preference optimisation (Rafailov et al., 2023) on the
    /// dataset's `preference` pairs.
    Dpo,
    /// Group relative policy optimisation (Shao et al., 2024), TRL's
    /// `GRPOTrainer`: completions sampled for the dataset's prompts, rewarded
    /// by the recipe's `[[grader]]` tables (`[grpo]` holds its settings).
    Grpo,
}

/// The DPO loss, as TRL names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpoLoss {
    /// `-log σ(β Δ)`, with `label_smoothing` ε the conservative form
    /// `-(1-ε) log σ(β Δ) - ε log σ(-β Δ)`.
    #[default]
    Sigmoid,
    /// IPO (Azar et al., 2023): `(Δ̄ - 1/(2β))²`, with Δ̄ from per-token
    /// average log-ratios, as TRL computes it.
    Ipo,
    /// SLiC's hinge: `max(0, 1 - β Δ)`.
    Hinge,
}

impl DpoLoss {
    /// Its name in recipes.
    pub fn as_str(self) -> &'static str {
        match self {
            DpoLoss::Sigmoid => "sigmoid",
            DpoLoss::Ipo => "ipo",
            DpoLoss::Hinge => "hinge",
        }
    }
}

/// `[grpo]`: GRPO's settings, TRL 1.16's names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoSection {
    /// Completions sampled per prompt (a group).
    pub num_generations: usize,
    /// Prompts longer than this keep their last this many tokens (0: whole
    /// prompts, as TRL 1.16, which has no such setting).
    pub max_prompt_length: usize,
    /// The longest completion sampled, in tokens.
    pub max_completion_length: usize,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus sampling (1 = off).
    pub top_p: f64,
    /// Top-k sampling (0 = off).
    pub top_k: usize,
    /// The ratio is clipped below at `1 - epsilon`.
    pub epsilon: f64,
    /// The ratio is clipped above at `1 + epsilon_high` (`epsilon` when unset).
    pub epsilon_high: Option<f64>,
    /// Weight of the KL divergence to the base model (0: none).
    pub beta: f64,
    /// `dapo`, `grpo`, `bnpo` or `dr_grpo`.
    pub loss_type: GrpoLossType,
    /// `group`, `batch` or `none`.
    pub scale_rewards: ScaleRewards,
    /// Optimizer steps per generation batch.
    pub num_iterations: usize,
}

impl Default for GrpoSection {
    fn default() -> Self {
        Self {
            num_generations: 8,
            max_prompt_length: 0,
            max_completion_length: 512,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            epsilon: 0.2,
            epsilon_high: None,
            beta: 0.0,
            loss_type: GrpoLossType::Dapo,
            scale_rewards: ScaleRewards::Group,
            num_iterations: 1,
        }
    }
}

impl GrpoSection {
    /// True for the defaults (left out of the recipe's hash).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), Invalid> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Invalid::new(
                    format!("grpo.{name}"),
                    format!("must be positive, got {v}"),
                ))
            }
        };
        if self.num_generations < 2 {
            return Err(Invalid::new(
                "grpo.num_generations",
                format!(
                    "must be at least 2 (advantages compare a group), got {}",
                    self.num_generations
                ),
            ));
        }
        if self.max_completion_length == 0 {
            return Err(Invalid::new(
                "grpo.max_completion_length",
                "must be at least 1",
            ));
        }
        positive("temperature", self.temperature)?;
        positive("epsilon", self.epsilon)?;
        positive("epsilon_high", self.epsilon_high.unwrap_or(self.epsilon))?;
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Invalid::new(
                "grpo.top_p",
                format!("must be in (0, 1], got {}", self.top_p),
            ));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Invalid::new(
                "grpo.beta",
                format!("must be 0 or positive, got {}", self.beta),
            ));
        }
        if self.num_iterations == 0 {
            return Err(Invalid::new("grpo.num_iterations", "must be at least 1"));
        }
        Ok(())
    }

    /// The loss's settings.
    pub fn loss_config(&self) -> GrpoLossConfig {
        GrpoLossConfig {
            loss_type: self.loss_type,
            epsilon: self.epsilon,
            epsilon_high: self.epsilon_high.unwrap_or(self.epsilon),
            beta: self.beta,
            max_completion_length: self.max_completion_length,
        }
    }
}

/// `[objective]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveSection {
    /// `sft`, `dpo` or `grpo`.
    pub kind: ObjectiveKind,
    /// DPO: how far the policy may move from the reference (TRL's default).
    pub beta: f64,
    /// DPO: `sigmoid`, `ipo` or `hinge`.
    pub loss: DpoLoss,
    /// DPO with `sigmoid`: the assumed chance that a preference is flipped.
    pub label_smoothing: f64,
}

impl Default for ObjectiveSection {
    fn default() -> Self {
        Self {
            kind: ObjectiveKind::Sft,
            beta: 0.1,
            loss: DpoLoss::Sigmoid,
            label_smoothing: 0.0,
        }
    }
}

impl ObjectiveSection {
    /// True for the default (SFT with default settings): left out of the
    /// recipe's hash, so recipes written before objectives keep theirs.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(self.beta.is_finite() && self.beta > 0.0) {
            return Err(Invalid::new(
                "objective.beta",
                format!("must be a positive number, got {}", self.beta),
            ));
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return Err(Invalid::new(
                "objective.label_smoothing",
                format!("must lie in [0, 0.5), got {}", self.label_smoothing),
            ));
        }
        if self.label_smoothing > 0.0 && self.loss != DpoLoss::Sigmoid {
            return Err(Invalid::new(
                "objective.label_smoothing",
                "applies to loss = \"sigmoid\" only",
            ));
        }
        Ok(())
    }
}
