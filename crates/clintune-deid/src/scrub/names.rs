//! Name and place detection: dictionaries gated by context.
//!
//! A word in a name list is not a name by itself ("Will", "Brown", "May"):
//! it needs a title before it ("Dr."), a relation ("wife"), a cue ("paged",
//! "per"), a neighbouring name, or to be a capitalised, uncommon word.

use super::dictionary::Dictionaries;
use super::known::is_boundary;
use super::{Category, Span};

pub(crate) const TITLES: &[&str] = &[
    "dr",
    "drs",
    "doctor",
    "mr",
    "mrs",
    "ms",
    "miss",
    "mister",
    "prof",
    "professor",
    "sir",
    "dame",
    "rev",
    "fr",
];

/// Words after which a place name is likely ("transferred to GH", "lives in Catonsville").
pub(crate) const PLACE_CUES: &[&str] = &[
    "transferred",
    "transfered",
    "transfer",
    "trans",
    "sent",
    "admitted",
    "adm",
    "referred",
    "brought",
    "taken",
    "arrived",
    "presented",
    "recieved",
    "received",
    "transported",
    "went",
    "lives",
    "lived",
    "returned",
    "discharged",
    "xfer",
    "xferred",
    "moved",
    "going",
    "go",
    "came",
    "flown",
    "medflighted",
    "enroute",
    "tx",
    "followed",
    "come",
];

/// Credentials written after a name ("Edward C. Jones, RRT").
pub(crate) const CREDENTIALS: &[&str] = &[
    "bsn", "msn", "md", "rn", "rrt", "np", "pa", "do", "phd", "lpn", "cna", "msw", "lcsw",
    "pharmd", "crnp",
];

pub(crate) const RELATIONS: &[&str] = &[
    "wife",
    "husband",
    "son",
    "sons",
    "daughter",
    "daughters",
    "dtr",
    "mother",
    "mom",
    "father",
    "dad",
    "brother",
    "sister",
    "sis",
    "bro",
    "friend",
    "niece",
    "nephew",
    "grandson",
    "granddaughter",
    "grandmother",
    "grandfather",
    "aunt",
    "uncle",
    "spouse",
    "partner",
    "fiance",
    "fiancee",
    "boyfriend",
    "girlfriend",
    "cousin",
    "neighbor",
    "neighbour",
    "sibling",
    "guardian",
    "caregiver",
    "hcp",
    "proxy",
    "sister-in-law",
    "son-in-law",
    "daughter-in-law",
    "brother-in-law",
    "stepson",
    "stepdaughter",
    "gf",
    "bf",
];

pub(crate) const CUES: &[&str] = &[
    "per",
    "by",
    "called",
    "paged",
    "notified",
    "informed",
    "spoke",
    "seen",
    "saw",
    "attending",
    "resident",
    "intern",
    "pcp",
    "covering",
    "dictated",
    "signed",
    "named",
    "contact",
    "contacted",
    "aware",
    "cc",
    "w/",
    "d/w",
    "discussed",
    "visited",
    "visit",
    "name",
    "with",
    "reach",
    "reached",
    "nurse",
    "np",
    "pa",
    "page",
    "paging",
    "md",
    "rn",
    "ho",
    "call",
];

pub(crate) const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "and",
    "the",
    "to",
    "of",
    "in",
    "on",
    "at",
    "for",
    "with",
    "is",
    "was",
    "were",
    "be",
    "been",
    "will",
    "as",
    "by",
    "or",
    "if",
    "it",
    "he",
    "she",
    "his",
    "her",
    "they",
    "them",
    "this",
    "that",
    "not",
    "no",
    "yes",
    "am",
    "pm",
    "re",
    "s",
    "is",
    "who",
    "whom",
    "also",
    "here",
    "there",
    "from",
    "into",
    "about",
    "today",
    "now",
    "all",
    "pt",
    "patient",
    "pts",
    "team",
    "service",
    "md",
    "rn",
    "and/or",
    "up",
    "out",
    "off",
    "over",
    "aware",
    "after",
    "before",
    "again",
    "any",
    "some",
    "via",
    "regarding",
    "re:",
    "has",
    "had",
    "have",
    "did",
    "does",
];

