//! The projection consumer: a consumer group on the firehose.
//!
//! Design (at-least-once, nothing lost, nothing doubled):
//! - Each round reads up to `batch` new entries (`XREADGROUP … BLOCK`) on a connection whose
//!   response timeout exceeds the block time, applies them in one pipeline, and only then
//!   acknowledges them. A crash before the ack leaves them pending; applying twice is harmless
//!   because every projected field is a stamped register and a timeline entry is keyed by its
//!   event's stamp (`apply.lua`).
//! - Entries left pending by a consumer that died are taken over with `XAUTOCLAIM` once idle
//!   for `claim_idle_ms`. An entry delivered `max_deliveries` times without being applied, or
//!   one that can never be applied (not a LogEvent), goes to the dead-letter stream with its
//!   reason and is acknowledged, so one poison entry never blocks the rest.
//! - `NOGROUP` (Redis restarted without persistence) re-creates the group from `0`.
//! - Lag is exported: pending count, age of the oldest pending entry, and the group's lag.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisResult};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use super::store::Applier;
use super::update::{update_for_entry, ProjectionUpdate};
use crate::config::{ProjectionSettings, RedisSettings};
use crate::domain::tenant::TenantResolver;
use crate::store::{ensure_group, Keys};

/// Longest the dead-letter stream grows (MAXLEN ~).
const DEAD_LETTER_MAXLEN: usize = 100_000;

pub struct ProjectionConsumer {
    keys: Keys,
    tenants: TenantResolver,
    settings: ProjectionSettings,
    name: String,
    applier: Applier,
}

/// What one round did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundStats {
    pub applied: usize,
    pub skipped: usize,
    pub dead_lettered: usize,
    pub failed: usize,
}

impl RoundStats {
    fn add(&mut self, other: RoundStats) {
        self.applied += other.applied;
        self.skipped += other.skipped;
        self.dead_lettered += other.dead_lettered;
        self.failed += other.failed;
    }
}

/// A connection for blocking reads: no 500 ms default timeout, but never unbounded either.
pub async fn blocking_connection(
    redis: &RedisSettings,
    block_ms: u64,
) -> RedisResult<ConnectionManager> {
    let client = redis::Client::open(redis.url.expose_secret())?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(
            block_ms + redis.response_timeout_ms.max(1000),
        )))
        .set_connection_timeout(Some(Duration::from_millis(redis.connect_timeout_ms)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client, config).await
}

