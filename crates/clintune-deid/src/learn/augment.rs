//! Surrogate augmentation: each gold PHI span of a training note re-filled
//! with invented values of its kind, in every case and format, so the model
//! learns the contexts PHI stands in rather than the corpus's own names.

use crate::scrub::Dictionaries;
use crate::scrub::textdate::MONTHS;
use clintune_core::rng::SplitMix64;

/// What a span is re-filled with, by its gold type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Name,
    Place,
    Date,
    Phone,
    Age,
    Other,
}

fn kind(gold_type: &str) -> Kind {
    let t = gold_type.to_ascii_lowercase();
    if t.contains("name") || t.contains("initial") {
        Kind::Name
    } else if t.contains("location") || t.contains("address") || t.contains("hospital") {
        Kind::Place
    } else if t.contains("date") || t.contains("year") {
        Kind::Date
    } else if t.contains("phone") || t.contains("fax") || t.contains("pager") {
        Kind::Phone
    } else if t.contains("age") {
        Kind::Age
    } else {
        Kind::Other
    }
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mer", "vin", "tal", "bre", "son", "dri", "qua", "zel", "hon", "par", "ri", "ston",
    "wel", "gar", "nik", "ov", "ley", "den", "ash", "mor", "tu", "fen",
];

/// Sources of surrogates: the dictionaries' names and places, and invented
/// words that are on no list at all.
pub struct Surrogates<'a> {
    first: Vec<String>,
    last: Vec<String>,
    places: Vec<String>,
    is_safe: Box<dyn Fn(&str) -> bool + 'a>,
}

impl<'a> Surrogates<'a> {
    /// Surrogates drawn from `dicts`, sorted so that a seed gives the same
    /// draws on every machine.
    pub fn new(dicts: &'a Dictionaries) -> Self {
        Self::from_lists(
            dicts
                .surrogate_first
                .iter()
                .map(|s| s.to_string())
                .collect(),
            dicts.surrogate_last.iter().map(|s| s.to_string()).collect(),
            dicts.places.iter().map(|s| s.to_string()).collect(),
            Box::new(move |w| dicts.is_safe(w.as_bytes(), &mut [0u8; 48])),
        )
    }

    fn from_lists(
        mut first: Vec<String>,
        mut last: Vec<String>,
        mut places: Vec<String>,
        is_safe: Box<dyn Fn(&str) -> bool + 'a>,
    ) -> Self {
        for v in [&mut first, &mut last, &mut places] {
            v.retain(|w| w.len() >= 2 && w.bytes().all(|b| b.is_ascii_alphabetic()));
            v.sort();
            v.dedup();
        }
        Surrogates {
            first,
            last,
            places,
            is_safe,
        }
    }

    /// `text` with every gold span (byte offsets, sorted, not overlapping)
    /// re-filled; returns the new text and the spans' new offsets.
    pub fn refill(
        &self,
        text: &str,
        gold: &[(usize, usize, String)],
        rng: &mut SplitMix64,
    ) -> (String, Vec<(usize, usize, String)>) {
        let mut out = String::with_capacity(text.len() + 16);
        let mut spans = Vec::with_capacity(gold.len());
        let mut at = 0;
        for (s, e, t) in gold {
            if *s < at
                || *e > text.len()
                || !text.is_char_boundary(*s)
                || !text.is_char_boundary(*e)
            {
                continue;
            }
            out.push_str(&text[at..*s]);
            let start = out.len();
            self.fill(&text[*s..*e], kind(t), rng, &mut out);
            spans.push((start, out.len(), t.clone()));
            at = *e;
        }
        out.push_str(&text[at..]);
        (out, spans)
    }

    /// Appends a surrogate of `kind` shaped like `original`: word by word,
    /// number by number, punctuation kept.
    fn fill(&self, original: &str, kind: Kind, rng: &mut SplitMix64, out: &mut String) {
        let case = pick_case(rng);
        let mut rest = original;
        while let Some(c) = rest.chars().next() {
            let run = rest
                .char_indices()
                .find(|(_, d)| class(*d) != class(c))
                .map_or(rest.len(), |(i, _)| i);
            let piece = &rest[..run];
            match class(c) {
                CharClass::Letter => self.word(piece, kind, case, rng, out),
                CharClass::Digit => number(piece, kind, rng, out),
                CharClass::Other => out.push_str(piece),
            }
            rest = &rest[run..];
        }
    }

    fn word(&self, w: &str, kind: Kind, case: Case, rng: &mut SplitMix64, out: &mut String) {
        let lower = w.to_ascii_lowercase();
        let month = MONTHS
            .iter()
            .position(|m| lower.len() >= 3 && m.starts_with(lower.trim_end_matches('.')));
        let new = match kind {
            Kind::Date | Kind::Age => match month {
                Some(_) => {
                    let m = MONTHS[rng.below(12) as usize];
                    if lower.len() <= 4 {
                        m[..3].to_string()
                    } else {
                        m.to_string()
                    }
                }
                None => lower.clone(),
            },
            Kind::Phone => lower.clone(),
            _ if w.chars().count() == 1 => ((b'a' + rng.below(26) as u8) as char).to_string(),
            Kind::Place if (self.is_safe)(&lower) => lower.clone(),
            Kind::Place => self.draw(&[(&self.places, 4), (&self.last, 3)], rng),
            Kind::Name | Kind::Other => self.draw(&[(&self.first, 4), (&self.last, 4)], rng),
        };
        out.push_str(&case.apply(&new, w));
    }

