//! Training the PHI model on an annotated corpus (`clintune deid
//! train-model`).
//!
//! Every token the rules propose (and every other token worth scoring, see
//! [`View::candidate`]) becomes an example, labelled PHI when it overlaps a
//! gold span. Each note is also re-filled with surrogates several times
//! ([`augment`]), so the model sees each context with many values in it.
//! Thresholds are chosen by cross-validation over patients: the notes of a
//! fold are scored by a model that never saw them nor their surrogate
//! copies, and each mode takes the highest threshold whose out-of-fold
//! recall meets its target. The final model is fitted on every note with
//! those thresholds. Everything runs in a seeded, fixed order: the same
//! corpus, dictionaries and configuration give the same file, byte for byte.

pub mod augment;
pub mod sgd;

use crate::eval::{self, EvalReport, Note};
use crate::scrub::model::features::{self, Sink, Template, View};
use crate::scrub::model::{self, PhiModel};
use crate::scrub::normalize::Normalized;
use crate::scrub::{Scrubber, Span};
use augment::Surrogates;
use clintune_core::rng::{SplitMix64, mix64};
use rayon::prelude::*;
use sgd::{Examples, SgdConfig};

/// How a model is trained.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Surrogate copies of each note added to the training set.
    pub augment: usize,
    /// Cross-validation folds (patients split by a hash of their id).
    pub folds: usize,
    /// Probability that a token of a surrogate copy is shown without what
    /// the rules said of it. The rules were grown on notes like the
    /// training corpus and miss more elsewhere; hiding them now and then
    /// makes the model learn the contexts, lists and shapes as well.
    pub rule_dropout: f64,
    /// Out-of-fold span recall balanced mode's threshold must reach.
    pub balanced_recall: f64,
    /// The same for strict mode.
    pub strict_recall: f64,
    /// The fit.
    pub sgd: SgdConfig,
    /// A line naming the corpus, kept in the model file (no path, no text).
    pub corpus_name: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            augment: 4,
            rule_dropout: 0.3,
            folds: 5,
            balanced_recall: 0.98,
            strict_recall: 0.99,
            sgd: SgdConfig::default(),
            corpus_name: "unnamed corpus".into(),
        }
    }
}

/// One row of the threshold sweep: out-of-fold scores at a threshold.
#[derive(Debug, Clone)]
pub struct SweepRow {
    /// The probability threshold.
    pub threshold: f32,
    /// Scores of every note, each by the model that did not see it.
    pub report: EvalReport,
}

/// What training measured.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Notes and gold spans read.
    pub notes: usize,
    /// Gold spans.
    pub gold: usize,
    /// Examples fitted by the final model (with surrogate copies) and how
    /// many were PHI.
    pub examples: usize,
    /// PHI examples among them.
    pub positives: usize,
    /// Out-of-fold average precision of the candidate tokens ranked by
    /// their margins: how well the model orders PHI before the rest,
    /// whatever the threshold.
    pub token_ap: f64,
    /// Out-of-fold scores by threshold, highest threshold first (balanced
    /// mode's decision).
    pub sweep: Vec<SweepRow>,
    /// Balanced mode's chosen row.
    pub balanced: SweepRow,
    /// Strict mode's chosen row.
    pub strict: SweepRow,
}

impl TrainReport {
    /// A plain-text summary: the sweep and the chosen thresholds.
    pub fn render(&self) -> String {
        let mut s = format!(
            "notes {}, gold spans {}, examples {} ({} PHI)\n\
             out-of-fold scores (each note scored by a model that never saw its patient):\n\
             token average precision {:.4}\n\
             threshold  recall  PPV     PHI chars left\n",
            self.notes, self.gold, self.examples, self.positives, self.token_ap
        );
        for r in &self.sweep {
            s.push_str(&row(r));
        }
        s.push_str(&format!("balanced: {}", row(&self.balanced)));
        s.push_str(&format!("strict:   {}", row(&self.strict)));
        s
    }
}

fn row(r: &SweepRow) -> String {
    let left = 100.0 * r.report.chars_left as f64 / r.report.gold_chars.max(1) as f64;
    format!(
        "{:<10} {:.4}  {:.4}  {:.2}%\n",
        r.threshold,
        r.report.recall(),
        r.report.ppv(),
        left
    )
}

