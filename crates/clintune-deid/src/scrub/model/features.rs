//! The model's view of a text: its tokens, what the rules found on each, and
//! the features of a token.
//!
//! Features are (template, value) pairs hashed into a fixed table, so the
//! model costs one lookup per feature. A value is never a word the lists do
//! not know: an unknown word is seen only by its shape, its case, its last
//! three letters, the lists it is on and how the same word is written
//! elsewhere in the text, so the weights carry no names and the model learns
//! contexts rather than a corpus's surrogates. A number is seen by its kind
//! (a month, a day, a year, an age over 89) and the shape of the chunk it
//! stands in (`9/9`, `120/80`, `(617)555-0199`).

use crate::scrub::dictionary::{Dictionaries, Fnv};
use crate::scrub::lexicon::{
    CLINICAL, COMMON, CUE, EXTRA_NAME, FACILITY, FACILITY_NAME, FIRST, GREETING, ID_CUE, LAST,
    NAME_AFTER, NOT_NAME, PLACE, PLACE_CUE, PREP, RELATION, ROLE, SAFE, SAFE_CLASSES, STATE, STOP,
    TITLE, letter_cases,
};
use crate::scrub::names::{EPONYM_NOUNS, eponym_follows};
use crate::scrub::{Category, Rule, Span};
use std::hash::Hasher;

/// log2 of the weight table's size.
pub const TABLE_BITS: u32 = 18;
const MASK: u32 = (1 << TABLE_BITS) - 1;

/// Lists whose membership is a feature (by bit position in the lexicon flags).
const FLAG_BITS: u32 = FIRST
    | LAST
    | EXTRA_NAME
    | PLACE
    | SAFE
    | CLINICAL
    | STOP
    | TITLE
    | RELATION
    | CUE
    | FACILITY
    | FACILITY_NAME
    | PLACE_CUE
    | PREP
    | ROLE
    | GREETING
    | ID_CUE
    | STATE
    | NOT_NAME
    | NAME_AFTER;

/// Known words whose identity may be a feature: never a name by the lists'
/// account alone.
const VOCABULARY: u32 =
    SAFE_CLASSES | TITLE | RELATION | CUE | PLACE_CUE | ROLE | GREETING | ID_CUE;

/// Longest word kept as a feature value.
const MAX_WORD: usize = 24;

macro_rules! templates {
    ($($variant:ident => $name:literal,)*) => {
        /// Feature templates; the name is how the weights file spells them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Template { $($variant,)* }

        impl Template {
            /// Every template, in declaration order.
            pub const ALL: &'static [Template] = &[$(Template::$variant,)*];

            /// The template's name in the weights file.
            pub fn name(self) -> &'static str {
                match self { $(Template::$variant => $name,)* }
            }
        }
    };
}

templates! {
    Bias => "bias",
    Rule => "rule",
    RuleCase => "rule&case",
    RulePrev => "rule-1",
    RuleNext => "rule+1",
    NoRule => "norule&shape",
    Category => "cat",
    Known => "known",
    Shape => "shape",
    ShapeCase => "shape&case",
    Length => "len",
    ShapePrev => "shape-1",
    ShapeNext => "shape+1",
    Flag => "list",
    FlagPrev => "list-1",
    FlagNext => "list+1",
    SafeCase => "safe&case&shape",
    Word => "w",
    WordPrev => "w-1",
    WordPrev2 => "w-2",
    WordNext => "w+1",
    WordNext2 => "w+2",
    PrevWordShape => "w-1&shape",
    ShapeNextWord => "shape&w+1",
    PunctBefore => "punct-before",
    PunctAfter => "punct-after",
    LineStart => "line-start&shape",
    Digits => "digits",
    DigitsPrevWord => "digits&w-1",
    DigitsNextWord => "digits&w+1",
    Misspelt => "one-edit-from-safe",
    Chunk => "chunk",
    ChunkPrev => "chunk-1",
    ChunkNext => "chunk+1",
    Elsewhere => "elsewhere",
    Suffix => "suffix",
}

impl Template {
    /// The template with this name.
    pub fn from_name(name: &str) -> Option<Template> {
        Template::ALL.iter().copied().find(|t| t.name() == name)
    }
}

/// The table slot of a feature: FNV-1a over the template and the value.
pub fn slot(t: Template, value: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(t as u8 + 1).chain(value.iter().copied()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ((h ^ (h >> 32)) as u32) & MASK
}

/// Receives a token's features.
pub trait Sink {
    /// One feature.
    fn add(&mut self, t: Template, value: &[u8]);
}

/// How a text is cased as a whole: case says less about names in a text
/// written all in capitals or without any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextCase {
    /// Ordinary mixed case.
    Mixed,
    /// Mostly capitals.
    Upper,
    /// Almost no capitals (speech transcripts).
    Lower,
}

