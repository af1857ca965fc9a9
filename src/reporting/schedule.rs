//! When a month is due: the cron expression (UTC) and the business month it reports on.
//!
//! tokio-cron-scheduler fires the job, but the job itself only wakes the delivery loop, which
//! asks [`due_month`] what should have been sent by now. The same question is asked at start
//! and every `report.check_interval_secs`, so a run missed while every replica was down is
//! caught up, and a month whose sending failed is tried again — and the send-once record makes
//! asking often harmless. Schedules are evaluated in UTC on purpose: tokio-cron-scheduler's
//! `_tz` jobs freeze the zone's UTC offset when created, which drifts by an hour across DST.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::month::ReportMonth;

/// The cron parser lives with the config that reads `report.schedule`.
pub use crate::config::values::parse_cron;

/// The month that should have been sent by `now`: the month before the current business month
/// once the schedule has fired since that month began (in UTC), else the month before that.
pub fn due_month(cron: &Cron, tz: Tz, now: DateTime<Utc>) -> ReportMonth {
    let current = ReportMonth::of(now, tz);
    let fired_this_month = cron
        .find_next_occurrence(&current.start(tz), true)
        .is_ok_and(|fire| fire <= now);
    if fired_this_month {
        current.previous()
    } else {
        current.previous().previous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn only_six_field_expressions_are_accepted() {
        assert!(parse_cron("0 0 6 1 * *").is_ok());
        assert!(parse_cron("0 6 1 * *").unwrap_err().contains("6 fields"));
        assert!(parse_cron("0 0 25 1 * *").is_err());
    }

    #[test]
    fn the_previous_month_is_due_once_the_first_of_the_month_run_has_passed() {
        let cron = parse_cron("0 0 6 1 * *").unwrap();
        let utc = chrono_tz::UTC;
        assert_eq!(
            due_month(&cron, utc, at("2026-11-01T05:59:59Z")).to_string(),
            "2026-09"
        );
        assert_eq!(
            due_month(&cron, utc, at("2026-11-01T06:00:00Z")).to_string(),
            "2026-10"
        );
        assert_eq!(
            due_month(&cron, utc, at("2026-11-24T07:00:00Z")).to_string(),
            "2026-10"
        );
        assert_eq!(
            due_month(&cron, utc, at("2027-01-02T00:00:00Z")).to_string(),
            "2026-12"
        );
    }

    #[test]
    fn the_business_month_comes_from_the_time_zone() {
        let cron = parse_cron("0 0 6 1 * *").unwrap();
        let ny = chrono_tz::America::New_York;
        // 1 Nov 06:00 UTC is already November in Berlin and in New York (02:00 there).
        assert_eq!(
            due_month(&cron, chrono_tz::Europe::Berlin, at("2026-11-01T06:00:01Z")).to_string(),
            "2026-10"
        );
        assert_eq!(
            due_month(&cron, ny, at("2026-11-01T06:00:01Z")).to_string(),
            "2026-10"
        );
        // At 03:00 UTC it is still 31 Oct in New York: October's own run has passed, so the
        // month due is September.
        assert_eq!(
            due_month(&cron, ny, at("2026-11-01T03:00:00Z")).to_string(),
            "2026-09"
        );
    }
}
