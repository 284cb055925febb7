//! Scores grouped by task and by patient, and differences between two
//! models with bootstrap intervals over patients: patients, not tokens, are
//! the independent units (one patient's examples share their history).

use crate::score::Totals;
use clintune_core::rng::SplitMix64;
use serde::Serialize;
use std::collections::BTreeMap;

/// The group holding every example, beside the per-task groups.
pub const ALL: &str = "all";

/// Per-patient totals of one group of examples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Examples in the group.
    pub examples: u64,
    /// Totals by patient key.
    pub patients: BTreeMap<String, Totals>,
}

impl Group {
    /// The group's totals over all its patients.
    pub fn totals(&self) -> Totals {
        let mut all = Totals::default();
        for t in self.patients.values() {
            all.add(t);
        }
        all
    }
}

/// Groups per-example totals by task (and [`ALL`]); `labels` gives each
/// example's `(patient, task)`.
pub fn group<'a>(
    scores: &[Totals],
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, Group> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (score, (patient, task)) in scores.iter().zip(labels) {
        for name in [task, ALL] {
            let g = groups.entry(name.to_owned()).or_default();
            g.examples += 1;
            g.patients.entry(patient.to_owned()).or_default().add(score);
        }
    }
    groups
}

/// A model's figures on one group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    /// Mean negative log-likelihood per trained token (nats).
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Share of trained tokens predicted exactly (arg-max).
    pub token_accuracy: f64,
}

impl Figures {
    /// The figures of `totals`; `None` without trained tokens.
    pub fn of(totals: &Totals) -> Option<Self> {
        let loss = totals.loss()?;
        Some(Self {
            loss,
            perplexity: loss.exp(),
            token_accuracy: totals.accuracy()?,
        })
    }

    fn minus(&self, other: &Figures) -> [f64; 3] {
        [
            self.loss - other.loss,
            self.perplexity - other.perplexity,
            self.token_accuracy - other.token_accuracy,
        ]
    }
}

/// A difference (model minus baseline) and its 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    /// The difference on the patients as they are.
    pub value: f64,
    /// 2.5th and 97.5th percentiles over resampled patient sets.
    pub ci95: [f64; 2],
}

/// Model minus baseline for each figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Differences {
    /// Loss (negative: the model is better).
    pub loss: Difference,
    /// Perplexity (negative: the model is better).
    pub perplexity: Difference,
    /// Token accuracy (positive: the model is better).
    pub token_accuracy: Difference,
}

/// How the intervals are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bootstrap {
    /// Resampled patient sets.
    pub resamples: u32,
    /// Seed of the resampling, so that a report can be reproduced.
    pub seed: u64,
}

/// Per-patient counts that add up: what the bootstrap resamples.
pub trait Tally: Copy + Default {
    /// Adds `other` in.
    fn add_in(&mut self, other: &Self);
}

impl Tally for Totals {
    fn add_in(&mut self, other: &Self) {
        self.add(other);
    }
}

/// `diff` of the sums of `pairs` (model, baseline per patient), with its
/// 95% interval over patient sets resampled with replacement. `None` when
/// `diff` has no value on the patients as they are.
pub fn bootstrap<T: Tally, const N: usize>(
    pairs: &[(T, T)],
    boot: Bootstrap,
    diff: impl Fn(&T, &T) -> Option<[f64; N]>,
) -> Option<[Difference; N]> {
    let sum = |pick: &mut dyn FnMut() -> usize| {
        let (mut m, mut b) = (T::default(), T::default());
        for _ in 0..pairs.len() {
            let (pm, pb) = &pairs[pick()];
            m.add_in(pm);
            b.add_in(pb);
        }
        (m, b)
    };
    let mut next = 0;
    let (m, b) = sum(&mut || {
        next += 1;
        next - 1
    });
    let point = diff(&m, &b)?;
    let mut rng = SplitMix64(boot.seed);
    let mut draws: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    for _ in 0..boot.resamples {
        let (m, b) = sum(&mut || rng.below(pairs.len() as u64) as usize);
        if let Some(d) = diff(&m, &b) {
            for (draw, d) in draws.iter_mut().zip(d) {
                draw.push(d);
            }
        }
    }
    Some(std::array::from_fn(|i| Difference {
        value: point[i],
        ci95: interval(&mut draws[i]).unwrap_or([point[i], point[i]]),
    }))
}

/// Each patient's (model, baseline) tally; a patient only one side has
/// counts zero on the other.
pub fn pairs<T: Tally>(model: &BTreeMap<String, T>, baseline: &BTreeMap<String, T>) -> Vec<(T, T)> {
    model
        .iter()
        .map(|(p, m)| (*m, baseline.get(p).copied().unwrap_or_default()))
        .collect()
}

