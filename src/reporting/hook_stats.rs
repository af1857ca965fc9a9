//! Hook health counted on the ingest path without touching its critical path.
//!
//! The event hook handler only bumps in-process atomics ([`HookStats::record_delivery`],
//! [`HookStats::record_unavailable`]): no extra Redis round trip inside Okta's 3 s budget, and a
//! 503 caused by a Redis outage is still counted (a Redis write at that moment would fail too).
//! The report task flushes the atomics into the month's hook hash every few seconds with one
//! `HINCRBY` pipeline; a failed flush puts the numbers back and tries again. The cost: numbers
//! not yet flushed when a process is killed (at most one flush interval; a graceful shutdown
//! flushes), and events near midnight on the last day may land in the next month by the flush
//! delay.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::RedisConn;
use chrono::Utc;
use chrono_tz::Tz;
use redis::RedisResult;

use super::aggregate::{hook_field, LATENCY_BUCKETS_MS};
use super::month::ReportMonth;
use crate::store::Keys;

#[derive(Debug, Default)]
pub struct HookStats {
    received: AtomicU64,
    duplicates: AtomicU64,
    unavailable: AtomicU64,
    /// One per `LATENCY_BUCKETS_MS` entry, plus "more".
    latency: [AtomicU64; 14],
}

impl HookStats {
    /// A delivery whose events are durable: `events` received, `duplicates` of them dropped,
    /// stored in `write_ms`.
    pub fn record_delivery(&self, events: usize, duplicates: usize, write_ms: f64) {
        self.received.fetch_add(events as u64, Ordering::Relaxed);
        self.duplicates
            .fetch_add(duplicates as u64, Ordering::Relaxed);
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| write_ms <= *b as f64)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A delivery answered 503 (its `events` were not stored).
    pub fn record_unavailable(&self, events: usize) {
        self.received.fetch_add(events as u64, Ordering::Relaxed);
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes what was counted since the last flush into the current month's hook hash.
    pub async fn flush(&self, conn: &mut RedisConn, keys: &Keys, tz: Tz) -> RedisResult<()> {
        let take = |a: &AtomicU64| a.swap(0, Ordering::Relaxed);
        let mut taken: Vec<(String, &AtomicU64, u64)> = vec![
            (
                hook_field::RECEIVED.into(),
                &self.received,
                take(&self.received),
            ),
            (
                hook_field::DUPLICATES.into(),
                &self.duplicates,
                take(&self.duplicates),
            ),
            (
                hook_field::UNAVAILABLE.into(),
                &self.unavailable,
                take(&self.unavailable),
            ),
        ];
        for (i, a) in self.latency.iter().enumerate() {
            let label = LATENCY_BUCKETS_MS
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "inf".into());
            taken.push((format!("{}{label}", hook_field::INGEST_LATENCY), a, take(a)));
        }
        taken.retain(|(_, _, n)| *n > 0);
        if taken.is_empty() {
            return Ok(());
        }
        let key = keys.report_hooks(&ReportMonth::of(Utc::now(), tz).to_string());
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (field, _, n) in &taken {
            pipe.hincr(&key, field, *n).ignore();
        }
        let result = pipe.query_async::<()>(conn).await;
        if result.is_err() {
            // Not written (MULTI/EXEC is all or nothing): keep the numbers for the next flush.
            for (_, a, n) in &taken {
                a.fetch_add(*n, Ordering::Relaxed);
            }
        }
        result
    }
}