impl TextCase {
    fn of(bytes: &[u8]) -> Self {
        let (upper, lower) = letter_cases(bytes);
        if upper > 3 * lower {
            TextCase::Upper
        } else if upper * 50 < lower {
            TextCase::Lower
        } else {
            TextCase::Mixed
        }
    }

    fn tag(self) -> &'static [u8] {
        match self {
            TextCase::Mixed => b"mixed",
            TextCase::Upper => b"upper",
            TextCase::Lower => b"lower",
        }
    }
}

/// One token of the model: a run of letters and digits, letters joined
/// across an inner apostrophe or hyphen.
#[derive(Debug, Clone, Copy)]
pub struct Tok {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// Lexicon classes of the word (0 for numbers and unknown words).
    pub flags: u32,
    /// On a safe list as a whole or by its parts.
    pub safe: bool,
    /// Holds a digit.
    pub digits: u8,
    /// The first character is an upper-case letter.
    pub capital: bool,
    /// First token of its line.
    pub line_start: bool,
    /// What the text says of the same word elsewhere ([`ELSE_LOWER`], ...).
    pub elsewhere: u8,
}

impl Tok {
    /// A word whose other occurrences are counted
    /// ([`Tok::elsewhere`]): letters, two or more.
    fn counted(&self) -> bool {
        self.digits == 0 && self.end - self.start >= 2
    }
}

/// The same word stands elsewhere in the text written all in lower case.
pub const ELSE_LOWER: u8 = 1;
/// The same word stands elsewhere capitalised, not first on its line.
pub const ELSE_CAPITAL: u8 = 2;
/// A rule found the same word elsewhere.
pub const ELSE_RULE: u8 = 4;
/// The word occurs twice in the text.
pub const ELSE_TWICE: u8 = 8;
/// The word occurs three times or more.
pub const ELSE_OFTEN: u8 = 16;

/// A text as the model reads it.
#[derive(Debug)]
pub struct View<'a> {
    /// The (normalized) text.
    pub bytes: &'a [u8],
    lower: Vec<u8>,
    /// Its tokens.
    pub tokens: Vec<Tok>,
    /// Per token, the rules whose spans overlap it (bit = rule index).
    pub rules: Vec<u128>,
    /// Per token, the categories of those spans (bit = category index).
    pub categories: Vec<u16>,
    /// Per token, covered by the patient's own identifiers.
    pub known: Vec<bool>,
    /// The text's case.
    pub case: TextCase,
    dicts: &'a Dictionaries,
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80
}

/// An apostrophe or hyphen between two letters of one word.
fn inner_joint(b: &[u8], i: usize, start: usize) -> bool {
    matches!(b[i], b'\'' | b'-')
        && i > start
        && i + 1 < b.len()
        && b[i - 1].is_ascii_alphabetic()
        && b[i + 1].is_ascii_alphabetic()
}

