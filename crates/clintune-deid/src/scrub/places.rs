//! Place rules: facility names, places after movement verbs, multi-word
//! place names, and the institution's own site terms.

use super::dictionary::Dictionaries;
use super::known::is_boundary;
use super::lexicon::*;
use super::names::Ctx;
use super::patterns::UNITS;
use super::{Category, Rule, Span};

impl Ctx<'_> {
    /// `transferred to GH`, `lives in catonsville`: the place after a movement verb.
    pub(super) fn place_after_cue(&self, i: usize, spans: &mut Vec<Span>) -> Option<usize> {
        // "arrived via amb from kernan": the preposition may come a few words
        // later; "in" counts only after "lives" ("brought in lollipops").
        // After "works": "for", "at", "by" ("works for Vista Health"), not
        // "to" ("worked to sedate").
        let is_prep = |k: usize| {
            if self.has(i, WORKS) {
                return [&b"for"[..], b"at", b"by"]
                    .iter()
                    .any(|w| self.word_is(k, w));
            }
            self.has(k, PREP) || (self.has(k, IN) && self.has(i, RESIDES))
        };
        let prep = (i + 1..(i + 4).min(self.tokens.len())).find(|&k| is_prep(k))?;
        if !(i..prep).all(|k| self.adjacent(k, k + 1)) {
            return None;
        }
        let mut j = prep + 1;
        if j < self.tokens.len() && self.has(j, THE) && self.adjacent(prep, j) {
            j += 1;
        }
        let first = j;
        // The place's later words must not be across a sentence end
        // ("from Florida. OOB to chair").
        while j < self.tokens.len()
            && j - first < 3
            && (if j == first {
                self.adjacent(j - 1, j)
            } else {
                self.joined_in_name(j - 1, j)
            })
            && (self.place_word(j) || (j == first && self.named_place_after_cue(i, j)))
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
            self.push(k, Category::Location, Rule::PlaceCue, spans);
        }
        Some(j - i)
    }

    /// Places by position, in any case: a ward or building with its floor
    /// (`on Quartermain 6`, `to blake 7`) and a word on no list after
    /// `at`, `in` or `from` (`sent to ED at GH`, `from GBMC`).
    pub(super) fn wards_and_places(&self, spans: &mut Vec<Span>) {
        for i in 1..self.tokens.len() {
            let prep = self.has(i - 1, PREP | IN | PLACE_CUE) || self.word_is(i - 1, b"on");
            if !prep || !self.same_phrase(i - 1, i) {
                continue;
            }
            if self.hospital_initials(i) {
                self.push(i, Category::Location, Rule::HospitalInitials, spans);
                continue;
            }
            // A ward with its floor in any case ("to quartermain 6").
            if self.unlisted_place_word(i) && self.floor_number_after(i) {
                self.push(i, Category::Location, Rule::Ward, spans);
                continue;
            }
            if !self.place_candidate(i) {
                self.facility_name_run(i, spans);
                continue;
            }
            // All-capitals notes and abbreviations after "to" or "at" are
            // mostly clinical shorthand ("TO LWS", "IVF AT KVO"): there the
            // word must be a known place.
            // An abbreviation after "in" or "from" names where someone is or
            // comes from ("is in GH", "retired from GH").
            let in_from = self.word_is(i - 1, b"in") || self.word_is(i - 1, b"from");
            let plain = (!self.caps_text && self.capitalised(i) && !self.acronym(i))
                || (!self.caps_text && in_from && self.acronym(i) && self.len(i) >= 2)
                || self.uncased(i)
                || self.has(i, PLACE);
            if plain && self.has(i - 1, PREP | IN) && !self.has(i - 1, PLACE_CUE) {
                self.push(i, Category::Location, Rule::PlaceCue, spans);
            }
        }
    }

    /// `at Holy Cross`, `from Good Samaritan`: two or three capitalised words
    /// that facility names are made of, after a preposition, in mixed-case text.
    fn facility_name_run(&self, i: usize, spans: &mut Vec<Span>) {
        let word = |k: usize| {
            k < self.tokens.len()
                && !self.caps_text
                && self.capitalised(k)
                && !self.acronym(k)
                && (self.has(k, FACILITY_NAME | PLACE) || !self.known_word(k))
                && !self.has(k, STOP | CLINICAL)
        };
        let mut j = i;
        while j - i < 3 && word(j) && (j == i || self.joined_in_name(j - 1, j)) {
            j += 1;
        }
        if j - i >= 2 && (i..j).any(|k| self.has(k, FACILITY_NAME)) {
            for k in i..j {
                self.push(k, Category::Location, Rule::Facility, spans);
            }
        }
    }

    /// `to GH`, `from BWH`, `at VAMC`: two to four capitals ending in `H`
    /// (hospital) or `MC` (medical center), even where the letters are also
    /// an abbreviation on the safe list (GH, growth hormone). States (`OH`),
    /// clinical terms (`OSH`, outside hospital) and words (`HIGH`) are not.
    fn hospital_initials(&self, i: usize) -> bool {
        let t = self.tokens[i];
        let letters = &self.bytes[t.start..t.letters_end];
        (2..=4).contains(&letters.len())
            && t.letters_end == t.end
            && letters.iter().all(u8::is_ascii_uppercase)
            && (letters.ends_with(b"H") || letters.ends_with(b"MC"))
            && self.has(i - 1, PREP | IN)
            && !self.has(i, STATE | CLINICAL | COMMON | STOP)
    }

    /// A word on no list that can name a place: capitalised unless the
    /// text's case says nothing, and not a misspelt word.
    fn place_candidate(&self, i: usize) -> bool {
        let case_allows =
            self.uncased(i) || self.caps_text || self.capitalised(i) || self.acronym(i);
        case_allows && self.unlisted_place_word(i)
    }

    /// A word on no list, not a name, title or misspelt word: a place name
    /// where its position says so.
    fn unlisted_place_word(&self, i: usize) -> bool {
        let t = self.tokens[i];
        t.letters_end == t.end
            && self.len(i) >= 2
            && !self.known_word(i)
            && !self.has(
                i,
                FIRST | LAST | TITLE | RELATION | CREDENTIAL | FACILITY | STATE,
            )
            && !self.misspelt(i)
    }

    /// True when a one- or two-digit floor or ward number follows token `i`
    /// and no unit or decimal follows it (`Quartermain 2`, not `Lopressor
    /// 25 mg`, `Lasix 2.5`).
    fn floor_number_after(&self, i: usize) -> bool {
        // Besides units of measure: what a dose or a duration counts.
        const COUNTED: &[&str] = &[
            "hour", "hours", "minutes", "day", "days", "wk", "wks", "week", "weeks", "mo",
            "months", "yr", "yrs", "years", "puffs", "tabs", "liters", "l/min", "lpm", "breaths",
            "beats", "am", "pm",
        ];
        let rest = &self.bytes[self.tokens[i].end..];
        let Some(rest) = rest.strip_prefix(b" ") else {
            return false;
        };
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let after = &rest[digits..];
        let decimal = after.len() > 1
            && matches!(after[0], b'.' | b',' | b'/' | b'-' | b':')
            && after[1].is_ascii_digit();
        let glued = after
            .first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'%');
        let word: Vec<u8> = after
            .trim_ascii_start()
            .iter()
            .take_while(|c| c.is_ascii_alphabetic() || **c == b'/')
            .map(u8::to_ascii_lowercase)
            .collect();
        let unit = UNITS.iter().chain(COUNTED).any(|u| u.as_bytes() == word);
        (1..=2).contains(&digits) && !decimal && !glued && !unit
    }

    /// `the Eastern Shore`, `North Hills`: a compass word and a landform or
    /// district noun name a region smaller than a state. Both words are
    /// capitalised unless the text's case says nothing.
    pub(super) fn region(&self, i: usize, spans: &mut Vec<Span>) -> Option<usize> {
        let j = i + 1;
        let cased = |k: usize| self.caps_text || self.capitalised(k) || self.uncased(k);
        if !self.has(i, COMPASS)
            || j >= self.tokens.len()
            || !self.has(j, REGION_NOUN)
            || !self.joined_in_name(i, j)
            || !cased(i)
            || !cased(j)
        {
            return None;
        }
        for k in [i, j] {
            self.push(k, Category::Location, Rule::Region, spans);
        }
        Some(2)
    }

    /// A word that can name a place after a cue: not an ordinary or clinical word.
    pub(super) fn place_word(&self, i: usize) -> bool {
        self.len(i) >= 2
            && !self.has(i, STATE)
            && (!self.has(i, STOP | FACILITY | CREDENTIAL) && !self.is_common(i)
                || self.has(i, FACILITY_NAME) && (self.capitalised(i) || self.uncased(i)))
    }

    /// Right after a cue, a word that is also an ordinary or clinical word
    /// names a place when it is on the place list ("works for vista") or,
    /// after where someone lives or works, when it is capitalised in
    /// mixed-case text ("lives in DC").
    fn named_place_after_cue(&self, cue: usize, j: usize) -> bool {
        let cased = (!self.caps_text && self.capitalised(j)) || self.uncased(j);
        let listed = self.has(j, PLACE)
            && !self.has(j, CLINICAL)
            && self.len(j) >= 3
            && (cased || (self.caps_text && !self.is_common(j)));
        let said = self.has(cue, RESIDES | WORKS) && !self.caps_text && self.capitalised(j);
        (listed || said) && !self.measurement(j) && !self.has(j, STATE | STOP | TITLE | RELATION)
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
                self.push(k, Category::Location, Rule::Facility, spans);
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
            && ((self.capitalised(i) || !self.is_common(i) || self.has(i, FACILITY_NAME))
                && (named || !self.is_common(i) || (!self.caps_text && !self.sentence_start(i)))
                || (self.uncased(i) && (named || !self.known_word(i))))
    }

    pub(super) fn standalone_place(&self, i: usize) -> bool {
        self.len(i) >= 4
            && self.has(i, PLACE)
            && !self.has(i, STATE)
            && !self.is_common(i)
            && (self.caps_text || self.capitalised(i) || self.uncased(i))
    }

    /// "New York", "St. Louis": the longest run of words from a capitalised
    /// word that starts a multi-word place name and is one in the dictionary.
    pub(super) fn multiword_places(&self, dicts: &Dictionaries, spans: &mut Vec<Span>) {
        let mut key = String::new();
        let mut i = 0;
        while i < self.tokens.len() {
            let cased = self.bytes[self.tokens[i].start].is_ascii_uppercase() || self.uncased(i);
            if !self.has(i, PLACE_START) || !cased {
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
                        rule: Rule::PlaceDictionary,
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
                rule: Rule::SiteTerm,
            });
        }
    }
}
