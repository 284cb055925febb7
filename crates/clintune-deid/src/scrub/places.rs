//! Place rules: facility names, places after movement verbs, multi-word
//! place names, and the institution's own site terms.

use super::dictionary::Dictionaries;
use super::known::is_boundary;
use super::lexicon::*;
use super::names::Ctx;
use super::{Category, Span};

impl Ctx<'_> {
    /// `transferred to GH`, `lives in catonsville`: the place after a movement verb.
    pub(super) fn place_after_cue(&self, i: usize, spans: &mut Vec<Span>) -> Option<usize> {
        // "arrived via amb from kernan": the preposition may come a few words
        // later; "in" counts only after "lives" ("brought in lollipops").
        let is_prep = |k: usize| self.has(k, PREP) || (self.has(k, IN) && self.has(i, RESIDES));
        let prep = (i + 1..(i + 4).min(self.tokens.len())).find(|&k| is_prep(k))?;
        if !(i..prep).all(|k| self.adjacent(k, k + 1)) {
            return None;
        }
        let mut j = prep + 1;
        if j < self.tokens.len() && self.has(j, THE) && self.adjacent(prep, j) {
            j += 1;
        }
        let first = j;
        while j < self.tokens.len()
            && j - first < 3
            && self.adjacent(j - 1, j)
            && self.place_word(j)
            && (j == first
                || (self.capitalised(j) && !self.caps_text)
                || self.has(j, FACILITY | FACILITY_NAME))
        {
            j += 1;
        }
        if j == first {
            return None;
        }
        for k in first..j {
            self.push(k, Category::Location, "place-cue", spans);
        }
        Some(j - i)
    }

    /// A word that can name a place after a cue: not an ordinary or clinical word.
    pub(super) fn place_word(&self, i: usize) -> bool {
        self.len(i) >= 2
            && (!self.has(i, STOP | FACILITY | CREDENTIAL) && !self.is_common(i)
                || self.has(i, FACILITY_NAME) && self.capitalised(i))
    }

    /// `Calvert Hospital`, `Holy Cross Hospital`: capitalised words before a facility word.
    pub(super) fn facility(&self, i: usize, spans: &mut Vec<Span>) -> Option<usize> {
        if !self.facility_word(i) {
            return None;
        }
        let mut j = i;
        while j + 1 < self.tokens.len()
            && j - i < 3
            && self.same_phrase(j, j + 1)
            && self.facility_word(j + 1)
        {
            j += 1;
        }
        let f = j + 1;
        if f < self.tokens.len()
            && self.same_phrase(j, f)
            && self.has(f, FACILITY)
            && !self.has(i, CLINICAL)
        {
            for k in i..=f {
                self.push(k, Category::Location, "facility", spans);
            }
            return Some(f - i + 1);
        }
        None
    }

    /// A word that can be part of a facility's name: capitalised, and either
    /// uncommon or a word facility names are made of.
    pub(super) fn facility_word(&self, i: usize) -> bool {
        let named = self.has(i, FACILITY_NAME) || self.is_name(i) || self.has(i, PLACE);
        !self.has(i, STOP | FACILITY | CLINICAL)
            && (self.capitalised(i) || !self.is_common(i) || self.has(i, FACILITY_NAME))
            && (named || !self.is_common(i) || (!self.caps_text && !self.sentence_start(i)))
    }

    pub(super) fn standalone_place(&self, i: usize) -> bool {
        self.len(i) >= 4
            && self.has(i, PLACE)
            && !self.is_common(i)
            && (self.caps_text || self.capitalised(i))
    }

    /// "New York", "St. Louis": the longest run of words from a capitalised
    /// word that starts a multi-word place name and is one in the dictionary.
    pub(super) fn multiword_places(&self, dicts: &Dictionaries, spans: &mut Vec<Span>) {
        let mut key = String::new();
        let mut i = 0;
        while i < self.tokens.len() {
            if !self.has(i, PLACE_START) || !self.bytes[self.tokens[i].start].is_ascii_uppercase() {
                i += 1;
                continue;
            }
            let mut found = None;
            key.clear();
            for j in i..self.tokens.len().min(i + dicts.multiword_max) {
                let t = self.tokens[j];
                if j > i {
                    let gap = &self.bytes[self.tokens[j - 1].end..t.start];
                    if gap.is_empty()
                        || gap.len() > 2
                        || !gap.iter().all(|c| matches!(c, b' ' | b'.'))
                    {
                        break;
                    }
                    key.push(' ');
                }
                key.push_str(
                    &String::from_utf8_lossy(&self.bytes[t.start..t.letters_end]).to_lowercase(),
                );
                if j > i && dicts.multiword_places.contains(key.as_str()) {
                    found = Some(j);
                }
            }
            match found {
                Some(j) => {
                    spans.push(Span {
                        start: self.tokens[i].start,
                        end: self.tokens[j].end,
                        category: Category::Location,
                        rule: "place-dictionary",
                    });
                    i = j + 1;
                }
                None => i += 1,
            }
        }
    }
}

pub(super) fn find_site_terms(text: &str, dicts: &Dictionaries, spans: &mut Vec<Span>) {
    let Some(ac) = &dicts.site_terms else {
        return;
    };
    let bytes = text.as_bytes();
    for m in ac.find_iter(text) {
        if is_boundary(bytes, m.start(), m.end()) {
            spans.push(Span {
                start: m.start(),
                end: m.end(),
                category: Category::Location,
                rule: "site-term",
            });
        }
    }
}
