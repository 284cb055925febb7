//! Matching a patient's own identifiers in free text.
//!
//! Values are matched on folded text: lower case, accents removed (composed
//! or decomposed), curly apostrophes made straight, so "JOSÉ", "Jose" and a
//! decomposed "José" are one name. A name next to a matched name keeps its
//! initial ("Quaxworth, F."), a user name built on the patient's name
//! ("qsmythe42") goes whole, and the patient's phone numbers are found in any
//! written form.

use super::dictionary::phrase_automaton;
use super::{Category, Rule, Span};
use crate::identity::{KnownIdentifiers, KnownKind};
use aho_corasick::AhoCorasick;
use regex::bytes::Regex;
use std::sync::LazyLock;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// A per-patient matcher over the patient's known identifiers.
#[derive(Debug)]
pub struct KnownMatcher {
    automaton: Option<AhoCorasick>,
    kinds: Vec<KnownKind>,
    phones: Vec<String>,
}

/// Runs of digits and phone punctuation long enough to hold a phone number.
static PHONE_RUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\+?\(?[0-9][0-9 ().-]{5,18}[0-9]").expect("built-in phone run compiles")
});

impl KnownMatcher {
    /// Builds the matcher for one patient.
    pub fn new(known: &KnownIdentifiers) -> Self {
        let mut patterns: Vec<String> = Vec::with_capacity(known.values.len());
        let mut kinds = Vec::with_capacity(known.values.len());
        for (value, kind) in &known.values {
            let folded = Folded::new(value).text;
            if folded.trim().chars().count() >= 2 {
                patterns.push(folded);
                kinds.push(*kind);
            }
        }
        Self {
            automaton: phrase_automaton(&patterns),
            kinds,
            phones: known.phones.clone(),
        }
    }

    /// The patient's phone numbers, as digit strings (last ten digits).
    pub fn phones(&self) -> &[String] {
        &self.phones
    }

    /// Appends spans for every occurrence of a known identifier.
    pub fn find(&self, text: &str, spans: &mut Vec<Span>) {
        self.find_phones(text, spans);
        let Some(ac) = &self.automaton else {
            return;
        };
        // ASCII text needs no folding: the automaton ignores ASCII case.
        let folded = (!text.is_ascii()).then(|| Folded::new(text));
        let fb = folded
            .as_ref()
            .map_or(text.as_bytes(), |f| f.text.as_bytes());
        let first_new = spans.len();
        for m in ac.find_iter(fb) {
            let kind = self.kinds[m.pattern().as_usize()];
            let (category, rule) = category_of(kind);
            let name = matches!(category, Category::Name);
            let (start, end) = if is_boundary(fb, m.start(), m.end()) {
                (m.start(), m.end())
            } else if let Some(word) = name.then(|| user_name(fb, m.start(), m.end())).flatten() {
                word
            } else {
                continue;
            };
            let (start, end) = match &folded {
                Some(f) => (f.source_start(start), f.source_end(end)),
                None => (start, end),
            };
            spans.push(Span {
                start,
                end,
                category,
                rule,
            });
        }
        initials_beside_names(text.as_bytes(), spans, first_new);
    }

    /// The patient's phone numbers in any form: "617 555 0199",
    /// "(617) 555-0199", "+1 617.555.0199", or the seven-digit local part.
    fn find_phones(&self, text: &str, spans: &mut Vec<Span>) {
        if self.phones.is_empty() {
            return;
        }
        for m in PHONE_RUN.find_iter(text.as_bytes()) {
            let digits: String = m
                .as_bytes()
                .iter()
                .filter(|c| c.is_ascii_digit())
                .map(|c| char::from(*c))
                .collect();
            let known = self.phones.iter().any(|p| {
                (digits.len() >= 10 && digits.ends_with(p.as_str()))
                    || (digits.len() == 7 && p.len() >= 7 && p.ends_with(digits.as_str()))
            });
            if known {
                spans.push(Span {
                    start: m.start(),
                    end: m.end(),
                    category: Category::Phone,
                    rule: Rule::KnownPhone,
                });
            }
        }
    }
}

fn category_of(kind: KnownKind) -> (Category, Rule) {
    match kind {
        KnownKind::GivenName | KnownKind::FamilyName => (Category::Name, Rule::KnownPatientName),
        KnownKind::RelativeName => (Category::Name, Rule::KnownRelativeName),
        KnownKind::Location => (Category::Address, Rule::KnownAddress),
        KnownKind::Identifier => (Category::Id, Rule::KnownIdentifier),
        KnownKind::Email => (Category::Email, Rule::KnownEmail),
    }
}

/// A user name built on a known name: the name inside a word that also has
/// digits, dots or underscores ("qsmythe42", "jane.doe"), or one extra
/// letter (an initial: "jdoe"). Returns the whole word's bounds.
fn user_name(b: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let part = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_');
    let mut s = start;
    while s > 0 && part(b[s - 1]) {
        s -= 1;
    }
    let mut e = end;
    while e < b.len() && part(b[e]) {
        e += 1;
    }
    // A sentence's full stop is not part of a user name.
    while e > end && b[e - 1] == b'.' {
        e -= 1;
    }
    let word = &b[s..e];
    let marked = word
        .iter()
        .any(|c| c.is_ascii_digit() || matches!(c, b'.' | b'_'));
    let initial = e - s == end - start + 1;
    (end - start >= 4 && (marked || initial)).then_some((s, e))
}

