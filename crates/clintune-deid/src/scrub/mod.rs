//! Free-text PHI scrubbing.
//!
//! Each text is first normalized ([`normalize`]: NFKC, plain spaces, no
//! zero-width characters), then three detectors propose spans:
//! 1. the patient's own identifiers from the structured record ([`known`]),
//! 2. patterns for dates, phones, identifiers, ages, ZIPs, emails, URLs and
//!    IP addresses ([`patterns`]),
//! 3. name and place dictionaries with context rules ([`names`]), and every
//!    word not known to be safe.
//!
//! A learned model ([`model`]) decides which proposals, and which other
//! tokens, are PHI; the spans are mapped back to the original text and
//! replaced ([`replace`]): dates are shifted by the patient's offset, names
//! get consistent surrogates, everything else a tag.

pub mod dictionary;
pub mod dictionary_files;
mod fallback;
pub mod known;
pub(crate) mod lexicon;
pub mod model;
pub mod names;
pub mod normalize;
pub mod patterns;
mod places;
pub mod replace;
pub mod rule;
pub mod textdate;

use crate::policy::TextMode;
use std::collections::BTreeMap;

pub use dictionary::Dictionaries;
pub use dictionary_files::DictionaryFiles;
pub use known::KnownMatcher;
pub use replace::ScrubContext;
pub use rule::Rule;

/// [`Scrubber::decider`] when no model decides.
pub const RULES_ALONE: &str = "rules alone";

/// PHI categories (Safe Harbor identifier kinds, grouped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Names of patients, relatives, clinicians.
    Name,
    /// Street addresses.
    Address,
    /// Geographic units smaller than a state, facilities.
    Location,
    /// ZIP codes.
    Zip,
    /// Dates (other than year alone).
    Date,
    /// A year standing alone.
    Year,
    /// Ages over 89.
    Age,
    /// Telephone and fax numbers.
    Phone,
    /// Email addresses.
    Email,
    /// URLs.
    Url,
    /// IP addresses.
    Ip,
    /// SSN, MRN, account, plan, licence, device and other identifiers.
    Id,
    /// A word not known to be safe and not otherwise classed (found by the
    /// model, or by strict mode's fallback when the rules decide alone).
    Unknown,
}

impl Category {
    /// Stable lowercase name used in audit reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Name => "name",
            Category::Address => "address",
            Category::Location => "location",
            Category::Zip => "zip",
            Category::Date => "date",
            Category::Year => "year",
            Category::Age => "age",
            Category::Phone => "phone",
            Category::Email => "email",
            Category::Url => "url",
            Category::Ip => "ip",
            Category::Id => "id",
            Category::Unknown => "unknown-word",
        }
    }
}

/// A detected PHI span (byte offsets into the text, end exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// What was found.
    pub category: Category,
    /// Which rule found it (for the audit report).
    pub rule: Rule,
}

/// Counts of replacements by category and rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// `(category, rule) -> count`.
    pub counts: BTreeMap<(&'static str, &'static str), u64>,
}

impl Tally {
    /// Adds one replacement.
    pub fn add(&mut self, category: Category, rule: Rule) {
        *self
            .counts
            .entry((category.as_str(), rule.as_str()))
            .or_default() += 1;
    }

    /// Adds another tally into this one.
    pub fn merge(&mut self, other: &Tally) {
        for (k, v) in &other.counts {
            *self.counts.entry(*k).or_default() += v;
        }
    }

    /// Total replacements.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The free-text PHI detector and replacer.
#[derive(Debug)]
pub struct Scrubber {
    patterns: patterns::Patterns,
    dicts: Dictionaries,
    mode: TextMode,
}

impl Scrubber {
    /// Builds a scrubber over loaded dictionaries.
    pub fn new(dicts: Dictionaries) -> Self {
        Self {
            patterns: patterns::Patterns::new(),
            dicts,
            mode: TextMode::default(),
        }
    }

    /// The same scrubber in another mode.
    pub fn with_mode(mut self, mode: TextMode) -> Self {
        self.mode = mode;
        self
    }

    /// The same scrubber with the rules deciding alone, without the model.
    pub fn without_model(mut self) -> Self {
        self.dicts.model = None;
        self
    }

    /// The detector's mode.
    pub fn mode(&self) -> TextMode {
        self.mode
    }

    /// Who decides in free text, as the manifest and the summary say it:
    /// `learned model`, or `rules alone` when the dictionaries have no
    /// `phi-model.txt` (or [`Scrubber::without_model`]).
    pub fn decider(&self) -> &'static str {
        if self.dicts.model.is_some() {
            "learned model"
        } else {
            RULES_ALONE
        }
    }

