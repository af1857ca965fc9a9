//! The aggregation consumer: one consumer group (`report.group`) on three streams — the firehose,
//! the inline-hook decision stream and the bulk-job row stream.
//!
//! Each round reads new entries of all three (`XREADGROUP … BLOCK`, on a connection whose
//! timeout exceeds the block time), turns them into ops (pure) and hands each stream's batch to
//! `count.lua`, which acknowledges and counts every entry in one atomic step (see
//! [`super::aggregate`]). There is no separate `XACK`, so there is no window in which an entry is
//! counted but not acknowledged. Entries left pending by a dead replica are taken over with
//! `XAUTOCLAIM`; an entry that cannot be read counts for nothing and is acknowledged (so, unlike
//! the projection, nothing here can be poison). `NOGROUP` re-creates the group from `0`.

use std::time::{Duration, Instant};

use chrono_tz::Tz;
use metrics::counter;
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;

use super::aggregate::{
    contributions_for_decision, contributions_for_event, contributions_for_job_row, entry_id_ms,
    parse_decision, AckGate, Counter, Op,
};
use crate::config::{RedisSettings, ReportSettings};
use crate::projection::consumer::ENTRIES_PER_YIELD;
use crate::store::{ensure_group, Keys};

/// Which stream an entry came from decides how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Firehose,
    Decisions,
    JobRows,
}

pub struct AggregationConsumer {
    keys: Keys,
    tz: Tz,
    settings: ReportSettings,
    name: String,
    counter: Counter,
}

impl AggregationConsumer {
    pub fn new(keys: Keys, settings: ReportSettings, tz: Tz) -> Self {
        let name = if settings.consumer.is_empty() {
            crate::projection::consumer::default_consumer_name()
        } else {
            settings.consumer.clone()
        };
        Self {
            keys,
            tz,
            settings,
            name,
            counter: Counter::new(),
        }
    }

    /// The streams this consumer reads, with how to read each.
    fn streams(&self) -> [(String, Source); 3] {
        [
            (self.keys.firehose(), Source::Firehose),
            (self.keys.inline_decisions(), Source::Decisions),
            (self.keys.job_rows(), Source::JobRows),
        ]
    }

    /// Creates the group on every stream (and the streams) unless present.
    pub async fn ensure_groups(&self, conn: &mut ConnectionManager) -> RedisResult<()> {
        for (stream, _) in self.streams() {
            ensure_group(conn, &stream, &self.settings.group).await?;
        }
        Ok(())
    }

    /// Runs until cancelled; Redis errors are logged and retried with a back-off.
    pub async fn run(self, redis: RedisSettings, cancel: CancellationToken) {
        let Some(mut conn) = crate::projection::consumer::connect_until_cancelled(
            &redis,
            self.settings.block_ms,
            "report aggregation",
            &cancel,
        )
        .await
        else {
            return;
        };
        let claim_every = Duration::from_millis(self.settings.claim_idle_ms.clamp(100, 10_000));
        let mut last_claim = Instant::now() - claim_every;
        let mut backoff = Duration::from_millis(100);
        let mut groups_ready = false;
        tracing::info!(consumer = %self.name, group = %self.settings.group, "report aggregation started");
        while !cancel.is_cancelled() {
            let result = async {
                if !groups_ready {
                    self.ensure_groups(&mut conn).await?;
                    groups_ready = true;
                }
                if last_claim.elapsed() >= claim_every {
                    last_claim = Instant::now();
                    self.reclaim(&mut conn).await?;
                }
                self.read_and_count(&mut conn).await
            }
            .await;
            match result {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) if e.code() == Some("NOGROUP") => {
                    tracing::warn!("report group missing (Redis lost it); re-creating from 0");
                    groups_ready = false;
                }
                Err(e) => {
                    counter!("okta_adapter_redis_errors_total", "op" => "report-aggregation")
                        .increment(1);
                    tracing::warn!(error = %e, "report aggregation round failed; entries stay pending");
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!(consumer = %self.name, "report aggregation stopped");
    }

    /// Reads new entries of the three streams and counts them; returns how many were counted.
    pub async fn read_and_count(&self, conn: &mut ConnectionManager) -> RedisResult<u64> {
        let streams = self.streams();
        let names: Vec<&str> = streams.iter().map(|(s, _)| s.as_str()).collect();
        let opts = StreamReadOptions::default()
            .group(&self.settings.group, &self.name)
            .count(self.settings.batch)
            .block(self.settings.block_ms as usize);
        let reply: Option<StreamReadReply> =
            conn.xread_options(&names, &[">", ">", ">"], &opts).await?;
        let mut counted = 0;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            if let Some((stream, source)) = streams.iter().find(|(s, _)| *s == key.key) {
                counted += self.count(conn, stream, *source, &key.ids).await?;
            }
        }
        Ok(counted)
    }

    /// Takes over entries idle longer than `claim_idle_ms` and counts them.
    pub async fn reclaim(&self, conn: &mut ConnectionManager) -> RedisResult<u64> {
        let mut counted = 0;
        for (stream, source) in self.streams() {
            let mut start = "0-0".to_string();
            loop {
                let reply: redis::streams::StreamAutoClaimReply = conn
                    .xautoclaim_options(
                        &stream,
                        &self.settings.group,
                        &self.name,
                        self.settings.claim_idle_ms,
                        &start,
                        StreamAutoClaimOptions::default().count(self.settings.batch),
                    )
                    .await?;
                counted += self.count(conn, &stream, source, &reply.claimed).await?;
                if reply.next_stream_id == "0-0" {
                    break;
                }
                start = reply.next_stream_id;
            }
        }
        Ok(counted)
    }

    async fn count(
        &self,
        conn: &mut ConnectionManager,
        stream: &str,
        source: Source,
        entries: &[StreamId],
    ) -> RedisResult<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut batch: Vec<(String, Vec<Op>)> = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            // Let the event hook requests on this worker thread run (see ENTRIES_PER_YIELD).
            if i % ENTRIES_PER_YIELD == ENTRIES_PER_YIELD - 1 {
                tokio::task::yield_now().await;
            }
            batch.push((e.id.clone(), self.ops_for(source, e)));
        }
        let gate = AckGate {
            stream,
            group: &self.settings.group,
        };
        let counted = self.counter.apply(conn, Some(gate), &batch).await?;
        counter!("okta_adapter_report_entries_counted_total").increment(counted);
        Ok(counted)
    }

    fn ops_for(&self, source: Source, entry: &StreamId) -> Vec<Op> {
        let fields = crate::projection::consumer::entry_fields(entry);
        match source {
            Source::Firehose => contributions_for_event(&self.keys, self.tz, &fields),
            Source::Decisions => parse_decision(&fields, entry_id_ms(&entry.id))
                .map(|d| contributions_for_decision(&self.keys, self.tz, &d))
                .unwrap_or_default(),
            Source::JobRows => {
                contributions_for_job_row(&self.keys, self.tz, &fields, entry_id_ms(&entry.id))
            }
        }
    }
}

/// Host name for consumer and instance names.
pub use crate::projection::consumer::hostname;