/// Tokens of `b`: runs of letters and digits (bytes of non-ASCII
/// characters count as letters); an apostrophe or hyphen between two
/// letters stays inside ("O'Brien", "Smythe-Jones").
pub fn tokenize(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(b.len() / 5);
    let mut i = 0;
    while i < b.len() {
        if !is_word_char(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (is_word_char(b[i]) || inner_joint(b, i, start)) {
            i += 1;
        }
        out.push((start, i));
    }
    out
}

impl<'a> View<'a> {
    /// The view of `text` with the spans the rules found in it.
    pub fn new(text: &'a str, found: &[Span], dicts: &'a Dictionaries) -> Self {
        let bytes = text.as_bytes();
        let mut buf = [0u8; 48];
        let mut tokens = Vec::new();
        let mut prev_end = 0;
        for (start, end) in tokenize(bytes) {
            let word = &bytes[start..end];
            let digits = word.iter().filter(|c| c.is_ascii_digit()).count().min(255) as u8;
            let flags = if digits == 0 {
                dicts.flags(word, &mut buf)
            } else {
                0
            };
            let safe = digits == 0
                && (flags & SAFE_CLASSES != 0
                    || (word.iter().any(|c| matches!(c, b'-' | b'\''))
                        && dicts.is_safe(word, &mut buf)));
            tokens.push(Tok {
                start,
                end,
                flags,
                safe,
                digits,
                capital: word[0].is_ascii_uppercase(),
                line_start: tokens.is_empty() || bytes[prev_end..start].contains(&b'\n'),
                elsewhere: 0,
            });
            prev_end = end;
        }
        let mut view = View {
            bytes,
            lower: bytes.to_ascii_lowercase(),
            rules: vec![0; tokens.len()],
            categories: vec![0; tokens.len()],
            known: vec![false; tokens.len()],
            tokens,
            case: TextCase::of(bytes),
            dicts,
        };
        view.mark(found);
        view.mark_elsewhere();
        view
    }

    /// Records on each word what its other occurrences in the text say: a
    /// name is written the same way throughout a note, an ordinary word
    /// turns up in lower case somewhere, and a word a rule found once is
    /// likely the same PHI again.
    fn mark_elsewhere(&mut self) {
        #[derive(Default, Clone, Copy)]
        struct Seen {
            count: u32,
            lower: u32,
            capital: u32,
            rule: u32,
        }
        let mixed = self.case == TextCase::Mixed;
        let own = |t: &Tok, rules: u128, bytes: &[u8]| {
            let word = &bytes[t.start..t.end];
            Seen {
                count: 1,
                lower: u32::from(mixed && !word.iter().any(u8::is_ascii_uppercase)),
                capital: u32::from(mixed && t.capital && !t.line_start),
                rule: u32::from(rules != 0),
            }
        };
        // Occurrences grouped by sorting on a hash of the word, not in a
        // hash table: the words come from the input, and colliding words
        // can slow a sort no more than any others. A group is then split
        // where the words differ, so a collision only splits a count.
        let mut order: Vec<(u64, usize)> = self
            .tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| t.counted())
            .map(|(i, t)| {
                let mut h = Fnv::default();
                h.write(&self.lower[t.start..t.end]);
                (h.finish(), i)
            })
            .collect();
        order.sort_unstable();
        let mut bits = vec![0u8; self.tokens.len()];
        for group in order.chunk_by(|a, b| a.0 == b.0 && self.word(a.1) == self.word(b.1)) {
            let of = |i: usize| own(&self.tokens[i], self.rules[i], self.bytes);
            let all = group.iter().fold(Seen::default(), |a, &(_, i)| {
                let o = of(i);
                Seen {
                    count: a.count + 1,
                    lower: a.lower + o.lower,
                    capital: a.capital + o.capital,
                    rule: a.rule + o.rule,
                }
            });
            for &(_, i) in group {
                let o = of(i);
                let mut b = 0;
                b |= ELSE_LOWER * u8::from(all.lower > o.lower);
                b |= ELSE_CAPITAL * u8::from(all.capital > o.capital);
                b |= ELSE_RULE * u8::from(all.rule > o.rule);
                b |= ELSE_TWICE * u8::from(all.count == 2);
                b |= ELSE_OFTEN * u8::from(all.count > 2);
                bits[i] = b;
            }
        }
        for (t, b) in self.tokens.iter_mut().zip(bits) {
            t.elsewhere = b;
        }
    }

    /// Records on each token the rules and categories of the spans over it.
    fn mark(&mut self, found: &[Span]) {
        let starts: Vec<usize> = self.tokens.iter().map(|t| t.start).collect();
        for s in found {
            // Tokens overlapping the span: from the last token starting
            // before its end, back while they end after its start.
            let mut k = starts.partition_point(|&st| st < s.end);
            while k > 0 && self.tokens[k - 1].end > s.start {
                k -= 1;
                self.rules[k] |= 1u128 << (s.rule as u8);
                self.categories[k] |= 1u16 << (s.category as u8);
                self.known[k] |= is_known(s.rule);
            }
        }
    }

    /// Worth scoring: a token the rules found, one not known to be safe, a
    /// number, or a capitalised word of a name or place list that is not an
    /// ordinary English word, in a mixed-case text ("Sterling"; not
    /// "Patient", a Census surname). The rest (safe words no rule touched)
    /// are never PHI.
    ///
    /// A word before an eponym's noun ("Cushing syndrome", "Babinski sign")
    /// that no rule found is not a candidate either: the name rules already
    /// judged it an eponym. Nor is a letter and a digit no rule found ("V1",
    /// "x2", "T4", "v1": leads, vertebrae, doses, versions): no identifier
    /// is that short, and a longer one is the rules' to find.
    pub fn candidate(&self, i: usize) -> bool {
        let t = &self.tokens[i];
        let listed_capital = t.capital
            && self.case != TextCase::Upper
            && t.flags & (FIRST | LAST | EXTRA_NAME | PLACE) != 0
            && t.flags & COMMON == 0;
        let worth = self.rules[i] != 0 || !t.safe || t.digits > 0 || listed_capital;
        let unruled = self.rules[i] == 0;
        let eponym = unruled && t.digits == 0 && eponym_follows(self.bytes, t.end, EPONYM_NOUNS);
        let notation = unruled && t.digits == 1 && t.end - t.start == 2;
        worth && !eponym && !notation
    }

    fn word(&self, i: usize) -> &[u8] {
        let t = &self.tokens[i];
        &self.lower[t.start..t.end]
    }

    /// The word as a feature value if the lists know it, else its shape
    /// behind a `~`.
    fn word_or_shape(&self, i: Option<usize>, buf: &mut [u8; MAX_WORD + 1]) -> usize {
        let Some(i) = i else {
            buf[..3].copy_from_slice(b"<s>");
            return 3;
        };
        let t = &self.tokens[i];
        let w = self.word(i);
        if t.flags & VOCABULARY != 0 && w.len() <= MAX_WORD {
            buf[..w.len()].copy_from_slice(w);
            return w.len();
        }
        buf[0] = b'~';
        1 + shape(&self.bytes[t.start..t.end], &mut buf[1..])
    }

    /// Every feature of token `i` but [`Template::Misspelt`].
    pub fn features_but_spelling(&self, i: usize, sink: &mut impl Sink) {
        let t = &self.tokens[i];
        let n = self.tokens.len();
        let prev = i.checked_sub(1);
        let next = (i + 1 < n).then_some(i + 1);
        let case = self.case.tag();
        let mut sh = [0u8; MAX_WORD + 1];
        let shape_len = shape(&self.bytes[t.start..t.end], &mut sh);
        let sh = &sh[..shape_len];
        let mut cat = [0u8; 40];

        sink.add(Template::Bias, b"");
        self.rule_features(i, sh, case, sink);
        if self.known[i] {
            sink.add(Template::Known, b"");
        }
        sink.add(Template::Shape, sh);
        sink.add(Template::ShapeCase, join(&mut cat, &[sh, case]));
        sink.add(Template::Length, &[length_class(t.end - t.start)]);
        for (template, k) in [(Template::ShapePrev, prev), (Template::ShapeNext, next)] {
            let mut b = [0u8; MAX_WORD + 1];
            let len = match k {
                Some(k) => shape(
                    &self.bytes[self.tokens[k].start..self.tokens[k].end],
                    &mut b,
                ),
                None => 0,
            };
            sink.add(template, &b[..len]);
        }
        self.flag_features(i, prev, next, sink);
        let safe: &[u8] = if t.safe { b"safe" } else { b"unsafe" };
        sink.add(Template::SafeCase, join(&mut cat, &[safe, case, sh]));
        self.word_features(i, prev, next, sh, sink);
        let (before, after) = self.punctuation(i);
        sink.add(Template::PunctBefore, &before.0[..before.1]);
        sink.add(Template::PunctAfter, &after.0[..after.1]);
        if t.line_start {
            sink.add(Template::LineStart, sh);
        }
        self.chunk_features(i, sink);
        self.elsewhere_features(t, sink);
        self.suffix_features(i, sink);
        if t.digits > 0 {
            // A number by its kind (a month, a year, an age over 89), a
            // word with digits in it by their count.
            let word = &self.bytes[t.start..t.end];
            let d = if usize::from(t.digits) == word.len() {
                [b'#', number_class(word)]
            } else {
                [b'0' + t.digits.min(9), b'd']
            };
            sink.add(Template::Digits, &d);
            let mut w = [0u8; MAX_WORD + 1];
            let wl = self.word_or_shape(prev, &mut w);
            sink.add(Template::DigitsPrevWord, join(&mut cat, &[&d, &w[..wl]]));
            let wl = self.word_or_shape(next, &mut w);
            sink.add(Template::DigitsNextWord, join(&mut cat, &[&d, &w[..wl]]));
        }
    }

    /// Calls `sink` with every feature of token `i`.
    pub fn features(&self, i: usize, sink: &mut impl Sink) {
        self.features_but_spelling(i, sink);
        if self.misspelt(i) {
            sink.add(Template::Misspelt, b"");
        }
    }

    /// Could be a misspelling: a word on no list. Whether it is one
    /// ([`View::misspelt`]) costs hundreds of lookups, so the model asks only
    /// when the answer could change its decision.
    pub fn may_be_misspelt(&self, i: usize) -> bool {
        let t = &self.tokens[i];
        t.digits == 0 && !t.safe && t.flags == 0
    }

    /// One edit from a safe or common word ("recieved", "camode").
    pub fn misspelt(&self, i: usize) -> bool {
        let t = &self.tokens[i];
        self.may_be_misspelt(i) && self.dicts.near_safe(&self.bytes[t.start..t.end])
    }

    fn rule_features(&self, i: usize, sh: &[u8], case: &[u8], sink: &mut impl Sink) {
        let mut cat = [0u8; 40];
        for_bits(self.rules[i], |r| {
            let name = Rule::ALL[r].as_str().as_bytes();
            sink.add(Template::Rule, name);
            sink.add(Template::RuleCase, join(&mut cat, &[name, case]));
        });
        if self.rules[i] == 0 {
            sink.add(Template::NoRule, sh);
        }
        for_bits(u128::from(self.categories[i]), |c| {
            sink.add(Template::Category, CATEGORIES[c].as_str().as_bytes());
        });
        if let Some(p) = i.checked_sub(1) {
            for_bits(self.rules[p], |r| {
                sink.add(Template::RulePrev, Rule::ALL[r].as_str().as_bytes())
            });
        }
        if let Some(rules) = self.rules.get(i + 1) {
            for_bits(*rules, |r| {
                sink.add(Template::RuleNext, Rule::ALL[r].as_str().as_bytes())
            });
        }
    }

    fn flag_features(
        &self,
        i: usize,
        prev: Option<usize>,
        next: Option<usize>,
        sink: &mut impl Sink,
    ) {
        for (template, k) in [
            (Template::Flag, Some(i)),
            (Template::FlagPrev, prev),
            (Template::FlagNext, next),
        ] {
            let flags = k.map_or(0, |k| self.tokens[k].flags) & FLAG_BITS;
            for_bits(u128::from(flags), |bit| {
                sink.add(template, &[b'a' + bit as u8])
            });
        }
    }

    fn word_features(
        &self,
        i: usize,
        prev: Option<usize>,
        next: Option<usize>,
        sh: &[u8],
        sink: &mut impl Sink,
    ) {
        let mut w = [0u8; MAX_WORD + 1];
        let mut cat = [0u8; 2 * MAX_WORD + 4];
        let len = self.word_or_shape(Some(i), &mut w);
        if w[0] != b'~' {
            sink.add(Template::Word, &w[..len]);
        }
        let len = self.word_or_shape(prev, &mut w);
        sink.add(Template::WordPrev, &w[..len]);
        sink.add(Template::PrevWordShape, join(&mut cat, &[&w[..len], sh]));
        let len = self.word_or_shape(i.checked_sub(2), &mut w);
        sink.add(Template::WordPrev2, &w[..len]);
        let len = self.word_or_shape(next, &mut w);
        sink.add(Template::WordNext, &w[..len]);
        sink.add(Template::ShapeNextWord, join(&mut cat, &[sh, &w[..len]]));
        let next2 = (i + 2 < self.tokens.len()).then_some(i + 2);
        let len = self.word_or_shape(next2, &mut w);
        sink.add(Template::WordNext2, &w[..len]);
    }

    /// The shapes of the chunk of text without spaces that token `i` stands
    /// in (the token's place marked by `_`), and of the chunks either side:
    /// `d/d` ("9/9") and `ddd/dd` ("120/80") read differently.
    fn chunk_features(&self, i: usize, sink: &mut impl Sink) {
        let t = &self.tokens[i];
        let (from, to) = chunk_around(self.bytes, t.start, t.end);
        let mut out = [0u8; CHUNK_SHAPE];
        let n = chunk_shape(&self.bytes[from..to], Some(t.start - from), &mut out);
        sink.add(Template::Chunk, &out[..n]);
        let before = trim_end_spaces(&self.bytes[..from]);
        let n = match before {
            0 => 0,
            end => {
                let (f, e) = chunk_around(self.bytes, end, end);
                chunk_shape(&self.bytes[f..e], None, &mut out)
            }
        };
        sink.add(Template::ChunkPrev, &out[..n]);
        let after = to
            + self.bytes[to..]
                .iter()
                .take_while(|c| c.is_ascii_whitespace())
                .count();
        let n = if after < self.bytes.len() {
            let (f, e) = chunk_around(self.bytes, after, after);
            chunk_shape(&self.bytes[f..e], None, &mut out)
        } else {
            0
        };
        sink.add(Template::ChunkNext, &out[..n]);
    }

    /// The last two and three letters of a word of four letters or more:
    /// drug and clinical words end alike ("-olol", "-itis", "-emia"), and
    /// so do misspellings of them; three letters name nobody.
    fn suffix_features(&self, i: usize, sink: &mut impl Sink) {
        let t = &self.tokens[i];
        let w = self.word(i);
        if t.digits > 0 || w.len() < 4 || !w.iter().all(u8::is_ascii_alphabetic) {
            return;
        }
        sink.add(Template::Suffix, &w[w.len() - 2..]);
        sink.add(Template::Suffix, &w[w.len() - 3..]);
    }

    fn elsewhere_features(&self, t: &Tok, sink: &mut impl Sink) {
        if !t.counted() {
            return;
        }
        let e = t.elsewhere;
        let count: &[u8] = if e & ELSE_OFTEN != 0 {
            b"n3+"
        } else if e & ELSE_TWICE != 0 {
            b"n2"
        } else {
            b"n1"
        };
        sink.add(Template::Elsewhere, count);
        for (bit, name) in [
            (ELSE_LOWER, &b"lower"[..]),
            (ELSE_CAPITAL, b"capital"),
            (ELSE_RULE, b"rule"),
        ] {
            if e & bit != 0 {
                sink.add(Template::Elsewhere, name);
            }
        }
    }

    /// The punctuation just before and just after token `i`: up to three
    /// characters that are not spaces, `n` for a line end.
    fn punctuation(&self, i: usize) -> (([u8; 3], usize), ([u8; 3], usize)) {
        let t = &self.tokens[i];
        let from = i.checked_sub(1).map_or(0, |p| self.tokens[p].end);
        let to = self.tokens.get(i + 1).map_or(self.bytes.len(), |n| n.start);
        (
            squeeze(&self.bytes[from..t.start]),
            squeeze(&self.bytes[t.end..to]),
        )
    }
}