/// A note ready for training: its normalized text, gold spans in byte
/// offsets of that text, and what the rules found in it.
struct Prepared<'a> {
    note: &'a Note,
    text: String,
    gold: Vec<(usize, usize, String)>,
}

/// Trains a model over `notes` with `scrubber`'s rules as candidates
/// (its own model, if any, is not used). `progress` hears each stage.
pub fn train(
    scrubber: &Scrubber,
    notes: &[Note],
    cfg: &TrainConfig,
    progress: &(dyn Fn(&str) + Sync),
) -> (PhiModel, TrainReport) {
    let slots = 1usize << features::TABLE_BITS;
    let mut names: Vec<Option<(Template, Vec<u8>)>> = vec![None; slots];
    let prepared: Vec<Prepared<'_>> = notes.iter().map(prepare).collect();
    progress(&format!(
        "extracting features ({} notes, {} surrogate copies each)",
        notes.len(),
        cfg.augment
    ));
    let surrogates = Surrogates::new(scrubber.dictionaries());
    let per_note: Vec<Examples> = prepared
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut ex = Examples::new();
            add_examples(scrubber, &p.text, &p.gold, &mut names, None, &mut ex);
            let mut rng = SplitMix64(mix64(cfg.sgd.seed ^ (k as u64).wrapping_mul(0x9E37)));
            for copy in 0..cfg.augment {
                let (text, gold) = surrogates.refill(&p.text, &p.gold, &mut rng);
                // Every other copy in one case throughout, as speech
                // transcripts and some systems write: contexts must be
                // learned without capitals to lean on.
                let text = match copy % 4 {
                    1 => text.to_ascii_lowercase(),
                    3 => text.to_ascii_uppercase(),
                    _ => text,
                };
                let dropout = Some((cfg.rule_dropout, &mut rng));
                add_examples(scrubber, &text, &gold, &mut names, dropout, &mut ex);
            }
            ex
        })
        .collect();

    progress(&format!(
        "cross-validating over {} folds of patients",
        cfg.folds
    ));
    let fold_of: Vec<usize> = notes
        .iter()
        .map(|n| eval::fold_of(&n.patient, cfg.folds))
        .collect();
    let (margins, scored) = out_of_fold_margins(scrubber, &prepared, &per_note, &fold_of, cfg);
    let token_ap = average_precision(scored);
    let strict_sweep = sweep(scrubber, &prepared, &margins, 0);
    let sweep = sweep(scrubber, &prepared, &margins, u128::MAX);
    let pick = |rows: &[SweepRow], target: f64| {
        rows.iter()
            .find(|r| r.report.recall() >= target)
            .unwrap_or(&rows[rows.len() - 1])
            .clone()
    };
    let balanced = pick(&sweep, cfg.balanced_recall);
    let strict = pick(&strict_sweep, cfg.strict_recall);

    progress("fitting the final model on every note");
    let mut all = Examples::new();
    per_note.iter().for_each(|e| all.extend(e));
    let weights = sgd::fit(&all, slots, &cfg.sgd);
    let report = TrainReport {
        notes: notes.len(),
        gold: notes.iter().map(|n| n.gold.len()).sum(),
        examples: all.len(),
        positives: all.labels.iter().filter(|l| **l).count(),
        token_ap,
        sweep,
        balanced,
        strict,
    };
    let model = PhiModel {
        weights,
        balanced: report.balanced.threshold,
        strict: report.strict.threshold,
        names,
        about: about(cfg, &report),
    };
    (model, report)
}

/// The model file's `about` lines: how it was made and what it scored out
/// of fold. Nothing from the corpus's text.
fn about(cfg: &TrainConfig, r: &TrainReport) -> Vec<String> {
    let s = &cfg.sgd;
    let score = |row: &SweepRow| {
        format!(
            "recall {:.4}, PPV {:.4}",
            row.report.recall(),
            row.report.ppv()
        )
    };
    vec![
        format!(
            "trained on {}: {} notes, {} gold spans, {} surrogate copies each, rule features hidden at rate {}",
            cfg.corpus_name, r.notes, r.gold, cfg.augment, cfg.rule_dropout
        ),
        format!(
            "fit: {} epochs, rate {}, PHI weight {}, l2 {}, seed {}",
            s.epochs, s.rate, s.positive_weight, s.l2, s.seed
        ),
        format!(
            "thresholds by {}-fold cross-validation over patients: balanced for recall >= {} ({}), strict for recall >= {} ({})",
            cfg.folds,
            cfg.balanced_recall,
            score(&r.balanced),
            cfg.strict_recall,
            score(&r.strict)
        ),
    ]
}

