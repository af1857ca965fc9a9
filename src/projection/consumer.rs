//! The projection consumer: a consumer group on the firehose, run by the shared
//! [`GroupConsumer`](crate::store::consumer::GroupConsumer) (connect, reclaim, `NOGROUP`,
//! back-off and lag metrics live there).
//!
//! Design (at-least-once, nothing lost, nothing doubled):
//! - Each round's entries are applied in one pipeline and only then acknowledged. A crash
//!   before the ack leaves them pending; applying twice is harmless because every projected
//!   field is a stamped register and a timeline entry is keyed by its event's stamp
//!   (`apply.lua`).
//! - An entry delivered `max_deliveries` times without being applied, or one that can never be
//!   applied (not a LogEvent), goes to the dead-letter stream with its reason and is
//!   acknowledged, so one poison entry never blocks the rest.

use std::time::Instant;

use crate::store::RedisConn;
use metrics::{counter, histogram};
use redis::streams::StreamId;
use redis::RedisResult;
use tokio_util::sync::CancellationToken;

use super::update::{update_for_entry, ProjectionUpdate};
use super::write::Applier;
use crate::config::{ProjectionSettings, RedisSettings};
use crate::domain::tenant::TenantResolver;
use crate::store::consumer::{
    consumer_name, entry_fields, push_dead_letter, Batch, BatchHandler, GroupConsumer,
    ENTRIES_PER_YIELD,
};
use crate::store::Keys;

pub struct ProjectionConsumer {
    keys: Keys,
    tenants: TenantResolver,
    settings: ProjectionSettings,
    group: GroupConsumer,
    applier: Applier,
}

/// What one batch did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundStats {
    pub applied: usize,
    pub skipped: usize,
    pub dead_lettered: usize,
    pub failed: usize,
}

impl ProjectionConsumer {
    pub fn new(keys: Keys, settings: ProjectionSettings, tenants: TenantResolver) -> Self {
        let group = GroupConsumer {
            label: "projection",
            streams: vec![keys.firehose()],
            group: settings.group.clone(),
            consumer: consumer_name(&settings.consumer),
            batch: settings.batch,
            block_ms: settings.block_ms,
            claim_idle_ms: settings.claim_idle_ms,
            export_lag: true,
        };
        Self {
            applier: Applier::new(keys.clone(), settings.timeline_len),
            keys,
            tenants,
            settings,
            group,
        }
    }

    pub fn name(&self) -> &str {
        &self.group.consumer
    }

    /// Runs until cancelled (the shared runner's recovery rules).
    pub async fn run(self, redis: RedisSettings, cancel: CancellationToken) {
        self.group.run(&self, &redis, &cancel).await
    }

    /// Applies one batch and acknowledges what was applied or dead-lettered.
    async fn process(&self, conn: &mut RedisConn, batch: &Batch) -> RedisResult<RoundStats> {
        let mut stats = RoundStats::default();
        if batch.entries.is_empty() {
            return Ok(stats);
        }
        if batch.reclaimed {
            counter!("okta_adapter_projection_reclaimed_total")
                .increment(batch.entries.len() as u64);
        }
        let started = Instant::now();
        let mut updates: Vec<ProjectionUpdate> = Vec::new();
        let mut update_ids: Vec<&str> = Vec::new();
        let mut ack: Vec<&str> = Vec::new();
        let mut dead: Vec<(&StreamId, String)> = Vec::new();
        for (i, entry) in batch.entries.iter().enumerate() {
            if i % ENTRIES_PER_YIELD == ENTRIES_PER_YIELD - 1 {
                tokio::task::yield_now().await;
            }
            let delivered = batch.delivered(&entry.id);
            if delivered > self.settings.max_deliveries {
                dead.push((entry, format!("not applied after {delivered} deliveries")));
                continue;
            }
            match update_for_entry(&entry_fields(entry), &self.tenants) {
                Ok(Some(u)) => {
                    updates.push(u);
                    update_ids.push(&entry.id);
                }
                Ok(None) => {
                    stats.skipped += 1;
                    ack.push(&entry.id);
                }
                Err(poison) => dead.push((entry, poison.0)),
            }
        }
        let results = self.applier.apply(conn, &updates).await?;
        for (id, result) in update_ids.iter().zip(&results) {
            match result {
                Ok(()) => {
                    stats.applied += 1;
                    ack.push(id);
                }
                Err(e) => {
                    // Left pending: retried when reclaimed, dead-lettered after max_deliveries.
                    stats.failed += 1;
                    tracing::warn!(entry = %id, error = %e, "projection apply failed for one entry");
                }
            }
        }
        let mut pipe = redis::pipe();
        for (entry, reason) in &dead {
            push_dead_letter(
                &mut pipe,
                &self.keys.dead_letter(),
                &batch.stream,
                &self.settings.group,
                entry,
                reason,
            );
            ack.push(&entry.id);
        }
        stats.dead_lettered = dead.len();
        if !ack.is_empty() {
            pipe.xack(&batch.stream, &self.settings.group, &ack)
                .ignore();
            pipe.query_async::<()>(conn).await?;
        }
        counter!("okta_adapter_projection_applied_total").increment(stats.applied as u64);
        counter!("okta_adapter_projection_skipped_total").increment(stats.skipped as u64);
        counter!("okta_adapter_projection_dead_lettered_total")
            .increment(stats.dead_lettered as u64);
        counter!("okta_adapter_projection_failed_total").increment(stats.failed as u64);
        histogram!("okta_adapter_projection_batch_seconds").record(started.elapsed().as_secs_f64());
        Ok(stats)
    }
}

impl BatchHandler for ProjectionConsumer {
    async fn handle(&self, conn: &mut RedisConn, batch: Batch) -> RedisResult<()> {
        self.process(conn, &batch).await.map(|_| ())
    }
}