/// `Quaxworth, F.` and `F. Quaxworth`: the initial beside a matched name.
fn initials_beside_names(b: &[u8], spans: &mut Vec<Span>, from: usize) {
    let mut added = Vec::new();
    for s in spans[from..]
        .iter()
        .filter(|s| s.rule == Rule::KnownPatientName)
    {
        // After: ", F." or " F."
        let mut i = s.end;
        if b.get(i) == Some(&b',') {
            i += 1;
        }
        if b.get(i) == Some(&b' ')
            && b.get(i + 1).is_some_and(u8::is_ascii_uppercase)
            && b.get(i + 2).is_none_or(|c| !c.is_ascii_alphanumeric())
        {
            added.push((i + 1, i + 2));
        }
        // Before: "F. "
        if s.start >= 3
            && b[s.start - 1] == b' '
            && b[s.start - 2] == b'.'
            && b[s.start - 3].is_ascii_uppercase()
            && (s.start == 3 || !b[s.start - 4].is_ascii_alphanumeric())
        {
            added.push((s.start - 3, s.start - 1));
        }
    }
    for (start, end) in added {
        spans.push(Span {
            start,
            end,
            category: Category::Name,
            rule: Rule::KnownPatientName,
        });
    }
}

/// Text folded for matching, with each folded byte's source bounds.
struct Folded {
    text: String,
    /// For each byte of `text`: the start of the source character it came from.
    starts: Vec<usize>,
    /// For each byte of `text`: the end of that source character.
    ends: Vec<usize>,
}

impl Folded {
    fn new(source: &str) -> Self {
        let mut text = String::with_capacity(source.len());
        let mut starts = Vec::with_capacity(source.len());
        let mut ends = Vec::with_capacity(source.len());
        let mut chars = source.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let mut end = i + c.len_utf8();
            // Combining marks after a base letter fold into it (NFD input).
            while let Some(&(j, m)) = chars.peek() {
                if !is_combining_mark(m) {
                    break;
                }
                end = j + m.len_utf8();
                chars.next();
            }
            if c.is_ascii() {
                text.push(c.to_ascii_lowercase());
            } else if matches!(c, '’' | 'ʼ' | '‘' | '`') {
                text.push('\'');
            } else if !is_combining_mark(c) {
                for d in c.nfd().filter(|d| !is_combining_mark(*d)) {
                    text.extend(d.to_lowercase());
                }
            }
            starts.resize(text.len(), i);
            ends.resize(text.len(), end);
        }
        Self { text, starts, ends }
    }

    fn source_start(&self, folded: usize) -> usize {
        self.starts[folded]
    }

    fn source_end(&self, folded_end: usize) -> usize {
        self.ends[folded_end - 1]
    }
}

/// True when `[start, end)` is not part of a longer word or number.
pub(crate) fn is_boundary(bytes: &[u8], start: usize, end: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
    (start == 0 || !word(bytes[start - 1])) && (end >= bytes.len() || !word(bytes[end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matched(patient: serde_json::Value, text: &str) -> Vec<String> {
        let m = KnownMatcher::new(&KnownIdentifiers::from_patient(&patient));
        let mut spans = Vec::new();
        m.find(text, &mut spans);
        spans.sort_by_key(|s| s.start);
        spans
            .iter()
            .map(|s| text[s.start..s.end].to_string())
            .collect()
    }

    #[test]
    fn accents_parts_apostrophes_and_initials() {
        let p = json!({"resourceType": "Patient", "id": "x",
            "name": [{"family": "Quaxworth-Smythe", "given": ["José", "Fenella"]},
                     {"family": "O’Brannagh"}]});
        let text =
            "JOSÉ and Jose and Jose\u{301} saw smythe; O'Brannagh, Quaxworth-Smythe, F. wrote.";
        let found = matched(p, text);
        for want in [
            "JOSÉ",
            "Jose",
            "Jose\u{301}",
            "smythe",
            "O'Brannagh",
            "Quaxworth-Smythe",
            "F",
        ] {
            assert!(
                found.iter().any(|f| f == want),
                "missing {want:?}: {found:?}"
            );
        }
    }

    #[test]
    fn user_names_nicknames_and_phones() {
        let p = json!({"resourceType": "Patient", "id": "x",
            "name": [{"family": "Quaxworth", "given": ["William"]}],
            "telecom": [{"system": "phone", "value": "(617) 555-0199"}]});
        let text =
            "login qquaxworth77 from billy; call 617 555 0199 or 555-0199. Quaxworthian is a word.";
        let found = matched(p, text);
        for want in ["qquaxworth77", "billy", "617 555 0199", "555-0199"] {
            assert!(
                found.iter().any(|f| f == want),
                "missing {want:?}: {found:?}"
            );
        }
        assert!(
            !found.iter().any(|f| f.contains("Quaxworthian")),
            "{found:?}"
        );
    }
}
