//! Dates written in free text: parsed, shifted, and written back in the same style.

use super::Rule;
use chrono::{Datelike, Duration, NaiveDate};

/// Month names, January first.
pub(crate) const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// A date found in text, with what is needed to write it back the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextDate {
    /// The calendar date (year 2001 stands in when the text gives none).
    pub date: NaiveDate,
    has_year: bool,
    has_day: bool,
    style: Style,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Style {
    /// `2019-03-04`, with whatever follows (a time) kept.
    Iso { suffix: String, padded: bool },
    /// `3/4/2019`, `03-04-19`, `4/3` (no year).
    Numeric {
        sep: char,
        padded: bool,
        two_digit_year: bool,
        day_first: bool,
    },
    /// `March 4, 2019`, `4th of Mar`, `Mar. 2019`, `MARCH 4 '19`.
    Words { template: Vec<Piece> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Month { full: bool, dot: bool, case: Case },
    Day { ordinal: bool, upper: bool },
    MonthNumber,
    Year { two_digit: bool, apostrophe: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Upper,
    Lower,
    Title,
}

impl TextDate {
    /// Parses the text of a date span found by the rule `rule`.
    pub fn parse(s: &str, rule: Rule) -> Option<Self> {
        match rule {
            Rule::IsoDate => parse_iso(s),
            Rule::Mdy | Rule::Md => parse_numeric(s),
            Rule::MonthYy => parse_month_year(s),
            Rule::MonthDay | Rule::DayMonth | Rule::MonthYear | Rule::MonthAlone => parse_words(s),
            _ => None,
        }
    }

    /// The same date moved by `days`, rendered in the original style.
    pub fn shifted(&self, days: i64) -> String {
        let d = self.date + Duration::days(days);
        match &self.style {
            Style::Iso { suffix, padded } => {
                if *padded {
                    format!("{}{suffix}", d.format("%Y-%m-%d"))
                } else {
                    format!("{}-{}-{}{suffix}", d.year(), d.month(), d.day())
                }
            }
            Style::Numeric {
                sep,
                padded,
                two_digit_year,
                day_first,
            } => {
                let (a, b) = if *day_first {
                    (d.day(), d.month())
                } else {
                    (d.month(), d.day())
                };
                let mut out = if *padded {
                    format!("{a:02}{sep}{b:02}")
                } else {
                    format!("{a}{sep}{b}")
                };
                if self.has_year {
                    if *two_digit_year {
                        out.push_str(&format!("{sep}{:02}", d.year() % 100));
                    } else {
                        out.push_str(&format!("{sep}{}", d.year()));
                    }
                }
                out
            }
            Style::Words { template } => template.iter().map(|p| render_piece(p, d)).collect(),
        }
    }

    /// True when the text gave year, month and day.
    pub fn is_complete(&self) -> bool {
        self.has_year && self.has_day
    }
}

fn render_piece(p: &Piece, d: NaiveDate) -> String {
    match p {
        Piece::Lit(s) => s.clone(),
        Piece::Month { full, dot, case } => {
            let name = MONTHS[d.month0() as usize];
            let mut m = if *full {
                name.to_string()
            } else {
                name[..3].to_string()
            };
            m = match case {
                Case::Upper => m.to_uppercase(),
                Case::Lower => m,
                Case::Title => m[..1].to_uppercase() + &m[1..],
            };
            if *dot && !*full {
                m.push('.');
            }
            m
        }
        Piece::MonthNumber => d.month().to_string(),
        Piece::Day { ordinal, upper } => {
            let day = d.day();
            if *ordinal {
                let suffix = match (day % 10, day) {
                    (_, 11..=13) => "th",
                    (1, _) => "st",
                    (2, _) => "nd",
                    (3, _) => "rd",
                    _ => "th",
                };
                let suffix = if *upper {
                    suffix.to_uppercase()
                } else {
                    suffix.to_string()
                };
                format!("{day}{suffix}")
            } else {
                day.to_string()
            }
        }
        Piece::Year {
            two_digit,
            apostrophe,
        } => {
            let y = if *two_digit {
                format!("{:02}", d.year() % 100)
            } else {
                d.year().to_string()
            };
            if *apostrophe { format!("'{y}") } else { y }
        }
    }
}

fn expand_year(y: u32, digits: usize) -> i32 {
    if digits == 2 {
        if y <= 30 {
            2000 + y as i32
        } else {
            1900 + y as i32
        }
    } else {
        y as i32
    }
}

fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

fn parse_iso(s: &str) -> Option<TextDate> {
    let date_len = s.find(['T', ' ']).unwrap_or(s.len());
    let parts: Vec<&str> = s[..date_len].split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    let date = ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    Some(TextDate {
        date,
        has_year: true,
        has_day: true,
        style: Style::Iso {
            suffix: s[date_len..].to_string(),
            padded: m.len() == 2 && d.len() == 2,
        },
    })
}

fn parse_numeric(s: &str) -> Option<TextDate> {
    let sep = s.chars().find(|c| matches!(c, '/' | '-' | '.'))?;
    let parts: Vec<&str> = s.split(sep).collect();
    let nums: Vec<u32> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let padded = parts[0].len() == 2 && parts[1].len() == 2;
    let (year, has_year, two_digit_year) = match parts.get(2) {
        Some(y) => (expand_year(nums[2], y.len()), true, y.len() == 2),
        None => (2001, false, false),
    };
    let (month, day, day_first) = if nums[0] > 12 {
        (nums[1], nums[0], true)
    } else {
        (nums[0], nums[1], false)
    };
    let date = ymd(year, month, day).or_else(|| {
        if has_year {
            None
        } else {
            ymd(2000, month, day)
        }
    })?;
    Some(TextDate {
        date,
        has_year,
        has_day: true,
        style: Style::Numeric {
            sep,
            padded,
            two_digit_year,
            day_first,
        },
    })
}

/// `8/87`: month and two-digit year.
fn parse_month_year(s: &str) -> Option<TextDate> {
    let (m, y) = s.split_once('/')?;
    let date = ymd(expand_year(y.parse().ok()?, 2), m.parse().ok()?, 15)?;
    let template = vec![
        Piece::MonthNumber,
        Piece::Lit("/".into()),
        Piece::Year {
            two_digit: true,
            apostrophe: false,
        },
    ];
    Some(TextDate {
        date,
        has_year: true,
        has_day: false,
        style: Style::Words { template },
    })
}

fn case_of(word: &str) -> Case {
    if word.chars().all(|c| !c.is_ascii_lowercase()) {
        Case::Upper
    } else if word.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
        Case::Title
    } else {
        Case::Lower
    }
}

fn parse_words(s: &str) -> Option<TextDate> {
    let mut template = Vec::new();
    let (mut month, mut day, mut year) = (None, None, None);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if b[i].is_ascii_alphabetic() {
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word = &s[start..i];
            let lower = word.to_ascii_lowercase();
            if let Some(idx) = MONTHS.iter().position(|m| {
                m.starts_with(&lower[..lower.len().min(3)])
                    && lower.len() >= 3
                    && m.starts_with(lower.as_str())
            }) {
                let dot = b.get(i) == Some(&b'.');
                if dot {
                    i += 1;
                }
                month = Some(idx as u32 + 1);
                template.push(Piece::Month {
                    full: (lower.len() > 3 && lower != "sept") || lower == "may",
                    dot,
                    case: case_of(word),
                });
            } else {
                template.push(Piece::Lit(word.to_string()));
            }
        } else if b[i].is_ascii_digit()
            || (b[i] == b'\'' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let apostrophe = b[i] == b'\'';
            if apostrophe {
                i += 1;
            }
            let num_start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[num_start..i];
            let n: u32 = digits.parse().ok()?;
            let ordinal_end = if s[i..].len() >= 2
                && ["st", "nd", "rd", "th"].contains(&s[i..i + 2].to_ascii_lowercase().as_str())
            {
                i + 2
            } else {
                i
            };
            if apostrophe || digits.len() == 4 {
                year = Some(expand_year(n, digits.len()));
                template.push(Piece::Year {
                    two_digit: digits.len() == 2,
                    apostrophe,
                });
            } else {
                day = Some(n);
                template.push(Piece::Day {
                    ordinal: ordinal_end > i,
                    upper: s[i..ordinal_end].chars().any(|c| c.is_ascii_uppercase()),
                });
                i = ordinal_end;
            }
        } else {
            while i < b.len() && !b[i].is_ascii_alphanumeric() && b[i] != b'\'' {
                i += 1;
            }
            if i == start {
                i += 1;
            }
            template.push(Piece::Lit(s[start..i].to_string()));
        }
    }
    let month = month?;
    let has_year = year.is_some();
    let has_day = day.is_some();
    let y = year.unwrap_or(2001);
    let date = ymd(y, month, day.unwrap_or(15)).or_else(|| {
        if has_year {
            None
        } else {
            ymd(2000, month, day.unwrap_or(15))
        }
    })?;
    Some(TextDate {
        date,
        has_year,
        has_day,
        style: Style::Words { template },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shift(s: &str, rule: &str, days: i64) -> String {
        TextDate::parse(s, Rule::from_name(rule).unwrap())
            .unwrap()
            .shifted(days)
    }

    #[test]
    fn keeps_style() {
        assert_eq!(shift("2019-03-04", "iso_date", 1), "2019-03-05");
        assert_eq!(
            shift("2019-03-04T10:00", "iso_date", -4),
            "2019-02-28T10:00"
        );
        assert_eq!(shift("05/21/1927", "mdy", 11), "06/01/1927");
        assert_eq!(shift("9/13/92", "mdy", 20), "10/3/92");
        assert_eq!(shift("7/22", "md", 10), "8/1");
        assert_eq!(shift("May 21, 1927", "month_day", 11), "June 1, 1927");
        assert_eq!(shift("MAR. 3", "month_day", 1), "MAR. 4");
        assert_eq!(
            shift("21st of May 1927", "day_month", 1),
            "22nd of May 1927"
        );
        assert_eq!(shift("Sept 8, 1971", "month_day", 30), "Oct 8, 1971");
        assert_eq!(shift("December 2020", "month_year", 30), "January 2021");
        assert_eq!(shift("8/87", "month_yy", 30), "9/87");
        assert_eq!(shift("sept.", "month_alone", 30), "oct.");
    }
}