/// Every category, by its index (the order of [`Category`]'s variants).
const CATEGORIES: [Category; 13] = [
    Category::Name,
    Category::Address,
    Category::Location,
    Category::Zip,
    Category::Date,
    Category::Year,
    Category::Age,
    Category::Phone,
    Category::Email,
    Category::Url,
    Category::Ip,
    Category::Id,
    Category::Unknown,
];

/// Rules that match the patient's own identifiers from the structured record.
pub fn is_known(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::KnownPatientName
            | Rule::KnownRelativeName
            | Rule::KnownAddress
            | Rule::KnownIdentifier
            | Rule::KnownEmail
            | Rule::KnownPhone
    )
}

fn for_bits(mut bits: u128, mut f: impl FnMut(usize)) {
    while bits != 0 {
        let b = bits.trailing_zeros() as usize;
        f(b);
        bits &= bits - 1;
    }
}

/// `parts` joined by `|` into `buf` (cut at its size).
fn join<'b>(buf: &'b mut [u8], parts: &[&[u8]]) -> &'b [u8] {
    let mut n = 0;
    for (k, p) in parts.iter().enumerate() {
        if k > 0 && n < buf.len() {
            buf[n] = b'|';
            n += 1;
        }
        let take = p.len().min(buf.len() - n);
        buf[n..n + take].copy_from_slice(&p[..take]);
        n += take;
    }
    &buf[..n]
}

