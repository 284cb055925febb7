//! `next-diagnosis` examples answered by generation: the model continues
//! each example's prompt greedily, and the diagnoses it names are compared
//! with the recorded ones (precision, recall and F1 over normalised names).

use crate::error::EvalError;
use crate::summary::{Bootstrap, Difference, Tally, bootstrap, pairs};
use burn::prelude::Backend;
use clintune_core::Cause;
use clintune_curate::diagnoses::names;
use clintune_curate::labels::Example;
use clintune_model::{GenerateConfig, Llama, Sampling};
use clintune_text::tokenizer::Tokenizer;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The task whose answers are generated.
pub const TASK: &str = "next-diagnosis";

/// Tokens a generated answer may run past the recorded one's length, by
/// default.
pub const SLACK_TOKENS: usize = 16;

/// Diagnoses named right, named wrongly and missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Named and recorded.
    pub hits: u64,
    /// Named but not recorded.
    pub wrong: u64,
    /// Recorded but not named.
    pub missed: u64,
}

impl Tally for Counts {
    fn add_in(&mut self, other: &Self) {
        self.hits += other.hits;
        self.wrong += other.wrong;
        self.missed += other.missed;
    }
}

/// Precision, recall and F1 of some counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    /// Share of named diagnoses that were recorded.
    pub precision: f64,
    /// Share of recorded diagnoses that were named.
    pub recall: f64,
    /// Their harmonic mean.
    pub f1: f64,
}

impl Scores {
    /// `None` when nothing was recorded (recall has no meaning then).
    pub fn of(c: &Counts) -> Option<Self> {
        let recorded = c.hits + c.missed;
        if recorded == 0 {
            return None;
        }
        let named = c.hits + c.wrong;
        let precision = if named == 0 {
            0.0
        } else {
            c.hits as f64 / named as f64
        };
        let recall = c.hits as f64 / recorded as f64;
        let f1 = if c.hits == 0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Some(Self {
            precision,
            recall,
            f1,
        })
    }

    fn minus(&self, other: &Scores) -> [f64; 3] {
        [
            self.precision - other.precision,
            self.recall - other.recall,
            self.f1 - other.f1,
        ]
    }
}

/// One model's answers, counted per patient.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    /// Examples answered.
    pub examples: u64,
    /// Examples whose prompt alone fills the model's context: not answered.
    pub too_long: u64,
    /// Counts by patient key.
    pub patients: BTreeMap<String, Counts>,
}

impl Answers {
    /// Counts over all patients.
    pub fn totals(&self) -> Counts {
        let mut all = Counts::default();
        for c in self.patients.values() {
            all.add_in(c);
        }
        all
    }
}

/// Model minus baseline, each with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreDifferences {
    /// Precision.
    pub precision: Difference,
    /// Recall.
    pub recall: Difference,
    /// F1.
    pub f1: Difference,
}

/// Differences of `model`'s answers from `baseline`'s, over patients.
pub fn compare(model: &Answers, baseline: &Answers, boot: Bootstrap) -> Option<ScoreDifferences> {
    let pairs = pairs(&model.patients, &baseline.patients);
    let [precision, recall, f1] = bootstrap(&pairs, boot, |m, b| {
        Some(Scores::of(m)?.minus(&Scores::of(b)?))
    })?;
    Some(ScoreDifferences {
        precision,
        recall,
        f1,
    })
}