    /// The dictionaries in use.
    pub fn dictionaries(&self) -> &Dictionaries {
        &self.dicts
    }

    /// Finds PHI spans in `text`, merged so that no two overlap, in order.
    /// A text longer than [`PIECE`] is read piece by piece, cut at line
    /// ends, so that the per-word tables stay small whatever its size.
    pub fn detect(&self, text: &str, known: Option<&KnownMatcher>) -> Vec<Span> {
        let decider = self
            .dicts
            .model
            .as_ref()
            .map(|m| (m, model::logit(m.threshold(self.mode))));
        self.detect_with(text, known, decider)
    }

    /// [`Scrubber::detect`] with another model and threshold (a margin),
    /// or none: the rules alone, in this scrubber's mode.
    pub fn detect_with(
        &self,
        text: &str,
        known: Option<&KnownMatcher>,
        decider: Option<(&model::PhiModel, f32)>,
    ) -> Vec<Span> {
        let mut spans = Vec::new();
        let mut offset = 0;
        for piece in pieces(text, PIECE) {
            // Rules and model read the normalized piece; its spans are
            // mapped back to the piece, then to the text.
            let norm = normalize::Normalized::new(piece);
            let found = self.candidates(&norm.text, known, decider.is_some());
            let found = match decider {
                Some((m, threshold)) => {
                    let judged = model::judged_rules(m, self.mode);
                    decide(&norm.text, found, &self.dicts, m, threshold, judged)
                }
                None => found,
            };
            spans.extend(found.into_iter().map(|s| {
                let (start, end) = norm.original(s.start, s.end);
                Span {
                    start: start + offset,
                    end: end + offset,
                    ..s
                }
            }));
            offset += piece.len();
        }
        merge(text.as_bytes(), spans)
    }

    /// Every span the rules find in `text`, unmerged: the patient's own
    /// identifiers, the patterns, and the name and place rules. When a
    /// model is to decide (`for_model`), without strict mode's unsafe-word
    /// fallback: the model scores every unsafe word itself.
    pub fn candidates(
        &self,
        text: &str,
        known: Option<&KnownMatcher>,
        for_model: bool,
    ) -> Vec<Span> {
        let mut found = Vec::new();
        if let Some(k) = known {
            k.find(text, &mut found);
        }
        self.patterns.find(text, &mut found);
        let mode = if for_model {
            TextMode::Balanced
        } else {
            self.mode
        };
        names::find(text, &self.dicts, mode, &mut found);
        found
    }

    /// Detects and replaces PHI in `text`.
    pub fn scrub(&self, text: &str, ctx: &ScrubContext<'_>, tally: &mut Tally) -> String {
        let spans = self.detect(text, ctx.known);
        replace::apply(text, &spans, ctx, &self.dicts, tally)
    }
}

/// The spans the model keeps of the rules' candidates `found` in `text`:
/// a token is PHI when its margin reaches `threshold`; only the spans of
/// the `judged` rules can be dropped.
fn decide(
    text: &str,
    found: Vec<Span>,
    dicts: &Dictionaries,
    model: &model::PhiModel,
    threshold: f32,
    judged: u128,
) -> Vec<Span> {
    let view = model::View::new(text, &found, dicts);
    let phi: Vec<bool> = (0..view.tokens.len())
        .map(|i| view.candidate(i) && model.is_phi(&view, i, threshold))
        .collect();
    model::decide::spans(&view, &found, &phi, judged)
}

/// The most text detection reads at once (1 MiB). Notes are far shorter;
/// a record with a whole document in one field is not, and reading it whole
/// costs about ten times its size in per-word tables.
pub const PIECE: usize = 1 << 20;

