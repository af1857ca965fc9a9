//! The aggregation consumer: one consumer group (`report.group`) on three streams — the firehose,
//! the inline-hook decision stream and the bulk-job row stream.
//!
//! It runs on the shared [`GroupConsumer`](crate::store::consumer::GroupConsumer) (connect,
//! reclaim, `NOGROUP`, back-off). Each round's entries of each stream are turned into ops (pure) and hands each stream's batch to
//! `count.lua`, which acknowledges and counts every entry in one atomic step (see
//! [`super::aggregate`]). There is no separate `XACK`, so there is no window in which an entry is
//! counted but not acknowledged. An entry that cannot be read counts for nothing and is acknowledged (so, unlike
//! the projection, nothing here can be poison).

use crate::store::RedisConn;
use chrono_tz::Tz;
use metrics::counter;
use redis::streams::StreamId;
use redis::RedisResult;
use tokio_util::sync::CancellationToken;

use super::aggregate::{
    contributions_for_decision, contributions_for_event, contributions_for_job_row, entry_id_ms,
    parse_decision, AckGate, Counter, Op,
};
use crate::config::{RedisSettings, ReportSettings};
use crate::store::consumer::{
    consumer_name, entry_fields, Batch, BatchHandler, GroupConsumer, ENTRIES_PER_YIELD,
};
use crate::store::Keys;

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
    group: GroupConsumer,
    counter: Counter,
}

impl AggregationConsumer {
    pub fn new(keys: Keys, settings: ReportSettings, tz: Tz) -> Self {
        let group = GroupConsumer {
            label: "report-aggregation",
            streams: vec![keys.firehose(), keys.inline_decisions(), keys.job_rows()],
            group: settings.group.clone(),
            consumer: consumer_name(&settings.consumer),
            batch: settings.batch,
            block_ms: settings.block_ms,
            claim_idle_ms: settings.claim_idle_ms,
            export_lag: false,
        };
        Self {
            keys,
            tz,
            settings,
            group,
            counter: Counter::new(),
        }
    }

    fn source(&self, stream: &str) -> Option<Source> {
        if stream == self.keys.firehose() {
            Some(Source::Firehose)
        } else if stream == self.keys.inline_decisions() {
            Some(Source::Decisions)
        } else if stream == self.keys.job_rows() {
            Some(Source::JobRows)
        } else {
            None
        }
    }

    /// Creates the group on all three streams (from `0`) where it is missing.
    pub async fn ensure_groups(&self, conn: &mut RedisConn) -> RedisResult<()> {
        self.group.ensure_groups(conn).await
    }

    /// Runs until cancelled (the shared runner's recovery rules).
    pub async fn run(self, redis: RedisSettings, cancel: CancellationToken) {
        self.group.run(&self, &redis, &cancel).await
    }

    async fn count(
        &self,
        conn: &mut RedisConn,
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
        let fields = entry_fields(entry);
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

impl BatchHandler for AggregationConsumer {
    async fn handle(&self, conn: &mut RedisConn, batch: Batch) -> RedisResult<()> {
        if let Some(source) = self.source(&batch.stream) {
            self.count(conn, &batch.stream, source, &batch.entries)
                .await?;
        }
        Ok(())
    }
}

/// Host name for consumer and instance names.
pub use crate::store::consumer::hostname;
