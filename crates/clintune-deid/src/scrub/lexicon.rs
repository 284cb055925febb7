//! Word classes and tokenization for the context rules.
//!
//! Every word list the rules consult is folded into one lexicon entry per
//! word (a bit set, see [`super::Dictionaries::flags`]), so a word of a note
//! costs one lookup however many lists it is checked against.

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
    "works",
    "worked",
    "employed",
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
    "health",
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
/// On the safe-word list: not PHI on its own.
pub(crate) const SAFE: u32 = 1 << 20;
/// The classes that make a word safe on its own: the safe list, clinical
/// terms, function words.
pub(crate) const SAFE_CLASSES: u32 = SAFE | CLINICAL | STOP;
/// Opens a greeting or a vocative ("hi", "thanks").
pub(crate) const GREETING: u32 = 1 << 21;
/// Announces a date of birth or a record number after a name.
pub(crate) const ID_CUE: u32 = 1 << 22;
/// On Philter's larger first- or last-name lists only. These lists hold
/// many rare words and misspellings, so only the fallback rules use them,
/// never the Census-list context rules.
pub(crate) const EXTRA_NAME: u32 = 1 << 23;
/// A US state or its postal abbreviation: Safe Harbor keeps states, so these
/// are never places on their own.
pub(crate) const STATE: u32 = 1 << 24;
/// Never a name by position: pronouns and fillers of speech.
pub(crate) const NOT_NAME: u32 = 1 << 25;
/// Says where someone works ("works for", "employed at").
pub(crate) const WORKS: u32 = 1 << 26;
/// A compass word that starts a region's name ("Eastern Shore").
pub(crate) const COMPASS: u32 = 1 << 27;
/// A landform or district noun that ends a region's name.
pub(crate) const REGION_NOUN: u32 = 1 << 28;

pub(crate) const COMPASS_WORDS: &[&str] = &[
    "north",
    "south",
    "east",
    "west",
    "northern",
    "southern",
    "eastern",
    "western",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// Not "coast": the West Coast is larger than a state.
pub(crate) const REGION_NOUNS: &[&str] = &[
    "shore",
    "shores",
    "side",
    "end",
    "county",
    "valley",
    "bay",
    "island",
    "hills",
    "highlands",
    "woods",
    "village",
    "heights",
];

/// Languages and nationalities: adjectives a note uses for a patient
/// ("speaks Russian", "Haitian Creole interpreter"), never names by position
/// although several are also surnames ("English").
pub(crate) const NATIONALITIES: &[&str] = &[
    "american",
    "english",
    "spanish",
    "french",
    "german",
    "italian",
    "portuguese",
    "russian",
    "ukrainian",
    "polish",
    "greek",
    "irish",
    "scottish",
    "welsh",
    "british",
    "dutch",
    "swedish",
    "norwegian",
    "danish",
    "finnish",
    "hungarian",
    "czech",
    "slovak",
    "romanian",
    "bulgarian",
    "serbian",
    "croatian",
    "bosnian",
    "albanian",
    "armenian",
    "turkish",
    "arabic",
    "hebrew",
    "persian",
    "farsi",
    "kurdish",
    "hindi",
    "urdu",
    "bengali",
    "punjabi",
    "gujarati",
    "tamil",
    "nepali",
    "chinese",
    "mandarin",
    "cantonese",
    "japanese",
    "korean",
    "vietnamese",
    "cambodian",
    "khmer",
    "thai",
    "lao",
    "hmong",
    "filipino",
    "tagalog",
    "indonesian",
    "somali",
    "ethiopian",
    "amharic",
    "eritrean",
    "nigerian",
    "ghanaian",
    "haitian",
    "creole",
    "jamaican",
    "cuban",
    "mexican",
    "dominican",
    "puerto",
    "rican",
    "salvadoran",
    "guatemalan",
    "honduran",
    "colombian",
    "brazilian",
    "peruvian",
    "canadian",
    "african",
    "asian",
    "european",
    "hispanic",
    "latino",
    "latina",
    "caucasian",
    "yiddish",
];

/// US states (one-word names) and postal abbreviations.
pub(crate) const STATES: &[&str] = &[
    "alabama",
    "alaska",
    "arizona",
    "arkansas",
    "california",
    "colorado",
    "connecticut",
    "delaware",
    "florida",
    "georgia",
    "hawaii",
    "idaho",
    "illinois",
    "indiana",
    "iowa",
    "kansas",
    "kentucky",
    "louisiana",
    "maine",
    "maryland",
    "massachusetts",
    "michigan",
    "minnesota",
    "mississippi",
    "missouri",
    "montana",
    "nebraska",
    "nevada",
    "ohio",
    "oklahoma",
    "oregon",
    "pennsylvania",
    "tennessee",
    "texas",
    "utah",
    "vermont",
    "virginia",
    "washington",
    "wisconsin",
    "wyoming",
    "al",
    "ak",
    "az",
    "ar",
    "ca",
    "co",
    "ct",
    "de",
    "dc",
    "fl",
    "ga",
    "hi",
    "id",
    "il",
    "in",
    "ia",
    "ks",
    "ky",
    "la",
    "me",
    "md",
    "ma",
    "mi",
    "mn",
    "ms",
    "mo",
    "mt",
    "ne",
    "nv",
    "nh",
    "nj",
    "nm",
    "ny",
    "nc",
    "nd",
    "oh",
    "ok",
    "or",
    "pa",
    "ri",
    "sc",
    "sd",
    "tn",
    "tx",
    "ut",
    "vt",
    "va",
    "wa",
    "wv",
    "wi",
    "wy",
    "pr",
];

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
pub(crate) struct Token {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// End of the alphabetic part (names may carry trailing digits).
    pub(crate) letters_end: usize,
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
        (&["works", "worked", "employed"], WORKS),
        (COMPASS_WORDS, COMPASS),
        (REGION_NOUNS, REGION_NOUN),
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
        (super::fallback::GREETINGS, GREETING),
        (super::fallback::ID_CUES, ID_CUE),
        (STATES, STATE),
        (NATIONALITIES, COMMON),
        (super::fallback::NOT_NAMES, NOT_NAME),
    ]
}

