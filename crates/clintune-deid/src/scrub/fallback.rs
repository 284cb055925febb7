//! The safe-list fallback: what the dictionaries and capitalisation cannot
//! vouch for.
//!
//! A word that is not on the safe list (Philter's clinical and English
//! vocabulary with every name removed) is suspect. In `balanced` mode a
//! suspect word becomes PHI when it is name-like by form or position, in any
//! letter case, so that speech transcribed without capitals is covered too:
//! a name-list word, a greeting's object ("hi michelle"), the subject of an
//! age statement ("jerry is a 45-year-old"), the words before a date of birth
//! or record number cue, a neighbour or list mate of a found name. In
//! `strict` mode every suspect word is replaced.

use super::lexicon::*;
use super::names::Ctx;
use super::{Category, Rule, Span};
use regex::bytes::Regex;
use std::sync::LazyLock;

/// Words that end a greeting or open a vocative ("hi X", "thank you X").
pub(crate) const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "bye",
    "goodbye",
    "dear",
    "welcome",
    "congratulations",
    "congrats",
];

/// Words that announce a date of birth or a record number right after a
/// name ("kayla ward, date of birth ...").
pub(crate) const ID_CUES: &[&str] = &["dob", "birthdate", "birthday", "mrn", "ssn"];

/// Words that are never part of a name found by position, though they are
/// on no list: pronouns and fillers of speech.
pub(crate) const NOT_NAMES: &[&str] = &[
    "you",
    "your",
    "we",
    "me",
    "my",
    "us",
    "our",
    "i",
    "im",
    "everyone",
    "everybody",
    "guys",
    "folks",
    "um",
    "uh",
    "hmm",
    "mm",
    "yeah",
    "okay",
    "ok",
    "so",
    "just",
    "there",
    "again",
    "doc",
    "doctor",
    "sir",
    "maam",
    "ma'am",
    "all",
];

/// The age statement after a name: "is a 45-year-old", ", a 45 year old",
/// "was an 82 yo".
static AGE_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i-u)^\s*,?\s*(?:(?:is|was|,)\s+)?(?:a|an)\s+[0-9]{1,3}\s*-?\s*(?:year|yr|y/?o\b|y\.o)",
    )
    .expect("built-in age pattern compiles")
});

/// A date-of-birth cue spelled out ("date of birth"), or a contact number
/// after a name ("Lopie Certusi cell# 410-…", "jo smith, home 555-…").
static DOB_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i-u)^\s*[,:]?\s*(?:date\s+of\s+birth|medical\s+record|(?:cell|home|work|mobile|phone|tel)\b[\s#:.()-]{0,4}\(?[0-9]{3})",
    )
    .expect("built-in birth cue compiles")
});

