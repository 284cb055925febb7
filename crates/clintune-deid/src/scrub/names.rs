//! Name and place detection: dictionaries gated by context.
//!
//! A word in a name list is not a name by itself ("Will", "Brown", "May"):
//! it needs a title before it ("Dr."), a relation ("wife"), a cue ("paged",
//! "per"), a neighbouring name, or to be a capitalised, uncommon word.
//! This module holds the driver ([`find`]) and the name rules; the place
//! rules are in `places.rs`, word classes and tokenization in `lexicon.rs`.

use super::dictionary::Dictionaries;
use super::lexicon::*;
use super::places::find_site_terms;
use super::{Category, Rule, Span};
use crate::policy::TextMode;
use std::collections::HashMap;

/// Appends name and place spans found in `text`. `spans` holds only spans
/// of `text` (its patterns' and the patient's own): the rules read them.
pub fn find(text: &str, dicts: &Dictionaries, mode: TextMode, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut buf = [0u8; 48];
    let tokens = split_dashes(bytes, tokenize(bytes), |w| {
        dicts.flags(w, &mut buf) & STOP != 0
    });
    // Some notes are written all in capitals, some without any: case then
    // says nothing about names.
    let (upper, lower) = letter_cases(bytes);
    let caps_text = upper > 3 * lower;
    let flags: Vec<u32> = tokens
        .iter()
        .map(|t| dicts.flags(&bytes[t.start..t.letters_end], &mut buf))
        .collect();
    // Safe as a whole from the flags already looked up; hyphenated and
    // apostrophed words part by part.
    let safe: Vec<bool> = tokens
        .iter()
        .zip(&flags)
        .map(|(t, f)| {
            let word = &bytes[t.start..t.letters_end];
            f & SAFE_CLASSES != 0
                || (word.iter().any(|c| matches!(c, b'-' | b'\'')) && dicts.is_safe(word, &mut buf))
        })
        .collect();
    let uncased_line = uncased_lines(bytes, &tokens);
    // A transcript with a short typed note after it is still speech: count
    // the words on lines without capitals.
    let uncased_words = uncased_line.iter().filter(|u| **u).count();
    let ctx = Ctx {
        bytes,
        uncased_line: &uncased_line,
        tokens: &tokens,
        flags: &flags,
        safe: &safe,
        dicts,
        caps_text,
        lower_text: upper * 50 < lower || uncased_words * 5 >= tokens.len() * 4,
    };
    let first_new = spans.len();
    let mut i = 0;
    while i < tokens.len() {
        i += if ctx.inert(i) {
            1
        } else {
            ctx.rule_at(i, spans).max(1)
        };
    }
    ctx.signatures(spans);
    ctx.multiword_places(dicts, spans);
    ctx.any_case_names(spans);
    ctx.wards_and_places(spans);
    drop_eponyms(bytes, spans, first_new);
    // Names spread to other mentions, then to their neighbours, whose other
    // mentions are found in turn.
    same_names_elsewhere(&ctx, spans, first_new);
    ctx.grow_names(spans, first_new);
    same_names_elsewhere(&ctx, spans, first_new);
    find_site_terms(text, dicts, spans);
    if mode == TextMode::Strict {
        ctx.unsafe_words(spans);
    }
}

/// Just after the last sentence end in `line`: a `.`, `!` or `?` after a
/// word of two letters or more and before a space (`J. Smith` has none).
fn sentence_end(line: &[u8]) -> Option<usize> {
    (2..line.len())
        .rev()
        .find(|&p| {
            matches!(line[p], b'.' | b'!' | b'?')
                && line.get(p + 1).is_some_and(u8::is_ascii_whitespace)
                && line[p - 2..p].iter().all(u8::is_ascii_alphanumeric)
        })
        .map(|p| p + 1)
}

/// Per token: true when the token's line has no ASCII capital letter.
fn uncased_lines(bytes: &[u8], tokens: &[Token]) -> Vec<bool> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut k = 0;
    let mut line_start = 0;
    for line in bytes.split(|c| *c == b'\n') {
        let line_end = line_start + line.len();
        let uncased = !line.iter().any(u8::is_ascii_uppercase);
        while k < tokens.len() && tokens[k].start < line_end {
            out.push(uncased);
            k += 1;
        }
        line_start = line_end + 1;
    }
    out.resize(tokens.len(), false);
    out
}

