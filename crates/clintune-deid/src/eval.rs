//! Scoring the free-text detector against an annotated corpus.
//!
//! Two layouts are read: PhysioNet's `deid` package (`id.text` with
//! `id.deid` or `id-phi.phrase`) and brat standoff (`*.txt` + `*.ann`).
//! Scoring follows the PhysioNet package: a gold span is found when any
//! predicted span in the same note overlaps or touches it; precision (PPV)
//! counts predictions that overlap some gold span.

use crate::error::DeidError;
use crate::scrub::{Scrubber, Span};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One annotated note.
#[derive(Debug, Clone)]
pub struct Note {
    /// Patient (or document) id.
    pub patient: String,
    /// Note id within the patient.
    pub note: String,
    /// The note body.
    pub text: String,
    /// Gold spans: `(start, end, type)`, character offsets.
    pub gold: Vec<(usize, usize, String)>,
}

/// Corpus layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PhysioNet deid package layout.
    Physionet,
    /// brat standoff annotations.
    Brat,
}

/// Scores of one evaluation.
#[derive(Debug, Clone, Default)]
pub struct EvalReport {
    /// Notes scored.
    pub notes: usize,
    /// Gold spans.
    pub gold: usize,
    /// Gold spans found.
    pub found: usize,
    /// Predicted spans.
    pub predicted: usize,
    /// Predicted spans overlapping some gold span.
    pub true_predictions: usize,
    /// Characters of gold PHI not covered by any prediction.
    pub chars_left: usize,
    /// Characters of gold PHI in all.
    pub gold_chars: usize,
    /// Per gold type: (gold, found).
    pub by_type: BTreeMap<String, (usize, usize)>,
}

impl EvalReport {
    /// found / gold.
    pub fn recall(&self) -> f64 {
        ratio(self.found, self.gold)
    }

    /// true predictions / predictions.
    pub fn ppv(&self) -> f64 {
        ratio(self.true_predictions, self.predicted)
    }

