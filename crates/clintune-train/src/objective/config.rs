//! `[objective]`: what the weights learn from, apart from how they change
//! (`[method]`: full or LoRA).

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

/// `[objective]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveSection {
    /// `sft` or `dpo`.
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
