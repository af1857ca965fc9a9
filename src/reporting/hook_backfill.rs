//! Hook health: the events System Log backfill won back (issue 16).
//!
//! An event backfill writes as new is one the event hook never delivered: a hole. Each round
//! adds them to the hook-health hash of the report month of each event's `published` time
//! (business time zone), as a month total (`backfilled`) and per UTC hour of `published`
//! (`backfilled:h:2026-12-07T15`). One `MULTI`/`EXEC` of `HINCRBY`s; every key carries the
//! `{events}` tag, so it stays on one cluster slot. Duplicates are never counted, so a repeated
//! round adds nothing. Not atomic with the ingest write: a crash between the two leaves those
//! events written but not counted here (the `okta_adapter_backfill_events_total` metric still
//! saw them).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use redis::RedisResult;

use super::aggregate::hook_field;
use super::month::ReportMonth;
use crate::store::{Keys, RedisConn};

/// The hash field of the UTC hour of `at`.
pub fn hour_field(at: DateTime<Utc>) -> String {
    format!(
        "{}{}",
        hook_field::BACKFILLED_HOUR,
        at.format("%Y-%m-%dT%H")
    )
}

/// Adds events backfill wrote as new (by their `published` times) to the months' hook health.
/// An unreadable `published` counts at `fallback` (the round's time).
pub async fn record_backfilled(
    conn: &mut RedisConn,
    keys: &Keys,
    tz: Tz,
    published: &[&str],
    fallback: DateTime<Utc>,
) -> RedisResult<()> {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for p in published {
        let at = DateTime::parse_from_rfc3339(p)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(fallback);
        let key = keys.report_hooks(&ReportMonth::of(at, tz).to_string());
        *counts.entry((key.clone(), hour_field(at))).or_default() += 1;
        *counts
            .entry((key, hook_field::BACKFILLED.to_string()))
            .or_default() += 1;
    }
    if counts.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for ((key, field), n) in &counts {
        pipe.hincr(key, field, *n).ignore();
    }
    pipe.query_async::<()>(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hour_field_is_the_utc_hour() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T15:59:59.999+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(hour_field(at), "backfilled:h:2026-12-07T14");
    }
}