/// `note` normalized, with its gold spans as byte offsets of the normalized
/// text, sorted, overlapping ones dropped.
fn prepare(note: &Note) -> Prepared<'_> {
    let norm = Normalized::new(&note.text);
    let byte_of = char_to_byte(&note.text);
    let mut gold: Vec<(usize, usize, String)> = note
        .gold
        .iter()
        .filter_map(|(s, e, t)| {
            let (s, e) = (*byte_of.get(*s)?, *byte_of.get(*e)?);
            (s < e).then(|| (norm.forward(s), norm.forward(e), t.clone()))
        })
        .collect();
    gold.sort();
    let mut end = 0;
    gold.retain(|(s, e, _)| {
        let keep = *s >= end;
        end = end.max(*e);
        keep
    });
    Prepared {
        note,
        text: norm.text.into_owned(),
        gold,
    }
}

/// Byte offset of every character offset of `text` (one past the end too).
fn char_to_byte(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .collect()
}

/// Records each feature's slot, and its name for the weights file.
struct Recorder<'a> {
    slots: Vec<u32>,
    names: &'a mut [Option<(Template, Vec<u8>)>],
    /// Leave out what the rules said of this token: see [`TrainConfig::rule_dropout`].
    blind: bool,
}

/// Templates that carry what the rules found.
fn from_rules(t: Template) -> bool {
    matches!(
        t,
        Template::Rule
            | Template::RuleCase
            | Template::RulePrev
            | Template::RuleNext
            | Template::NoRule
            | Template::Category
    )
}

impl Sink for Recorder<'_> {
    fn add(&mut self, t: Template, value: &[u8]) {
        if self.blind && from_rules(t) {
            return;
        }
        let s = features::slot(t, value);
        self.slots.push(s);
        let name = &mut self.names[s as usize];
        // The smallest name of a slot, so that the file does not depend on
        // the order the corpus was read in.
        if name
            .as_ref()
            .is_none_or(|(nt, nv)| (t.name(), value) < (nt.name(), nv.as_slice()))
        {
            *name = Some((t, value.to_vec()));
        }
    }
}

/// Adds the examples of one (normalized) text with gold byte spans.
/// Adds the examples of one (normalized) text with gold byte spans; with a
/// generator, each token's rule features are left out with probability
/// `dropout`.
fn add_examples(
    scrubber: &Scrubber,
    text: &str,
    gold: &[(usize, usize, String)],
    names: &mut [Option<(Template, Vec<u8>)>],
    dropout: Option<(f64, &mut SplitMix64)>,
    out: &mut Examples,
) {
    let found = scrubber.candidates(text, None, true);
    let view = View::new(text, &found, scrubber.dictionaries());
    let mut rec = Recorder {
        slots: Vec::with_capacity(64),
        names,
        blind: false,
    };
    let mut dropout = dropout;
    for (i, t) in view.tokens.iter().enumerate() {
        if !view.candidate(i) {
            continue;
        }
        rec.blind = dropout.as_mut().is_some_and(|(p, rng)| rng.next_f64() < *p);
        rec.slots.clear();
        view.features(i, &mut rec);
        out.push(&rec.slots, in_gold(gold, t));
    }
}

/// Candidate tokens, each its margin and whether it is PHI.
type Scored = Vec<(f32, bool)>;

/// A token is PHI when it overlaps a gold span.
fn in_gold(gold: &[(usize, usize, String)], t: &features::Tok) -> bool {
    gold.iter().any(|(s, e, _)| t.start < *e && *s < t.end)
}