/// Differences between `model` and `baseline` on the same examples, with
/// intervals from resampling patients with replacement. `None` when either
/// has no trained tokens.
pub fn compare(model: &Group, baseline: &Group, boot: Bootstrap) -> Option<Differences> {
    let pairs = pairs(&model.patients, &baseline.patients);
    let [loss, perplexity, token_accuracy] = bootstrap(&pairs, boot, |m, b| {
        Some(Figures::of(m)?.minus(&Figures::of(b)?))
    })?;
    Some(Differences {
        loss,
        perplexity,
        token_accuracy,
    })
}

/// The 2.5th and 97.5th percentiles (nearest rank); `None` without draws.
fn interval(draws: &mut [f64]) -> Option<[f64; 2]> {
    if draws.is_empty() {
        return None;
    }
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((q * draws.len() as f64).ceil() as usize).clamp(1, draws.len()) - 1];
    Some([at(0.025), at(0.975)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(nll: f64, correct: u64, tokens: u64) -> Totals {
        Totals {
            nll,
            correct,
            tokens,
        }
    }

    const BOOT: Bootstrap = Bootstrap {
        resamples: 500,
        seed: 7,
    };

    #[test]
    fn examples_group_by_task_and_patient() {
        let scores = [totals(2.0, 1, 2), totals(3.0, 0, 1), totals(6.0, 3, 3)];
        let labels = [("p1", "chat"), ("p2", "chat"), ("p1", "timeline")];
        let groups = group(&scores, labels);
        assert_eq!(groups[ALL].examples, 3);
        assert_eq!(groups["chat"].patients.len(), 2);
        assert_eq!(groups[ALL].patients["p1"], totals(8.0, 4, 5));
        let f = Figures::of(&groups["chat"].totals()).expect("tokens");
        assert!((f.loss - 5.0 / 3.0).abs() < 1e-12);
        assert!((f.perplexity - (5.0f64 / 3.0).exp()).abs() < 1e-9);
        assert!((f.token_accuracy - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_model_compared_with_itself_differs_by_nothing() {
        let scores: Vec<Totals> = (0..20)
            .map(|i| totals(f64::from(i), i as u64 % 3, 4))
            .collect();
        let labels: Vec<(String, &str)> =
            (0..20).map(|i| (format!("p{}", i % 6), "chat")).collect();
        let g = group(&scores, labels.iter().map(|(p, t)| (p.as_str(), *t)));
        let d = compare(&g[ALL], &g[ALL], BOOT).expect("tokens");
        for diff in [d.loss, d.perplexity, d.token_accuracy] {
            assert_eq!((diff.value, diff.ci95), (0.0, [0.0, 0.0]));
        }
    }

    #[test]
    fn the_interval_holds_the_difference_and_narrows_with_patients() {
        let make = |patients: usize, shift: f64| {
            let mut g = Group::default();
            for p in 0..patients {
                let noise = ((p * 37) % 11) as f64 / 10.0;
                g.patients
                    .insert(format!("p{p}"), totals(10.0 * (1.0 + noise) - shift, 0, 10));
                g.examples += 1;
            }
            g
        };
        let width = |patients| {
            let d = compare(&make(patients, 2.0), &make(patients, 0.0), BOOT).expect("tokens");
            assert!((d.loss.value + 0.2).abs() < 1e-12, "{:?}", d.loss);
            assert!(d.loss.ci95[0] <= d.loss.value && d.loss.value <= d.loss.ci95[1]);
            d.loss.ci95[1] - d.loss.ci95[0]
        };
        // Every patient improves by the same 0.2, so the interval is tight.
        assert!(width(10) < 1e-9);
        let noisy = |patients: usize| {
            let mut m = make(patients, 0.0);
            for (i, t) in m.patients.values_mut().enumerate() {
                t.nll -= if i % 2 == 0 { 4.0 } else { 0.0 };
            }
            let d = compare(&m, &make(patients, 0.0), BOOT).expect("tokens");
            assert!(d.loss.ci95[0] <= d.loss.value && d.loss.value <= d.loss.ci95[1]);
            d.loss.ci95[1] - d.loss.ci95[0]
        };
        assert!(noisy(200) < noisy(10), "{} vs {}", noisy(200), noisy(10));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut draws: Vec<f64> = (1..=200).map(f64::from).collect();
        draws.reverse();
        assert_eq!(interval(&mut draws), Some([5.0, 195.0]));
        assert_eq!(interval(&mut []), None);
    }
}