/// A name or place found once in a text is one wherever else it appears
/// there ("Wife Suzette ... later suzette left", "on Quartermain 6 ... back
/// to QUARTERMAIN"). Only uncommon words are carried over, so a name that is
/// also a word does not spread; words glued to digits ("SaO2") are
/// measurements, not names.
fn same_names_elsewhere(ctx: &Ctx<'_>, spans: &mut Vec<Span>, from: usize) {
    let (found, is_found) = found_words(ctx, &spans[from..]);
    if found.is_empty() {
        return;
    }
    // Every span so far, in order, to skip tokens something already covers.
    let mut covered: Vec<(usize, usize)> = spans.iter().map(|s| (s.start, s.end)).collect();
    covered.sort_unstable();
    // The furthest end among the spans starting at or before each one.
    let reach: Vec<usize> = covered
        .iter()
        .scan(0, |far, &(_, e)| {
            *far = e.max(*far);
            Some(*far)
        })
        .collect();
    let overlaps = |start: usize, end: usize| {
        let before = covered.partition_point(|&(s, _)| s < end);
        before > 0 && reach[before - 1] > start
    };
    let mut buf = [0u8; 48];
    for (t, done) in ctx.tokens.iter().zip(is_found) {
        let word = &ctx.bytes[t.start..t.letters_end];
        if t.letters_end != t.end || done || word.len() < 3 || word.len() > buf.len() {
            continue;
        }
        let lower = &mut buf[..word.len()];
        lower.copy_from_slice(word);
        lower.make_ascii_lowercase();
        if let Some(category) = found.get(&*lower)
            && !overlaps(t.start, t.end)
        {
            spans.push(Span {
                start: t.start,
                end: t.end,
                category: *category,
                rule: Rule::SameNameInText,
            });
        }
    }
}

/// The uncommon words inside the name and place spans `found` (lower case,
/// with the category of their first mention), and per token whether it is
/// one of those mentions. Tokens and spans are walked together once: a long
/// text has millions of tokens.
fn found_words(ctx: &Ctx<'_>, found: &[Span]) -> (HashMap<Vec<u8>, Category>, Vec<bool>) {
    let carried = |c: Category| matches!(c, Category::Name | Category::Location);
    let mut found: Vec<(usize, usize, Category)> = found
        .iter()
        .filter(|s| carried(s.category))
        .map(|s| (s.start, s.end, s.category))
        .collect();
    let mut words: HashMap<Vec<u8>, Category> = HashMap::new();
    if found.is_empty() {
        return (words, Vec::new());
    }
    found.sort_unstable_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
    let mut s = 0;
    let is_found = (0..ctx.tokens.len())
        .map(|k| {
            let t = ctx.tokens[k];
            while s < found.len() && found[s].1 <= t.start {
                s += 1;
            }
            let inside = found[s..]
                .iter()
                .take_while(|(start, _, _)| *start <= t.start)
                .find(|(_, end, _)| t.end <= *end);
            let Some(&(_, _, category)) = inside else {
                return false;
            };
            let uncommon =
                t.letters_end == t.end && ctx.len(k) >= 3 && !ctx.has(k, COMMON | CLINICAL | STOP);
            if uncommon {
                let word = ctx.bytes[t.start..t.letters_end].to_ascii_lowercase();
                words.entry(word).or_insert(category);
            }
            uncommon
        })
        .collect();
    (words, is_found)
}

/// Nouns that make the word before them an eponym ("Hodgkin lymphoma",
/// "Parkinson's disease", "Glasgow coma scale"), not a person or a place.
pub(crate) const EPONYM_NOUNS: &[&str] = &[
    "disease",
    "diseases",
    "syndrome",
    "sign",
    "signs",
    "lymphoma",
    "sarcoma",
    "palsy",
    "phenomenon",
    "thyroiditis",
    "esophagus",
    "fracture",
    "catheter",
    "score",
    "scale",
    "coma",
    "reflex",
    "test",
    "maneuver",
    "manoeuvre",
    "procedure",
    "operation",
    "breathing",
    "respirations",
    "respiration",
    "cyst",
    "virus",
    "classification",
    "criteria",
    "tube",
    "node",
    "nodes",
    "disorder",
    "ulcer",
    "law",
    "triad",
    "body",
    "bodies",
    "cell",
    "cells",
    "tumor",
    "tumour",
    "anemia",
    "dementia",
    "encephalopathy",
    "neuropathy",
    "ataxia",
    "dystrophy",
    "chorea",
    "method",
    "position",
    "repair",
    "shunt",
    "stain",
    "formula",
    "equation",
    "aneurysm",
    "hernia",
    "fistula",
    "contracture",
    "deformity",
    "nodule",
    "nodules",
    "murmur",
    "pill",
    "curve",
    "line",
    "lines",
    "fever",
];