impl Ctx<'_> {
    /// Balanced mode: the name rules that need no capitals.
    pub(super) fn any_case_names(&self, spans: &mut Vec<Span>) {
        for i in 0..self.tokens.len() {
            if self.unsafe_name(i) {
                self.push(i, Category::Name, Rule::UnsafeName, spans);
            }
            if self.has(i, GREETING) {
                self.after_greeting(i, spans);
            }
            if self.cue_may_follow(i) && self.name_candidate(i) {
                let end = self.tokens[i].end;
                if AGE_AFTER.is_match(&self.bytes[end..]) {
                    self.name_backwards(i, Rule::NameAge, spans);
                } else if self.id_cue_after(i) {
                    self.name_backwards(i, Rule::BeforeIdCue, spans);
                }
            }
        }
    }

    /// A word from a name list that is on no safe or common list, where its
    /// case says nothing against a name: in text without capitals (speech
    /// transcripts), or capitalised in mixed-case text. A lower-case word in
    /// mixed-case text, or any word of an all-capitals note, is a misspelling
    /// or an abbreviation far more often than a name ("stabel", "HUO");
    /// position rules still catch those. Words glued to one digit ("SaO2")
    /// are not names.
    fn unsafe_name(&self, i: usize) -> bool {
        let t = self.tokens[i];
        let case_allows = self.uncased(i) || (!self.caps_text && self.capitalised(i));
        // Philter's larger lists only where the whole text has no capitals
        // or the word has one: their rare entries often are clinical slang.
        let lists = if self.lower_text || self.capitalised(i) {
            FIRST | LAST | EXTRA_NAME
        } else {
            FIRST | LAST
        };
        // Three-letter entries of Philter's lists are mostly abbreviations.
        let listed = self.has(i, FIRST | LAST) || (self.len(i) >= 4 && self.has(i, lists));
        case_allows
            && self.len(i) >= 3
            && !self.measurement(i)
            && listed
            && !self.safe[i]
            && !self.has(i, COMMON | CLINICAL | STOP | PLACE | STATE)
            && !self.acronym(i)
            // Without capitals, a long word one edit from an English word is
            // a misspelling ("strech") more often than a name.
            && !(self.uncased(i)
                && self.len(i) >= 6
                && self.dicts.near_common(&self.bytes[t.start..t.letters_end]))
    }

    /// `hi michelle`, `thank you, jerry`, `thanks dr ... `: one or two name
    /// candidates after a greeting.
    fn after_greeting(&self, i: usize, spans: &mut Vec<Span>) {
        let mut j = i + 1;
        if j < self.tokens.len() && self.word_is(j, b"you") && self.same_phrase(i, j) {
            j += 1;
        }
        if j >= self.tokens.len() || !self.same_phrase(j - 1, j) || !self.name_candidate(j) {
            return;
        }
        self.push(j, Category::Name, Rule::Greeting, spans);
        if j + 1 < self.tokens.len()
            && self.joined_in_name(j, j + 1)
            && self.name_candidate(j + 1)
            && (self.is_name(j + 1) || !self.known_word(j + 1))
        {
            self.push(j + 1, Category::Name, Rule::Greeting, spans);
        }
    }

    /// A cheap look at what follows token `i` before the patterns run: a
    /// comma, or a word that can open an age statement or an ID cue.
    fn cue_may_follow(&self, i: usize) -> bool {
        let rest = self.bytes[self.tokens[i].end..].trim_ascii_start();
        let Some(first) = rest.first() else {
            return false;
        };
        *first == b',' || *first == b':' || {
            let word = &rest[..rest
                .iter()
                .position(|c| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len())];
            [
                "is", "was", "a", "an", "date", "medical", "cell", "home", "work", "mobile",
                "phone", "tel",
            ]
            .iter()
            .chain(ID_CUES)
            .any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
        }
    }

    /// True when a date-of-birth or record-number cue follows token `i`.
    fn id_cue_after(&self, i: usize) -> bool {
        let j = i + 1;
        (j < self.tokens.len() && self.has(j, ID_CUE) && self.same_phrase(i, j))
            || DOB_AFTER.is_match(&self.bytes[self.tokens[i].end..])
    }

    /// Marks token `i` and up to two name candidates before it in the same phrase.
    fn name_backwards(&self, i: usize, rule: Rule, spans: &mut Vec<Span>) {
        self.push(i, Category::Name, rule, spans);
        let mut k = i;
        while k > 0 && i - k < 2 && self.joined_in_name(k - 1, k) && self.name_candidate(k - 1) {
            k -= 1;
            self.push(k, Category::Name, rule, spans);
        }
    }

    /// A word that can be a name by position: a name-list word (even a common
    /// one: "ward", "mark") or a word on no list at all; never a function
    /// word, a clinical term, a title, relation or cue.
    pub(super) fn name_candidate(&self, i: usize) -> bool {
        let t = self.tokens[i];
        let excluded = STOP
            | CLINICAL
            | TITLE
            | RELATION
            | CUE
            | CREDENTIAL
            | GREETING
            | ID_CUE
            | FACILITY
            | PLACE_CUE
            | ROLE
            | NOT_NAME;
        self.len(i) >= 2
            && t.end - t.letters_end != 1
            && !self.has(i, excluded)
            && (self.is_name(i) || !self.known_word(i))
            && !self.acronym(i)
    }

    /// One edit away from a safe word (see [`super::Dictionaries::near_safe`]).
    pub(super) fn misspelt(&self, i: usize) -> bool {
        let t = self.tokens[i];
        self.dicts.near_safe(&self.bytes[t.start..t.letters_end])
    }

    /// On the safe list or the common-word list.
    pub(super) fn known_word(&self, i: usize) -> bool {
        self.safe[i] || self.has(i, COMMON | CLINICAL | STOP)
    }

    /// True when token `i` is `word` (ASCII, any case).
    pub(super) fn word_is(&self, i: usize, word: &[u8]) -> bool {
        let t = self.tokens[i];
        self.bytes[t.start..t.letters_end].eq_ignore_ascii_case(word)
    }

    /// Balanced mode, after the other rules: names spread to unknown
    /// neighbours ("kayla vosolo") and across lists ("jerry and kayla").
    pub(super) fn grow_names(&self, spans: &mut Vec<Span>, from: usize) {
        let mut named: Vec<bool> = vec![false; self.tokens.len()];
        // Spans come in rule order, not text order.
        for s in spans[from..]
            .iter()
            .filter(|s| s.category == Category::Name)
        {
            let mut j = self.tokens.partition_point(|t| t.end <= s.start);
            while j < self.tokens.len() && self.tokens[j].start < s.end {
                named[j] = true;
                j += 1;
            }
        }
        // Two rounds: a neighbour of a neighbour ("dr smith kargas vosolo") is rare.
        for _ in 0..2 {
            let mut grew = false;
            for i in 0..self.tokens.len() {
                if named[i] {
                    continue;
                }
                let rule = if self.unknown_neighbour(i, &named) {
                    Rule::NameNeighbour
                } else if self.list_mate(i, &named) {
                    Rule::NameList
                } else {
                    continue;
                };
                named[i] = true;
                grew = true;
                self.push(i, Category::Name, rule, spans);
            }
            if !grew {
                break;
            }
        }
    }

    /// A word on no list right next to a found name (only spaces between),
    /// a surname-list word right after a found first name, or a first-name
    /// word right before a found name, even one that is also a word
    /// ("nevaeh ward", "Kayla Hill", "pat rixford"), where case allows.
    fn unknown_neighbour(&self, i: usize, named: &[bool]) -> bool {
        let near = |a: usize, b: usize| self.joined_in_name(a, b);
        let after_name = i > 0 && named[i - 1] && near(i - 1, i);
        let before_name = i + 1 < self.tokens.len() && named[i + 1] && near(i, i + 1);
        let unknown = (after_name || before_name)
            && self.name_candidate(i)
            && !self.known_word(i)
            && self.len(i) >= 3
            && !self.misspelt(i);
        let surname = after_name
            && self.has(i - 1, FIRST | EXTRA_NAME)
            && self.has(i, LAST)
            && self.len(i) >= 3
            && !self.has(i, STOP)
            && ((!self.caps_text && self.capitalised(i)) || self.uncased(i));
        // "pat rixford": a first name before a found name, even one that is
        // also a word, where case allows.
        let first_name = before_name
            && self.is_first(i)
            && self.len(i) >= 3
            && !self.has(i, STOP | TITLE | RELATION)
            && ((!self.caps_text && self.capitalised(i)) || self.uncased(i));
        unknown || surname || first_name
    }

    /// `jerry and kayla`, `jerry, kayla and sam`: a name-list or unknown word
    /// joined to a found name by "and", "or", "&" or a comma.
    fn list_mate(&self, i: usize, named: &[bool]) -> bool {
        if !self.name_candidate(i) {
            return false;
        }
        let joined = |a: usize, b: usize| {
            let gap = &self.bytes[self.tokens[a].end..self.tokens[b].start];
            let gap = gap.trim_ascii();
            gap == b"," || gap == b"&"
        };
        let conj = |k: usize| self.word_is(k, b"and") || self.word_is(k, b"or");
        let before = i >= 2
            && named[i - 2]
            && conj(i - 1)
            && self.same_phrase(i - 2, i - 1)
            && self.same_phrase(i - 1, i);
        let after = i + 2 < self.tokens.len()
            && named[i + 2]
            && conj(i + 1)
            && self.same_phrase(i, i + 1)
            && self.same_phrase(i + 1, i + 2);
        let comma = (i > 0 && named[i - 1] && joined(i - 1, i))
            || (i + 1 < self.tokens.len() && named[i + 1] && joined(i, i + 1));
        before || after || (comma && self.is_name(i) && !self.has(i, COMMON))
    }

    /// Strict mode: every word not covered yet that is not safe.
    /// Also in strict mode: a word glued to digits is looked up whole
    /// ("cd34" is safe, "rg17" is not), an initial beside a replaced word
    /// goes with it, and so does any run of five digits or more that no
    /// pattern claimed. (Name-list words beside replaced words were tried:
    /// one more name found on the development half for 450 more words
    /// replaced.)
    pub(super) fn unsafe_words(&self, spans: &mut Vec<Span>) {
        let mut covered: Vec<(usize, usize)> = spans.iter().map(|s| (s.start, s.end)).collect();
        covered.sort_unstable();
        let mut c = 0;
        let mut buf = [0u8; 48];
        let replaced: Vec<bool> = (0..self.tokens.len())
            .map(|i| {
                let t = self.tokens[i];
                while c < covered.len() && covered[c].1 <= t.start {
                    c += 1;
                }
                let inside = covered[c..]
                    .iter()
                    .take_while(|(s, _)| *s < t.end)
                    .any(|(_, e)| *e > t.start);
                let safe = if t.end > t.letters_end {
                    self.dicts.is_safe(&self.bytes[t.start..t.end], &mut buf)
                } else {
                    self.safe[i]
                };
                if inside || safe || self.len(i) < 2 {
                    return inside;
                }
                let category = if self.has(i, FIRST | LAST | EXTRA_NAME) {
                    Category::Name
                } else {
                    Category::Unknown
                };
                self.push(i, category, Rule::UnsafeWord, spans);
                true
            })
            .collect();
        for i in 0..self.tokens.len() {
            let initial = self.len(i) == 1 && self.bytes[self.tokens[i].start].is_ascii_uppercase();
            let beside =
                (i + 1 < self.tokens.len() && replaced[i + 1] && self.joined_in_name(i, i + 1))
                    || (i > 0 && replaced[i - 1] && self.adjacent(i - 1, i));
            if initial && !replaced[i] && beside {
                self.push(i, Category::Name, Rule::UnsafeWord, spans);
            }
        }
        self.long_numbers(&covered, spans);
    }

    /// Strict mode: runs of five digits or more, not decimals, that no
    /// pattern claimed.
    fn long_numbers(&self, covered: &[(usize, usize)], spans: &mut Vec<Span>) {
        let b = self.bytes;
        let mut i = 0;
        while i < b.len() {
            if !b[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let decimal = (start > 0 && matches!(b[start - 1], b'.' | b',' | b'-' | b'/'))
                || (i + 1 < b.len() && matches!(b[i], b'.' | b',') && b[i + 1].is_ascii_digit());
            let glued = (start > 0 && b[start - 1].is_ascii_alphabetic())
                || (i < b.len() && b[i].is_ascii_alphabetic());
            let claimed = covered.iter().any(|(s, e)| *s < i && start < *e);
            if i - start >= 5 && !decimal && !glued && !claimed {
                spans.push(Span {
                    start,
                    end: i,
                    category: Category::Id,
                    rule: Rule::UnsafeWord,
                });
            }
        }
    }
}