/// Answers every example greedily, in at most `slack` tokens more than its
/// recorded answer, and counts its diagnoses against the recorded ones;
/// `progress` gets (examples done, examples in all).
pub fn answer<B: Backend>(
    model: &Llama<B>,
    tokenizer: &Tokenizer,
    examples: &[Example],
    (max_context, slack): (usize, usize),
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Answers, EvalError> {
    let stops = stop_tokens(tokenizer)?;
    let mut answers = Answers::default();
    for (i, example) in examples.iter().enumerate() {
        let Some(start) = example.loss_mask.iter().position(|&m| m == 1) else {
            continue;
        };
        let (prompt, recorded) = example.input_ids.split_at(start);
        if prompt.len() + 1 >= max_context {
            answers.too_long += 1;
            continue;
        }
        let cfg = GenerateConfig {
            max_new_tokens: recorded.len() + slack,
            stop_tokens: stops.clone(),
            sampling: Sampling::greedy(),
        };
        let generated = model.generate(prompt, &cfg, max_context, |_| {});
        let named = names(&decode(tokenizer, &generated.tokens, &stops)?);
        let truth = names(&decode(tokenizer, recorded, &stops)?);
        let counts = Counts {
            hits: named.intersection(&truth).count() as u64,
            wrong: named.difference(&truth).count() as u64,
            missed: truth.difference(&named).count() as u64,
        };
        answers.examples += 1;
        answers
            .patients
            .entry(example.label.patient_key.clone())
            .or_default()
            .add_in(&counts);
        progress(i as u64 + 1, examples.len() as u64);
    }
    Ok(answers)
}

/// Where an answer ends: the end of the assistant's turn, or of the text.
fn stop_tokens(tokenizer: &Tokenizer) -> Result<Vec<u32>, EvalError> {
    let turn = clintune_text::template::end_of_turn(tokenizer).map_err(tokenizer_err)?;
    let stops: BTreeSet<u32> = turn.into_iter().chain(tokenizer.eos_id()).collect();
    Ok(stops.into_iter().collect())
}

/// The text of `ids` up to the first stop token.
fn decode(tokenizer: &Tokenizer, ids: &[u32], stops: &[u32]) -> Result<String, EvalError> {
    let end = ids
        .iter()
        .position(|t| stops.contains(t))
        .unwrap_or(ids.len());
    tokenizer.decode(&ids[..end]).map_err(tokenizer_err)
}

fn tokenizer_err(e: impl Into<Cause>) -> EvalError {
    EvalError::Dataset {
        path: "tokenizer.json".into(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clintune_curate::labels::ExampleLabel;
    use clintune_model::{Cpu, ModelConfig, WeightFiles};
    use std::path::PathBuf;

    fn example(patient: &str, prompt: &[u32], answer: &[u32]) -> Example {
        Example {
            label: ExampleLabel {
                example_id: format!("ex-{patient}"),
                patient_key: patient.into(),
                task: TASK.into(),
            },
            input_ids: prompt.iter().chain(answer).copied().collect(),
            loss_mask: prompt
                .iter()
                .map(|_| 0)
                .chain(answer.iter().map(|_| 1))
                .collect(),
        }
    }

    /// A recorded answer equal to what the model generates is all hits; one
    /// it never says is all missed; a prompt that fills the context is
    /// counted, not answered.
    #[test]
    fn generated_answers_are_counted_against_the_recorded_ones() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/llama/llama-gqa-rope3");
        let config = ModelConfig::load(&dir).expect("config");
        let weights = WeightFiles::open(&dir).expect("weights");
        let model: Llama<Cpu> = Llama::load(&config, &weights, &Default::default()).expect("model");
        let tokenizer = Tokenizer::load(&dir).expect("tokenizer");
        let stops = stop_tokens(&tokenizer).expect("stops");
        let prompt: Vec<u32> = (0..12).map(|i| 40 + i * 7).collect();
        let cfg = GenerateConfig {
            max_new_tokens: 6,
            stop_tokens: stops.clone(),
            sampling: Sampling::greedy(),
        };
        let said = model.generate(&prompt, &cfg, 256, |_| {}).tokens;
        let said: Vec<u32> = said
            .into_iter()
            .take_while(|t| !stops.contains(t))
            .collect();
        assert!(!names(&tokenizer.decode(&said).expect("text")).is_empty());
        let never = tokenizer.encode("- zzqx unheard of\n").expect("ids");
        let long: Vec<u32> = vec![45; 300];
        let examples = [
            example("p1", &prompt, &said),
            example("p2", &prompt, &never),
            example("p3", &long, &said),
        ];
        // No slack: the first example's answer is exactly what was said.
        let answers =
            answer(&model, &tokenizer, &examples, (256, 0), &mut |_, _| {}).expect("answers");
        assert_eq!((answers.examples, answers.too_long), (2, 1));
        let p1 = answers.patients["p1"];
        assert_eq!((p1.wrong, p1.missed), (0, 0));
        assert!(p1.hits >= 1);
        let p2 = answers.patients["p2"];
        assert_eq!((p2.hits, p2.missed), (0, 1));
    }

    #[test]
    fn scores_are_counted_by_hand() {
        let s = Scores::of(&Counts {
            hits: 2,
            wrong: 2,
            missed: 1,
        })
        .expect("recorded");
        assert_eq!((s.precision, s.recall), (0.5, 2.0 / 3.0));
        assert!((s.f1 - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!(Scores::of(&Counts::default()), None);
        let none_named = Scores::of(&Counts {
            hits: 0,
            wrong: 0,
            missed: 3,
        });
        assert_eq!(none_named.map(|s| s.f1), Some(0.0));
    }
}