/// Removes name and place spans found by the dictionary and context rules
/// (from `from` on) when an eponym noun follows. Titles and the patient's own
/// identifiers are found elsewhere or by rules this leaves alone.
fn drop_eponyms(bytes: &[u8], spans: &mut Vec<Span>, from: usize) {
    let mut k = from;
    while k < spans.len() {
        let s = &spans[k];
        let dictionary_rule = !matches!(
            s.rule,
            Rule::Title | Rule::Signature | Rule::NameIs | Rule::Relation
        );
        // Places make eponyms too ("Lyme disease", "Glasgow coma scale");
        // an institution's own protocol ("U Maryland scale") is found by a
        // pattern, which this leaves alone.
        if dictionary_rule && eponym_follows(bytes, s.end, EPONYM_NOUNS) {
            spans.remove(k);
        } else {
            k += 1;
        }
    }
}

pub(crate) fn eponym_follows(bytes: &[u8], end: usize, nouns: &[&str]) -> bool {
    let mut i = end;
    // "Parkinson's disease", "Guillain-Barre syndrome", "Swan-Ganz catheter".
    if bytes[i..].starts_with(b"'s") {
        i += 2;
    }
    while i < bytes.len()
        && (bytes[i] == b'-' || bytes[i].is_ascii_alphabetic())
        && bytes[i] != b' '
    {
        i += 1;
    }
    let rest = &bytes[i..];
    let start = rest.iter().position(|c| *c != b' ').unwrap_or(rest.len());
    if start == 0 || start > 2 {
        return false;
    }
    let word_end = rest[start..]
        .iter()
        .position(|c| !c.is_ascii_alphabetic())
        .map_or(rest.len(), |p| start + p);
    let word = rest[start..word_end].to_ascii_lowercase();
    nouns.iter().any(|n| n.as_bytes() == word.as_slice())
}

pub(super) struct Ctx<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) tokens: &'a [Token],
    pub(super) flags: &'a [u32],
    /// Per token: on the safe list (see [`Dictionaries::is_safe`]).
    pub(super) safe: &'a [bool],
    pub(super) dicts: &'a Dictionaries,
    pub(super) caps_text: bool,
    /// Almost no capitals in the text.
    pub(super) lower_text: bool,
    /// Per token: its line has no capital letter (a transcribed utterance,
    /// a note typed without capitals).
    pub(super) uncased_line: &'a [bool],
}