pub(crate) const FACILITIES: &[&str] = &[
    "hospital",
    "hosp",
    "medical",
    "clinic",
    "rehab",
    "rehabilitation",
    "hospice",
    "manor",
    "healthcare",
    "university",
    "college",
    "center",
    "centre",
    "infirmary",
    "sanitarium",
    "house",
    "regional",
    "memorial",
    "campus",
    "ctr",
];

/// Ordinary words that facility names are often made of.
pub(crate) const FACILITY_NAME_WORDS: &[&str] = &[
    "square",
    "eastern",
    "western",
    "northern",
    "southern",
    "saint",
    "st",
    "holy",
    "mount",
    "mt",
    "general",
    "memorial",
    "children's",
    "county",
    "regional",
    "community",
    "city",
    "north",
    "south",
    "east",
    "west",
    "cross",
    "mercy",
    "good",
    "samaritan",
    "sacred",
    "heart",
    "union",
    "baptist",
    "methodist",
    "presbyterian",
    "lutheran",
    "valley",
    "river",
    "lake",
    "harbor",
    "shore",
    "state",
];

/// Word classes, as bits of one lexicon entry (see [`Dictionaries::flags`]).
pub(crate) const FIRST: u32 = 1;
pub(crate) const LAST: u32 = 1 << 1;
pub(crate) const COMMON: u32 = 1 << 2;
pub(crate) const CLINICAL: u32 = 1 << 3;
pub(crate) const PLACE: u32 = 1 << 4;
pub(crate) const STOP: u32 = 1 << 5;
pub(crate) const TITLE: u32 = 1 << 6;
pub(crate) const RELATION: u32 = 1 << 7;
pub(crate) const CUE: u32 = 1 << 8;
pub(crate) const FACILITY: u32 = 1 << 9;
pub(crate) const FACILITY_NAME: u32 = 1 << 10;
pub(crate) const PLACE_CUE: u32 = 1 << 11;
pub(crate) const CREDENTIAL: u32 = 1 << 12;
pub(crate) const PREP: u32 = 1 << 13;
pub(crate) const THE: u32 = 1 << 14;
pub(crate) const IN: u32 = 1 << 15;
pub(crate) const RESIDES: u32 = 1 << 16;
pub(crate) const NAME_AFTER: u32 = 1 << 17;
pub(crate) const ROLE: u32 = 1 << 18;
pub(crate) const PLACE_START: u32 = 1 << 19;

/// Words that often follow a clinician's name in notes ("W. MAROTTA AWARE").
pub(crate) const AFTER_NAME: &[&str] = &[
    "aware",
    "notified",
    "paged",
    "called",
    "ordered",
    "informed",
    "made",
    "spoke",
    "said",
    "states",
    "stated",
    "here",
    "in",
    "at",
    "to",
    "placing",
    "placed",
    "wrote",
    "saw",
    "examined",
    "consulted",
];

/// One word of the text.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    /// End of the alphabetic part (names may carry trailing digits).
    letters_end: usize,
}

/// Appends name and place spans found in `text`.
pub fn find(text: &str, dicts: &Dictionaries, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let tokens = tokenize(bytes);
    // Some notes are written all in capitals, some without any: case then
    // says nothing about names.
    let (upper, lower) = letter_cases(bytes);
    let caps_text = upper > 3 * lower;
    let mut buf = [0u8; 48];
    let flags: Vec<u32> = tokens
        .iter()
        .map(|t| dicts.flags(&bytes[t.start..t.letters_end], &mut buf))
        .collect();
    let ctx = Ctx {
        bytes,
        tokens: &tokens,
        flags: &flags,
        caps_text,
        lower_text: upper * 50 < lower,
    };
    let first_new = spans.len();
    let mut i = 0;
    while i < tokens.len() {
        i += ctx.rule_at(i, spans).max(1);
    }
    ctx.signatures(spans);
    ctx.multiword_places(dicts, spans);
    drop_eponyms(bytes, spans, first_new);
    find_site_terms(text, dicts, spans);
}

