//! System Log backfill: win back the events Okta's event hook dropped.
//!
//! Okta retries a failed delivery once, then gives up; the events stay in its System Log. A
//! round reads `GET /api/v1/logs` in the polling form (no `until`, ascending, `limit` ≤ 1000)
//! and follows the `next` link Okta returns; it never builds `since`/`until` pages itself (Okta
//! orders by when it recorded an event, so hand-made time windows skip late ones). Each page goes
//! through the same ingest step as a hook delivery ([`Ingestor::prepare`] + [`Ingestor::write`]):
//! an event already in the streams is a duplicate that changes nothing, one the hook missed is
//! written once. So a `new` count above zero is a hole the hooks left.
//!
//! - continuous (`backfill.enabled`): every `interval_secs` one replica (a lease in Redis) polls
//!   from the stored watermark — the last `next` link, saved after its page was written;
//! - on demand (`okta-adapter backfill --since …`, `POST /api/v1/backfill`): from a time, until
//!   the log is caught up, without touching the watermark.
//!
//! Requests go through the shared rate scheduler (bucket `logs`, learned from Okta's headers) in
//! the bulk lane, so interactive actions keep their reserve. `event_hook.delivery` events with
//! outcome FAILURE (Okta gave up on a delivery) are counted.

use std::sync::Arc;
use std::time::Duration;

use crate::store::RedisConn;
use chrono::{DateTime, SecondsFormat, Utc};
use metrics::counter;
use redis::AsyncCommands;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::config::BackfillSettings;
use crate::fanout::{EventOutcome, Ingestor};
use crate::okta::client::{OktaClient, OktaError};
use crate::okta::rate::Lane;
use crate::store::Keys;

/// Okta's record of a delivery it gave up on.
pub const HOOK_DELIVERY_EVENT: &str = "event_hook.delivery";

/// What one round did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct BackfillReport {
    /// System Log pages read.
    pub pages: u64,
    /// Events read.
    pub events: u64,
    /// Events that were not in the streams: holes the event hook left, now filled.
    pub new: u64,
    /// Events already in the streams (delivered by the hook).
    pub present: u64,
    /// `event_hook.delivery` events with outcome FAILURE (written too; not counted in `new`).
    pub hook_delivery_failures: u64,
    /// Events the adapter cannot read (no uuid, …), skipped.
    pub unreadable: u64,
    /// Where the next round continues (path and query of Okta's `next` link).
    pub next: Option<String>,
}

/// Where a round starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// The stored watermark (or `initial_lookback_mins` back when there is none); saved as it
    /// advances.
    Watermark,
    /// A time, for an on-demand run; the watermark is neither read nor written.
    Since(DateTime<Utc>),
    /// A `next` path an earlier on-demand round returned; the watermark is not touched.
    Next(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("Okta System Log request failed: {0}")]
    Okta(#[from] OktaError),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the System Log page is not a JSON array of events: {0}")]
    BadPage(String),
    #[error("Okta's next link points elsewhere than okta.org_url: {0}")]
    ForeignLink(String),
}

/// Polls the System Log into the streams.
#[derive(Clone)]
pub struct Backfill {
    okta: OktaClient,
    keys: Keys,
    settings: BackfillSettings,
    /// The monthly report's time zone: which month's hook health a won-back event counts in.
    report_tz: chrono_tz::Tz,
}

impl Backfill {
    pub fn new(okta: OktaClient, keys: Keys, settings: BackfillSettings) -> Self {
        Self {
            okta,
            keys,
            settings,
            report_tz: chrono_tz::UTC,
        }
    }

    /// The monthly report's time zone (`report.timezone`; UTC when not set), so the events
    /// won back count in the hook health of the month the report gives them.
    pub fn with_report_timezone(mut self, tz: chrono_tz::Tz) -> Self {
        self.report_tz = tz;
        self
    }

    /// One round: pages until the log is caught up (a short page) or `max_pages_per_round`.
    pub async fn round(
        &self,
        ingestor: &Ingestor,
        conn: &mut RedisConn,
        start: Start,
    ) -> Result<BackfillReport, BackfillError> {
        let limit = self.settings.page_limit;
        let since_path = |since: DateTime<Utc>| {
            format!(
                "/api/v1/logs?since={}&sortOrder=ASCENDING&limit={limit}",
                since.to_rfc3339_opts(SecondsFormat::Millis, true)
            )
        };
        let keep_watermark = matches!(start, Start::Watermark);
        let mut path = match start {
            Start::Since(since) => since_path(since),
            Start::Next(next) => next,
            Start::Watermark => {
                let stored: Option<String> = conn.get(self.keys.backfill_watermark()).await?;
                stored.unwrap_or_else(|| {
                    let mins = self.settings.initial_lookback_mins as i64;
                    since_path(Utc::now() - chrono::Duration::minutes(mins))
                })
            }
        };
        let mut report = BackfillReport::default();
        for _ in 0..self.settings.max_pages_per_round {
            let (text, headers) = self
                .okta
                .call_raw(Lane::Bulk, reqwest::Method::GET, &path, None)
                .await?;
            let page: Vec<Box<RawValue>> =
                serde_json::from_str(&text).map_err(|e| BackfillError::BadPage(e.to_string()))?;
            report.pages += 1;
            report.events += page.len() as u64;
            self.ingest_page(ingestor, conn, &page, &mut report).await?;
            let next = next_link(&headers)
                .map(|url| {
                    self.okta
                        .relative_path(&url)
                        .ok_or(BackfillError::ForeignLink(url))
                })
                .transpose()?;
            if let (true, Some(next)) = (keep_watermark, &next) {
                // Saved only after the page is in the streams: a crash re-reads it (duplicates).
                let _: () = conn.set(self.keys.backfill_watermark(), next).await?;
            }
            report.next = next.clone();
            match next {
                Some(next) if page.len() as u32 >= limit => path = next,
                _ => break, // caught up (polling: the next link is for the next round)
            }
        }
        counter!("okta_adapter_backfill_pages_total").increment(report.pages);
        Ok(report)
    }

