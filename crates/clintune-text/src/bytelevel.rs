//! A faster route through byte-level BPE tokenizers, checked against the
//! `tokenizers` crate.
//!
//! Profiling curation showed `tokenizers` spending most of its time in its
//! general machinery rather than in BPE: every pre-token becomes a
//! `NormalizedString` with per-byte alignments, split by an Oniguruma regex
//! with a look-ahead, then rewritten byte by byte. For the one pipeline that
//! byte-level BPE tokenizers (GPT-2, and what `clintune tokenizer train`
//! makes) use — no normalizer, GPT-2 split, byte-to-character mapping, BPE —
//! the same split can be had from the `regex` crate and a one-character
//! correction for the look-ahead, and the mapping from a table. The
//! vocabulary, merges, added tokens and the BPE itself stay the crate's.
//!
//! [`ByteLevelFast::for_tokenizer`] accepts only that exact pipeline; anything
//! else goes through the crate. The tokenizer wrapper also re-encodes a
//! sample of texts the crate's way and fails on any difference.

use regex::Regex;
use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use tokenizers::models::ModelWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{Model, NormalizerWrapper, OffsetReferential, OffsetType};

/// GPT-2's pre-token pattern without its `\s+(?!\S)` branch, which the
/// `regex` crate cannot express; [`ByteLevelFast::split`] applies it by hand.
const GPT2_SPLIT: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// Token ids and byte offsets into the encoded text.
pub type Encoded = (Vec<u32>, Vec<(usize, usize)>);

/// One token of a cached word: id, and byte range within the word.
type WordToken = (u32, usize, usize);

/// Words longer than this are not cached: they rarely repeat.
const MAX_CACHED_WORD: usize = 64;
/// Words cached per thread and tokenizer; beyond it, words are tokenized
/// every time (the common ones are in by then).
const MAX_CACHED_WORDS: usize = 1 << 17;

/// Encoded words by tokenizer instance and word.
type WordCache = HashMap<(u64, Box<str>), Box<[WordToken]>>;

thread_local! {
    /// Pre-token encodings per thread, keyed by tokenizer instance: natural
    /// text repeats its words, and the crate's own cache returns tokens with
    /// freshly allocated strings.
    static WORDS: RefCell<WordCache> = RefCell::default();
}

/// Ids of [`ByteLevelFast`] instances, so caches never mix vocabularies.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Lets the cache be probed with a borrowed word, without allocating a key.
trait WordKey {
    fn key(&self) -> (u64, &str);
}

impl WordKey for (u64, Box<str>) {
    fn key(&self) -> (u64, &str) {
        (self.0, &self.1)
    }
}

impl WordKey for (u64, &str) {
    fn key(&self) -> (u64, &str) {
        *self
    }
}

impl<'a> Borrow<dyn WordKey + 'a> for (u64, Box<str>) {
    fn borrow(&self) -> &(dyn WordKey + 'a) {
        self
    }
}

impl PartialEq for dyn WordKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn WordKey + '_ {}

impl Hash for dyn WordKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

fn push_word(out: &mut Encoded, tokens: &[WordToken], at: usize) {
    for &(id, s, e) in tokens {
        out.0.push(id);
        out.1.push((at + s, at + e));
    }
}

/// The fast route for one tokenizer.
#[derive(Debug, Clone)]
pub struct ByteLevelFast {
    id: u64,
    split: Regex,
    byte_chars: [char; 256],
}

