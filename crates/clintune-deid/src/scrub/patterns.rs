//! Pattern detectors: dates, phones, identifiers, ages, ZIPs, emails, URLs, IPs.
//!
//! All patterns are alternatives of one byte regex, so each text is scanned
//! once; the alternative that matched picks the category, and a few checks
//! in code reject matches a regex cannot (impossible dates, quantities).

use super::{Category, Rule, Span};
use regex::bytes::{Captures, Regex};

const MONTH: &str = r"(?:jan(?:uary|\.)?|feb(?:ruary|\.)?|mar(?:ch|\.)?|apr(?:il|\.)?|may|june?|july?|aug(?:ust|\.)?|sep(?:t(?:ember)?|\.)?|oct(?:ober|\.)?|nov(?:ember|\.)?|dec(?:ember|\.)?)";

const STATES: &str = "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR";

/// Alternatives in priority order: at one position the first that matches wins.
/// Each is `(group name, category, pattern)`; a group named `*_n` inside an
/// alternative narrows the span to that part (the context words stay).
fn alternatives() -> Vec<(Rule, Category, String)> {
    let m = MONTH;
    vec![
        (Rule::Email, Category::Email, r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}".into()),
        (Rule::EmailSpelled, Category::Email, r"(?i:\b[a-z0-9._%+-]+\s*(?:\(at\)|\[at\]|\bat\b)\s*[a-z0-9-]+(?:\s*(?:\(dot\)|\[dot\]|\bdot\b|\.)\s*[a-z0-9-]+)*?\s*(?:\(dot\)|\[dot\]|\bdot\b)\s*(?:com|org|net|edu|gov|mil|info|biz|io|us|uk|ca)\b)".into()),
        (Rule::Url, Category::Url, r#"(?i:\b(?:https?://|ftp://|www\.)[^\s<>"'()\[\]]+)"#.into()),
        (Rule::Ip, Category::Ip, r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b".into()),
        (Rule::Ipv6, Category::Ip, r"(?i:\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?:\b[0-9a-f]{1,4}:){2,6}:(?:[0-9a-f]{1,4}\b(?::[0-9a-f]{1,4}\b){0,5})?|(?:\b[0-9a-f]{1,4})?::(?:[0-9a-f]{1,4}:){1,6}[0-9a-f]{1,4}\b)".into()),
        (Rule::Uuid, Category::Id, r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b".into()),
        (Rule::Ssn, Category::Id, r"\b[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}\b".into()),
        (Rule::IsoDate, Category::Date, r"\b(?:1[89]|20)[0-9]{2}-[01]?[0-9]-[0-3]?[0-9](?:[T ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?\b".into()),
        (Rule::YmdSlash, Category::Date, r"\b(?:1[89]|20)[0-9]{2}/(?:1[0-2]|0?[1-9])/(?:3[01]|[12][0-9]|0?[1-9])\b".into()),
        (Rule::DayMonYear, Category::Date, format!(r"(?i:\b[0-3]?[0-9][-/]?{m}[-/]?(?:(?:1[89]|20)[0-9]{{2}}|[0-9]{{2}})\b)")),
        (Rule::Phone, Category::Phone, r"(?:\+?\b1[-. ]?)?(?:\([0-9]{3}\)\s?|\b[0-9]{3}(?:[-. /]|-\s))[0-9]{3}(?:[-. /]|-\s)[0-9]{4}\b(?:\s*(?i:x|ext\.?)\s*[0-9]{1,5}\b)?|\b[0-9]{3}\s[0-9]{7}\b".into()),
        (Rule::PhoneLocal, Category::Phone, r"\b[2-9][0-9]{2}-[0-9]{4}\b".into()),
        (Rule::MdRange, Category::Date, r"\b(?:1[0-2]|0?[1-9])/(?:3[01]|[12][0-9]|0?[1-9])-(?:1[0-2]|0?[1-9])/(?:3[01]|[12][0-9]|0?[1-9])\b".into()),
        // Also glued to the word before it, with slashes only ("labs on10/14/82").
        (Rule::Mdy, Category::Date, r"\b[0-3]?[0-9][/.-][0-3]?[0-9][/.-](?:[0-9]{4}|[0-9]{2})\b|[A-Za-z]{2}(?P<mdy_n>[01]?[0-9]/[0-3]?[0-9]/(?:[0-9]{4}|[0-9]{2}))\b".into()),
        (Rule::Address, Category::Address, r"\b[0-9]{1,6}\s+(?:(?:[A-Z][a-z][A-Za-z'.-]*\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Drive|Dr|Lane|Ln|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq)|(?:[A-Z][A-Z'.-]+\s+){1,3}(?:STREET|AVENUE|ROAD|DRIVE|LANE|BOULEVARD|PARKWAY|HIGHWAY)|(?i:(?:[a-z][a-z'.-]*\s+){1,3}(?:street|avenue|road|drive|lane|boulevard|court|terrace|circle|parkway|highway)))\b\.?(?:,?\s+(?:Apt|APT|Apartment|Suite|Ste|Unit|#)\.?\s*[A-Za-z0-9-]+)?".into()),
        (Rule::Unit, Category::Address, r"\b(?:Apt|APT|Apartment|Suite|SUITE|Ste|Unit|UNIT)\.?\s*#?\s*[0-9][0-9A-Za-z-]*\b|(?i:\b(?:p\.?\s?o\.?\s*)?box\s+[0-9]+\b)|\b(?:PSC|CMR|Unit)\s+[0-9]+".into()),
        (Rule::MonthDay, Category::Date, format!(r"(?i:\b{m}\s*[0-3]?[0-9](?:st|nd|rd|th)?\b(?:,?\s*(?:(?:1[89]|20)[0-9]{{2}}\b|'[0-9]{{2}}\b))?)")),
        (Rule::DayMonth, Category::Date, format!(r"(?i:\b[0-3]?[0-9](?:st|nd|rd|th)?\s+(?:of\s+)?{m}(?:,?\s+(?:1[89]|20)[0-9]{{2}})?\b)")),
        (Rule::MonthAlone, Category::Date, r"(?i:\b(?:in|since|during|until|till|by|early|late|mid|of)\s+(?P<month_alone_n>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?)".into()),
        (Rule::SpokenDate, Category::Date, spoken_date()),
        (Rule::MonthYear, Category::Date, format!(r"(?i:\b{m},?\s+(?:1[89]|20)[0-9]{{2}}\b)")),
        (Rule::CityState, Category::Address, format!(r"\b[A-Z][a-z][A-Za-z'.-]*(?:[ ][A-Z][a-z][A-Za-z'.-]*){{0,2}},[ ]?(?:{STATES})\b(?:[ ]+[0-9]{{5}}(?:-[0-9]{{4}})?\b)?")),
        (Rule::Zip, Category::Zip, format!(r"(?:\b(?:{STATES}),?\s+|(?i:\bzip(?:\s*code)?:?\s*))(?P<zip_n>[0-9]{{5}}(?:-[0-9]{{4}})?)\b")),
        (Rule::Age, Category::Age, r"(?i:\b(?P<age_n>9[0-9]|1[0-2][0-9])\s*(?:-\s*)?(?:y/?o\b|y\.o\.?|yo\b|yrs?\b|years?\b|year-old|yr-old))".into()),
        (Rule::AgeWords, Category::Age, format!(r"(?i:\b(?:aged\s+)?(?P<age_words_n>(?:ninety|one\s+hundred(?:\s+and)?)(?:[- ](?:{UNITS_WORDS}))?)[- ]+(?:years?|yrs?|y/?o)\b)")),
        (Rule::AgeSex, Category::Age, r"(?m:(?:^|[.:;(]\s*|\b(?i:a|an|pt|patient|is|this)\s+)(?P<age_sex_n>9[0-9]|1[0-2][0-9])\s?[MF]\b)".into()),
        (Rule::AgeCtx, Category::Age, r"(?i:\b(?:age|aged)\s*:?\s*(?P<age_ctx_n>9[0-9]|1[0-2][0-9])\b)".into()),
        (Rule::PhoneCtx, Category::Phone, r"(?i:(?:\b(?:pager|beeper|beep|page|pg|phone|tel|telephone|fax|cell|mobile|call|ext|extension)\b\.?\s*(?:#|no\.?|number|at|is|:)?\s*|\bx)(?P<phone_ctx_n>[0-9](?:[-.]?[0-9]){2,14}(?:[ ][0-9]{3,4}){0,2}))\b".into()),
        (Rule::IdCtx, Category::Id, r"(?i:\b(?:mrn|mr#|medical\s+record(?:\s+number)?|acct|account|member\s+id|policy|ssn|social\s+security(?:\s+number)?|license|licence|npi|dea|unit\s+no|case|claim|plan|id|serial(?:\s+number)?|s/n|device\s+id|udi|certificate)\b\s*(?:#|no\.?|number|:)?\s*:?\s*(?P<id_ctx_n>[a-z0-9]*[0-9][a-z0-9-]{2,}(?:[ ][0-9]{2,}[0-9-]*)*))".into()),
        (Rule::Plate, Category::Id, r"(?i:\b(?:licen[cs]e\s+)?plate\b\s*(?:#|no\.?|number|:)?\s*:?\s*(?P<plate_n>[a-z0-9]{2,4}[- ]?[a-z0-9]{2,5}))\b".into()),
        (Rule::University, Category::Location, r"(?:(?:(?i:\b(?:university|univ)\s+of)|\bU\s+(?:of|OF))\s+[A-Za-z]+|\bU\s+[A-Z][a-z]{3,})(?:\s+(?i:medical|med|hospital|hosp|center|ctr)\b)*".into()),
        (Rule::EventYear, Category::Year, r"(?i:\b(?:mi|nqwmi|semi|cabg|ptca|pci|avr|mvr|cva|tia|pe|dvt|chole|turp|tah|resection|surgery|dx|diagnosed|stent|appy)\s+(?P<event_year_n>[3-9][0-9])\b)".into()),
        (Rule::AposYearAfter, Category::Year, r"\b[3-9][0-9]'".into()),
        (Rule::MonthYy, Category::Date, r"\b(?:1[0-2]|0?[1-9])/(?:3[2-9]|[4-9][0-9])\b".into()),
        (Rule::Md, Category::Date, r"\b(?:1[0-2]|0?[1-9])/(?:3[01]|[12][0-9]|0?[1-9])\b".into()),
        (Rule::Year, Category::Year, r"\b(?:19[0-9]{2}|20[0-4][0-9])[sS]?\b".into()),
        (Rule::AposYear, Category::Year, r"'[0-9]{2}\b".into()),
        (Rule::LongNumber, Category::Id, r"\b[0-9]{7,}\b".into()),
        (Rule::AlnumId, Category::Id, r"\b[A-Z]{1,3}[0-9]{5,}[A-Z]?\b".into()),
    ]
}

/// Number words after "ninety" or "one hundred" in an age ("ninety-seven").
const UNITS_WORDS: &str = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen";

/// A date spoken in words, as speech-to-text writes it: "march fourteenth",
/// "the fourteenth of march", "march the 14th", with an optional spoken year
/// ("nineteen fifty", "two thousand and three").
fn spoken_date() -> String {
    let month =
        "january|february|march|april|may|june|july|august|september|october|november|december";
    let ord = "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth";
    let day = format!(r"(?:(?:twenty|thirty)[- ](?:{ord})|{ord}|[0-3]?[0-9](?:st|nd|rd|th))");
    let tens = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety";
    let year = format!(
        r"(?:,?\s+(?:nineteen|twenty|two\s+thousand(?:\s+and)?)(?:[- ](?:{tens}|{UNITS_WORDS}|oh))*)?"
    );
    format!(
        r"(?i:\b(?:(?:{month})\s+(?:the\s+)?{day}|(?:the\s+)?{day}\s+of\s+(?:{month})){year}\b)"
    )
}

/// The compiled pattern set.
#[derive(Debug)]
pub struct Patterns {
    regex: Regex,
    groups: Vec<(Rule, Category)>,
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
            .map(|(rule, _, p)| format!("(?P<{rule}>{p})"))
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
            let Some((rule, category)) = self
                .groups
                .iter()
                .find(|(r, _)| caps.name(r.as_str()).is_some())
            else {
                break;
            };
            let (start, end) = narrowed(&caps, *rule);
            if accept(*rule, bytes, start, end) {
                spans.push(Span {
                    start,
                    end,
                    category: *category,
                    rule: *rule,
                });
                pos = whole.end().max(whole.start() + 1);
            } else {
                pos = whole.start() + 1;
            }
        }
    }
}

fn narrowed(caps: &Captures<'_>, rule: Rule) -> (usize, usize) {
    let inner = format!("{rule}_n");
    let m = caps
        .name(&inner)
        .or_else(|| caps.name(rule.as_str()))
        .expect("matched group exists");
    (m.start(), m.end())
}

/// Rejects matches that the pattern alone cannot rule out.
fn accept(rule: Rule, b: &[u8], start: usize, end: usize) -> bool {
    match rule {
        // 7/22 is a date; 1/2/3 parts, 120/80, 1/2 NS, CPAP 5/5 and 8/10 pain are not.
        Rule::Md => md_is_date(b, start, end),
        Rule::Mdy => {
            valid_mdy(&b[start..end])
                && !(preceded_by_decimal(b, start)
                    || continues_number(b, end)
                    || percent_after(b, end)
                    || word_before(b, start, NOT_DATE_BEFORE))
        }
        Rule::Year => {
            !followed_by_unit(b, end)
                && !preceded_by_decimal(b, start)
                && !time_of_day(b, start, end)
        }
        Rule::LongNumber => !followed_by_unit(b, end) && !preceded_by_decimal(b, start),
        Rule::MdRange => std::str::from_utf8(&b[start..end])
            .ok()
            .and_then(|s| s.split_once('-'))
            .is_some_and(|(x, y)| !fraction_like(x) && !fraction_like(y)),
        Rule::AposYearAfter => !(end < b.len() && b[end].is_ascii_alphanumeric()),
        Rule::EventYear | Rule::MonthYy => {
            !(followed_by_unit(b, end)
                || continues_number(b, end)
                || percent_after(b, end)
                || after_slash_number(b, start))
        }
        Rule::PhoneCtx => !continues_number(b, end) && !followed_by_unit(b, end),
        Rule::PhoneLocal => {
            !(preceded_by_decimal(b, start)
                || time_range(&b[start..end])
                || continues_number(b, end)
                || followed_by_unit(b, end)
                || (start >= 1 && matches!(b[start - 1], b'-' | b'/')))
        }
        Rule::Plate => b[start..end].iter().any(u8::is_ascii_digit),
        Rule::Ipv6 => b[start..end].iter().filter(|c| **c == b':').count() >= 2,
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

/// `84/41/7.54/10/36`: the match continues a chain of slashed numbers.
fn after_slash_number(b: &[u8], start: usize) -> bool {
    start >= 2 && b[start - 1] == b'/' && b[start - 2].is_ascii_digit()
}

fn md_is_date(b: &[u8], start: usize, end: usize) -> bool {
    let before_decimal = start >= 1 && matches!(b[start - 1], b'.' | b',' | b'-');
    if after_slash_number(b, start)
        || before_decimal
        || continues_number(b, end)
        || followed_by_unit(b, end)
    {
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
    // "pain 9/10", "c/o CP, 5/10": a score out of ten after a pain word.
    let pain_score = d == 10 && words_shortly_before(b, start, PAIN_WORDS);
    !fraction
        && !pain_score
        && m != d
        && !word_before(b, start, NOT_DATE_BEFORE)
        && !words_shortly_before(b, start, VENT_MODES)
        && !word_after(b, end, NOT_DATE_AFTER)
        && !word_after(b, end, VENT_MODES)
}

/// Ventilator modes whose settings are written `n/n` ("bipap 10/5",
/// "on 10/5 bipap", "IPS 10/5 PEEP").
const VENT_MODES: &[&str] = &[
    "cpap", "ps", "psv", "ips", "bipap", "pap", "peep", "ipap", "epap",
];

/// Words that make a following `n/10` a pain score.
const PAIN_WORDS: &[&str] = &[
    "pain",
    "cp",
    "discomfort",
    "ha",
    "headache",
    "rates",
    "rated",
];

/// How many words back [`words_shortly_before`] looks ("bipap overnight 10/5",
/// "c/o pain #9/10"); further back the word is about something else ("wean
/// from vent and extubate 3/11").
const SHORTLY: usize = 2;

/// One of `words` among the [`SHORTLY`] words before `start`, punctuation
/// skipped ("PAIN #9/10", "CP, 5/10"); stops at a sentence end.
fn words_shortly_before(b: &[u8], start: usize, words: &[&str]) -> bool {
    let mut end = start;
    for _ in 0..SHORTLY {
        let gap = b[..end]
            .iter()
            .rposition(u8::is_ascii_alphanumeric)
            .map_or(0, |p| p + 1);
        if b[gap..end]
            .iter()
            .any(|&c| matches!(c, b'.' | b'\n' | b';'))
        {
            return false;
        }
        let s = b[..gap]
            .iter()
            .rposition(|c| !c.is_ascii_alphanumeric())
            .map_or(0, |p| p + 1);
        if s == gap {
            return false;
        }
        let w = b[s..gap].to_ascii_lowercase();
        if words.iter().any(|x| x.as_bytes() == w.as_slice()) {
            return true;
        }
        end = s;
    }
    false
}

/// Words before `n/n` that make it a setting or score, not a date.
const NOT_DATE_BEFORE: &[&str] = &[
    "flowby",
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
                "aprox",
                "due",
                "ck",
            ],
        )
        || b[..start].trim_ascii_end().ends_with(b"@")
        || after_date(&b[..start])
}

/// True when `head` ends with a numeric date and a comma or space:
/// `10/22/03, 1900` is the time of that day.
fn after_date(head: &[u8]) -> bool {
    let head = head.trim_ascii_end();
    let head = head.strip_suffix(b",").unwrap_or(head);
    let tail_start = head
        .iter()
        .rposition(|c| !(c.is_ascii_digit() || *c == b'/'))
        .map_or(0, |p| p + 1);
    let tail = &head[tail_start..];
    tail.iter().filter(|c| **c == b'/').count() >= 1 && tail.last().is_some_and(u8::is_ascii_digit)
}

/// `900-1300`: two clock times on the quarter hour, not a local phone
/// number (`555-0126`).
fn time_range(s: &[u8]) -> bool {
    let clock = |p: &[u8]| {
        std::str::from_utf8(p)
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|v| v / 100 < 24 && v % 15 == 0 && v % 100 < 60)
    };
    s.split(|c| *c == b'-').all(clock)
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

/// Units of measure: a number before one is a quantity.
pub(super) const UNITS: &[&str] = &[
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

    fn found(text: &str) -> Vec<(String, Rule)> {
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
    fn finds_whole_numbers_and_other_date_and_age_forms() {
        let cases = [
            ("phone 617 555 0199 today", "617 555 0199"),
            ("ssn 123 45 6789.", "123 45 6789"),
            ("MRN 8844 2211 on file", "8844 2211"),
            ("reach him at 555-0199 tonight", "555-0199"),
            ("pager 4-1234", "4-1234"),
            ("call x4512 with results", "4512"),
            ("born 14-Mar-1950", "14-Mar-1950"),
            ("born 1950/03/14", "1950/03/14"),
            ("born 14MAR1950", "14MAR1950"),
            (
                "she was born march fourteenth nineteen fifty",
                "march fourteenth nineteen fifty",
            ),
            ("on the twenty-first of june", "the twenty-first of june"),
            ("a 97M with CHF", "97"),
            ("ninety-seven year old man", "ninety-seven"),
            ("aged one hundred and two years", "one hundred and two"),
            ("from 2001:db8::8a2e:370:7334 at", "2001:db8::8a2e:370:7334"),
            ("license plate 7XYZ123 seen", "7XYZ123"),
            ("am labs on10/14/82 pending", "10/14/82"),
        ];
        for (text, want) in cases {
            let f = found(text);
            assert!(
                f.iter().any(|(s, _)| s == want),
                "{text:?}: want {want:?}, found {f:?}"
            );
        }
    }

    #[test]
    fn leaves_temperatures_times_and_doses() {
        let f = found("T 99F, temp 97 F at 10:30, lopressor 25 mg, 120-1500 cc, 1.5-2.0");
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn ventilator_settings_and_pain_scores_are_not_dates() {
        for text in [
            "On bi-pap 10/5 with ABG",
            "ON BIPAP OVERNIGHT 10/5 FIO2 65%",
            "ABG ON 10/5 BIPAP",
            "VENT: .40/IPS 10/5 PEEP",
            "C/O INCISIONAL PAIN #9/10.",
            "pt c/o CP, 5/10, ECG done",
            "ABG 84/41/7.54/10/36",
            "ON AC 700X15/5/40%. ABG",
            "on psv5/5/40% w/ sats 95",
        ] {
            let f = found(text);
            assert!(f.is_empty(), "{text}: {f:?}");
        }
        // A date a few words after a vent word, or a pain word before a day
        // that is not out of ten, stays a date.
        for (text, date) in [
            ("wean from vent and extubate 3/11.", "3/11"),
            ("chest pain since 5/12", "5/12"),
            ("pain. Seen 5/10 in clinic", "5/10"),
        ] {
            let f: Vec<String> = found(text).into_iter().map(|(s, _)| s).collect();
            assert_eq!(f, [date], "{text}");
        }
    }

    #[test]
    fn rejects_quantities_and_fractions() {
        let f = found("BP 120/80, give 1/2/3 doses, 2000 units heparin, 1.5/2 ratio, age 58");
        assert!(f.is_empty(), "{f:?}");
    }
}