/// `text` cut into pieces of at most about `max` bytes: after the last line
/// end in a piece's second half, else after its last space, else at a
/// character boundary.
fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len();
        if cut > max {
            let window = &rest.as_bytes()[max / 2..max];
            cut = match window.iter().rposition(|c| *c == b'\n') {
                Some(p) => max / 2 + p + 1,
                None => match window.iter().rposition(|c| *c == b' ') {
                    Some(p) => max / 2 + p + 1,
                    None => (0..=max)
                        .rev()
                        .find(|&i| rest.is_char_boundary(i))
                        .unwrap_or(0),
                },
            };
        }
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// Sorts spans and merges overlapping ones; the merged span keeps the
/// category of its longest part. Places and addresses one space apart become
/// one span ("Calvert Hospital" is one place), names stay word by word so
/// that first and last names get their own surrogates.
pub(crate) fn merge(text: &[u8], mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    let place = |c: Category| matches!(c, Category::Location | Category::Address);
    for s in spans {
        match out.last_mut() {
            Some(last)
                if place(last.category)
                    && place(s.category)
                    && s.start > last.end
                    && s.start - last.end <= 2
                    && text[last.end..s.start].iter().all(|c| *c == b' ') =>
            {
                last.end = last.end.max(s.end);
            }
            Some(last) if s.start < last.end => {
                if s.end > last.end {
                    if s.end - s.start > last.end - last.start {
                        last.category = s.category;
                        last.rule = s.rule;
                    }
                    last.end = s.end;
                }
            }
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_read_in_pieces_cut_at_line_ends() {
        let text = "ab\ncd ef\ngh ij kl";
        let cut: Vec<&str> = pieces(text, 10).collect();
        assert_eq!(cut.concat(), text);
        assert_eq!(cut[0], "ab\ncd ef\n");
        // No line end in the second half: after the last space.
        assert_eq!(pieces(text, 8).next(), Some("ab\ncd "));
        assert!(cut.iter().all(|p| p.len() <= 10), "{cut:?}");
        // No line end or space: cut at a character boundary.
        let accents = "é".repeat(10);
        let cut: Vec<&str> = pieces(&accents, 5).collect();
        assert_eq!(cut.concat(), accents);
        assert!(cut.iter().all(|p| !p.is_empty() && p.len() <= 5));
    }

    #[test]
    fn names_far_into_a_long_text_are_found_where_they_are() {
        let filler = "Pt resting comfortably, vitals stable, plan unchanged.\n";
        let mut text = String::from("Seen by Dr. Quaxworth today.\n");
        while text.len() < 2 * PIECE + 100 {
            text.push_str(filler);
        }
        text.push_str("Wife Hortensia at bedside.\n");
        let found: Vec<&str> = scrubber(TextMode::Balanced)
            .detect(&text, None)
            .iter()
            .map(|s| &text[s.start..s.end])
            .collect();
        assert_eq!(found, ["Quaxworth", "Hortensia"]);
    }

    #[test]
    fn merge_overlaps() {
        let s = |start, end, category| Span {
            start,
            end,
            category,
            rule: Rule::Title,
        };
        let merged = merge(
            &[b'x'; 20],
            vec![
                s(5, 9, Category::Name),
                s(0, 3, Category::Date),
                s(6, 15, Category::Location),
            ],
        );
        assert_eq!(merged.len(), 2);
        assert_eq!((merged[1].start, merged[1].end), (5, 15));
        assert_eq!(merged[1].category, Category::Location);
    }

    /// One planted example of each Safe Harbor identifier kind that can
    /// appear in free text.
    const PLANTED: &[(&str, &str)] = &[
        ("Seen by Dr. Quaxworth today.", "Quaxworth"),
        ("Wife Hortensia at bedside.", "Hortensia"),
        ("Signed, HORTENSIA BLENKINSOP MD", "BLENKINSOP"),
        ("[doctor] hi michelle what's been going on", "michelle"),
        (
            "[doctor] kayla ward , date of birth , march fourteenth nineteen fifty",
            "ward",
        ),
        ("so jerry is a 45 -year-old male", "jerry"),
        (
            "Lives at 12 Linden Street with her son.",
            "12 Linden Street",
        ),
        ("Moved from Catonsville last year.", "Catonsville"),
        ("Mail to Baltimore, MD 21201.", "21201"),
        ("Born 14-Mar-1950 in a snowstorm.", "14-Mar-1950"),
        ("Admitted on March 3, 2019 for chest pain.", "March 3, 2019"),
        ("Call her at 617 555 0199 after 5.", "617 555 0199"),
        ("Fax: 617-555-0188.", "617-555-0188"),
        (
            "Write to q.smythe@example.org for records.",
            "q.smythe@example.org",
        ),
        ("ssn 123 45 6789 on file.", "123 45 6789"),
        ("MRN 8844 2211 verified.", "8844 2211"),
        ("Health plan id 55-667890 active.", "55-667890"),
        ("Account 9981234 billed.", "9981234"),
        ("Driver license 12345678 checked.", "12345678"),
        ("Parked with plate 7XYZ123 outside.", "7XYZ123"),
        ("Pump serial 99A88770 replaced.", "99A88770"),
        (
            "Portal https://portal.example.org/p/8812 shows labs.",
            "https://portal.example.org/p/8812",
        ),
        (
            "Logged in from 10.0.0.12 and 2001:db8::8a2e:370:7334 today.",
            "2001:db8::8a2e:370:7334",
        ),
        ("A ninety-seven year old woman.", "ninety-seven"),
        ("97M with CHF.", "97"),
    ];

    fn scrubber(mode: TextMode) -> Scrubber {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deid/dictionaries");
        Scrubber::new(Dictionaries::load(&dir).unwrap()).with_mode(mode)
    }

    /// Identifiers written to slip past matching, in notes of a record
    /// whose Patient is unknown (so no known identifiers help).
    const DISGUISED: &[(&str, &str)] = &[
        ("Wife\u{00A0}Hortensia at bedside.", "Hortensia"),
        (
            "Seen by Dr.\u{2009}Ｑｕａｘｗｏｒｔｈ today.",
            "Ｑｕａｘｗｏｒｔｈ",
        ),
        ("Seen by Dr. Quax\u{200B}worth today.", "Quax\u{200B}worth"),
        (
            "Patient: BLENKINSOP,\nHORTENSIA\nAdmitted for CHF.",
            "BLENKINSOP",
        ),
        (
            "Patient: BLENKINSOP,\nHORTENSIA\nAdmitted for CHF.",
            "HORTENSIA",
        ),
        (
            "Write to hortensia.b at example dot com for results.",
            "hortensia.b at example dot com",
        ),
        (
            "Reached her at hblenkinsop at gmail dot com today.",
            "hblenkinsop at gmail dot com",
        ),
        ("Signed, HORTENSIA BLENKINSOP MD", "HORTENSIA"),
        (
            "LIVES AT 12 LINDEN STREET WITH HER SON.",
            "12 LINDEN STREET",
        ),
        (
            "lives at 12 linden street with her son.",
            "12 linden street",
        ),
        ("97M with CHF, DNR.", "97"),
        ("Pt is a 97 yo F.", "97"),
    ];

    /// Each `(text, phi)`: `phi` lies inside one detected span, in both modes.
    fn assert_covered_in_both_modes(cases: &[(&str, &str)]) {
        for mode in [TextMode::Balanced, TextMode::Strict] {
            let s = scrubber(mode);
            for (text, phi) in cases {
                let at = text.find(phi).unwrap();
                let spans = s.detect(text, None);
                assert!(
                    spans
                        .iter()
                        .any(|sp| sp.start <= at && at + phi.len() <= sp.end),
                    "{mode:?}: {phi:?} not covered in {text:?}: {spans:?}"
                );
            }
        }
    }

    #[test]
    fn disguised_identifiers_are_found_in_both_modes() {
        assert_covered_in_both_modes(DISGUISED);
    }

    #[test]
    fn planted_identifiers_are_found_in_both_modes() {
        assert_covered_in_both_modes(PLANTED);
    }

    /// Drug names, eponyms and ordinary clinical words stay in balanced mode.
    const CLINICAL: &str = "67 year old man with Parkinson's disease, Hodgkin lymphoma and \
        Cushing syndrome, admitted with chest pain. Murphy's sign negative. Babinski sign absent. \
        Glasgow coma scale 15. Swan-Ganz catheter placed. Started lisinopril 20 mg daily, \
        metformin 500 mg BID, atorvastatin 40 mg and heparin 5000 units. Brown stool, guaiac \
        negative. Will follow up in clinic in 2 weeks. Pt ambulating with walker, tolerating \
        diet, pain 3/10, afebrile, T 99F, BP 120/80, HR 88, SaO2 97% on 2L NC. \
        Plan: continue current regimen, repeat CBC and BMP in the morning, PT/OT consult.";

    #[test]
    fn clinical_words_drugs_and_eponyms_stay_in_balanced_mode() {
        let spans = scrubber(TextMode::Balanced).detect(CLINICAL, None);
        let found: Vec<(&str, Rule)> = spans
            .iter()
            .map(|s| (&CLINICAL[s.start..s.end], s.rule))
            .collect();
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn strict_mode_finds_more_than_balanced() {
        let text = "Pt seen by Dr. Zorblatt for the flurbish. Filed as 052647; CD34 count 12.";
        let words = |mode| {
            let spans = scrubber(mode).detect(text, None);
            spans
                .iter()
                .map(|s| &text[s.start..s.end])
                .collect::<Vec<&str>>()
        };
        let (strict, balanced) = (words(TextMode::Strict), words(TextMode::Balanced));
        assert!(balanced.contains(&"Zorblatt"), "{balanced:?}");
        assert!(
            balanced.iter().all(|w| strict.contains(w)),
            "{strict:?} {balanced:?}"
        );
        // CD34 is safe in both.
        assert!(!strict.contains(&"CD34"), "{strict:?}");
    }

    #[test]
    fn rules_alone_in_strict_mode_replace_every_unknown_word() {
        let text = "Pt seen by Dr. Zorblatt for the flurbish.";
        let s = scrubber(TextMode::Strict).without_model();
        let found: Vec<&str> = s
            .detect(text, None)
            .iter()
            .map(|s| &text[s.start..s.end])
            .collect();
        assert_eq!(found, ["Zorblatt", "flurbish"]);
    }
}