impl ByteLevelFast {
    /// The fast route, when `tokenizer` is exactly a byte-level BPE: no
    /// normalizer, a `ByteLevel` pre-tokenizer with the GPT-2 regex and no
    /// prefix space, a BPE model without dropout or byte fallback, and no
    /// post-processing that moves offsets.
    pub fn for_tokenizer(tokenizer: &tokenizers::Tokenizer) -> Option<Self> {
        let plain_pre = matches!(
            tokenizer.get_pre_tokenizer(),
            Some(PreTokenizerWrapper::ByteLevel(b)) if b.use_regex && !b.add_prefix_space
        );
        let plain_post = match tokenizer.get_post_processor() {
            None => true,
            Some(PostProcessorWrapper::ByteLevel(b)) => !b.trim_offsets,
            Some(_) => false,
        };
        let plain_model = bpe(tokenizer).is_some_and(|m| {
            m.dropout.is_none_or(|d| d == 0.0)
                && !m.byte_fallback
                && m.continuing_subword_prefix.is_none()
                && m.end_of_word_suffix.is_none()
        });
        let usable = tokenizer.get_normalizer().is_none() && plain_pre && plain_post && plain_model;
        usable.then(|| Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            split: Regex::new(GPT2_SPLIT).expect("the GPT-2 split pattern compiles"),
            byte_chars: byte_chars(),
        })
    }

    /// Encodes `text` without adding special tokens, with byte offsets.
    pub fn encode(
        &self,
        tokenizer: &tokenizers::Tokenizer,
        text: &str,
    ) -> tokenizers::Result<Encoded> {
        let model = bpe(tokenizer).ok_or("not a BPE model")?;
        // Added tokens are found by the crate itself, so their matching rules
        // (special, single-word, strip) stay exactly its own.
        let pieces = tokenizer
            .get_added_vocabulary()
            .extract_and_normalize::<NormalizerWrapper>(None, text);
        let mut out: Encoded = (Vec::new(), Vec::new());
        for (piece, (start, _), tokens) in
            pieces.get_splits(OffsetReferential::Original, OffsetType::Byte)
        {
            match tokens {
                Some(tokens) => {
                    for t in tokens {
                        out.0.push(t.id);
                        out.1.push((start + t.offsets.0, start + t.offsets.1));
                    }
                }
                None => self.encode_piece(model, piece, start, &mut out)?,
            }
        }
        Ok(out)
    }

    fn encode_piece(
        &self,
        model: &BPE,
        piece: &str,
        base: usize,
        out: &mut Encoded,
    ) -> tokenizers::Result<()> {
        WORDS.with(|cache| {
            let mut cache = cache.borrow_mut();
            for (start, end) in self.split(piece) {
                let word = &piece[start..end];
                if let Some(tokens) = cache.get(&(self.id, word) as &dyn WordKey) {
                    push_word(out, tokens, base + start);
                    continue;
                }
                let tokens = self.tokenize_word(model, word)?;
                push_word(out, &tokens, base + start);
                if word.len() <= MAX_CACHED_WORD && cache.len() < MAX_CACHED_WORDS {
                    cache.insert((self.id, word.into()), tokens);
                }
            }
            Ok(())
        })
    }

    /// BPE of one pre-token: its bytes mapped to characters, merged by the
    /// crate's model, offsets mapped back to the word's bytes and widened to
    /// whole characters.
    fn tokenize_word(&self, model: &BPE, word: &str) -> tokenizers::Result<Box<[WordToken]>> {
        let mut mapped = String::with_capacity(word.len() * 2);
        let mut origin = Vec::with_capacity(word.len() * 2);
        for (i, &b) in word.as_bytes().iter().enumerate() {
            let c = self.byte_chars[usize::from(b)];
            mapped.push(c);
            origin.extend(std::iter::repeat_n(i, c.len_utf8()));
        }
        Ok(model
            .tokenize(&mapped)?
            .into_iter()
            .map(|t| {
                let (s, e) = (origin[t.offsets.0], origin[t.offsets.1 - 1] + 1);
                (t.id, floor_char(word, s), ceil_char(word, e))
            })
            .collect())
    }

    /// Byte ranges of GPT-2's pre-tokens of `text`.
    pub fn split(&self, text: &str) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let mut pos = 0;
        while let Some(m) = self.split.find_at(text, pos) {
            let mut end = m.end();
            // `\s+(?!\S)` comes before `\s+` in GPT-2's pattern: a run of
            // whitespace followed by more text leaves its last character to
            // start the next pre-token (" word"), unless it is that one character.
            if end < text.len() && m.as_str().chars().all(char::is_whitespace) {
                let last = m.as_str().char_indices().last().map_or(0, |(i, _)| i);
                if last > 0 {
                    end = m.start() + last;
                }
            }
            spans.push((m.start(), end));
            pos = end;
        }
        spans
    }
}

