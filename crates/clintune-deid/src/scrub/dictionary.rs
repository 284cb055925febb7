//! Name, place and word dictionaries used by the context rules.

use super::dictionary_files::{DictionaryFiles, parse_list};
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
    /// The learned decision over the rules' candidates (`phi-model.txt`);
    /// `None` for a dictionaries folder without one: the rules decide alone.
    pub model: Option<super::model::PhiModel>,
    /// Surrogate first names, for replacement.
    pub surrogate_first: Vec<Box<str>>,
    /// Surrogate surnames, for replacement.
    pub surrogate_last: Vec<Box<str>>,
    /// Every known word with its classes as bits, so a word of a note costs
    /// one lookup however many lists it is checked against.
    /// Keyed by bytes: lookups come from byte slices of the text.
    lexicon: HashMap<Box<[u8]>, u32, BuildHasherDefault<Fnv>>,
}

impl Dictionaries {
    /// Loads the dictionaries from a directory (see `deid/dictionaries/SOURCES.md`):
    /// the Census name lists, English and clinical words and places, and
    /// Philter's safe-word and name lists under `philter/`.
    pub fn load(dir: &Path) -> Result<Self, DeidError> {
        Self::load_from(&DictionaryFiles::Dir(dir.to_path_buf()))
    }

    /// Loads the dictionaries from a folder or from the built-in copy.
    pub fn load_from(files: &DictionaryFiles) -> Result<Self, DeidError> {
        let mut dicts = Self::load_lists(files)?;
        dicts.model = files.model()?;
        Ok(dicts)
    }

    /// The word lists alone, without the learned model: what training a
    /// model needs, so that a model file written for other features (an
    /// older or newer clintune) cannot stop its own retraining.
    pub fn load_lists(files: &DictionaryFiles) -> Result<Self, DeidError> {
        let mut dicts = Self::from_lists(
            files.list("first-names.txt")?,
            files.list("surnames.txt")?,
            files.list("common-words.txt")?,
            files.list("clinical-terms.txt")?,
            files.list("places.txt")?,
        );
        dicts.add_safe_words(&files.list("philter/safe-words.txt.zst")?);
        dicts.add_names(&files.list("philter/first-names.txt.zst")?);
        dicts.add_names(&files.list("philter/last-names.txt.zst")?);
        Ok(dicts)
    }

    /// Marks words as safe: not PHI on their own (Philter's safe list).
    /// Context rules still apply to them ("Dr. Ward").
    pub fn add_safe_words(&mut self, words: &[String]) {
        for w in words {
            *self.lexicon.entry(w.as_bytes().into()).or_default() |= lexicon::SAFE;
        }
    }

    /// Adds names from a larger, noisier list (Philter's) as `EXTRA_NAME`.
    fn add_names(&mut self, words: &[String]) {
        for w in words {
            *self.lexicon.entry(w.as_bytes().into()).or_default() |= lexicon::EXTRA_NAME;
        }
    }

    /// True when one edit (a letter dropped, added, changed, or two
    /// swapped) turns `word` into a safe or common word of five letters or
    /// more: "recieve", "camode", "begining" are misspellings, not places or
    /// names. Only for words on no list; names near words ("Carey") are
    /// still found by the name lists.
    pub fn near_safe(&self, word: &[u8]) -> bool {
        self.near(word, lexicon::SAFE | lexicon::COMMON | lexicon::CLINICAL)
    }

    /// [`Dictionaries::near_safe`] against ordinary English words only
    /// (`common-words.txt`): the safe list's rarer entries ("arcus",
    /// "tiffanys") sit one edit from many real names.
    pub fn near_common(&self, word: &[u8]) -> bool {
        self.near(word, lexicon::COMMON)
    }

    fn near(&self, word: &[u8], known_classes: u32) -> bool {
        if word.len() < 5 || word.len() > 40 || !word.iter().all(u8::is_ascii_alphabetic) {
            return false;
        }
        let lower = word.to_ascii_lowercase();
        let known =
            |w: &[u8]| w.len() >= 5 && self.lexicon.get(w).is_some_and(|f| f & known_classes != 0);
        let mut cand = Vec::with_capacity(lower.len() + 1);
        for i in 0..=lower.len() {
            for c in b'a'..=b'z' {
                // Insertion at i, and substitution at i.
                cand.clear();
                cand.extend_from_slice(&lower[..i]);
                cand.push(c);
                cand.extend_from_slice(&lower[i..]);
                if known(&cand) {
                    return true;
                }
                if i < lower.len() && lower[i] != c {
                    cand.remove(i + 1);
                    cand[i] = c;
                    if known(&cand) {
                        return true;
                    }
                }
            }
            if i < lower.len() {
                cand.clear();
                cand.extend_from_slice(&lower[..i]);
                cand.extend_from_slice(&lower[i + 1..]);
                if known(&cand) {
                    return true;
                }
            }
            if i + 1 < lower.len() {
                cand.clear();
                cand.extend_from_slice(&lower);
                cand.swap(i, i + 1);
                if known(&cand) {
                    return true;
                }
            }
        }
        false
    }

    /// True when `word` (ASCII letters, any case, with inner `'` or `-`) is
    /// safe: on the safe list or a clinical term as a whole, or made of safe
    /// parts ("a-line", "pt's", "don't").
    pub fn is_safe(&self, word: &[u8], buf: &mut [u8; 48]) -> bool {
        if self.flags(word, buf) & lexicon::SAFE_CLASSES != 0 {
            return true;
        }
        let Some(apostrophe) = word.iter().position(|c| *c == b'\'') else {
            return word.contains(&b'-')
                && word.split(|c| *c == b'-').all(|part| {
                    part.len() < 2 || self.flags(part, buf) & lexicon::SAFE_CLASSES != 0
                });
        };
        // "pt's", "dc'd", "don't": the stem decides.
        let (stem, suffix) = word.split_at(apostrophe);
        let contraction = matches!(
            suffix[1..].to_ascii_lowercase().as_slice(),
            b"s" | b"d" | b"t" | b"ll" | b"re" | b"ve" | b"m" | b"ed" | b"ing" | b"ing's"
        );
        contraction && (stem.len() < 2 || self.is_safe(stem, buf))
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
        let mut lexicon: HashMap<Box<[u8]>, u32, BuildHasherDefault<Fnv>> = HashMap::default();
        let mut tag = |words: &mut dyn Iterator<Item = &str>, flag: u32| {
            for w in words {
                *lexicon.entry(w.as_bytes().into()).or_default() |= flag;
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
            model: None,
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
        self.lexicon.get(&*lower).copied().unwrap_or(0)
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
        source: e.into(),
    })?;
    Ok(parse_list(&text))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The repository's dictionaries, loaded once for all tests.
    pub(crate) fn repo_dictionaries() -> &'static Dictionaries {
        static DICTS: std::sync::OnceLock<Dictionaries> = std::sync::OnceLock::new();
        DICTS.get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deid/dictionaries");
            Dictionaries::load(&dir).unwrap()
        })
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
        let mut buf = [0; 48];
        for safe in ["pain", "a-line", "pt's", "Lasix", "don't"] {
            assert!(d.is_safe(safe.as_bytes(), &mut buf), "{safe}");
        }
        for unsafe_word in ["michelle", "Quaxworth", "smythe", "o'brien"] {
            assert!(
                !d.is_safe(unsafe_word.as_bytes(), &mut buf),
                "{unsafe_word}"
            );
        }
    }
}