/// [`blocking_connection`], retried every second until it works; `None` once cancelled.
pub async fn connect_until_cancelled(
    redis: &RedisSettings,
    block_ms: u64,
    who: &str,
    cancel: &CancellationToken,
) -> Option<ConnectionManager> {
    loop {
        match blocking_connection(redis, block_ms).await {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "{who} cannot connect; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// This machine's name (for consumer names and report records), or `okta-adapter`.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "okta-adapter".into())
}

/// `<host>-<pid>`: the consumer name used when config leaves it empty.
pub fn default_consumer_name() -> String {
    format!("{}-{}", hostname(), std::process::id())
}

/// Entries parsed between two yields to the runtime. Turning a batch of 500 firehose entries
/// into updates takes ~10 ms of CPU; without yielding, the event hook requests queued on the
/// same worker thread waited for all of it (ingest p99 26 ms instead of a few ms at 15k
/// deliveries/s with the consumers on, on 2 cores).
pub const ENTRIES_PER_YIELD: usize = 32;

/// A stream entry's fields as strings (non-string values are skipped).
pub fn entry_fields(entry: &StreamId) -> HashMap<String, String> {
    entry
        .map
        .iter()
        .filter_map(|(k, v)| {
            redis::from_redis_value_ref::<String>(v)
                .ok()
                .map(|v| (k.clone(), v))
        })
        .collect()
}

impl ProjectionConsumer {
    pub fn new(keys: Keys, settings: ProjectionSettings, tenants: TenantResolver) -> Self {
        let name = if settings.consumer.is_empty() {
            default_consumer_name()
        } else {
            settings.consumer.clone()
        };
        Self {
            applier: Applier::new(keys.clone(), settings.timeline_len),
            keys,
            tenants,
            settings,
            name,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until cancelled; Redis errors are logged and retried with a short back-off.
    pub async fn run(self, redis: RedisSettings, cancel: CancellationToken) {
        let Some(mut conn) = crate::projection::consumer::connect_until_cancelled(
            &redis,
            self.settings.block_ms,
            "projection consumer",
            &cancel,
        )
        .await
        else {
            return;
        };
        let claim_every = Duration::from_millis(self.settings.claim_idle_ms.clamp(100, 10_000));
        let mut last_claim = Instant::now() - claim_every;
        let mut backoff = Duration::from_millis(100);
        tracing::info!(consumer = %self.name, group = %self.settings.group, "projection consumer started");
        while !cancel.is_cancelled() {
            // Not raced against `cancel`: a blocked read ends within block_ms, and what it read
            // is applied and acknowledged before the loop checks for shutdown.
            let result = async {
                if last_claim.elapsed() >= claim_every {
                    last_claim = Instant::now();
                    self.reclaim(&mut conn).await?;
                    self.record_lag(&mut conn).await?;
                }
                self.read_and_apply(&mut conn).await
            }
            .await;
            match result {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) if e.code() == Some("NOGROUP") => {
                    tracing::warn!("projection group missing (Redis lost it); re-creating from 0");
                    if let Err(e) =
                        ensure_group(&mut conn, &self.keys.firehose(), &self.settings.group).await
                    {
                        tracing::warn!(error = %e, "could not re-create the projection group");
                    }
                }
                Err(e) => {
                    counter!("okta_adapter_redis_errors_total", "op" => "projection").increment(1);
                    tracing::warn!(error = %e, "projection round failed; entries stay pending and are retried");
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!(consumer = %self.name, "projection consumer stopped");
    }

    /// Reads new entries for this consumer and applies them.
    pub async fn read_and_apply(&self, conn: &mut ConnectionManager) -> RedisResult<RoundStats> {
        let opts = StreamReadOptions::default()
            .group(&self.settings.group, &self.name)
            .count(self.settings.batch)
            .block(self.settings.block_ms as usize);
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[self.keys.firehose()], &[">"], &opts)
            .await?;
        let entries: Vec<StreamId> = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        self.process(conn, entries, &HashMap::new()).await
    }

    /// Takes over entries idle longer than `claim_idle_ms` (their consumer died) and applies
    /// them; those delivered too often go to the dead-letter stream.
    pub async fn reclaim(&self, conn: &mut ConnectionManager) -> RedisResult<RoundStats> {
        let mut stats = RoundStats::default();
        let mut start = "0-0".to_string();
        loop {
            let reply: redis::streams::StreamAutoClaimReply = conn
                .xautoclaim_options(
                    self.keys.firehose(),
                    &self.settings.group,
                    &self.name,
                    self.settings.claim_idle_ms,
                    &start,
                    StreamAutoClaimOptions::default().count(self.settings.batch),
                )
                .await?;
            if !reply.claimed.is_empty() {
                let deliveries = self.delivery_counts(conn, &reply.claimed).await?;
                counter!("okta_adapter_projection_reclaimed_total")
                    .increment(reply.claimed.len() as u64);
                stats.add(self.process(conn, reply.claimed, &deliveries).await?);
            }
            if reply.next_stream_id == "0-0" {
                return Ok(stats);
            }
            start = reply.next_stream_id;
        }
    }

    async fn delivery_counts(
        &self,
        conn: &mut ConnectionManager,
        entries: &[StreamId],
    ) -> RedisResult<HashMap<String, u64>> {
        let (first, last) = (&entries[0].id, &entries[entries.len() - 1].id);
        let pending: redis::streams::StreamPendingCountReply = conn
            .xpending_count(
                self.keys.firehose(),
                &self.settings.group,
                first,
                last,
                entries.len() + 10,
            )
            .await?;
        Ok(pending
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u64))
            .collect())
    }

    async fn process(
        &self,
        conn: &mut ConnectionManager,
        entries: Vec<StreamId>,
        deliveries: &HashMap<String, u64>,
    ) -> RedisResult<RoundStats> {
        let mut stats = RoundStats::default();
        if entries.is_empty() {
            return Ok(stats);
        }
        let started = Instant::now();
        let mut updates: Vec<ProjectionUpdate> = Vec::new();
        let mut update_ids: Vec<&str> = Vec::new();
        let mut ack: Vec<&str> = Vec::new();
        let mut dead: Vec<(&StreamId, String)> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if i % ENTRIES_PER_YIELD == ENTRIES_PER_YIELD - 1 {
                tokio::task::yield_now().await;
            }
            let delivered = deliveries.get(&entry.id).copied().unwrap_or(1);
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
            tracing::warn!(entry = %entry.id, %reason, "entry sent to the dead-letter stream");
            let f = entry_fields(entry);
            let get = |k: &str| f.get(k).cloned().unwrap_or_default();
            pipe.cmd("XADD")
                .arg(self.keys.dead_letter())
                .arg("MAXLEN")
                .arg("~")
                .arg(DEAD_LETTER_MAXLEN)
                .arg("*")
                .arg(&[
                    ("source", self.keys.firehose()),
                    ("id", entry.id.clone()),
                    ("group", self.settings.group.clone()),
                    ("reason", reason.clone()),
                    ("uuid", get("uuid")),
                    ("type", get("type")),
                    ("event", get("event")),
                ])
                .ignore();
            ack.push(&entry.id);
        }
        stats.dead_lettered = dead.len();
        if !ack.is_empty() {
            pipe.xack(self.keys.firehose(), &self.settings.group, &ack)
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

    /// Exports pending count, oldest pending age and group lag.
    async fn record_lag(&self, conn: &mut ConnectionManager) -> RedisResult<()> {
        let group = self.settings.group.clone();
        let oldest: redis::streams::StreamPendingCountReply = conn
            .xpending_count(self.keys.firehose(), &group, "-", "+", 1)
            .await?;
        let age = oldest
            .ids
            .first()
            .map(|p| p.last_delivered_ms as f64 / 1000.0)
            .unwrap_or(0.0);
        let info: redis::streams::StreamInfoGroupsReply =
            conn.xinfo_groups(self.keys.firehose()).await?;
        if let Some(g) = info.groups.iter().find(|g| g.name == group) {
            gauge!("okta_adapter_consumer_pending", "group" => group.clone()).set(g.pending as f64);
            if let Some(lag) = g.lag {
                gauge!("okta_adapter_consumer_lag", "group" => group.clone()).set(lag as f64);
            }
        }
        gauge!("okta_adapter_consumer_oldest_pending_seconds", "group" => group).set(age);
        Ok(())
    }
}

/// Rebuilds every projection from the firehose: drops projection keys, then replays the
/// firehose in order. Safe while consumers run (applying twice changes nothing).
pub async fn rebuild(
    conn: &mut ConnectionManager,
    keys: &Keys,
    timeline_len: usize,
    tenants: &TenantResolver,
    mut progress: impl FnMut(u64),
) -> RedisResult<u64> {
    for pattern in [
        format!("{}:u:*", keys.prefix()),
        // Earlier formats (a hash and a sorted set per user).
        format!("{}:user:*", keys.prefix()),
        format!("{}:timeline:*", keys.prefix()),
        format!("{}:idx:*", keys.prefix()),
    ] {
        let found: Vec<String> = {
            let mut iter: redis::AsyncIter<String> = conn.scan_match(&pattern).await?;
            let mut v = Vec::new();
            while let Some(k) = iter.next_item().await {
                v.push(k?);
            }
            v
        };
        for chunk in found.chunks(500) {
            let _: () = conn.unlink(chunk).await?;
        }
    }
    // Recomputed by the replay (and an earlier build's stamps had another format).
    let _: () = conn.del(keys.projection_freshness()).await?;
    let applier = Applier::new(keys.clone(), timeline_len);
    let mut start = "-".to_string();
    let mut applied = 0u64;
    loop {
        let page: redis::streams::StreamRangeReply = conn
            .xrange_count(keys.firehose(), &start, "+", 1000)
            .await?;
        let Some(last) = page.ids.last() else { break };
        start = format!("({}", last.id);
        let updates: Vec<ProjectionUpdate> = page
            .ids
            .iter()
            .filter_map(|e| update_for_entry(&entry_fields(e), tenants).ok().flatten())
            .collect();
        let results = applier.apply(conn, &updates).await?;
        applied += results.iter().filter(|r| r.is_ok()).count() as u64;
        progress(applied);
    }
    Ok(applied)
}
