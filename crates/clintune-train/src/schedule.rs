//! The learning rate at each optimizer step: linear warmup, then decay.

use crate::recipe::{Decay, ScheduleSection};

/// The learning rate of every step of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    peak: f64,
    min: f64,
    warmup: u64,
    total: u64,
    decay: Decay,
}

impl Schedule {
    /// The schedule of a run of `total_steps` steps peaking at `peak`.
    pub fn new(peak: f64, cfg: &ScheduleSection, total_steps: u64) -> Self {
        Self {
            peak,
            min: cfg.min_lr,
            warmup: cfg.warmup_steps,
            total: total_steps,
            decay: cfg.decay,
        }
    }

    /// The rate of step `step` (0-based): `peak·(step+1)/warmup` during
    /// warmup, then from the peak down to the minimum at the last step.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup + 1);
        let done = if span == 0 {
            1.0
        } else {
            ((step - self.warmup) as f64 / span as f64).min(1.0)
        };
        let share = match self.decay {
            Decay::Constant => return self.peak,
            Decay::Linear => 1.0 - done,
            Decay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * done).cos()),
        };
        self.min + (self.peak - self.min) * share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(decay: Decay) -> Schedule {
        let cfg = ScheduleSection {
            warmup_steps: 4,
            decay,
            min_lr: 0.1,
        };
        Schedule::new(1.0, &cfg, 14)
    }

    #[test]
    fn warms_up_linearly_then_decays_to_the_minimum() {
        let s = schedule(Decay::Cosine);
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert_eq!(s.lr(4), 1.0);
        assert!((s.lr(13) - 0.1).abs() < 1e-12);
        // A third of the way through the decay: 0.5·(1 + cos(π/3)) = 0.75.
        assert!((s.lr(7) - (0.1 + 0.9 * 0.75)).abs() < 1e-12);
        let lin = schedule(Decay::Linear);
        assert!((lin.lr(13) - 0.1).abs() < 1e-12);
        assert!((lin.lr(7) - (0.1 + 0.9 * (1.0 - 3.0 / 9.0))).abs() < 1e-12);
        assert_eq!(schedule(Decay::Constant).lr(13), 1.0);
    }

    #[test]
    fn never_rises_after_warmup() {
        for decay in [Decay::Cosine, Decay::Linear] {
            let s = schedule(decay);
            for step in 4..20 {
                assert!(s.lr(step + 1) <= s.lr(step), "{decay:?} at {step}");
            }
        }
    }
}