/// Splits text into words: letters with inner apostrophes or hyphens,
/// optionally followed by digits (some systems suffix names with digits).
/// Also returns which tokens have an inner hyphen (for [`split_dashes`]).
pub(crate) fn tokenize(b: &[u8]) -> (Vec<Token>, Vec<usize>) {
    // Bytes of non-ASCII characters count as letters ("Pálffy", "Fernández").
    let letter = |c: u8| c.is_ascii_alphabetic() || c >= 0x80;
    let mut tokens = Vec::with_capacity(b.len() / 5);
    let mut hyphenated = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !letter(b[i]) || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] >= 0x80)) {
            i += 1;
            continue;
        }
        let start = i;
        let mut hyphen = false;
        while i < b.len()
            && (letter(b[i])
                || (matches!(b[i], b'\'' | b'-') && i + 1 < b.len() && letter(b[i + 1])))
        {
            hyphen |= b[i] == b'-';
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
            if hyphen {
                hyphenated.push(tokens.len());
            }
            tokens.push(Token {
                start,
                end: i,
                letters_end,
            });
        }
    }
    (tokens, hyphenated)
}

/// Splits words joined by a hyphen used as a dash: before a function word
/// (`Rob-who states`, `AWARE-WILL START`) or before an initial
/// (`CARAFATE-W. MAROTTA`). Hyphenated names (`Quaxworth-Smythe`) and terms
/// (`x-ray`) stay whole.
pub(crate) fn split_dashes(
    b: &[u8],
    (tokens, hyphenated): (Vec<Token>, Vec<usize>),
    mut is_function_word: impl FnMut(&[u8]) -> bool,
) -> Vec<Token> {
    // Hyphen positions where a token splits; most texts have none.
    let mut cuts: Vec<usize> = Vec::new();
    for t in hyphenated.iter().map(|&k| tokens[k]) {
        let word = &b[t.start..t.letters_end];
        let mut from = 0;
        while let Some(p) = word[from..].iter().position(|c| *c == b'-') {
            let h = from + p;
            from = h + 1;
            let rest = &word[h + 1..];
            let part = &rest[..rest
                .iter()
                .position(|c| matches!(c, b'-' | b'\''))
                .unwrap_or(rest.len())];
            let initial = part.len() == 1
                && part.len() == rest.len()
                && t.end == t.letters_end
                && b.get(t.end) == Some(&b'.');
            if h >= 2 && (initial || is_function_word(part)) {
                cuts.push(t.start + h);
            }
        }
    }
    if cuts.is_empty() {
        return tokens;
    }
    let mut out = Vec::with_capacity(tokens.len() + cuts.len());
    let mut cuts = cuts.into_iter().peekable();
    for t in tokens {
        let mut start = t.start;
        while let Some(h) = cuts.next_if(|h| *h < t.letters_end) {
            if h - start >= 2 {
                out.push(Token {
                    start,
                    end: h,
                    letters_end: h,
                });
                start = h + 1;
            }
        }
        out.push(Token {
            start,
            end: t.end,
            letters_end: t.letters_end,
        });
    }
    out
}

/// Counts of upper- and lower-case ASCII letters.
pub(crate) fn letter_cases(b: &[u8]) -> (usize, usize) {
    b.iter().fold((0, 0), |(up, low), c| {
        (
            up + usize::from(c.is_ascii_uppercase()),
            low + usize::from(c.is_ascii_lowercase()),
        )
    })
}
