//! Matching a patient's own identifiers in free text.

use super::dictionary::phrase_automaton;
use super::{Category, Rule, Span};
use crate::identity::{KnownIdentifiers, KnownKind};
use aho_corasick::AhoCorasick;

/// A per-patient matcher over the patient's known identifiers.
#[derive(Debug)]
pub struct KnownMatcher {
    automaton: Option<AhoCorasick>,
    kinds: Vec<KnownKind>,
    phones: Vec<String>,
}

impl KnownMatcher {
    /// Builds the matcher for one patient.
    pub fn new(known: &KnownIdentifiers) -> Self {
        let patterns: Vec<&str> = known.values.iter().map(|(v, _)| v.as_str()).collect();
        let kinds = known.values.iter().map(|(_, k)| *k).collect();
        let automaton = phrase_automaton(&patterns);
        Self {
            automaton,
            kinds,
            phones: known.phones.clone(),
        }
    }

    /// The patient's phone numbers, as ten-digit strings.
    pub fn phones(&self) -> &[String] {
        &self.phones
    }

    /// Appends spans for every whole-word occurrence of a known identifier.
    pub fn find(&self, text: &str, spans: &mut Vec<Span>) {
        let Some(ac) = &self.automaton else {
            return;
        };
        let bytes = text.as_bytes();
        for m in ac.find_iter(text) {
            if !is_boundary(bytes, m.start(), m.end()) {
                continue;
            }
            let (category, rule) = match self.kinds[m.pattern().as_usize()] {
                KnownKind::GivenName | KnownKind::FamilyName => {
                    (Category::Name, Rule::KnownPatientName)
                }
                KnownKind::RelativeName => (Category::Name, Rule::KnownRelativeName),
                KnownKind::Location => (Category::Address, Rule::KnownAddress),
                KnownKind::Identifier => (Category::Id, Rule::KnownIdentifier),
                KnownKind::Email => (Category::Email, Rule::KnownEmail),
            };
            spans.push(Span {
                start: m.start(),
                end: m.end(),
                category,
                rule,
            });
        }
    }
}

/// True when `[start, end)` is not part of a longer word or number.
pub(crate) fn is_boundary(bytes: &[u8], start: usize, end: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric();
    (start == 0 || !word(bytes[start - 1])) && (end >= bytes.len() || !word(bytes[end]))
}
