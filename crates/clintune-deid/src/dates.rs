//! FHIR date handling: parsing, shifting by whole days, ages.
//!
//! A shift keeps the original precision (year, month, day, or date-time with
//! its offset), so intervals between a patient's events stay true.

use chrono::{Datelike, Duration, NaiveDate};

/// Precision of a FHIR date value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Year,
    Month,
    Day,
}

/// A parsed FHIR `date` / `dateTime` / `instant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirDate {
    date: NaiveDate,
    precision: Precision,
    /// Everything after the date (`T12:00:00-05:00`), kept verbatim.
    time_suffix: String,
}

impl FhirDate {
    /// Parses `YYYY`, `YYYY-MM`, `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ss…`.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        let year = digits(0..4)? as i32;
        let (date, precision, rest) = match b.len() {
            4 => (NaiveDate::from_ymd_opt(year, 7, 1)?, Precision::Year, 4),
            7 if b[4] == b'-' => (
                NaiveDate::from_ymd_opt(year, digits(5..7)?, 15)?,
                Precision::Month,
                7,
            ),
            n if n >= 10 && b[4] == b'-' && b[7] == b'-' => {
                let d = NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)?;
                (d, Precision::Day, 10)
            }
            _ => return None,
        };
        let time_suffix = s[rest..].to_string();
        if !time_suffix.is_empty() && !valid_time_suffix(&time_suffix) {
            return None;
        }
        Some(Self {
            date,
            precision,
            time_suffix,
        })
    }

    /// The calendar date (mid-period for year and month precision).
    pub fn date(&self) -> NaiveDate {
        self.date
    }

    /// Moves the date by `days`, keeping precision and time of day.
    pub fn shifted(&self, days: i64) -> Self {
        Self {
            date: self.date + Duration::days(days),
            ..self.clone()
        }
    }

    /// Renders in the original precision.
    pub fn render(&self) -> String {
        match self.precision {
            Precision::Year => format!("{:04}", self.date.year()),
            Precision::Month => format!("{:04}-{:02}", self.date.year(), self.date.month()),
            Precision::Day => format!("{}{}", self.date.format("%Y-%m-%d"), self.time_suffix),
        }
    }
}

fn valid_time_suffix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 6
        && b[0] == b'T'
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_digit() || b":.+-Z".contains(c))
}

/// Shifts a FHIR date string by `days`; `None` if it is not a FHIR date.
pub fn shift_fhir_date(s: &str, days: i64) -> Option<String> {
    FhirDate::parse(s).map(|d| d.shifted(days).render())
}

/// Whole years from `birth` to `at` (negative if `at` is before `birth`).
pub fn age_years(birth: NaiveDate, at: NaiveDate) -> i32 {
    let mut years = at.year() - birth.year();
    if (at.month(), at.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_keeps_precision_and_time() {
        assert_eq!(shift_fhir_date("2019-02-27", 3).unwrap(), "2019-03-02");
        assert_eq!(
            shift_fhir_date("1987-11-19T00:22:16.824-05:00", -30).unwrap(),
            "1987-10-20T00:22:16.824-05:00"
        );
        assert_eq!(shift_fhir_date("2019-12", 20).unwrap(), "2020-01");
        assert_eq!(shift_fhir_date("2019", 10).unwrap(), "2019");
        assert!(shift_fhir_date("yesterday", 1).is_none());
        assert!(shift_fhir_date("2019-13-01", 1).is_none());
        assert!(shift_fhir_date("2019-01-01Tjunk", 1).is_none());
    }

    #[test]
    fn intervals_survive_shifts() {
        let a = FhirDate::parse("2001-01-31").unwrap();
        let b = FhirDate::parse("2004-03-01").unwrap();
        let before = b.date() - a.date();
        let after = b.shifted(-200).date() - a.shifted(-200).date();
        assert_eq!(before, after);
    }

    #[test]
    fn ages() {
        let b = NaiveDate::from_ymd_opt(1930, 6, 15).unwrap();
        assert_eq!(
            age_years(b, NaiveDate::from_ymd_opt(2020, 6, 14).unwrap()),
            89
        );
        assert_eq!(
            age_years(b, NaiveDate::from_ymd_opt(2020, 6, 15).unwrap()),
            90
        );
    }
}
