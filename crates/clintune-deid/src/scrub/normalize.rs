//! Text normalized before any matching, with offsets mapped back.
//!
//! A name written in full-width letters (`Ｊｏｈｎ`), with a no-break space
//! between its parts, or with a zero-width space inside it is the same name
//! to a reader, and must be to the detector. Every rule and the model read
//! the normalized text; the spans they find are mapped back to the original
//! text, which is what gets replaced.

use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// A text in NFKC form with spaces made plain, and for each of its bytes the
/// original character it came from.
#[derive(Debug)]
pub struct Normalized<'a> {
    /// The normalized text (the original itself when nothing changes).
    pub text: Cow<'a, str>,
    /// Per normalized byte: the byte range of the original character it
    /// came from; empty when the text did not change.
    origin: Vec<(u32, u32)>,
    original_len: usize,
}

impl<'a> Normalized<'a> {
    /// Normalizes `text`: NFKC (full-width and other compatibility forms),
    /// Unicode spaces to a space, line and paragraph separators to a line
    /// end, zero-width characters and soft hyphens removed. ASCII text is
    /// returned as it is, without a copy.
    pub fn new(text: &'a str) -> Self {
        if text.is_ascii() {
            return Self {
                text: Cow::Borrowed(text),
                origin: Vec::new(),
                original_len: text.len(),
            };
        }
        let mut out = String::with_capacity(text.len());
        let mut origin = Vec::with_capacity(text.len());
        for (at, c) in text.char_indices() {
            let range = (at as u32, (at + c.len_utf8()) as u32);
            let before = out.len();
            push_normalized(c, &mut out);
            origin.resize(origin.len() + (out.len() - before), range);
        }
        if out == text {
            return Self {
                text: Cow::Borrowed(text),
                origin: Vec::new(),
                original_len: text.len(),
            };
        }
        Self {
            text: Cow::Owned(out),
            origin,
            original_len: text.len(),
        }
    }

    /// The original byte range of the normalized range `start..end`: from
    /// the start of the character the first byte came from to the end of
    /// the character the last byte came from.
    pub fn original(&self, start: usize, end: usize) -> (usize, usize) {
        if self.origin.is_empty() {
            return (start, end);
        }
        let s = self
            .origin
            .get(start)
            .map_or(self.original_len, |r| r.0 as usize);
        let e = match end.checked_sub(1).and_then(|last| self.origin.get(last)) {
            Some(r) if end > start => r.1 as usize,
            _ => s,
        };
        (s, e.max(s))
    }
}

impl Normalized<'_> {
    /// The normalized offset of original byte offset `at`: where the first
    /// character at or after it went.
    pub fn forward(&self, at: usize) -> usize {
        if self.origin.is_empty() {
            return at;
        }
        self.origin.partition_point(|r| (r.0 as usize) < at)
    }
}

/// Appends the normalized form of one character.
fn push_normalized(c: char, out: &mut String) {
    match c {
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => {}
        '\u{2028}' | '\u{2029}' | '\u{0085}' => out.push('\n'),
        c if c.is_whitespace() && !c.is_ascii() => out.push(' '),
        c => out.extend(std::iter::once(c).nfkc()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_text_is_borrowed_and_offsets_are_the_same() {
        let n = Normalized::new("Seen by Dr. Healey.");
        assert!(matches!(n.text, Cow::Borrowed(_)));
        assert_eq!(n.original(12, 18), (12, 18));
    }

    #[test]
    fn full_width_letters_and_odd_spaces_become_plain_with_offsets_back() {
        let text = "Wife\u{00A0}Ｈｏｒｔｅｎｓｉａ\u{2009}BLEN\u{200B}KINSOP at bedside";
        let n = Normalized::new(text);
        assert_eq!(n.text, "Wife Hortensia BLENKINSOP at bedside");
        let at = n.text.find("Hortensia").unwrap();
        let (s, e) = n.original(at, at + "Hortensia".len());
        assert_eq!(&text[s..e], "Ｈｏｒｔｅｎｓｉａ");
        let at = n.text.find("BLENKINSOP").unwrap();
        let (s, e) = n.original(at, at + "BLENKINSOP".len());
        assert_eq!(&text[s..e], "BLEN\u{200B}KINSOP");
        let (s, e) = n.original(n.text.len() - 7, n.text.len());
        assert_eq!(&text[s..e], "bedside");
        let start = text.find("BLEN").unwrap();
        assert_eq!(n.forward(start), n.text.find("BLEN").unwrap());
        assert_eq!(n.forward(text.len()), n.text.len());
    }

    #[test]
    fn accents_stay_and_separators_become_line_ends() {
        let n = Normalized::new("José\u{2028}Fernández");
        assert_eq!(n.text, "José\nFernández");
        assert!(matches!(n.text, Cow::Owned(_)));
        let n = Normalized::new("José Fernández");
        assert!(matches!(n.text, Cow::Borrowed(_)));
    }

    #[test]
    fn a_range_inside_one_expanded_character_maps_to_all_of_it() {
        // U+FB01 (the "fi" ligature) becomes two letters.
        let text = "a\u{FB01}b";
        let n = Normalized::new(text);
        assert_eq!(n.text, "afib");
        assert_eq!(n.original(1, 2), (1, 4));
        assert_eq!(n.original(2, 2), (1, 1));
    }
}
