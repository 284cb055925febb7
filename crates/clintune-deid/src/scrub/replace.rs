//! Replacing detected spans: shifted dates, surrogate names, category tags.

use super::dictionary::Dictionaries;
use super::known::KnownMatcher;
use super::textdate::TextDate;
use super::{Category, Rule, Span, Tally};
use crate::policy::Replacement;
use crate::pseudonym::Pseudonymizer;
use chrono::{Datelike, NaiveDate};

/// What replacement needs to know about the patient whose text this is.
#[derive(Debug, Clone)]
pub struct ScrubContext<'a> {
    /// The patient's own identifiers, if known.
    pub known: Option<&'a KnownMatcher>,
    /// The patient's date shift in days.
    pub shift_days: i64,
    /// The patient's pseudonymous key (surrogates are consistent per patient).
    pub patient_key: &'a str,
    /// Keyed choices of surrogates.
    pub pseudonymizer: &'a Pseudonymizer,
    /// How names are replaced.
    pub names: Replacement,
    /// How dates are replaced.
    pub dates: Replacement,
    /// The patient's birth date, when the patient is at or over the age cap:
    /// written anywhere, it is removed rather than shifted.
    pub capped_birth_date: Option<NaiveDate>,
    /// Birth dates (a date after "DOB", "born", "birth") in or before this
    /// year reveal an age over the cap and are removed.
    pub dob_cutoff_year: Option<i32>,
}

/// Builds the scrubbed text from `text` and its merged, ordered spans.
pub fn apply(
    text: &str,
    spans: &[Span],
    ctx: &ScrubContext<'_>,
    dicts: &Dictionaries,
    tally: &mut Tally,
) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut pos = 0;
    for span in spans {
        let (start, end) = char_bounds(text, span.start, span.end);
        if start < pos {
            continue;
        }
        out.push_str(&text[pos..start]);
        let original = &text[start..end];
        let before = &text[floor_char(text, start.saturating_sub(16))..start];
        out.push_str(&replacement(original, before, span, ctx, dicts));
        tally.add(span.category, span.rule);
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// True when the text just before a date announces a birth date.
fn after_birth_cue(before: &str) -> bool {
    let b = before.to_ascii_lowercase();
    ["dob", "d.o.b", "born", "birth"]
        .iter()
        .any(|cue| b.contains(cue))
}

fn char_bounds(text: &str, mut start: usize, mut end: usize) -> (usize, usize) {
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    (start, end.min(text.len()))
}

fn replacement(
    original: &str,
    text_before: &str,
    span: &Span,
    ctx: &ScrubContext<'_>,
    dicts: &Dictionaries,
) -> String {
    match span.category {
        Category::Name => match ctx.names {
            Replacement::Tag => "[NAME]".into(),
            Replacement::Surrogate => surrogate_name(original, ctx, dicts),
        },
        Category::Date => shifted_date(original, span.rule, ctx, after_birth_cue(text_before))
            .unwrap_or_else(|| "[DATE]".into()),
        Category::Year => shifted_year(original, ctx).unwrap_or_else(|| "[YEAR]".into()),
        Category::Age => "90+".into(),
        Category::Address => "[ADDRESS]".into(),
        Category::Location => "[LOCATION]".into(),
        Category::Zip => "[ZIP]".into(),
        Category::Phone => "[PHONE]".into(),
        Category::Email => "[EMAIL]".into(),
        Category::Url => "[URL]".into(),
        Category::Ip => "[IP]".into(),
        Category::Id => "[ID]".into(),
        Category::Unknown => "[REDACTED]".into(),
    }
}

fn surrogate_name(original: &str, ctx: &ScrubContext<'_>, dicts: &Dictionaries) -> String {
    let letters = original.trim_end_matches(|c: char| c.is_ascii_digit());
    let key = letters.to_lowercase();
    let is_first =
        dicts.first_names.contains(key.as_str()) && !dicts.surnames.contains(key.as_str());
    let list = if is_first {
        &dicts.surrogate_first
    } else {
        &dicts.surrogate_last
    };
    if list.is_empty() {
        return "[NAME]".into();
    }
    let idx = ctx
        .pseudonymizer
        .surrogate_index(ctx.patient_key, "name", &key, list.len());
    let name = &list[idx];
    if letters.chars().all(|c| !c.is_lowercase()) && letters.len() > 1 {
        name.to_uppercase()
    } else if letters.chars().next().is_some_and(char::is_lowercase) {
        name.to_lowercase()
    } else {
        name.to_string()
    }
}

fn shifted_date(
    original: &str,
    rule: Rule,
    ctx: &ScrubContext<'_>,
    birth_cue: bool,
) -> Option<String> {
    if ctx.dates == Replacement::Tag {
        return None;
    }
    if rule == Rule::MdRange {
        let (a, b) = original.split_once('-')?;
        let a = shifted_date(a, Rule::Md, ctx, false)?;
        let b = shifted_date(b, Rule::Md, ctx, false)?;
        return Some(format!("{a}-{b}"));
    }
    let d = TextDate::parse(original, rule)?;
    if birth_cue && d.is_complete() && ctx.dob_cutoff_year.is_some_and(|y| d.date.year() <= y) {
        return None;
    }
    if let Some(birth) = ctx.capped_birth_date
        && (d.date == birth
            || (!d.is_complete() && d.date.month() == birth.month() && d.date.day() == birth.day()))
    {
        return None;
    }
    Some(d.shifted(ctx.shift_days))
}

fn shifted_year(original: &str, ctx: &ScrubContext<'_>) -> Option<String> {
    if ctx.dates == Replacement::Tag {
        return None;
    }
    let digits: String = original.chars().filter(char::is_ascii_digit).collect();
    let y: i32 = digits.parse().ok()?;
    let (year, two_digit) = if digits.len() == 2 {
        (if y <= 30 { 2000 + y } else { 1900 + y }, true)
    } else {
        (y, false)
    };
    if ctx.capped_birth_date.is_some_and(|b| b.year() == year) {
        return None;
    }
    let mid = NaiveDate::from_ymd_opt(year, 7, 1)?;
    let shifted = (mid + chrono::Duration::days(ctx.shift_days)).year();
    let decade = original.ends_with(['s', 'S']);
    Some(match (two_digit, original.starts_with('\''), decade) {
        (true, true, _) => format!("'{:02}", shifted % 100),
        (true, false, _) => format!("{:02}", shifted % 100),
        (false, _, true) => format!("{}s", shifted / 10 * 10),
        _ => shifted.to_string(),
    })
}
