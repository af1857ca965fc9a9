//! `backfill --since TIME`: after an outage, run everything Okta logged since TIME through the
//! ingest step (see [`crate::backfill`]); events the hook missed are written once.

use std::path::PathBuf;

use super::tool::{load_for_tool, tool_connection};
use crate::backfill::{Backfill, Start};
use crate::fanout::Ingestor;
use crate::okta::client::OktaClient;
use crate::store::Keys;
use crate::telemetry;

pub async fn run(config: Option<PathBuf>, since: &str) -> anyhow::Result<()> {
    let since = parse_since(since)?;
    let settings = load_for_tool(config)?;
    telemetry::init_logs(&settings.log);
    let conn = tool_connection(&settings).await?;
    let keys = Keys::new(settings.redis.prefix.clone());
    let okta = OktaClient::new(&settings.okta, keys.clone(), conn.clone()).ok_or_else(|| {
        anyhow::anyhow!("Okta is not configured: set okta.org_url and credentials (okta.api_token)")
    })?;
    let ingestor = Ingestor::new(&settings);
    let backfill = Backfill::new(okta, keys, settings.backfill.clone())
        .with_report_timezone(settings.report_timezone());
    let mut conn = conn;
    let mut total = crate::backfill::BackfillReport::default();
    let mut start = Start::Since(since);
    // Round after round (each bounded by backfill.max_pages_per_round) until caught up.
    loop {
        let r = backfill.round(&ingestor, &mut conn, start).await?;
        total.pages += r.pages;
        total.events += r.events;
        total.new += r.new;
        total.present += r.present;
        total.hook_delivery_failures += r.hook_delivery_failures;
        total.unreadable += r.unreadable;
        let caught_up = r.pages < u64::from(settings.backfill.max_pages_per_round);
        match (&r.next, caught_up) {
            (Some(next), false) => start = Start::Next(next.clone()),
            _ => break,
        }
    }
    println!("{}", serde_json::to_string_pretty(&total)?);
    eprintln!(
        "backfill since {since}: {} events read, {} new (missed by the event hook), {} already present, {} failed hook deliveries in the log",
        total.events, total.new, total.present, total.hook_delivery_failures
    );
    Ok(())
}

/// `2026-12-01T00:00Z`, `2026-12-01T00:00:00Z`, with an offset, or a date (`2026-12-01`).
fn parse_since(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = s.trim_end_matches('Z');
    if let Ok(t) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    anyhow::bail!("--since: `{s}` is not a time like 2026-12-01T00:00Z (UTC) or 2026-12-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_the_documented_forms() {
        let t = |s| parse_since(s).unwrap().to_rfc3339();
        assert_eq!(t("2026-12-01T00:00Z"), "2026-12-01T00:00:00+00:00");
        assert_eq!(t("2026-12-01T10:30:00+01:00"), "2026-12-01T09:30:00+00:00");
        assert_eq!(t("2026-12-01"), "2026-12-01T00:00:00+00:00");
        assert!(parse_since("yesterday").is_err());
    }
}