/// The word's shape: `X` upper, `x` lower, `d` digit, `'` or `-` as they
/// are, repeats folded ("McDonald" → `XxXx`, "617" → `d`); at most the
/// buffer's size.
pub fn shape(word: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    for &c in word {
        let s = match c {
            b'A'..=b'Z' => b'X',
            b'a'..=b'z' | 0x80.. => b'x',
            b'0'..=b'9' => b'd',
            other => other,
        };
        if (n == 0 || out[n - 1] != s) && n < out.len() {
            out[n] = s;
            n += 1;
        }
    }
    n
}

/// Longest chunk shape kept.
const CHUNK_SHAPE: usize = 16;
/// How far a chunk is read either side of its token.
const CHUNK_REACH: usize = 24;

/// The chunk without spaces around `start..end` (bytes), read at most
/// [`CHUNK_REACH`] bytes either way.
fn chunk_around(b: &[u8], start: usize, end: usize) -> (usize, usize) {
    let back = b[start.saturating_sub(CHUNK_REACH)..start]
        .iter()
        .rev()
        .take_while(|c| !c.is_ascii_whitespace())
        .count();
    let ahead = b[end..(end + CHUNK_REACH).min(b.len())]
        .iter()
        .take_while(|c| !c.is_ascii_whitespace())
        .count();
    (start - back, end + ahead)
}