    async fn ingest_page(
        &self,
        ingestor: &Ingestor,
        conn: &mut RedisConn,
        page: &[Box<RawValue>],
        report: &mut BackfillReport,
    ) -> Result<(), BackfillError> {
        if page.is_empty() {
            return Ok(());
        }
        // Each event on its own if the page as a whole does not parse, so one odd event does
        // not block the rest.
        let whole = delivery_body(page.iter().map(|e| e.get()));
        let bodies: Vec<Vec<u8>> = match ingestor.prepare(&whole) {
            Ok(_) => vec![whole],
            Err(_) => page
                .iter()
                .map(|e| delivery_body(std::iter::once(e.get())))
                .collect(),
        };
        let received = Utc::now();
        for body in &bodies {
            let events = match ingestor.prepare(body) {
                Ok(events) => events,
                Err(e) => {
                    report.unreadable += 1;
                    counter!("okta_adapter_backfill_events_total", "outcome" => "unreadable")
                        .increment(1);
                    tracing::warn!(reason = %e, "System Log event skipped");
                    continue;
                }
            };
            let outcomes = ingestor.write(conn, &events, received).await?;
            let mut won_back: Vec<&str> = Vec::new();
            for (e, outcome) in events.iter().zip(outcomes) {
                if e.event_type == HOOK_DELIVERY_EVENT {
                    if e.outcome == "FAILURE" {
                        report.hook_delivery_failures += 1;
                        counter!("okta_adapter_event_hook_delivery_failures_total").increment(1);
                    }
                    continue;
                }
                let label = match outcome {
                    EventOutcome::Written => {
                        report.new += 1;
                        won_back.push(&e.published);
                        "new"
                    }
                    EventOutcome::Duplicate => {
                        report.present += 1;
                        "present"
                    }
                };
                counter!("okta_adapter_backfill_events_total", "outcome" => label).increment(1);
            }
            // A hole the hooks missed: also in the monthly report's hook health, per hour.
            crate::reporting::hook_backfill::record_backfilled(
                conn,
                &self.keys,
                self.report_tz,
                &won_back,
                received,
            )
            .await?;
        }
        Ok(())
    }

    /// Continuous backfill until cancelled: one round every `interval_secs`, by one replica at a
    /// time (a lease in Redis). `owner` holds the ingestor (`ingestor` picks it out).
    pub async fn run<S: Send + Sync + 'static>(
        self,
        owner: Arc<S>,
        ingestor: fn(&S) -> &Ingestor,
        mut conn: RedisConn,
        cancel: CancellationToken,
    ) {
        let every = Duration::from_secs(self.settings.interval_secs);
        let me = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        loop {
            let leased: redis::RedisResult<bool> = redis::cmd("SET")
                .arg(self.keys.backfill_lease())
                .arg(&me)
                .arg("NX")
                .arg("PX")
                .arg(every.as_millis() as u64)
                .query_async::<Option<String>>(&mut conn)
                .await
                .map(|r| r.is_some());
            if let Ok(true) = leased {
                match self
                    .round(ingestor(&owner), &mut conn, Start::Watermark)
                    .await
                {
                    Ok(r) if r.new > 0 => tracing::warn!(
                        new = r.new,
                        present = r.present,
                        "System Log backfill wrote events the event hook had missed"
                    ),
                    Ok(r) => tracing::debug!(events = r.events, "System Log backfill round"),
                    Err(e) => {
                        counter!("okta_adapter_backfill_failures_total").increment(1);
                        tracing::warn!(error = %e, "System Log backfill round failed");
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// A delivery envelope around raw events, so backfill uses the hook's own parser.
fn delivery_body<'a>(events: impl Iterator<Item = &'a str>) -> Vec<u8> {
    let mut body = br#"{"eventType":"com.okta.event_hook","data":{"events":["#.to_vec();
    for (i, e) in events.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e.as_bytes());
    }
    body.extend_from_slice(b"]}}");
    body
}

/// The `rel="next"` target of the `Link` headers (Okta sends `self` and `next` as separate
/// headers or in one, comma-separated).
pub fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (url, params) = part.split_once(';')?;
            let is_next = params
                .split(';')
                .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
            is_next.then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, LINK};

    #[test]
    fn the_next_link_is_found_in_either_header_form() {
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            HeaderValue::from_static("<https://o.okta.com/api/v1/logs?limit=2>; rel=\"self\""),
        );
        h.append(
            LINK,
            HeaderValue::from_static(
                "<https://o.okta.com/api/v1/logs?limit=2&after=1_2>; rel=\"next\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://o.okta.com/api/v1/logs?limit=2&after=1_2")
        );
        let mut one = HeaderMap::new();
        one.insert(
            LINK,
            HeaderValue::from_static(
                "<https://a/x?s=1>; rel=\"self\", <https://a/x?after=9>; rel=\"next\"",
            ),
        );
        assert_eq!(next_link(&one).as_deref(), Some("https://a/x?after=9"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn raw_events_are_wrapped_unchanged() {
        let body = delivery_body([r#"{"a": 1}"#, r#"{"b":2}"#].into_iter());
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"eventType":"com.okta.event_hook","data":{"events":[{"a": 1},{"b":2}]}}"#
        );
    }
}