impl Ctx<'_> {
    /// True when no rule of [`Ctx::rule_at`] can start at token `i`: an
    /// ordinary lower-case word, where case means something, of no class a
    /// rule starts from, with no credential after it. Most words are.
    fn inert(&self, i: usize) -> bool {
        const STARTS: u32 =
            TITLE | RELATION | CUE | PLACE_CUE | COMPASS | FIRST | LAST | PLACE | FACILITY_NAME;
        let t = self.tokens[i];
        t.letters_end - t.start >= 2
            && self.bytes[t.start].is_ascii_lowercase()
            && self.is_common(i)
            && !self.has(i, STARTS)
            && !self.uncased(i)
            && !(i + 1 < self.tokens.len() && self.has(i + 1, CREDENTIAL))
    }

    /// Applies the rules at token `i`; returns how many tokens were consumed.
    /// Tokens for which [`Ctx::inert`] holds are skipped before this is
    /// called: a rule that can start on an ordinary lower-case word must add
    /// its starting class there.
    pub(super) fn rule_at(&self, i: usize, spans: &mut Vec<Span>) -> usize {
        if self.has(i, TITLE) && self.real_title(i) {
            if let Some(n) = self.initial_after_title(i, spans) {
                return n;
            }
            if self.adjacent(i, i + 1) {
                return 1 + self.name_run(i + 1, 3, true, Rule::Title, spans);
            }
        }
        if self.has(i, RELATION) && self.same_phrase(i, i + 1) {
            return 1 + self.name_run(i + 1, 2, false, Rule::Relation, spans);
        }
        if self.has(i, CUE) && self.name_is(i) {
            let n = self.name_run(i + 2, 3, true, Rule::NameIs, spans);
            if n > 0 {
                return 2 + n;
            }
        }
        if self.has(i, CUE) && self.same_phrase(i, i + 1) {
            let n = self.name_run(i + 1, 2, false, Rule::Cue, spans);
            if n > 0 {
                return 1 + n;
            }
        }
        if self.has(i, PLACE_CUE)
            && let Some(n) = self.place_after_cue(i, spans)
        {
            return n;
        }
        if let Some(n) = self.facility(i, spans) {
            return n;
        }
        if let Some(n) = self.region(i, spans) {
            return n;
        }
        if let Some(n) = self.initial_name(i, spans) {
            return n;
        }
        if self.before_credential(i) {
            self.push(i, Category::Name, Rule::Credential, spans);
            if i > 0 && self.adjacent(i - 1, i) && self.name_like(i - 1) {
                self.push(i - 1, Category::Name, Rule::Credential, spans);
            }
            return 1;
        }
        if self.pair_at(i) {
            self.push(i, Category::Name, Rule::NamePair, spans);
            self.push(i + 1, Category::Name, Rule::NamePair, spans);
            return 2;
        }
        if self.standalone_name(i) {
            self.push(i, Category::Name, Rule::NameDictionary, spans);
        } else if self.standalone_place(i) {
            self.push(i, Category::Location, Rule::PlaceDictionary, spans);
        }
        1
    }

    /// Marks up to `max` name-like tokens from `i`; `strong` accepts any
    /// capitalised word (after a title), otherwise dictionary words only.
    pub(super) fn name_run(
        &self,
        i: usize,
        max: usize,
        strong: bool,
        rule: Rule,
        spans: &mut Vec<Span>,
    ) -> usize {
        let mut n = 0;
        while n < max && i + n < self.tokens.len() {
            let j = i + n;
            if n > 0 && !self.joined_in_name(j - 1, j) {
                break;
            }
            // "Dr. Will Cole": right after a title, a capitalised first name counts even if it is a stopword.
            let titled_first =
                strong && n == 0 && !self.caps_text && self.capitalised(j) && self.has(j, FIRST);
            let candidate = titled_first || !self.has(j, STOP | RELATION | TITLE);
            let ok = candidate
                && if strong && n == 0 {
                    // Right after a title anything capitalised is a name ("Dr. Beer").
                    (!self.has(j, CLINICAL)
                        || (!self.caps_text && self.capitalised(j))
                        || (self.uncased(j) && self.has(j, FIRST | LAST)))
                        && (self.capitalised(j)
                            || self.is_name(j)
                            || !self.is_common(j)
                            || (self.uncased(j) && self.has(j, FIRST | LAST)))
                } else if n == 0 {
                    // After a relation or cue: a name-list word; a first name
                    // even if it is also a word ("son Rob", "NP Grace"); an
                    // unknown word after a relation ("brother Vinny").
                    let relation = rule == Rule::Relation;
                    let role = i > 0 && self.has(i - 1, ROLE);
                    !self.acronym(j)
                        && !self.measurement(j)
                        && !self.has(j, CLINICAL | STATE)
                        && ((self.is_name(j)
                            && (!self.is_common(j) || (self.capitalised(j) && !self.caps_text)))
                            || ((relation || role) && self.is_first(j))
                            || (relation && self.unknown_name(j))
                            // "my husband ximena": without capitals, any
                            // word that can be a name by position.
                            || (relation && self.uncased(j) && self.name_candidate(j)))
                } else if strong && self.len(j - 1) == 1 {
                    // "DR B. GILL": after an initial, a surname or an unknown word.
                    !self.has(j, CLINICAL) && (self.is_last(j) || self.unknown_name(j))
                } else if strong && !self.caps_text {
                    // "Dr. Art White": the run after a title goes on while words
                    // are capitalised, or are uncommon names ("dr. john bowman").
                    (self.capitalised(j) && !self.acronym(j))
                        || (self.is_name(j) && !self.is_common(j))
                } else {
                    self.name_like(j) && (!self.caps_text || self.is_name(j))
                };
            if !ok {
                break;
            }
            self.push(j, Category::Name, rule, spans);
            n += 1;
        }
        n
    }

    /// `mr I remained`, `Dr. o rourke`: a lone letter right after a title is
    /// an initial (the tokenizer keeps single letters only before a period),
    /// and a name run may follow it.
    fn initial_after_title(&self, i: usize, spans: &mut Vec<Span>) -> Option<usize> {
        let from = self.tokens[i].end;
        let rest = &self.bytes[from..];
        let gap = rest.iter().take_while(|c| matches!(c, b'.' | b' ')).count();
        let at = from + gap;
        let letter = *self.bytes.get(at)?;
        let after = self.bytes.get(at + 1).copied();
        let lone = letter.is_ascii_alphabetic()
            && after.is_none_or(|c| matches!(c, b' ' | b',' | b'\n' | b'\r' | b'\t'));
        // One space or a period and a space: not across a line or a list.
        if !(1..=2).contains(&gap) || !rest[..gap].contains(&b' ') || !lone {
            return None;
        }
        let next = i + 1;
        let joined = next < self.tokens.len()
            && self.tokens[next].start == at + 2
            && self.bytes[at + 1] == b' ';
        // A lower-case letter is an initial only before a word that is not
        // an ordinary one ("dr. o rourke", not "saw the dr a week ago").
        if letter.is_ascii_lowercase() && (!joined || self.known_word(next)) {
            return None;
        }
        spans.push(Span {
            start: at,
            end: at + 1,
            category: Category::Name,
            rule: Rule::Title,
        });
        let run = if joined {
            self.name_run(next, 2, true, Rule::Title, spans)
        } else {
            0
        };
        Some(1 + run)
    }

    /// `E. WELSH`, `Z. Miller`: an initial and a surname.
    pub(super) fn initial_name(&self, i: usize, spans: &mut Vec<Span>) -> Option<usize> {
        let t = self.tokens[i];
        let j = i + 1;
        let dotted = self.bytes.get(t.letters_end) == Some(&b'.');
        let free =
            t.start == 0 || matches!(self.bytes[t.start - 1], b' ' | b'\t' | b'\n' | b'(' | b',');
        if t.letters_end - t.start != 1
            || !dotted
            || !free
            || !self.bytes[t.start].is_ascii_uppercase()
            || j >= self.tokens.len()
            || !self.adjacent(i, j)
        {
            return None;
        }
        // S., O., A., P. head the sections of SOAP notes.
        let soap = b"SOAPI".contains(&self.bytes[t.start]);
        // An unknown word after an initial is a surname when something else says so.
        let vouched = (i > 0 && self.has(i - 1, CUE))
            || (j + 1 < self.tokens.len() && self.has(j + 1, NAME_AFTER | CREDENTIAL));
        let surname = (self.is_last(j)
            || (self.caps_text && vouched && !self.has(j, COMMON | FIRST | LAST)))
            && !self.has(j, CLINICAL | STOP)
            && (!soap || !self.is_common(j));
        if !(surname || (!self.caps_text && self.name_like(j))) || self.len(j) < 3 {
            return None;
        }
        self.push(i, Category::Name, Rule::Initial, spans);
        self.push(j, Category::Name, Rule::Initial, spans);
        Some(2)
    }

    /// `Jones, RRT`, `O'connell MD`: the word before a credential.
    pub(super) fn before_credential(&self, i: usize) -> bool {
        let j = i + 1;
        if j >= self.tokens.len() || !self.adjacent(i, j) || !self.has(j, CREDENTIAL) {
            return false;
        }
        let cred = self.tokens[j];
        let cred_upper = self.bytes[cred.start..cred.letters_end]
            .iter()
            .all(u8::is_ascii_uppercase);
        let comma = self.bytes[self.tokens[i].end..cred.start].contains(&b',');
        let name = if self.caps_text {
            self.is_name(i) && !self.is_common(i)
        } else {
            self.name_like(i)
        };
        cred_upper
            && !self.measurement(i)
            && (comma || !self.caps_text)
            && name
            && !self.has(i, STOP)
    }

    /// `John Smith`: a first name followed by a surname.
    pub(super) fn pair_at(&self, i: usize) -> bool {
        let j = i + 1;
        if j >= self.tokens.len() || !self.adjacent(i, j) || self.acronym(i) || self.acronym(j) {
            return false;
        }
        let plain = |k: usize| self.len(k) >= 3 && !self.has(k, STOP | RELATION | TITLE);
        if !plain(i) || !plain(j) || !self.is_first(i) {
            return false;
        }
        // "Hank Przybylo (son)": a relation in brackets vouches for the pair.
        let k = j + 1;
        let relation_after = k < self.tokens.len()
            && self.has(k, RELATION)
            && self.bytes[self.tokens[j].end..self.tokens[k].start].contains(&b'(');
        if relation_after && self.capitalised(i) && self.capitalised(j) && !self.has(j, CLINICAL) {
            return true;
        }
        if !self.is_last(j) {
            // An uncommon first name and an unknown capitalised word.
            return !self.caps_text
                && !self.is_common(i)
                && self.capitalised(i)
                && self.capitalised(j)
                && !self.is_common(j)
                && !self.acronym(j);
        }
        let both_capitalised = self.capitalised(i) && self.capitalised(j);
        if self.uncased(i) {
            // "martin carey": without capitals, a first name and a surname
            // that are not both ordinary words.
            return !(self.is_common(i) && self.is_common(j));
        }
        if self.caps_text {
            !self.is_common(i) && !self.is_common(j)
        } else {
            both_capitalised
        }
    }

    /// A name-list word in a position where a name is plausible: capitalised
    /// and not an ordinary word, or (in mixed-case text) capitalised mid-sentence.
    pub(super) fn name_like(&self, i: usize) -> bool {
        if self.acronym(i) || self.has(i, CLINICAL) {
            return false;
        }
        let uncommon = !self.is_common(i);
        ((self.is_name(i) || self.capitalised(i)) && uncommon)
            || (self.capitalised(i) && self.is_name(i) && !self.caps_text)
    }

    /// An all-capital word of up to four letters in mixed-case text: an
    /// abbreviation (DOB, NPI, CHF), not a name.
    pub(super) fn acronym(&self, i: usize) -> bool {
        let t = self.tokens[i];
        !self.caps_text
            && t.letters_end - t.start <= 4
            && self.bytes[t.start..t.letters_end]
                .iter()
                .all(u8::is_ascii_uppercase)
    }

    pub(super) fn standalone_name(&self, i: usize) -> bool {
        !self.measurement(i)
            && self.len(i) >= 3
            && !self.caps_text
            && !self.acronym(i)
            && self.capitalised(i)
            && (!self.sentence_start(i) || self.is_first(i))
            && self.is_name(i)
            && !self.is_common(i)
            && !self.has(i, STOP | STATE)
    }

    /// "SaO2", "PaO2", "MgSO4": a word glued to one digit is a measurement
    /// or a formula, not a name.
    pub(super) fn measurement(&self, i: usize) -> bool {
        let t = self.tokens[i];
        t.end - t.letters_end == 1
    }

    /// True when letter case says nothing about token `i`: the text or its
    /// line has no capitals.
    pub(super) fn uncased(&self, i: usize) -> bool {
        self.lower_text || self.uncased_line[i]
    }

    /// True when token `i` opens a sentence or a line (capitalised anyway).
    pub(super) fn sentence_start(&self, i: usize) -> bool {
        let before = &self.bytes[..self.tokens[i].start];
        match before.iter().rposition(|c| !matches!(c, b' ' | b'\t')) {
            None => true,
            Some(p) => matches!(
                before[p],
                b'.' | b'\n' | b'\r' | b':' | b'!' | b'?' | b'-' | b'*' | b'#'
            ),
        }
    }

    pub(super) fn has(&self, i: usize, flag: u32) -> bool {
        self.flags[i] & flag != 0
    }

    /// Letters in token `i`.
    pub(super) fn len(&self, i: usize) -> usize {
        let t = self.tokens[i];
        t.letters_end - t.start
    }

    pub(super) fn is_first(&self, i: usize) -> bool {
        self.len(i) >= 2 && self.has(i, FIRST) && !self.has(i, CLINICAL)
    }

    pub(super) fn is_last(&self, i: usize) -> bool {
        self.len(i) >= 2 && self.has(i, LAST) && !self.has(i, CLINICAL)
    }

    pub(super) fn is_name(&self, i: usize) -> bool {
        self.is_first(i) || self.is_last(i)
    }

    pub(super) fn is_common(&self, i: usize) -> bool {
        self.has(i, COMMON | CLINICAL)
    }

    pub(super) fn capitalised(&self, i: usize) -> bool {
        let t = self.tokens[i];
        self.bytes[t.start].is_ascii_uppercase()
            && (self.caps_text
                || self.bytes[t.start + 1..t.letters_end]
                    .iter()
                    .any(u8::is_ascii_lowercase)
                || t.letters_end - t.start <= 3)
    }

    /// A word in no list that reads like a name: plain letters, capitalised
    /// in mixed-case text, not shaped like a verb ("phoned", "visiting").
    pub(super) fn unknown_name(&self, i: usize) -> bool {
        let t = self.tokens[i];
        let w = &self.bytes[t.start..t.letters_end];
        let lower = w.to_ascii_lowercase();
        self.flags[i] & !EXTRA_NAME == 0
            && w.len() >= 3
            && w.iter().all(u8::is_ascii_alphabetic)
            && (self.caps_text || self.capitalised(i))
            && !lower.ends_with(b"ed")
            && !lower.ends_with(b"ing")
    }

    /// "my name is X", "named: X".
    pub(super) fn name_is(&self, i: usize) -> bool {
        let t = self.tokens[i];
        let word = self.bytes[t.start..t.letters_end].to_ascii_lowercase();
        let j = i + 1;
        (word == b"name" || word == b"named")
            && j + 1 < self.tokens.len()
            && self.same_phrase(i, j)
            && self.bytes[self.tokens[j].start..self.tokens[j].letters_end]
                .eq_ignore_ascii_case(b"is")
    }

    /// Signature lines: "SUSAN" alone on the last line, "barbara j. parrilli
    /// bsn/rn", "EDWARD C. JONES, RRT": a short line of name-like words that
    /// starts with a first name and ends the note or ends in a credential.
    pub(super) fn signatures(&self, spans: &mut Vec<Span>) {
        let last_line_start = self
            .bytes
            .trim_ascii_end()
            .iter()
            .rposition(|c| *c == b'\n')
            .map_or(0, |p| p + 1);
        let mut line_start = 0;
        let mut next = 0;
        for line in self.bytes.split(|c| *c == b'\n') {
            let line_end = line_start + line.len();
            // Tokens are in text order: take this line's with one moving index.
            let first = next;
            while next < self.tokens.len() && self.tokens[next].end <= line_end {
                next += 1;
            }
            let last_line = line_start == last_line_start;
            // "… 1400U/HR. SUSAN": on the last line, the words after its last
            // sentence end sign the note.
            let (line, from) = if last_line {
                let cut = sentence_end(line.trim_ascii_end()).unwrap_or(0);
                (&line[cut..], line_start + cut)
            } else {
                (line, line_start)
            };
            let toks: Vec<usize> = (first..next)
                .filter(|&k| self.tokens[k].start >= from)
                .collect();
            let credential_at = toks.iter().position(|&k| self.has(k, CREDENTIAL));
            let names = &toks[..credential_at.unwrap_or(toks.len())];
            let plain_line = line
                .iter()
                .all(|c| c.is_ascii_alphabetic() || b" .,/'-\t\r".contains(c));
            if (credential_at.is_some() || last_line)
                && plain_line
                && (1..=4).contains(&names.len())
                && self.is_first(names[0])
                && !self.has(names[0], CLINICAL | STOP)
                && names.iter().all(|&k| {
                    !self.has(k, CLINICAL | STOP)
                        && (self.len(k) == 1 || self.is_name(k) || !self.is_common(k))
                })
            {
                for &k in names {
                    self.push(k, Category::Name, Rule::Signature, spans);
                }
            }
            line_start = line_end + 1;
        }
    }

    /// "MR" and "MS" in clinical notes are mitral regurgitation and mental
    /// status: written in capitals they are titles only in all-capitals notes
    /// and with a period; any title must stand on its own ("+MR" is not one).
    pub(super) fn real_title(&self, i: usize) -> bool {
        let t = self.tokens[i];
        let free = t.start == 0
            || matches!(
                self.bytes[t.start - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'(' | b',' | b'"'
            );
        let word = &self.bytes[t.start..t.letters_end];
        let short = matches!(word.to_ascii_lowercase().as_slice(), b"mr" | b"ms");
        let upper = word.iter().all(u8::is_ascii_uppercase);
        let dotted = self.bytes.get(t.letters_end) == Some(&b'.');
        let named_next = i + 1 < self.tokens.len() && self.is_first(i + 1);
        !short || (free && (!upper || (dotted && (self.caps_text || named_next))))
    }

    /// True when tokens `a` and `b` can be parts of one name: only spaces
    /// between them, or a period after an initial ("John C. Jones").
    pub(super) fn joined_in_name(&self, a: usize, b: usize) -> bool {
        let gap = &self.bytes[self.tokens[a].end..self.tokens[b].start];
        let initial = self.len(a) == 1;
        !gap.is_empty()
            && gap.len() <= 2
            && gap.iter().all(|c| *c == b' ' || (initial && *c == b'.'))
    }

    /// True when tokens `a` and `b` are in one phrase: spaces or a comma
    /// between them, no sentence end.
    pub(super) fn same_phrase(&self, a: usize, b: usize) -> bool {
        b < self.tokens.len() && {
            let gap = &self.bytes[self.tokens[a].end..self.tokens[b].start];
            !gap.is_empty()
                && gap.len() <= 3
                && gap.iter().all(|c| matches!(c, b' ' | b',' | b'\t'))
        }
    }

    /// True when tokens `a` and `b` are separated only by spaces, a period or a comma.
    pub(super) fn adjacent(&self, a: usize, b: usize) -> bool {
        if b >= self.tokens.len() {
            return false;
        }
        let gap = &self.bytes[self.tokens[a].end..self.tokens[b].start];
        gap.len() <= 3 && gap.iter().all(|c| matches!(c, b' ' | b'.' | b',' | b'\t'))
    }

    pub(super) fn push(&self, i: usize, category: Category, rule: Rule, spans: &mut Vec<Span>) {
        let t = self.tokens[i];
        spans.push(Span {
            start: t.start,
            end: t.end,
            category,
            rule,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::dictionary::tests::repo_dictionaries;
    use super::*;

    fn names(text: &str) -> Vec<String> {
        let d = repo_dictionaries();
        let mut spans = Vec::new();
        find(text, d, TextMode::Balanced, &mut spans);
        // Two rules may find the same word; the scrubber merges them.
        spans.sort_by_key(|s| (s.start, s.end));
        spans.dedup_by_key(|s| (s.start, s.end));
        spans
            .iter()
            .map(|s| text[s.start..s.end].to_string())
            .collect()
    }

    #[test]
    fn titles_relations_and_pairs() {
        let f = names(
            "Seen by Dr. Liane379 Kunze215 today. Wife Rose at bedside. John Smith called back.",
        );
        for want in ["Liane379", "Kunze215", "Rose", "John", "Smith"] {
            assert!(f.contains(&want.to_string()), "missing {want}: {f:?}");
        }
    }

    #[test]
    fn common_words_stay() {
        let f = names("Patient will follow up. Pain is better. Brown stool noted.");
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn signatures_relations_roles_and_places() {
        let f = names(
            "Pt resting. Brother Vinny visited; NP Grace made aware.\nEDWARD C. JONES, RRT\nTransferred to GH for cath. Lives in Catonsville.\nSUSAN",
        );
        for want in [
            "Vinny",
            "Grace",
            "EDWARD",
            "JONES",
            "GH",
            "Catonsville",
            "SUSAN",
        ] {
            assert!(f.contains(&want.to_string()), "missing {want}: {f:?}");
        }
    }

    #[test]
    fn contact_lines_hospital_initials_and_trailing_signatures() {
        let f = names(
            "Lopie Certusi cell# 410-322-1419 is the proxy. Sent to ED at MGH, \
             then to BWH. Heparin held at 1400U/HR. SUSAN",
        );
        for want in ["Lopie", "Certusi", "MGH", "BWH", "SUSAN"] {
            assert!(f.contains(&want.to_string()), "missing {want}: {f:?}");
        }
        let f = names("barbara j. parrilli bsn/rn");
        assert_eq!(f, ["barbara", "j", "parrilli"]);
    }

    #[test]
    fn states_nationalities_chairs_and_measurements_are_not_names() {
        let f = names(
            "Speaks Russian; English interpreter called. Moved from Florida. \
             OOB to CH with PT, back in NH. Seen with sao2 86%, mgso4 RN given, \
             at baseline, USOH.",
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn clinical_look_alikes_stay() {
        let f = names(
            "ECHO: 3+ MR. Given lasix. MS STILL ALTERED. Ambulated with walker, PA numbers stable, wife phoned.",
        );
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn site_terms_match_in_any_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.txt");
        std::fs::write(&path, "GH\nQuartermain\n").unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deid/dictionaries");
        let mut d = Dictionaries::load(&dir).unwrap();
        d.add_site_terms(&path).unwrap();
        let text = "transfer to quartermain 2 after cath at gh; GHOST lines";
        let mut spans = Vec::new();
        find(text, &d, TextMode::Balanced, &mut spans);
        let found: Vec<&str> = spans
            .iter()
            .filter(|s| s.rule == Rule::SiteTerm)
            .map(|s| &text[s.start..s.end])
            .collect();
        assert_eq!(found, ["quartermain", "gh"]);
    }

    #[test]
    fn eponyms_are_not_names() {
        let f = names(
            "History of Alzheimer's disease, Hodgkin lymphoma, Cushing syndrome and Babinski sign; Glasgow coma scale 15. Seen by Dr. Murphy.",
        );
        assert_eq!(f, ["Murphy"], "{f:?}");
    }

    #[test]
    fn a_name_found_once_is_found_again() {
        let found = names("Wife Suzette at bedside. Later suzette left a number.");
        assert_eq!(found, ["Suzette", "suzette"]);
    }

    #[test]
    fn lone_initials_after_titles() {
        let f = names("Seen by Dr. o rourke today. Later mr I remained on same doses.");
        assert_eq!(f, ["o", "rourke", "I"]);
        let f = names("i saw the dr a week ago");
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn dashes_between_words_split_them() {
        let f = names("Phone call from son Rob-who states he will come.");
        assert_eq!(f, ["Rob"]);
        let text = "GIVEN LASIX-W. QUAXWORTH AWARE-WILL START DRIP.";
        let mut spans = Vec::new();
        find(text, repo_dictionaries(), TextMode::Strict, &mut spans);
        assert!(
            spans.iter().any(|s| &text[s.start..s.end] == "W"),
            "{spans:?}"
        );
        // Hyphenated names and terms stay whole.
        let f = names("Seen by Dr. Quaxworth-Smythe; follow-up x-ray done.");
        assert_eq!(f, ["Quaxworth-Smythe"]);
    }

    #[test]
    fn first_names_before_found_names() {
        // A note typed without capitals, where case says nothing.
        let f = names("report given by chaplain pat kowalczyk at 1900.");
        assert_eq!(f, ["pat", "kowalczyk"]);
    }

    #[test]
    fn regions_workplaces_and_homes() {
        let f = names(
            "On vacation on the Eastern Shore; lives in Catonsville.\nhe works for vista health.",
        );
        for want in ["Eastern", "Shore", "vista", "health", "Catonsville"] {
            assert!(f.contains(&want.to_string()), "missing {want}: {f:?}");
        }
        // "worked to" is not where someone works; the West Coast is larger than a state.
        let f = names("Both worked to sedate pt. Family from the West Coast.");
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn facilities() {
        let f = names("Transferred from Calvert Hospital yesterday.");
        assert!(f.contains(&"Calvert".to_string()), "{f:?}");
    }
}