    /// A plain-text table of the scores.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "notes                 {}", self.notes);
        let _ = writeln!(s, "gold PHI spans        {}", self.gold);
        let _ = writeln!(s, "predicted spans       {}", self.predicted);
        let _ = writeln!(
            s,
            "recall                {:.4} ({}/{})",
            self.recall(),
            self.found,
            self.gold
        );
        let _ = writeln!(
            s,
            "PPV                   {:.4} ({}/{})",
            self.ppv(),
            self.true_predictions,
            self.predicted
        );
        let _ = writeln!(
            s,
            "PHI characters left   {} of {} ({:.2}%)",
            self.chars_left,
            self.gold_chars,
            100.0 * ratio(self.chars_left, self.gold_chars)
        );
        let _ = writeln!(s, "recall by type:");
        for (t, (g, f)) in &self.by_type {
            let _ = writeln!(s, "  {t:<20} {:.4} ({f}/{g})", ratio(*f, *g));
        }
        s
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Loads a corpus from `dir`.
pub fn load(dir: &Path, format: Format) -> Result<Vec<Note>, DeidError> {
    match format {
        Format::Physionet => load_physionet(dir),
        Format::Brat => load_brat(dir),
    }
}

fn bad(path: &Path, message: String) -> DeidError {
    DeidError::Dictionary {
        path: path.to_path_buf(),
        source: message.into(),
    }
}

fn load_physionet(dir: &Path) -> Result<Vec<Note>, DeidError> {
    let text_path = dir.join("id.text");
    let raw = std::fs::read_to_string(&text_path).map_err(DeidError::io(&text_path))?;
    let mut notes = Vec::new();
    let mut index = BTreeMap::new();
    let mut rest = raw.as_str();
    while let Some(pos) = rest.find("START_OF_RECORD=") {
        rest = &rest[pos + "START_OF_RECORD=".len()..];
        let header_end = rest
            .find('\n')
            .ok_or_else(|| bad(&text_path, "record header without newline".into()))?;
        let ids: Vec<&str> = rest[..header_end].split("||||").collect();
        let (patient, note) = match ids.as_slice() {
            [p, n, ..] => (p.to_string(), n.to_string()),
            _ => {
                return Err(bad(
                    &text_path,
                    format!("malformed record header {:?}", &rest[..header_end]),
                ));
            }
        };
        let body_start = header_end + 1;
        let body_end = rest[body_start..]
            .find("||||END_OF_RECORD")
            .ok_or_else(|| {
                bad(
                    &text_path,
                    format!("record {patient}/{note} has no END_OF_RECORD"),
                )
            })?;
        index.insert((patient.clone(), note.clone()), notes.len());
        notes.push(Note {
            patient,
            note,
            text: rest[body_start..body_start + body_end].to_string(),
            gold: Vec::new(),
        });
        rest = &rest[body_start + body_end..];
    }
    let phrase = dir.join("id-phi.phrase");
    if phrase.is_file() {
        let raw = std::fs::read_to_string(&phrase).map_err(DeidError::io(&phrase))?;
        for (n, line) in raw.lines().enumerate() {
            let f: Vec<&str> = line.splitn(6, ' ').collect();
            let [p, note, s, e, t, ..] = f.as_slice() else {
                continue;
            };
            let parse = |v: &str| {
                v.parse::<usize>()
                    .map_err(|_| bad(&phrase, format!("line {}: offset is not a number", n + 1)))
            };
            if let Some(i) = index.get(&(p.to_string(), note.to_string())) {
                notes[*i].gold.push((parse(s)?, parse(e)?, t.to_string()));
            }
        }
    } else {
        let deid = dir.join("id.deid");
        let raw = std::fs::read_to_string(&deid).map_err(DeidError::io(&deid))?;
        let mut current = None;
        for line in raw.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["Patient", p, "Note", n] => {
                    current = index.get(&(p.to_string(), n.to_string())).copied()
                }
                [s, _, e] => {
                    if let (Some(i), Ok(s), Ok(e)) = (current, s.parse(), e.parse()) {
                        notes[i].gold.push((s, e, "PHI".into()));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(notes)
}

fn load_brat(dir: &Path) -> Result<Vec<Note>, DeidError> {
    let paths =
        clintune_core::hash::files_with_extension(dir, "txt").map_err(DeidError::io(dir))?;
    let mut notes = Vec::new();
    for txt in paths {
        let text = std::fs::read_to_string(&txt).map_err(DeidError::io(&txt))?;
        let ann = txt.with_extension("ann");
        let mut gold = Vec::new();
        if let Ok(raw) = std::fs::read_to_string(&ann) {
            for line in raw.lines().filter(|l| l.starts_with('T')) {
                let Some(meta) = line.split('\t').nth(1) else {
                    continue;
                };
                let mut parts = meta.split([' ', ';']);
                let t = parts.next().unwrap_or("PHI").to_string();
                let nums: Vec<usize> = parts.filter_map(|v| v.parse().ok()).collect();
                if let (Some(s), Some(e)) = (nums.first(), nums.last()) {
                    gold.push((*s, *e, t));
                }
            }
        }
        let stem = txt
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        notes.push(Note {
            patient: stem,
            note: "1".into(),
            text,
            gold,
        });
    }
    Ok(notes)
}

/// One fold of a corpus split by patient: fold `k` (1-based) of `n`.
///
/// Patients are assigned by a hash of their id, so every note of a patient
/// lands in the same fold and the split does not depend on the corpus order.
/// Grow rules on one fold and report on the other, both ways.
pub fn fold(notes: Vec<Note>, k: usize, n: usize) -> Vec<Note> {
    notes
        .into_iter()
        .filter(|note| fold_of(&note.patient, n) + 1 == k)
        .collect()
}

/// The 0-based fold of a patient id among `n` (FNV-1a of the id).
pub fn fold_of(patient: &str, n: usize) -> usize {
    let h = patient.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % n.max(1) as u64) as usize
}

/// Predicted spans of one note, as character offsets.
pub fn predict(scrubber: &Scrubber, note: &Note) -> Vec<(usize, usize)> {
    char_spans(&note.text, &scrubber.detect(&note.text, None))
}

/// Byte-offset spans of `text` as character offsets: the corpus counts
/// characters.
pub fn char_spans(text: &str, spans: &[Span]) -> Vec<(usize, usize)> {
    let mut char_at = vec![0usize; text.len() + 1];
    let mut c = 0;
    for (b, ch) in text.char_indices() {
        for slot in char_at.iter_mut().skip(b).take(ch.len_utf8()) {
            *slot = c;
        }
        c += 1;
    }
    char_at[text.len()] = c;
    spans
        .iter()
        .map(|s| (char_at[s.start], char_at[s.end]))
        .collect()
}

/// Scores predictions against gold, note by note.
pub fn score(notes: &[Note], predictions: &[Vec<(usize, usize)>]) -> EvalReport {
    let mut r = EvalReport {
        notes: notes.len(),
        ..Default::default()
    };
    for (note, pred) in notes.iter().zip(predictions) {
        let overlaps = |(s, e): (usize, usize), (gs, ge): (usize, usize)| s <= ge && gs <= e;
        for (gs, ge, t) in &note.gold {
            let hit = pred.iter().any(|p| overlaps(*p, (*gs, *ge)));
            r.gold += 1;
            let entry = r.by_type.entry(t.clone()).or_default();
            entry.0 += 1;
            if hit {
                r.found += 1;
                entry.1 += 1;
            }
            for c in *gs..*ge {
                r.gold_chars += 1;
                if !pred.iter().any(|(s, e)| *s <= c && c < *e) {
                    r.chars_left += 1;
                }
            }
        }
        r.predicted += pred.len();
        r.true_predictions += pred
            .iter()
            .filter(|p| {
                note.gold
                    .iter()
                    .any(|(gs, ge, _)| overlaps(**p, (*gs, *ge)))
            })
            .count();
    }
    r
}

/// Lists missed gold spans and false positives, each with some context, for
/// error analysis on a development corpus. The lines quote the corpus: never
/// run this on real PHI outside its secure environment.
pub fn errors(notes: &[Note], predictions: &[Vec<(usize, usize)>]) -> Vec<String> {
    let snippet = |n: &Note, s: usize, e: usize| -> (String, String) {
        let chars: Vec<char> = n.text.chars().collect();
        let span: String = chars[s.min(chars.len())..e.min(chars.len())]
            .iter()
            .collect();
        let ctx: String = chars[s.saturating_sub(30)..(e + 30).min(chars.len())]
            .iter()
            .collect();
        (span, ctx.replace(['\n', '\r'], " "))
    };
    let overlaps = |(s, e): (usize, usize), (gs, ge): (usize, usize)| s <= ge && gs <= e;
    let mut out = Vec::new();
    for (n, pred) in notes.iter().zip(predictions) {
        for (gs, ge, t) in &n.gold {
            if !pred.iter().any(|p| overlaps(*p, (*gs, *ge))) {
                let (span, ctx) = snippet(n, *gs, *ge);
                out.push(format!(
                    "missed {t} [{span}] in {}/{}: …{ctx}…",
                    n.patient, n.note
                ));
            }
        }
        for (s, e) in pred {
            if !n
                .gold
                .iter()
                .any(|(gs, ge, _)| overlaps((*s, *e), (*gs, *ge)))
            {
                let (span, ctx) = snippet(n, *s, *e);
                out.push(format!(
                    "false positive [{span}] in {}/{}: …{ctx}…",
                    n.patient, n.note
                ));
            }
        }
    }
    out
}

/// Writes predictions in the PhysioNet `id.phi` layout.
pub fn write_predictions(
    path: &Path,
    notes: &[Note],
    predictions: &[Vec<(usize, usize)>],
) -> Result<(), DeidError> {
    let mut out = String::new();
    for (note, pred) in notes.iter().zip(predictions) {
        let _ = writeln!(out, "Patient {}\tNote {}", note.patient, note.note);
        for (s, e) in pred {
            let _ = writeln!(out, "{s}\t{s}\t{e}");
        }
    }
    clintune_core::staging::write_atomic(path, out.as_bytes()).map_err(DeidError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_counts_overlaps_and_leftover_characters() {
        let notes = vec![Note {
            patient: "1".into(),
            note: "1".into(),
            text: "x".repeat(40),
            gold: vec![(0, 4, "Name".into()), (10, 14, "Date".into())],
        }];
        let r = score(&notes, &[vec![(2, 6), (20, 22)]]);
        assert_eq!(
            (r.gold, r.found, r.predicted, r.true_predictions),
            (2, 1, 2, 1)
        );
        assert_eq!(r.chars_left, 2 + 4);
        assert_eq!(r.by_type["Date"], (1, 0));
    }

    #[test]
    fn folds_keep_patients_whole_and_cover_the_corpus() {
        let notes: Vec<Note> = (0..40)
            .map(|i| Note {
                patient: (i / 2).to_string(),
                note: (i % 2).to_string(),
                text: String::new(),
                gold: Vec::new(),
            })
            .collect();
        let a = fold(notes.clone(), 1, 2);
        let b = fold(notes, 2, 2);
        assert_eq!(a.len() + b.len(), 40);
        assert!(!a.is_empty() && !b.is_empty());
        assert!(a.iter().all(|x| b.iter().all(|y| x.patient != y.patient)));
    }

    #[test]
    fn reads_physionet_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("id.text"),
            "START_OF_RECORD=1||||2||||\nSeen by Dr. Healey on 7/22.\n||||END_OF_RECORD\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("id.deid"),
            "Patient 1\tNote 2\n12\t12\t18\n22\t22\t26\n",
        )
        .unwrap();
        let notes = load(dir.path(), Format::Physionet).unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(&notes[0].text[12..18], "Healey");
        assert_eq!(notes[0].gold.len(), 2);
    }
}