    /// A word from one of `lists` (weighted), or an invented one (weight 2).
    fn draw(&self, lists: &[(&Vec<String>, u64)], rng: &mut SplitMix64) -> String {
        let total: u64 = lists.iter().map(|(_, w)| w).sum::<u64>() + 2;
        let mut r = rng.below(total);
        for (list, w) in lists {
            if r < *w && !list.is_empty() {
                return list[rng.below(list.len() as u64) as usize].clone();
            }
            r = r.saturating_sub(*w);
        }
        let parts = 2 + rng.below(2);
        (0..parts)
            .map(|_| SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize])
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CharClass {
    Letter,
    Digit,
    Other,
}

fn class(c: char) -> CharClass {
    if c.is_ascii_digit() {
        CharClass::Digit
    } else if c.is_alphabetic() {
        CharClass::Letter
    } else {
        CharClass::Other
    }
}

/// A number like `d`: a year for four digits, a month or a day for one or
/// two (zero-padded as `d` was), ages 90 to 109, any digits otherwise.
fn number(d: &str, kind: Kind, rng: &mut SplitMix64, out: &mut String) {
    let value: u64 = d.parse().unwrap_or(0);
    let width = d.len();
    let n = match (kind, width) {
        (Kind::Age, _) => 90 + rng.below(20),
        (Kind::Date, 4) => 1930 + rng.below(100),
        (Kind::Date, 1 | 2) if value <= 12 => 1 + rng.below(12),
        (Kind::Date, 1 | 2) if value <= 31 => 1 + rng.below(28),
        (Kind::Date, 2) => 10 + rng.below(90),
        _ => {
            for k in 0..width {
                let low = u64::from(k == 0 && kind == Kind::Phone) * 2;
                out.push((b'0' + (low + rng.below(10 - low)) as u8) as char);
            }
            return;
        }
    };
    if d.starts_with('0') && kind != Kind::Age {
        out.push_str(&format!("{n:0width$}"));
    } else {
        out.push_str(&n.to_string());
    }
}

/// Letter case of a surrogate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// As the original word was written.
    Same,
    Title,
    Upper,
    Lower,
}

/// Mostly the original's case; often another, so that case alone does not
/// decide.
fn pick_case(rng: &mut SplitMix64) -> Case {
    match rng.below(10) {
        0..=5 => Case::Same,
        6..=7 => Case::Upper,
        8 => Case::Lower,
        _ => Case::Title,
    }
}

impl Case {
    fn apply(self, new: &str, original: &str) -> String {
        let case = match self {
            Case::Same if original.chars().all(|c| !c.is_lowercase()) && original.len() > 1 => {
                Case::Upper
            }
            Case::Same if original.chars().all(|c| !c.is_uppercase()) => Case::Lower,
            Case::Same if original.len() == 1 => Case::Upper,
            Case::Same => Case::Title,
            other => other,
        };
        match case {
            Case::Upper => new.to_uppercase(),
            Case::Lower => new.to_lowercase(),
            _ => {
                let mut c = new.chars();
                c.next().map_or(String::new(), |f| {
                    f.to_uppercase()
                        .chain(c.flat_map(char::to_lowercase))
                        .collect()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surrogates() -> Surrogates<'static> {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect();
        Surrogates::from_lists(
            words(&["hortensia", "jerry"]),
            words(&["blenkinsop", "quaxworth"]),
            words(&["catonsville"]),
            Box::new(|w| w == "hospital"),
        )
    }

    #[test]
    fn spans_are_refilled_in_kind_and_their_new_offsets_point_at_them() {
        let text = "Dr. Healey saw pt on 03/14/2019 at Calvert Hospital, call 617-555-0199. 93 yo.";
        let find = |p: &str, t: &str| {
            let s = text.find(p).unwrap();
            (s, s + p.len(), t.to_string())
        };
        let gold = vec![
            find("Healey", "HCPName"),
            find("03/14/2019", "Date"),
            find("Calvert Hospital", "Location"),
            find("617-555-0199", "Phone"),
            find("93", "Age"),
        ];
        let s = surrogates();
        let mut seen_case = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let (new, spans) = s.refill(text, &gold, &mut SplitMix64(seed));
            assert_eq!(spans.len(), gold.len());
            let got: Vec<&str> = spans.iter().map(|(a, b, _)| &new[*a..*b]).collect();
            assert_ne!(got[0], "Healey");
            seen_case.insert(got[0].chars().all(|c| c.is_uppercase()));
            let date: Vec<&str> = got[1].split('/').collect();
            assert_eq!(date.len(), 3, "{}", got[1]);
            assert!(date[0].len() == 2 && date[2].len() == 4, "{}", got[1]);
            assert!(date[0].parse::<u32>().unwrap() <= 12, "{}", got[1]);
            assert!(got[2].to_lowercase().ends_with(" hospital"), "{}", got[2]);
            assert_eq!(got[3].len(), 12);
            assert!(got[3].as_bytes()[3] == b'-' && got[3].as_bytes()[0] >= b'2');
            let age: u32 = got[4].parse().unwrap();
            assert!((90..110).contains(&age));
            assert!(new.starts_with("Dr. ") && new.ends_with(" yo."));
        }
        assert_eq!(seen_case.len(), 2, "both cases drawn");
    }

    #[test]
    fn the_same_seed_gives_the_same_text() {
        let text = "Wife Hortensia visited";
        let gold = vec![(5, 14, "RelativeProxyName".to_string())];
        let s = surrogates();
        let a = s.refill(text, &gold, &mut SplitMix64(7));
        let b = s.refill(text, &gold, &mut SplitMix64(7));
        assert_eq!(a, b);
    }
}