/// Nouns that make the word before them an eponym ("Hodgkin lymphoma",
/// "Parkinson's disease", "Glasgow coma scale"), not a person or a place.
const EPONYM_NOUNS: &[&str] = &[
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
];

/// Removes name and place spans found by the dictionary and context rules
/// (from `from` on) when an eponym noun follows. Titles and the patient's own
/// identifiers are found elsewhere or by rules this leaves alone.
fn drop_eponyms(bytes: &[u8], spans: &mut Vec<Span>, from: usize) {
    let mut k = from;
    while k < spans.len() {
        let s = &spans[k];
        let dictionary_rule = !matches!(s.rule, "title" | "signature" | "name-is" | "relation");
        // Places make few eponyms ("Lyme disease"); an institution's own
        // protocol ("U Maryland scale") still names the institution.
        let eponym = match s.category {
            Category::Name => eponym_follows(bytes, s.end, EPONYM_NOUNS),
            _ => eponym_follows(bytes, s.end, &["disease", "virus", "fever"]),
        };
        if dictionary_rule && eponym {
            spans.remove(k);
        } else {
            k += 1;
        }
    }
}

fn eponym_follows(bytes: &[u8], end: usize, nouns: &[&str]) -> bool {
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

struct Ctx<'a> {
    bytes: &'a [u8],
    tokens: &'a [Token],
    flags: &'a [u32],
    caps_text: bool,
    /// Almost no capitals in the text.
    lower_text: bool,
}

