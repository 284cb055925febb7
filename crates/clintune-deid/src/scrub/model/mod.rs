//! The learned decision over the rules' candidates.
//!
//! The patterns, dictionaries and context rules propose spans; a logistic
//! model over token features ([`features`]) decides, token by token, which
//! are PHI. A span the rules found is kept whole when the model marks any of
//! its tokens; a token the model marks outside every span becomes a span of
//! its own. The patient's own identifiers from the structured record are
//! always kept: the model never overrules what the record says.
//!
//! In strict mode the model drops nothing the rules found: it judges only
//! the tokens no rule found.
//!
//! Each mode has its threshold on the model's probability, chosen when the
//! model was trained (`clintune deid train-model`) by cross-validation over
//! patients for a recall target. Scoring is a sum of table lookups in a
//! fixed order: the same text gives the same spans on every run.

pub mod decide;
pub mod features;
mod file;

use crate::policy::TextMode;
pub use features::{Sink, Template, View};

/// A trained model: weights over hashed features and a threshold per mode.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiModel {
    /// One weight per table slot (`2^TABLE_BITS`).
    pub weights: Vec<f32>,
    /// Probability at or above which a token is PHI in balanced mode.
    pub balanced: f32,
    /// The same for strict mode (lower: more recall, less precision).
    pub strict: f32,
    /// Per slot, the feature name written to the weights file (training only;
    /// empty when loaded).
    pub names: Vec<Option<(Template, Vec<u8>)>>,
    /// Free-text lines describing how the model was made, kept in its file.
    pub about: Vec<String>,
}

impl PhiModel {
    /// An untrained model: every weight zero.
    pub fn zeros() -> Self {
        let n = 1usize << features::TABLE_BITS;
        PhiModel {
            weights: vec![0.0; n],
            balanced: 0.5,
            strict: 0.5,
            names: Vec::new(),
            about: Vec::new(),
        }
    }

    /// The threshold of a mode, as a probability.
    pub fn threshold(&self, mode: TextMode) -> f32 {
        match mode {
            TextMode::Balanced => self.balanced,
            TextMode::Strict => self.strict,
        }
    }

    /// A bit for each rule the model has a weight for: the rules whose
    /// spans it was trained to judge.
    pub fn learned_rules(&self) -> u128 {
        crate::scrub::Rule::ALL
            .iter()
            .filter(|r| {
                self.weights[features::slot(Template::Rule, r.as_str().as_bytes()) as usize] != 0.0
            })
            .fold(0, |bits, r| bits | 1u128 << (*r as u8))
    }

    /// The model's margin (log-odds of PHI) for token `i` of `view`.
    pub fn margin(&self, view: &View<'_>, i: usize) -> f32 {
        let mut sum = Margin {
            weights: &self.weights,
            sum: 0.0,
        };
        view.features(i, &mut sum);
        sum.sum
    }
}

/// The rules whose spans the model may drop in `mode`: in balanced mode
/// every rule it learned about; in strict mode none, so that strict keeps
/// all that the rules find and the model only judges the other tokens.
pub fn judged_rules(model: &PhiModel, mode: TextMode) -> u128 {
    match mode {
        TextMode::Balanced => model.learned_rules(),
        TextMode::Strict => 0,
    }
}

impl PhiModel {
    /// Whether token `i` of `view` is PHI: its margin reaches `cut`. The
    /// same answer as comparing [`PhiModel::margin`], without the costly
    /// spelling check where it cannot change the answer.
    pub fn is_phi(&self, view: &View<'_>, i: usize, cut: f32) -> bool {
        let mut sum = Margin {
            weights: &self.weights,
            sum: 0.0,
        };
        view.features_but_spelling(i, &mut sum);
        let base = sum.sum;
        if !view.may_be_misspelt(i) {
            return base >= cut;
        }
        let with = base + self.weights[features::slot(Template::Misspelt, b"") as usize];
        if (base >= cut) == (with >= cut) {
            return base >= cut;
        }
        if view.misspelt(i) {
            with >= cut
        } else {
            base >= cut
        }
    }
}

/// The log-odds of a probability, clamped away from 0 and 1.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

struct Margin<'a> {
    weights: &'a [f32],
    sum: f32,
}

impl Sink for Margin<'_> {
    fn add(&mut self, t: Template, value: &[u8]) {
        self.sum += self.weights[features::slot(t, value) as usize];
    }
}
