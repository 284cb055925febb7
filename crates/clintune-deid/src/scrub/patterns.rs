//! Pattern detectors: dates, phones, identifiers, ages, ZIPs, emails, URLs, IPs.
//!
//! All patterns are alternatives of one byte regex, so each text is scanned
//! once; the alternative that matched picks the category, and a few checks
//! in code reject matches a regex cannot (impossible dates, quantities).

use super::{Category, Span};
use regex::bytes::{Captures, Regex};

const MONTH: &str = r"(?:jan(?:uary|\.)?|feb(?:ruary|\.)?|mar(?:ch|\.)?|apr(?:il|\.)?|may|june?|july?|aug(?:ust|\.)?|sep(?:t(?:ember)?|\.)?|oct(?:ober|\.)?|nov(?:ember|\.)?|dec(?:ember|\.)?)";

const STATES: &str = "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR";

/// Alternatives in priority order: at one position the first that matches wins.
/// Each is `(group name, category, pattern)`; a group named `*_n` inside an
/// alternative narrows the span to that part (the context words stay).
fn alternatives() -> Vec<(&'static str, Category, String)> {
    let m = MONTH;
    vec![
        ("email", Category::Email, r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}".into()),
        ("url", Category::Url, r#"(?i:\b(?:https?://|ftp://|www\.)[^\s<>"'()\[\]]+)"#.into()),
        ("ip", Category::Ip, r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b".into()),
        ("uuid", Category::Id, r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b".into()),
        ("ssn", Category::Id, r"\b[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}\b".into()),
        ("iso_date", Category::Date, r"\b(?:1[89]|20)[0-9]{2}-[01]?[0-9]-[0-3]?[0-9](?:[T ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?\b".into()),
        ("phone", Category::Phone, r"(?:\+?\b1[-. ]?)?(?:\([0-9]{3}\)\s?|\b[0-9]{3}(?:[-. /]|-\s))[0-9]{3}(?:[-. /]|-\s)[0-9]{4}\b(?:\s*(?i:x|ext\.?)\s*[0-9]{1,5}\b)?|\b[0-9]{3}\s[0-9]{7}\b".into()),
        ("md_range", Category::Date, r"\b(?:1[0-2]|0?[1-9])/(?:3[01]|[12][0-9]|0?[1-9])-(?:1[0-2]|0?[1-9])/(?:3[01]|[12][0-9]|0?[1-9])\b".into()),
        ("mdy", Category::Date, r"\b[0-3]?[0-9][/.-][0-3]?[0-9][/.-](?:[0-9]{4}|[0-9]{2})\b".into()),
        ("address", Category::Address, r"\b[0-9]{1,6}\s+(?:(?:[A-Z][a-z][A-Za-z'.-]*\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Drive|Dr|Lane|Ln|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq)|(?:[A-Z][A-Z'.-]+\s+){1,3}(?:STREET|AVENUE|ROAD|DRIVE|LANE|BOULEVARD|PARKWAY|HIGHWAY))\b\.?(?:,?\s+(?:Apt|APT|Apartment|Suite|Ste|Unit|#)\.?\s*[A-Za-z0-9-]+)?".into()),
        ("unit", Category::Address, r"\b(?:Apt|APT|Apartment|Suite|SUITE|Ste|Unit|UNIT)\.?\s*#?\s*[0-9][0-9A-Za-z-]*\b|(?i:\b(?:p\.?\s?o\.?\s*)?box\s+[0-9]+\b)|\b(?:PSC|CMR|Unit)\s+[0-9]+".into()),
        ("month_day", Category::Date, format!(r"(?i:\b{m}\s*[0-3]?[0-9](?:st|nd|rd|th)?\b(?:,?\s*(?:(?:1[89]|20)[0-9]{{2}}\b|'[0-9]{{2}}\b))?)")),
        ("day_month", Category::Date, format!(r"(?i:\b[0-3]?[0-9](?:st|nd|rd|th)?\s+(?:of\s+)?{m}(?:,?\s+(?:1[89]|20)[0-9]{{2}})?\b)")),
        ("month_alone", Category::Date, r"(?i:\b(?:in|since|during|until|till|by|early|late|mid|of)\s+(?P<month_alone_n>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?)".into()),
        ("month_year", Category::Date, format!(r"(?i:\b{m},?\s+(?:1[89]|20)[0-9]{{2}}\b)")),
        ("city_state", Category::Address, format!(r"\b[A-Z][a-z][A-Za-z'.-]*(?:[ ][A-Z][a-z][A-Za-z'.-]*){{0,2}},[ ]?(?:{STATES})\b(?:[ ]+[0-9]{{5}}(?:-[0-9]{{4}})?\b)?")),
        ("zip", Category::Zip, format!(r"(?:\b(?:{STATES}),?\s+|(?i:\bzip(?:\s*code)?:?\s*))(?P<zip_n>[0-9]{{5}}(?:-[0-9]{{4}})?)\b")),
        ("age", Category::Age, r"(?i:\b(?P<age_n>9[0-9]|1[0-2][0-9])\s*(?:-\s*)?(?:y/?o\b|y\.o\.?|yo\b|yrs?\b|years?\b|year-old|yr-old))".into()),
        ("age_ctx", Category::Age, r"(?i:\b(?:age|aged)\s*:?\s*(?P<age_ctx_n>9[0-9]|1[0-2][0-9])\b)".into()),
        ("phone_ctx", Category::Phone, r"(?i:(?:\b(?:pager|beeper|beep|page|pg|phone|tel|telephone|fax|cell|mobile|call|ext|extension)\b\.?\s*(?:#|no\.?|number|at|is|:)?\s*|\bx)(?P<phone_ctx_n>[0-9](?:-?[0-9]){2,14}))\b".into()),
        ("id_ctx", Category::Id, r"(?i:\b(?:mrn|mr#|medical\s+record(?:\s+number)?|acct|account|member\s+id|policy|ssn|social\s+security(?:\s+number)?|license|licence|npi|dea|unit\s+no|case|claim|plan|id)\b\s*(?:#|no\.?|number|:)?\s*:?\s*(?P<id_ctx_n>[a-z0-9]*[0-9][a-z0-9-]{2,}))".into()),
        ("university", Category::Location, r"(?:(?i:\b(?:university|univ)\s+of)|\bU\s+(?:of|OF))\s+[A-Za-z]+(?:\s+(?i:medical|med|hospital|hosp|center|ctr)\b)*".into()),
        ("event_year", Category::Year, r"(?i:\b(?:mi|nqwmi|semi|cabg|ptca|pci|avr|mvr|cva|tia|pe|dvt|chole|turp|tah|resection|surgery|dx|diagnosed|stent|appy)\s+(?P<event_year_n>[3-9][0-9])\b)".into()),
        ("apos_year_after", Category::Year, r"\b[3-9][0-9]'".into()),
        ("month_yy", Category::Date, r"\b(?:1[0-2]|0?[1-9])/(?:3[2-9]|[4-9][0-9])\b".into()),
        ("md", Category::Date, r"\b(?:1[0-2]|0?[1-9])/(?:3[01]|[12][0-9]|0?[1-9])\b".into()),
        ("year", Category::Year, r"\b(?:19[0-9]{2}|20[0-4][0-9])[sS]?\b".into()),
        ("apos_year", Category::Year, r"'[0-9]{2}\b".into()),
        ("long_number", Category::Id, r"\b[0-9]{7,}\b".into()),
        ("alnum_id", Category::Id, r"\b[A-Z]{1,3}[0-9]{5,}[A-Z]?\b".into()),
    ]
}

/// The compiled pattern set.
#[derive(Debug)]
pub struct Patterns {
    regex: Regex,
    groups: Vec<(&'static str, Category)>,
}

impl Default for Patterns {
    fn default() -> Self {
        Self::new()
    }
}

impl Patterns {
    /// Compiles the patterns. ASCII mode (`(?-u)`): word boundaries and
    /// classes are ASCII, which keeps the whole scan in the lazy DFA even on
    /// text with accented letters (Unicode `\b` would fall back to a slower
    /// engine there).
    pub fn new() -> Self {
        let alts = alternatives();
        let body: Vec<String> = alts
            .iter()
            .map(|(name, _, p)| format!("(?P<{name}>{p})"))
            .collect();
        let regex =
            Regex::new(&format!("(?-u){}", body.join("|"))).expect("built-in PHI patterns compile");
        let groups = alts.into_iter().map(|(n, c, _)| (n, c)).collect();
        Self { regex, groups }
    }

    /// Appends pattern spans found in `text`.
    ///
    /// A match rejected by [`accept`] does not hide the text it covered: the
    /// scan resumes one byte after its start, so another alternative (a
    /// dotted phone number after a rejected "cell 555") still gets its turn.
    pub fn find(&self, text: &str, spans: &mut Vec<Span>) {
        let bytes = text.as_bytes();
        let mut pos = 0;
        while pos < bytes.len() {
            let Some(caps) = self.regex.captures_at(bytes, pos) else {
                break;
            };
            let whole = caps.get(0).expect("group 0 always matches");
            let Some((name, category)) = self.groups.iter().find(|(n, _)| caps.name(n).is_some())
            else {
                break;
            };
            let (start, end) = narrowed(&caps, name);
            if accept(name, bytes, start, end) {
                spans.push(Span {
                    start,
                    end,
                    category: *category,
                    rule: name,
                });
                pos = whole.end().max(whole.start() + 1);
            } else {
                pos = whole.start() + 1;
            }
        }
    }
}

fn narrowed(caps: &Captures<'_>, name: &str) -> (usize, usize) {
    let inner = format!("{name}_n");
    let m = caps
        .name(&inner)
        .or_else(|| caps.name(name))
        .expect("matched group exists");
    (m.start(), m.end())
}

/// Rejects matches that the pattern alone cannot rule out.
fn accept(rule: &str, b: &[u8], start: usize, end: usize) -> bool {
    match rule {
        // 7/22 is a date; 1/2/3 parts, 120/80, 1/2 NS, CPAP 5/5 and 8/10 pain are not.
        "md" => md_is_date(b, start, end),
        "mdy" => {
            valid_mdy(&b[start..end])
                && !(preceded_by_decimal(b, start)
                    || continues_number(b, end)
                    || percent_after(b, end)
                    || word_before(b, start, NOT_DATE_BEFORE))
        }
        "year" => {
            !followed_by_unit(b, end)
                && !preceded_by_decimal(b, start)
                && !time_of_day(b, start, end)
        }
        "long_number" => !followed_by_unit(b, end) && !preceded_by_decimal(b, start),
        "md_range" => std::str::from_utf8(&b[start..end])
            .ok()
            .and_then(|s| s.split_once('-'))
            .is_some_and(|(x, y)| !fraction_like(x) && !fraction_like(y)),
        "apos_year_after" => !(end < b.len() && b[end].is_ascii_alphanumeric()),
        "event_year" | "month_yy" => {
            !(followed_by_unit(b, end) || continues_number(b, end) || percent_after(b, end))
        }
        "phone_ctx" => !continues_number(b, end),
        _ => true,
    }
}

/// `1/2`, `2/3`, `5/5`: fractions and ratios rather than dates.
fn fraction_like(s: &str) -> bool {
    match s
        .split_once('/')
        .map(|(m, d)| (m.parse::<u32>(), d.parse::<u32>()))
    {
        Some((Ok(m), Ok(d))) => (m < d && d <= 4) || m == d,
        _ => true,
    }
}

fn md_is_date(b: &[u8], start: usize, end: usize) -> bool {
    let before_slash = start >= 2 && b[start - 1] == b'/' && b[start - 2].is_ascii_digit();
    let before_decimal = start >= 1 && matches!(b[start - 1], b'.' | b',' | b'-');
    if before_slash || before_decimal || continues_number(b, end) || followed_by_unit(b, end) {
        return false;
    }
    let Some((m, d)) = std::str::from_utf8(&b[start..end])
        .ok()
        .and_then(|s| s.split_once('/'))
    else {
        return false;
    };
    let (Ok(m), Ok(d)) = (m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let fraction = m < d && d <= 4;
    !fraction
        && m != d
        && !word_before(b, start, NOT_DATE_BEFORE)
        && !word_after(b, end, NOT_DATE_AFTER)
}

/// Words before `n/n` that make it a setting or score, not a date.
const NOT_DATE_BEFORE: &[&str] = &[
    "cpap",
    "ps",
    "psv",
    "bipap",
    "peep",
    "flowby",
    "ipap",
    "epap",
    "vent",
    "ventilator",
    "strength",
    "pain",
    "scale",
    "ratio",
    "bp",
    "abg",
    "x",
];

/// Words after `n/n` that make it a fraction or score.
const NOT_DATE_AFTER: &[&str] = &[
    "ns", "way", "up", "strength", "of", "cp", "pain", "tab", "tabs", "tablet", "cup", "hour",
    "hr", "dose", "strength", "ratio", "pressure",
];

fn word_before(b: &[u8], start: usize, words: &[&str]) -> bool {
    let head = &b[..start];
    let end = head
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    let s = head[..end]
        .iter()
        .rposition(|c| !c.is_ascii_alphanumeric())
        .map_or(0, |p| p + 1);
    let w = head[s..end].to_ascii_lowercase();
    !w.is_empty() && words.iter().any(|x| x.as_bytes() == w.as_slice())
}

fn word_after(b: &[u8], end: usize, words: &[&str]) -> bool {
    let tail = &b[end..];
    let s = tail
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(tail.len());
    let e = tail[s..]
        .iter()
        .position(|c| !c.is_ascii_alphanumeric())
        .map_or(tail.len(), |p| s + p);
    let w = tail[s..e].to_ascii_lowercase();
    !w.is_empty() && words.iter().any(|x| x.as_bytes() == w.as_slice())
}

/// `1900` after "at" or in "0700-1900" is a time of day, not a year.
fn time_of_day(b: &[u8], start: usize, end: usize) -> bool {
    let in_range = (start >= 2 && b[start - 1] == b'-' && b[start - 2].is_ascii_digit())
        || (end + 1 < b.len() && b[end] == b'-' && b[end + 1].is_ascii_digit());
    in_range
        || word_before(
            b,
            start,
            &[
                "at",
                "til",
                "till",
                "until",
                "by",
                "around",
                "approx",
                "approximately",
            ],
        )
        || (start > 0 && b[start - 1] == b'@')
}

/// True when a number goes on past the match (`3/2.98`, `7.27-7.31`, `5/5/`).
fn continues_number(b: &[u8], end: usize) -> bool {
    end + 1 < b.len() && matches!(b[end], b'.' | b'/' | b'-') && b[end + 1].is_ascii_digit()
        || (end < b.len() && b[end] == b'/')
}

fn percent_after(b: &[u8], end: usize) -> bool {
    b.get(end) == Some(&b'%')
}

fn valid_mdy(s: &[u8]) -> bool {
    let seps: Vec<u8> = s
        .iter()
        .copied()
        .filter(|c| matches!(c, b'/' | b'-' | b'.'))
        .collect();
    if seps.len() != 2 || seps[0] != seps[1] {
        return false;
    }
    let parts: Vec<u32> = s
        .split(|c| matches!(c, b'/' | b'-' | b'.'))
        .filter_map(|p| std::str::from_utf8(p).ok()?.parse().ok())
        .collect();
    matches!(parts.as_slice(), [a, b, _] if (1..=12).contains(a) && (1..=31).contains(b) || (1..=31).contains(a) && (1..=12).contains(b))
}

fn preceded_by_decimal(b: &[u8], start: usize) -> bool {
    start >= 1 && matches!(b[start - 1], b'.' | b',' | b'$')
}

const UNITS: &[&str] = &[
    "mg", "mcg", "g", "kg", "ml", "cc", "l", "u", "units", "unit", "iu", "meq", "mmol", "cal",
    "kcal", "lb", "lbs", "mm", "cm", "gm", "%", "ng", "mg/dl", "x", "times", "hr", "hrs", "min",
    "mins",
];

fn followed_by_unit(b: &[u8], end: usize) -> bool {
    let rest = &b[end..b.len().min(end + 12)];
    let trimmed = rest.trim_ascii_start();
    let word: Vec<u8> = trimmed
        .iter()
        .take_while(|c| c.is_ascii_alphabetic() || **c == b'%' || **c == b'/')
        .map(u8::to_ascii_lowercase)
        .collect();
    !word.is_empty() && UNITS.iter().any(|u| u.as_bytes() == word.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(String, &'static str)> {
        let mut spans = Vec::new();
        Patterns::new().find(text, &mut spans);
        spans
            .iter()
            .map(|s| (text[s.start..s.end].to_string(), s.rule))
            .collect()
    }

    #[test]
    fn finds_common_phi_forms() {
        let text = "Seen 7/22 and 2019-03-04; call (555) 810-7203 or 555.810.7203, \
                    SSN 999-94-5397, mail a.b@example.org, see https://x.org/p?q=1 from 10.0.0.12. \
                    Born May 21, 1927, a 95 yo, lives at 12 Main Street, Boston, MA 02115. MRN: 12345678.";
        let f = found(text);
        for want in [
            "7/22",
            "2019-03-04",
            "(555) 810-7203",
            "555.810.7203",
            "999-94-5397",
            "a.b@example.org",
            "https://x.org/p?q=1",
            "10.0.0.12",
            "May 21, 1927",
            "95",
            "12 Main Street",
            "02115",
            "12345678",
        ] {
            assert!(
                f.iter().any(|(s, _)| s.contains(want)),
                "missing {want}: {f:?}"
            );
        }
    }

    #[test]
    fn rejects_quantities_and_fractions() {
        let f = found("BP 120/80, give 1/2/3 doses, 2000 units heparin, 1.5/2 ratio, age 58");
        assert!(f.is_empty(), "{f:?}");
    }
}
