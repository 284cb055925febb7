//! Name, place and word dictionaries used by the context rules.

use super::lexicon;
use crate::error::DeidError;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

/// FNV-1a: the dictionaries are hit once per word of every note, and the
/// keys are short, trusted strings, so a fast non-DoS-resistant hash is right.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Number of surrogate names kept per list.
const SURROGATES: usize = 2000;

/// A set of lowercase words.
pub type WordSet = HashSet<Box<str>, BuildHasherDefault<Fnv>>;

/// The loaded dictionaries.
#[derive(Debug)]
pub struct Dictionaries {
    /// First names (US Census 1990).
    pub first_names: WordSet,
    /// Surnames (US Census 1990).
    pub surnames: WordSet,
    /// Common English words: a name-list hit on one of these needs context.
    pub common: WordSet,
    /// Clinical terms and abbreviations: never names on their own.
    pub clinical: WordSet,
    /// Single-word place names.
    pub places: WordSet,
    /// Multi-word place names, matched case-insensitively on word boundaries.
    /// Multi-word place names, keyed by their words in lower case joined by
    /// single spaces ("st louis"); looked up from tokens whose word starts one.
    pub multiword_places: HashSet<Box<str>, BuildHasherDefault<Fnv>>,
    /// Most words in a multi-word place name.
    pub multiword_max: usize,
    /// The institution's own place names, matched in any case.
    pub site_terms: Option<AhoCorasick>,
    /// Surrogate first names, for replacement.
    pub surrogate_first: Vec<Box<str>>,
    /// Surrogate surnames, for replacement.
    pub surrogate_last: Vec<Box<str>>,
    /// Every known word with its classes as bits, so a word of a note costs
    /// one lookup however many lists it is checked against.
    lexicon: HashMap<Box<str>, u32, BuildHasherDefault<Fnv>>,
}

impl Dictionaries {
    /// Loads the dictionaries from a directory (see `deid/dictionaries/SOURCES.md`).
    pub fn load(dir: &Path) -> Result<Self, DeidError> {
        let first = read_list(&dir.join("first-names.txt"))?;
        let last = read_list(&dir.join("surnames.txt"))?;
        let common = read_list(&dir.join("common-words.txt"))?;
        let clinical = read_list(&dir.join("clinical-terms.txt"))?;
        let places = read_list(&dir.join("places.txt"))?;
        Ok(Self::from_lists(first, last, common, clinical, places))
    }

    /// Builds dictionaries from word lists (lowercase).
    pub fn from_lists(
        first: Vec<String>,
        last: Vec<String>,
        common: Vec<String>,
        clinical: Vec<String>,
        places: Vec<String>,
    ) -> Self {
        let set = |v: &[String]| -> WordSet { v.iter().map(|s| s.as_str().into()).collect() };
        let common_set = set(&common);
        let clinical_set = set(&clinical);
        // Surrogates: names that are not also ordinary words, so a replaced
        // name reads as a name.
        let surrogates = |v: &[String]| -> Vec<Box<str>> {
            let eligible: Vec<&String> = v
                .iter()
                .filter(|s| {
                    s.len() >= 3
                        && !common_set.contains(s.as_str())
                        && s.chars().all(|c| c.is_ascii_lowercase())
                })
                .collect();
            // Every k-th name, so surrogates spread over the whole alphabet.
            let step = (eligible.len() / SURROGATES).max(1);
            eligible
                .iter()
                .step_by(step)
                .take(SURROGATES)
                .map(|s| title_case(s).into_boxed_str())
                .collect()
        };
        let surrogate_first = surrogates(&first);
        let surrogate_last = surrogates(&last);
        let (single, multi): (Vec<String>, Vec<String>) =
            places.into_iter().partition(|p| !p.contains(' '));
        let multiword_places: HashSet<Box<str>, BuildHasherDefault<Fnv>> =
            multi.iter().map(|p| place_key(p).into()).collect();
        let multiword_max = multiword_places
            .iter()
            .map(|k| k.split(' ').count())
            .max()
            .unwrap_or(0);
        let mut lexicon: HashMap<Box<str>, u32, BuildHasherDefault<Fnv>> = HashMap::default();
        let mut tag = |words: &mut dyn Iterator<Item = &str>, flag: u32| {
            for w in words {
                *lexicon.entry(w.into()).or_default() |= flag;
            }
        };
        tag(&mut first.iter().map(String::as_str), lexicon::FIRST);
        tag(&mut last.iter().map(String::as_str), lexicon::LAST);
        tag(&mut common.iter().map(String::as_str), lexicon::COMMON);
        tag(&mut clinical.iter().map(String::as_str), lexicon::CLINICAL);
        tag(&mut single.iter().map(String::as_str), lexicon::PLACE);
        let starts: Vec<String> = multi
            .iter()
            .filter_map(|p| place_key(p).split(' ').next().map(String::from))
            .collect();
        tag(&mut starts.iter().map(String::as_str), lexicon::PLACE_START);
        for (words, flag) in lexicon::rule_words() {
            tag(&mut words.iter().copied(), flag);
        }
        Self {
            site_terms: None,
            lexicon,
            first_names: set(&first),
            surnames: set(&last),
            common: common_set,
            clinical: clinical_set,
            places: single.iter().map(|s| s.as_str().into()).collect(),
            multiword_places,
            multiword_max,
            surrogate_first,
            surrogate_last,
        }
    }
}

impl Dictionaries {
    /// Adds the institution's own place names from a file (one per line).
    pub fn add_site_terms(&mut self, path: &Path) -> Result<(), DeidError> {
        let terms = read_list(path)?;
        self.site_terms = phrase_automaton(&terms);
        Ok(())
    }

    /// The classes of an ASCII word (any case), using `buf` for lowercasing;
    /// 0 for unknown or overlong words.
    pub fn flags(&self, word: &[u8], buf: &mut [u8; 48]) -> u32 {
        if word.len() > buf.len() {
            return 0;
        }
        let lower = &mut buf[..word.len()];
        for (d, s) in lower.iter_mut().zip(word) {
            *d = s.to_ascii_lowercase();
        }
        std::str::from_utf8(lower)
            .ok()
            .and_then(|w| self.lexicon.get(w))
            .copied()
            .unwrap_or(0)
    }
}

/// A case-insensitive, leftmost-longest automaton over phrases; `None` when
/// there are none. Callers check word boundaries themselves.
pub fn phrase_automaton<P: AsRef<[u8]>>(phrases: &[P]) -> Option<AhoCorasick> {
    if phrases.is_empty() {
        return None;
    }
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(phrases)
        .ok()
}

/// A place name as its words joined by single spaces, without periods
/// ("St. Louis" -> "st louis"), matching how tokens are joined.
pub fn place_key(name: &str) -> String {
    name.to_lowercase()
        .replace('.', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn read_list(path: &Path) -> Result<Vec<String>, DeidError> {
    let text = std::fs::read_to_string(path).map_err(|e| DeidError::Dictionary {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_lowercase)
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The repository's dictionaries.
    pub(crate) fn repo_dictionaries() -> Dictionaries {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deid/dictionaries");
        Dictionaries::load(&dir).unwrap()
    }

    #[test]
    fn loads_repo_dictionaries() {
        let d = repo_dictionaries();
        assert!(d.first_names.contains("mary"));
        assert!(d.surnames.contains("smith"));
        assert!(d.common.contains("will"));
        assert!(d.surrogate_first.len() > 100);
        assert!(d.multiword_places.contains("st louis"));
        assert!(d.multiword_max >= 3);
    }
}