impl Ctx<'_> {
    /// Applies the rules at token `i`; returns how many tokens were consumed.
    fn rule_at(&self, i: usize, spans: &mut Vec<Span>) -> usize {
        if self.has(i, TITLE) && self.adjacent(i, i + 1) && self.real_title(i) {
            return 1 + self.name_run(i + 1, 3, true, "title", spans);
        }
        if self.has(i, RELATION) && self.same_phrase(i, i + 1) {
            return 1 + self.name_run(i + 1, 2, false, "relation", spans);
        }
        if self.has(i, CUE) && self.name_is(i) {
            let n = self.name_run(i + 2, 3, true, "name-is", spans);
            if n > 0 {
                return 2 + n;
            }
        }
        if self.has(i, CUE) && self.same_phrase(i, i + 1) {
            let n = self.name_run(i + 1, 2, false, "cue", spans);
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
        if let Some(n) = self.initial_name(i, spans) {
            return n;
        }
        if self.before_credential(i) {
            self.push(i, Category::Name, "credential", spans);
            if i > 0 && self.adjacent(i - 1, i) && self.name_like(i - 1) {
                self.push(i - 1, Category::Name, "credential", spans);
            }
            return 1;
        }
        if self.pair_at(i) {
            self.push(i, Category::Name, "name-pair", spans);
            self.push(i + 1, Category::Name, "name-pair", spans);
            return 2;
        }
        if self.standalone_name(i) {
            self.push(i, Category::Name, "name-dictionary", spans);
        } else if self.standalone_place(i) {
            self.push(i, Category::Location, "place-dictionary", spans);
        }
        1
    }

    /// Marks up to `max` name-like tokens from `i`; `strong` accepts any
    /// capitalised word (after a title), otherwise dictionary words only.
    fn name_run(
        &self,
        i: usize,
        max: usize,
        strong: bool,
        rule: &'static str,
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
                    (!self.has(j, CLINICAL) || (!self.caps_text && self.capitalised(j)))
                        && (self.capitalised(j) || self.is_name(j) || !self.is_common(j))
                } else if n == 0 {
                    // After a relation or cue: a name-list word; a first name
                    // even if it is also a word ("son Rob", "NP Grace"); an
                    // unknown word after a relation ("brother Vinny").
                    let relation = rule == "relation";
                    let role = i > 0 && self.has(i - 1, ROLE);
                    !self.acronym(j)
                        && !self.has(j, CLINICAL)
                        && ((self.is_name(j)
                            && (!self.is_common(j) || (self.capitalised(j) && !self.caps_text)))
                            || ((relation || role) && self.is_first(j))
                            || (relation && self.unknown_name(j)))
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

    /// `transferred to GH`, `lives in catonsville`: the place after a movement verb.
    fn place_after_cue(&self, i: usize, spans: &mut Vec<Span>) -> Option<usize> {
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
    fn place_word(&self, i: usize) -> bool {
        self.len(i) >= 2
            && (!self.has(i, STOP | FACILITY | CREDENTIAL) && !self.is_common(i)
                || self.has(i, FACILITY_NAME) && self.capitalised(i))
    }

    /// `E. WELSH`, `Z. Miller`: an initial and a surname.
    fn initial_name(&self, i: usize, spans: &mut Vec<Span>) -> Option<usize> {
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
        self.push(i, Category::Name, "initial", spans);
        self.push(j, Category::Name, "initial", spans);
        Some(2)
    }

    /// `Jones, RRT`, `O'connell MD`: the word before a credential.
    fn before_credential(&self, i: usize) -> bool {
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
        cred_upper && (comma || !self.caps_text) && name && !self.has(i, STOP)
    }

    /// `John Smith`: a first name followed by a surname.
    fn pair_at(&self, i: usize) -> bool {
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
        if self.lower_text {
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
    fn name_like(&self, i: usize) -> bool {
        if self.acronym(i) || self.has(i, CLINICAL) {
            return false;
        }
        let uncommon = !self.is_common(i);
        ((self.is_name(i) || self.capitalised(i)) && uncommon)
            || (self.capitalised(i) && self.is_name(i) && !self.caps_text)
    }

    /// An all-capital word of up to four letters in mixed-case text: an
    /// abbreviation (DOB, NPI, CHF), not a name.
    fn acronym(&self, i: usize) -> bool {
        let t = self.tokens[i];
        !self.caps_text
            && t.letters_end - t.start <= 4
            && self.bytes[t.start..t.letters_end]
                .iter()
                .all(u8::is_ascii_uppercase)
    }

    /// `Calvert Hospital`, `Holy Cross Hospital`: capitalised words before a facility word.
    fn facility(&self, i: usize, spans: &mut Vec<Span>) -> Option<usize> {
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
    fn facility_word(&self, i: usize) -> bool {
        let named = self.has(i, FACILITY_NAME) || self.is_name(i) || self.has(i, PLACE);
        !self.has(i, STOP | FACILITY | CLINICAL)
            && (self.capitalised(i) || !self.is_common(i) || self.has(i, FACILITY_NAME))
            && (named || !self.is_common(i) || (!self.caps_text && !self.sentence_start(i)))
    }

    fn standalone_name(&self, i: usize) -> bool {
        self.len(i) >= 3
            && !self.caps_text
            && !self.acronym(i)
            && self.capitalised(i)
            && (!self.sentence_start(i) || self.is_first(i))
            && self.is_name(i)
            && !self.is_common(i)
            && !self.has(i, STOP)
    }

    fn standalone_place(&self, i: usize) -> bool {
        self.len(i) >= 4
            && self.has(i, PLACE)
            && !self.is_common(i)
            && (self.caps_text || self.capitalised(i))
    }

    /// True when token `i` opens a sentence or a line (capitalised anyway).
    fn sentence_start(&self, i: usize) -> bool {
        let before = &self.bytes[..self.tokens[i].start];
        match before.iter().rposition(|c| !matches!(c, b' ' | b'\t')) {
            None => true,
            Some(p) => matches!(
                before[p],
                b'.' | b'\n' | b'\r' | b':' | b'!' | b'?' | b'-' | b'*' | b'#'
            ),
        }
    }

    fn has(&self, i: usize, flag: u32) -> bool {
        self.flags[i] & flag != 0
    }

    /// Letters in token `i`.
    fn len(&self, i: usize) -> usize {
        let t = self.tokens[i];
        t.letters_end - t.start
    }

    fn is_first(&self, i: usize) -> bool {
        self.len(i) >= 2 && self.has(i, FIRST) && !self.has(i, CLINICAL)
    }

    fn is_last(&self, i: usize) -> bool {
        self.len(i) >= 2 && self.has(i, LAST) && !self.has(i, CLINICAL)
    }

    fn is_name(&self, i: usize) -> bool {
        self.is_first(i) || self.is_last(i)
    }

    fn is_common(&self, i: usize) -> bool {
        self.has(i, COMMON | CLINICAL)
    }

    fn capitalised(&self, i: usize) -> bool {
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
    fn unknown_name(&self, i: usize) -> bool {
        let t = self.tokens[i];
        let w = &self.bytes[t.start..t.letters_end];
        let lower = w.to_ascii_lowercase();
        self.flags[i] == 0
            && w.len() >= 3
            && w.iter().all(u8::is_ascii_alphabetic)
            && (self.caps_text || self.capitalised(i))
            && !lower.ends_with(b"ed")
            && !lower.ends_with(b"ing")
    }

    /// "my name is X", "named: X".
    fn name_is(&self, i: usize) -> bool {
        let t = self.tokens[i];
        let word = self.bytes[t.start..t.letters_end].to_ascii_lowercase();
        let j = i + 1;
        (word == b"name" || word == b"named")
            && j + 1 < self.tokens.len()
            && self.same_phrase(i, j)
            && self.bytes[self.tokens[j].start..self.tokens[j].letters_end]
                .eq_ignore_ascii_case(b"is")
    }

    /// "New York", "St. Louis": the longest run of words from a capitalised
    /// word that starts a multi-word place name and is one in the dictionary.
    fn multiword_places(&self, dicts: &Dictionaries, spans: &mut Vec<Span>) {
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

    /// Signature lines: "SUSAN" alone on the last line, "barbara j. parrilli
    /// bsn/rn", "EDWARD C. JONES, RRT": a short line of name-like words that
    /// starts with a first name and ends the note or ends in a credential.
    fn signatures(&self, spans: &mut Vec<Span>) {
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
            let toks: Vec<usize> = (first..next).collect();
            let credential_at = toks.iter().position(|&k| self.has(k, CREDENTIAL));
            let names = &toks[..credential_at.unwrap_or(toks.len())];
            let last_line = line_start == last_line_start;
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
                    self.push(k, Category::Name, "signature", spans);
                }
            }
            line_start = line_end + 1;
        }
    }

    /// "MR" and "MS" in clinical notes are mitral regurgitation and mental
    /// status: written in capitals they are titles only in all-capitals notes
    /// and with a period; any title must stand on its own ("+MR" is not one).
    fn real_title(&self, i: usize) -> bool {
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
    fn joined_in_name(&self, a: usize, b: usize) -> bool {
        let gap = &self.bytes[self.tokens[a].end..self.tokens[b].start];
        let initial = self.len(a) == 1;
        !gap.is_empty()
            && gap.len() <= 2
            && gap.iter().all(|c| *c == b' ' || (initial && *c == b'.'))
    }

    /// True when tokens `a` and `b` are in one phrase: spaces or a comma
    /// between them, no sentence end.
    fn same_phrase(&self, a: usize, b: usize) -> bool {
        b < self.tokens.len() && {
            let gap = &self.bytes[self.tokens[a].end..self.tokens[b].start];
            !gap.is_empty()
                && gap.len() <= 3
                && gap.iter().all(|c| matches!(c, b' ' | b',' | b'\t'))
        }
    }

    /// True when tokens `a` and `b` are separated only by spaces, a period or a comma.
    fn adjacent(&self, a: usize, b: usize) -> bool {
        if b >= self.tokens.len() {
            return false;
        }
        let gap = &self.bytes[self.tokens[a].end..self.tokens[b].start];
        gap.len() <= 3 && gap.iter().all(|c| matches!(c, b' ' | b'.' | b',' | b'\t'))
    }

    fn push(&self, i: usize, category: Category, rule: &'static str, spans: &mut Vec<Span>) {
        let t = self.tokens[i];
        spans.push(Span {
            start: t.start,
            end: t.end,
            category,
            rule,
        });
    }
}

/// Words tagged by the rules themselves, with their class.
pub(crate) fn rule_words() -> Vec<(&'static [&'static str], u32)> {
    vec![
        (STOPWORDS, STOP),
        (TITLES, TITLE),
        (RELATIONS, RELATION),
        (CUES, CUE),
        (FACILITIES, FACILITY),
        (FACILITY_NAME_WORDS, FACILITY_NAME),
        (PLACE_CUES, PLACE_CUE),
        (CREDENTIALS, CREDENTIAL),
        (&["to", "from", "at"], PREP),
        (&["in"], IN),
        (&["lives", "lived", "living", "resides", "resided"], RESIDES),
        (AFTER_NAME, NAME_AFTER),
        (
            &[
                "np",
                "rn",
                "md",
                "ho",
                "pcp",
                "attending",
                "resident",
                "intern",
                "fellow",
            ],
            ROLE,
        ),
        (&["the"], THE),
    ]
}

fn find_site_terms(text: &str, dicts: &Dictionaries, spans: &mut Vec<Span>) {
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

/// Splits text into words: letters with inner apostrophes or hyphens,
/// optionally followed by digits (some systems suffix names with digits).
fn tokenize(b: &[u8]) -> Vec<Token> {
    // Bytes of non-ASCII characters count as letters ("Pálffy", "Fernández").
    let letter = |c: u8| c.is_ascii_alphabetic() || c >= 0x80;
    let mut tokens = Vec::with_capacity(b.len() / 5);
    let mut i = 0;
    while i < b.len() {
        if !letter(b[i]) || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] >= 0x80)) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len()
            && (letter(b[i])
                || (matches!(b[i], b'\'' | b'-') && i + 1 < b.len() && letter(b[i + 1])))
        {
            i += 1;
        }
        let letters_end = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i < b.len() && b[i].is_ascii_alphabetic() {
            // Mixed letters and digits ("3lnp", "a1c"): not a word.
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            continue;
        }
        if letters_end - start >= 2 || (i == letters_end && b.get(i) == Some(&b'.')) {
            tokens.push(Token {
                start,
                end: i,
                letters_end,
            });
        }
    }
    tokens
}

/// Counts of upper- and lower-case ASCII letters.
fn letter_cases(b: &[u8]) -> (usize, usize) {
    b.iter().fold((0, 0), |(up, low), c| {
        (
            up + usize::from(c.is_ascii_uppercase()),
            low + usize::from(c.is_ascii_lowercase()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::dictionary::tests::repo_dictionaries;
    use super::*;

    fn names(text: &str) -> Vec<String> {
        let d = repo_dictionaries();
        let mut spans = Vec::new();
        find(text, &d, &mut spans);
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
        let mut d = repo_dictionaries();
        d.add_site_terms(&path).unwrap();
        let text = "transfer to quartermain 2 after cath at gh; GHOST lines";
        let mut spans = Vec::new();
        find(text, &d, &mut spans);
        let found: Vec<&str> = spans
            .iter()
            .filter(|s| s.rule == "site-term")
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
    fn facilities() {
        let f = names("Transferred from Calvert Hospital yesterday.");
        assert!(f.contains(&"Calvert".to_string()), "{f:?}");
    }
}
