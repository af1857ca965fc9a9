//! `ReportMonth`: a calendar month in the business time zone, parsed from `YYYY-MM`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// A calendar month, e.g. `2026-10`. Only [`ReportMonth::parse`] and the time conversions make
/// one, so a value is always a real month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReportMonth {
    year: i32,
    month: u32,
}

/// Why a string is not a month; the message is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a month: use YYYY-MM, e.g. 2026-10")]
pub struct InvalidMonth(pub String);

impl ReportMonth {
    pub fn parse(s: &str) -> Result<Self, InvalidMonth> {
        let bad = || InvalidMonth(s.chars().take(40).collect());
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let (year, month) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(1..=12).contains(&month) || year < 1970 {
            return Err(bad());
        }
        Ok(Self { year, month })
    }

    /// The month `at` falls in, on the calendar of `tz`.
    pub fn of(at: DateTime<Utc>, tz: Tz) -> Self {
        let local = at.with_timezone(&tz);
        Self {
            year: local.year(),
            month: local.month(),
        }
    }

    /// The month an RFC 3339 time falls in, on the calendar of `tz`.
    pub fn of_rfc3339(s: &str, tz: Tz) -> Option<Self> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Self::of(t.with_timezone(&Utc), tz))
    }

    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// When the month starts in `tz`, as a UTC instant (DST-safe: midnight on the 1st always
    /// exists in practice; if a zone skipped it, the earliest valid instant is used).
    pub fn start(self, tz: Tz) -> DateTime<Utc> {
        let midnight = NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .expect("a parsed month has a first day")
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists");
        tz.from_local_datetime(&midnight)
            .earliest()
            .unwrap_or_else(|| tz.from_utc_datetime(&midnight))
            .with_timezone(&Utc)
    }

    /// Days in the month.
    pub fn days(self) -> u32 {
        let first = NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid");
        let next = self.next();
        let next_first = NaiveDate::from_ymd_opt(next.year, next.month, 1).expect("valid");
        (next_first - first).num_days() as u32
    }

    /// `October 2026`.
    pub fn long_name(self) -> String {
        const NAMES: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        format!("{} {}", NAMES[self.month as usize - 1], self.year)
    }
}

impl fmt::Display for ReportMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_only_in_the_one_format() {
        assert_eq!(
            ReportMonth::parse("2026-10").unwrap().to_string(),
            "2026-10"
        );
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-10",
            "2026/10",
            "",
            "abcd-ef",
            "2026-10-01",
        ] {
            assert!(ReportMonth::parse(bad).is_err(), "{bad}");
        }
        assert!(ReportMonth::parse("2026-13")
            .unwrap_err()
            .to_string()
            .contains("YYYY-MM"));
    }

    #[test]
    fn the_business_time_zone_decides_the_month() {
        let t: DateTime<Utc> = "2026-10-31T23:30:00Z".parse().unwrap();
        assert_eq!(ReportMonth::of(t, chrono_tz::UTC).to_string(), "2026-10");
        assert_eq!(
            ReportMonth::of(t, chrono_tz::Europe::Berlin).to_string(),
            "2026-11"
        );
        assert_eq!(
            ReportMonth::of(t, chrono_tz::America::New_York).to_string(),
            "2026-10"
        );
    }

    #[test]
    fn neighbours_wrap_around_the_year() {
        let jan = ReportMonth::parse("2027-01").unwrap();
        assert_eq!(jan.previous().to_string(), "2026-12");
        assert_eq!(jan.previous().next(), jan);
        assert_eq!(ReportMonth::parse("2028-02").unwrap().days(), 29);
        let start = ReportMonth::parse("2026-11")
            .unwrap()
            .start(chrono_tz::Europe::Berlin);
        assert_eq!(start.to_rfc3339(), "2026-10-31T23:00:00+00:00");
    }
}