/// Per note, per token: the margin given by the model of the folds that
/// exclude the note's patient (`-inf` for tokens not worth scoring); and
/// every candidate token of every note as its margin and whether it is PHI.
fn out_of_fold_margins(
    scrubber: &Scrubber,
    prepared: &[Prepared<'_>],
    per_note: &[Examples],
    fold_of: &[usize],
    cfg: &TrainConfig,
) -> (Vec<Vec<f32>>, Scored) {
    let slots = 1usize << features::TABLE_BITS;
    let fold_models: Vec<PhiModel> = (0..cfg.folds)
        .into_par_iter()
        .map(|f| {
            let mut train = Examples::new();
            for (k, ex) in per_note.iter().enumerate() {
                if fold_of[k] != f {
                    train.extend(ex);
                }
            }
            PhiModel {
                weights: sgd::fit(&train, slots, &cfg.sgd),
                ..PhiModel::zeros()
            }
        })
        .collect();
    let (margins, scored): (Vec<Vec<f32>>, Vec<Scored>) = prepared
        .par_iter()
        .zip(fold_of)
        .map(|(p, f)| {
            let found = scrubber.candidates(&p.text, None, true);
            let view = View::new(&p.text, &found, scrubber.dictionaries());
            let mut scored = Vec::new();
            let margins = (0..view.tokens.len())
                .map(|i| {
                    if !view.candidate(i) {
                        return f32::NEG_INFINITY;
                    }
                    let m = fold_models[*f].margin(&view, i);
                    scored.push((m, in_gold(&p.gold, &view.tokens[i])));
                    m
                })
                .collect();
            (margins, scored)
        })
        .unzip();
    let scored = scored.into_iter().flatten().collect();
    (margins, scored)
}

/// Average precision of candidate tokens, each its out-of-fold margin and
/// whether it is PHI, ordered by margin.
fn average_precision(mut scored: Scored) -> f64 {
    // Highest margin first; among equal margins PHI last, so that ties
    // are not counted in the model's favour.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let positives = scored.iter().filter(|s| s.1).count();
    let mut hits = 0usize;
    let mut sum = 0.0;
    for (rank, (_, phi)) in scored.iter().enumerate() {
        if *phi {
            hits += 1;
            sum += hits as f64 / (rank + 1) as f64;
        }
    }
    sum / positives.max(1) as f64
}

/// Thresholds tried, highest first: from 0.9 down to 0.002, finer near 0.
fn thresholds() -> Vec<f32> {
    let mut t = Vec::new();
    let mut p = 0.9f32;
    while p > 0.002 {
        t.push((p * 1e4).round() / 1e4);
        p *= 0.85;
    }
    t
}

/// Out-of-fold span scores at every threshold, the model judging the spans
/// of the `judged` rules (see [`model::judged_rules`]).
fn sweep(
    scrubber: &Scrubber,
    prepared: &[Prepared<'_>],
    margins: &[Vec<f32>],
    judged: u128,
) -> Vec<SweepRow> {
    let notes: Vec<Note> = prepared.iter().map(|p| p.note.clone()).collect();
    let cached: Vec<(Vec<Span>, &str)> = prepared
        .iter()
        .map(|p| (scrubber.candidates(&p.text, None, true), p.text.as_str()))
        .collect();
    thresholds()
        .into_par_iter()
        .map(|threshold| {
            let cut = model::logit(threshold);
            let preds: Vec<Vec<(usize, usize)>> = cached
                .iter()
                .zip(margins)
                .zip(prepared)
                .map(|(((found, text), m), p)| {
                    let view = View::new(text, found, scrubber.dictionaries());
                    let phi: Vec<bool> = m.iter().map(|x| *x >= cut).collect();
                    let spans = crate::scrub::merge(
                        text.as_bytes(),
                        model::decide::spans(&view, found, &phi, judged),
                    );
                    eval::char_spans(&p.note.text, &original_spans(&p.note.text, &spans))
                })
                .collect();
            SweepRow {
                threshold,
                report: eval::score(&notes, &preds),
            }
        })
        .collect()
}

/// Spans of a normalized text mapped back to the original.
fn original_spans(original: &str, spans: &[Span]) -> Vec<Span> {
    let norm = Normalized::new(original);
    spans
        .iter()
        .map(|s| {
            let (start, end) = norm.original(s.start, s.end);
            Span {
                start,
                end,
                ..s.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_fall_from_high_to_low() {
        let t = thresholds();
        assert!(t.windows(2).all(|w| w[0] > w[1]));
        assert!(t[0] == 0.9 && *t.last().unwrap() < 0.003);
    }
}