fn bpe(tokenizer: &tokenizers::Tokenizer) -> Option<&BPE> {
    match tokenizer.get_model() {
        ModelWrapper::BPE(m) => Some(m),
        _ => None,
    }
}

/// GPT-2's reversible byte-to-character table: printable Latin-1 bytes map
/// to themselves, the other 68 to the characters from U+0100 on, in order.
fn byte_chars() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut next = 0x100u32;
    for b in 0..=255u8 {
        table[usize::from(b)] = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).unwrap_or('\u{FFFD}')
        };
    }
    table
}

/// The start of the character holding byte `i`: a token that begins inside a
/// multi-byte character is reported from that character's start, as the
/// crate's alignments do.
fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::{Tokenizer, TrainConfig};

    fn trained() -> Tokenizer {
        let texts = [
            "The patient's BP was 128/82 mmHg; she's on 5 µg/kg of drug X → stable.",
            "Follow-up in 2 weeks.\n\n  Indented line\twith tab   and spaces  \n",
            "Café résumé naïve — 42 °C ✔ 🩺 日本語のテキスト",
        ];
        let cfg = TrainConfig {
            vocab_size: 600,
            min_frequency: 1,
        };
        Tokenizer::train(texts.iter().cycle().take(60), &cfg).unwrap()
    }

    /// Strings that stress the split: whitespace runs of every kind before
    /// and after every kind of character, contractions, specials, non-ASCII.
    fn hard_texts() -> Vec<String> {
        let atoms = [
            " ",
            "  ",
            "\n",
            "\n\n",
            " \n",
            "\n ",
            "\t",
            "\u{a0}",
            "\u{3000}",
            "a",
            "B",
            "é",
            "日",
            "9",
            "٣",
            "'s",
            "'t",
            "'re",
            "'ll",
            "'",
            ".",
            "—",
            "🩺",
            "<|im_start|>",
            "<|im_end|>",
            "<|endoftext|>",
            "\r\n",
            "x'S",
            "\u{85}",
            "\u{2028}",
            "μg",
        ];
        let mut out = Vec::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..400 {
            let mut s = String::new();
            for _ in 0..(len % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push_str(atoms[(state % atoms.len() as u64) as usize]);
            }
            out.push(s);
        }
        out
    }

    #[test]
    fn the_fast_route_equals_the_crate_on_hard_strings() {
        let tok = trained();
        let fast =
            ByteLevelFast::for_tokenizer(tok.inner()).expect("a trained tokenizer qualifies");
        for text in hard_texts() {
            let reference = tok.inner().encode(text.as_str(), false).unwrap();
            let ours = fast.encode(tok.inner(), &text).unwrap();
            assert_eq!(ours.0, reference.get_ids(), "ids of {text:?}");
            assert_eq!(ours.1, reference.get_offsets(), "offsets of {text:?}");
        }
    }

    #[test]
    fn other_pipelines_are_left_to_the_crate() {
        use tokenizers::models::wordlevel::WordLevel;
        let t = tokenizers::Tokenizer::new(WordLevel::default());
        assert!(ByteLevelFast::for_tokenizer(&t).is_none());
        let trained = trained();
        let mut with_prefix = trained.inner().clone();
        let mut pre = tokenizers::pre_tokenizers::byte_level::ByteLevel::default();
        pre.add_prefix_space = true;
        with_prefix.with_pre_tokenizer(Some(pre));
        assert!(ByteLevelFast::for_tokenizer(&with_prefix).is_none());
        let mut lowercased = trained.inner().clone();
        let _ = lowercased.with_normalizer(Some(tokenizers::normalizers::Lowercase));
        assert!(ByteLevelFast::for_tokenizer(&lowercased).is_none());
        assert!(ByteLevelFast::for_tokenizer(trained.inner()).is_some());
    }

    #[test]
    fn the_byte_table_is_gpt2s() {
        let table = byte_chars();
        assert_eq!(table[usize::from(b'A')], 'A');
        assert_eq!(table[usize::from(b' ')], 'Ġ');
        assert_eq!(table[usize::from(b'\n')], 'Ċ');
        let alphabet = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet();
        assert!(table.iter().all(|c| alphabet.contains(c)));
    }
}