/// Length of `b` without its trailing white space.
fn trim_end_spaces(b: &[u8]) -> usize {
    b.len()
        - b.iter()
            .rev()
            .take_while(|c| c.is_ascii_whitespace())
            .count()
}

/// The shape of a chunk: letters as in [`shape`], punctuation as it is,
/// each number by its kind ([`number_class`]), `_` where `mark` is.
fn chunk_shape(chunk: &[u8], mark: Option<usize>, out: &mut [u8; CHUNK_SHAPE]) -> usize {
    let mut n = 0;
    let push = |c: u8, out: &mut [u8; CHUNK_SHAPE], n: &mut usize| {
        if *n < CHUNK_SHAPE {
            out[*n] = c;
            *n += 1;
        }
    };
    let mut i = 0;
    while i < chunk.len() {
        if mark == Some(i) {
            push(b'_', out, &mut n);
        }
        let c = chunk[i];
        if c.is_ascii_digit() {
            let run = chunk[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            push(number_class(&chunk[i..i + run]), out, &mut n);
            i += run;
            continue;
        }
        let s = match c {
            b'A'..=b'Z' => b'X',
            b'a'..=b'z' => b'x',
            0x80.. => b'u',
            other => other,
        };
        if !(n > 0 && out[n - 1] == s && s.is_ascii_alphabetic()) {
            push(s, out, &mut n);
        }
        i += 1;
    }
    n
}

/// A number's kind: `m` 1 to 12 (a month or a day), `D` 13 to 31 (a day),
/// `n` 32 to 89 or 0, `a` 90 to 99 (an age Safe Harbor counts), `c` 100 to
/// 119, `h` other three digits, `t` four digits from `0` (a time), `Y` a
/// year 1900 to 2099, `q` other four digits, `L` five or more.
fn number_class(d: &[u8]) -> u8 {
    let value = d
        .iter()
        .take(5)
        .fold(0u32, |v, c| v * 10 + u32::from(c.wrapping_sub(b'0')));
    match d.len() {
        1 | 2 if (1..=12).contains(&value) => b'm',
        1 | 2 if (13..=31).contains(&value) => b'D',
        1 | 2 if value >= 90 => b'a',
        1 | 2 => b'n',
        3 if value <= 119 && d[0] != b'0' => b'c',
        3 => b'h',
        4 if d[0] == b'0' => b't',
        4 if (1900..=2099).contains(&value) => b'Y',
        4 => b'q',
        _ => b'L',
    }
}

fn length_class(len: usize) -> u8 {
    match len {
        1 => b'1',
        2 => b'2',
        3..=4 => b'3',
        5..=7 => b'5',
        _ => b'8',
    }
}

/// Up to three characters of `gap` that are not spaces; a line end is `n`.
fn squeeze(gap: &[u8]) -> ([u8; 3], usize) {
    let mut out = [0u8; 3];
    let mut n = 0;
    for &c in gap {
        let c = match c {
            b'\n' => b'n',
            b' ' | b'\t' | b'\r' => continue,
            c if c >= 0x80 => b'u',
            c => c,
        };
        if n < 3 && (n == 0 || out[n - 1] != c) {
            out[n] = c;
            n += 1;
        }
    }
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::dictionary::tests::repo_dictionaries;

    struct Names(Vec<String>);
    impl Sink for Names {
        fn add(&mut self, t: Template, value: &[u8]) {
            self.0
                .push(format!("{}={}", t.name(), String::from_utf8_lossy(value)));
        }
    }

    fn features_of(text: &str, found: &[Span], word: &str) -> Vec<String> {
        let view = View::new(text, found, repo_dictionaries());
        let i = view
            .tokens
            .iter()
            .position(|t| &text[t.start..t.end] == word)
            .unwrap();
        let mut names = Names(Vec::new());
        view.features(i, &mut names);
        names.0
    }

    #[test]
    fn tokens_keep_inner_apostrophes_and_hyphens_between_letters() {
        let text = "O'Brien-Smythe saw pt 3-4 times; call 617-555-0199.";
        let words: Vec<&str> = tokenize(text.as_bytes())
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect();
        assert_eq!(
            words,
            [
                "O'Brien-Smythe",
                "saw",
                "pt",
                "3",
                "4",
                "times",
                "call",
                "617",
                "555",
                "0199"
            ]
        );
    }

    #[test]
    fn shapes_fold_repeats() {
        let mut b = [0u8; 8];
        let n = shape(b"McDonald", &mut b);
        assert_eq!(&b[..n], b"XxXx");
        let n = shape(b"617", &mut b);
        assert_eq!(&b[..n], b"d");
        let n = shape(b"O'Brien", &mut b);
        assert_eq!(&b[..n], b"X'Xx");
    }

    #[test]
    fn an_unknown_word_is_seen_by_its_shape_and_context_never_by_itself() {
        let f = features_of("Seen by Dr. Quaxworth today.", &[], "Quaxworth");
        assert!(f.contains(&"w-1=dr".to_string()), "{f:?}");
        assert!(f.contains(&"shape=Xx".to_string()), "{f:?}");
        assert!(f.contains(&"punct-before=.".to_string()), "{f:?}");
        assert!(f.contains(&"safe&case&shape=unsafe|mixed|Xx".to_string()));
        assert!(
            f.iter().all(|x| !x.to_lowercase().contains("quaxworth")),
            "{f:?}"
        );
        // Its neighbour sees it as a shape too.
        let f = features_of("Seen by Dr. Quaxworth today.", &[], "today");
        assert!(f.contains(&"w-1=~Xx".to_string()), "{f:?}");
        assert!(f.contains(&"w=today".to_string()), "{f:?}");
    }

    #[test]
    fn rules_over_a_token_and_its_neighbours_are_features() {
        let text = "Wife Hortensia at bedside";
        let at = text.find("Hortensia").unwrap();
        let found = [Span {
            start: at,
            end: at + 9,
            category: Category::Name,
            rule: Rule::Relation,
        }];
        let f = features_of(text, &found, "Hortensia");
        assert!(f.contains(&"rule=relation".to_string()), "{f:?}");
        assert!(f.contains(&"cat=name".to_string()), "{f:?}");
        assert!(f.contains(&"rule&case=relation|mixed".to_string()), "{f:?}");
        let f = features_of(text, &found, "at");
        assert!(f.contains(&"rule-1=relation".to_string()), "{f:?}");
        assert!(f.iter().all(|x| !x.starts_with("rule=")), "{f:?}");
    }

    #[test]
    fn safe_lower_case_words_no_rule_touched_are_not_candidates() {
        let view = View::new("pt resting with Dr. Smith", &[], repo_dictionaries());
        let cands: Vec<bool> = (0..view.tokens.len()).map(|i| view.candidate(i)).collect();
        assert_eq!(cands, [false, false, false, false, true]);
    }

    #[test]
    fn a_letter_and_a_digit_are_notation_unless_a_rule_found_them() {
        let text = "ST changes in V1, lasix x2, see notes/v1 and id 7Q";
        let view = View::new(text, &[], repo_dictionaries());
        let candidate = |w: &str| {
            let i = view.tokens.iter().position(|t| &text[t.start..t.end] == w);
            view.candidate(i.unwrap())
        };
        for w in ["V1", "x2", "v1", "7Q"] {
            assert!(!candidate(w), "{w}");
        }
        let at = text.find("7Q").unwrap();
        let found = [Span {
            start: at,
            end: at + 2,
            category: Category::Id,
            rule: Rule::IdCtx,
        }];
        let view = View::new(text, &found, repo_dictionaries());
        let i = view.tokens.iter().position(|t| t.start == at).unwrap();
        assert!(view.candidate(i));
    }

    #[test]
    fn numbers_are_seen_by_their_kind_and_the_chunk_they_stand_in() {
        let f = features_of("BP 120/80 on 9/14.", &[], "120");
        assert!(f.contains(&"chunk=_h/n".to_string()), "{f:?}");
        assert!(f.contains(&"chunk-1=X".to_string()), "{f:?}");
        assert!(f.contains(&"chunk+1=x".to_string()), "{f:?}");
        assert!(f.contains(&"digits=#h".to_string()), "{f:?}");
        let f = features_of("BP 120/80 on 9/14.", &[], "14");
        assert!(f.contains(&"chunk=m/_D.".to_string()), "{f:?}");
        let f = features_of("A 97 yo woman", &[], "97");
        assert!(f.contains(&"digits=#a".to_string()), "{f:?}");
        assert!(f.contains(&"chunk=_a".to_string()), "{f:?}");
        let kinds: Vec<u8> = ["7", "0", "45", "1999", "0800", "2150", "123456"]
            .iter()
            .map(|d| number_class(d.as_bytes()))
            .collect();
        assert_eq!(kinds, b"mnnYtqL");
    }

    #[test]
    fn other_occurrences_of_a_word_are_features() {
        let text = "Spoke with Rose today. BP rose overnight, Rose aware.";
        let view = View::new(text, &[], repo_dictionaries());
        let at = |w: &str, nth: usize| {
            view.tokens
                .iter()
                .filter(|t| &text[t.start..t.end] == w)
                .nth(nth)
                .unwrap()
                .elsewhere
        };
        // Capitalised twice mid-line, once in lower case: three in all.
        assert_eq!(at("Rose", 0), ELSE_LOWER | ELSE_CAPITAL | ELSE_OFTEN);
        assert_eq!(at("rose", 0), ELSE_CAPITAL | ELSE_OFTEN);
        assert_eq!(at("Spoke", 0), 0);
        let f = features_of(text, &[], "Rose");
        for want in ["elsewhere=n3+", "elsewhere=lower", "elsewhere=capital"] {
            assert!(f.contains(&want.to_string()), "{want}: {f:?}");
        }
        let text = "Quaxworth called. Seen by Dr. Quaxworth.";
        let second = text.rfind("Quaxworth").unwrap();
        let found = [Span {
            start: second,
            end: second + 9,
            category: Category::Name,
            rule: Rule::Title,
        }];
        let f = features_of(text, &found, "Quaxworth");
        assert!(f.contains(&"elsewhere=rule".to_string()), "{f:?}");
        assert!(f.contains(&"elsewhere=n2".to_string()), "{f:?}");
    }

    #[test]
    fn long_words_are_seen_by_their_last_letters_short_ones_not() {
        let f = features_of("Started metoprolol today", &[], "metoprolol");
        assert!(f.contains(&"suffix=ol".to_string()), "{f:?}");
        assert!(f.contains(&"suffix=lol".to_string()), "{f:?}");
        let f = features_of("Started ASA today", &[], "ASA");
        assert!(f.iter().all(|x| !x.starts_with("suffix=")), "{f:?}");
    }

    #[test]
    fn template_names_round_trip_and_slots_depend_on_the_template() {
        for t in Template::ALL {
            assert_eq!(Template::from_name(t.name()), Some(*t));
        }
        assert_ne!(slot(Template::Word, b"dr"), slot(Template::WordPrev, b"dr"));
        assert!(slot(Template::Word, b"dr") <= MASK);
    }
}
