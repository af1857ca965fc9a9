//! The one consumer-group runner every stream consumer uses (projections, report aggregation,
//! job workers, credential clean-up, and whatever reads a stream next).
//!
//! It owns the recovery rules, so every consumer has the same ones:
//! - its own connection for blocking reads (no 500 ms response timeout, never unbounded
//!   either), retried every second until it works or the consumer is cancelled;
//! - the groups are created from `0` at start and re-created from `0` on `NOGROUP` (Redis
//!   restarted without persistence, or the stream was rebuilt);
//! - entries left pending by a consumer that died are taken over with `XAUTOCLAIM` once idle
//!   for `claim_idle_ms`, checked at most every `claim_idle_ms` (clamped to 0.1–10 s), and
//!   handed over with how often each was delivered, so the handler can dead-letter poison;
//! - a failed round is logged, counted in `okta_adapter_redis_errors_total{op}`, and retried
//!   after an exponential back-off (100 ms doubling to 5 s); the entries stay pending;
//! - lag is exported per group: pending count, age of the oldest pending entry, group lag.
//!
//! The handler decides what "done" means: it acknowledges (or dead-letters) entries itself,
//! after their effect is durable. A read is not raced against cancellation: a blocked read ends
//! within `block_ms`, and what it read is handled before the loop checks for shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;

use super::conn::RedisConn;
use super::redis_conn::ensure_group;
use crate::config::RedisSettings;

/// Longest the dead-letter stream grows (MAXLEN ~).
pub const DEAD_LETTER_MAXLEN: usize = 100_000;

/// Entries handled between two yields to the runtime. Turning a batch of 500 firehose entries
/// into updates takes ~10 ms of CPU; without yielding, the event hook requests queued on the
/// same worker thread waited for all of it (ingest p99 26 ms instead of a few ms at 15k
/// deliveries/s with the consumers on, on 2 cores).
pub const ENTRIES_PER_YIELD: usize = 32;

/// A connection for blocking reads: no 500 ms default timeout, but never unbounded either.
pub async fn blocking_connection(redis: &RedisSettings, block_ms: u64) -> RedisResult<RedisConn> {
    let timeout = Duration::from_millis(block_ms + redis.response_timeout_ms.max(1000));
    super::redis_conn::connect_with_timeout(redis, timeout).await
}

/// [`blocking_connection`], retried every second until it works; `None` once cancelled.
pub async fn connect_until_cancelled(
    redis: &RedisSettings,
    block_ms: u64,
    who: &str,
    cancel: &CancellationToken,
) -> Option<RedisConn> {
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

/// `configured`, or [`default_consumer_name`] when it is empty.
pub fn consumer_name(configured: &str) -> String {
    if configured.is_empty() {
        default_consumer_name()
    } else {
        configured.to_owned()
    }
}

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

/// Adds one dead-letter record for `entry` of `source` to `pipe` (the caller acknowledges the
/// entry in the same pipeline, so it is never both dead-lettered and pending).
pub fn push_dead_letter(
    pipe: &mut redis::Pipeline,
    dead_letter: &str,
    source: &str,
    group: &str,
    entry: &StreamId,
    reason: &str,
) {
    tracing::warn!(entry = %entry.id, %source, %reason, "entry sent to the dead-letter stream");
    let f = entry_fields(entry);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    pipe.cmd("XADD")
        .arg(dead_letter)
        .arg("MAXLEN")
        .arg("~")
        .arg(DEAD_LETTER_MAXLEN)
        .arg("*")
        .arg(&[
            ("source", source.to_owned()),
            ("id", entry.id.clone()),
            ("group", group.to_owned()),
            ("reason", reason.to_owned()),
            ("uuid", get("uuid")),
            ("type", get("type")),
            ("event", get("event")),
        ])
        .ignore();
}

/// Entries of one stream handed to a [`BatchHandler`].
#[derive(Debug)]
pub struct Batch {
    /// The stream the entries came from.
    pub stream: String,
    pub entries: Vec<StreamId>,
    /// Times delivered, for reclaimed entries only (a first read is delivery 1).
    pub deliveries: HashMap<String, u64>,
    /// Whether these were taken over from a consumer that stopped.
    pub reclaimed: bool,
}

impl Batch {
    /// How often `entry_id` has been delivered, this delivery included.
    pub fn delivered(&self, entry_id: &str) -> u64 {
        self.deliveries.get(entry_id).copied().unwrap_or(1)
    }
}

/// What a consumer does with a batch of entries. It acknowledges (`XACK`) what it finished,
/// only once that is durable; an error leaves the batch pending (retried when reclaimed).
pub trait BatchHandler: Send + Sync {
    fn handle(
        &self,
        conn: &mut RedisConn,
        batch: Batch,
    ) -> impl Future<Output = RedisResult<()>> + Send;
}

/// One consumer in one group over one or more streams.
#[derive(Debug, Clone)]
pub struct GroupConsumer {
    /// For logs and the `op` label of `okta_adapter_redis_errors_total`.
    pub label: &'static str,
    pub streams: Vec<String>,
    pub group: String,
    /// This consumer's name in the group.
    pub consumer: String,
    /// Entries read per round (per stream).
    pub batch: usize,
    /// How long one read blocks when nothing is new.
    pub block_ms: u64,
    /// How long an entry stays pending before another consumer may take it over.
    pub claim_idle_ms: u64,
    /// Whether to export pending/lag gauges for the group.
    pub export_lag: bool,
}

impl GroupConsumer {
    /// Creates every group (from `0`) that is missing.
    pub async fn ensure_groups(&self, conn: &mut RedisConn) -> RedisResult<()> {
        for stream in &self.streams {
            ensure_group(conn, stream, &self.group).await?;
        }
        Ok(())
    }

    /// Runs `handler` until cancelled, with the recovery rules of the module doc.
    pub async fn run<H: BatchHandler>(
        &self,
        handler: &H,
        redis: &RedisSettings,
        cancel: &CancellationToken,
    ) {
        let Some(mut conn) =
            connect_until_cancelled(redis, self.block_ms, self.label, cancel).await
        else {
            return;
        };
        let claim_every = Duration::from_millis(self.claim_idle_ms.clamp(100, 10_000));
        let mut last_claim = Instant::now() - claim_every;
        let mut backoff = Duration::from_millis(100);
        let mut groups_ready = false;
        tracing::info!(consumer = %self.consumer, group = %self.group, "{} started", self.label);
        while !cancel.is_cancelled() {
            let result = async {
                if !groups_ready {
                    self.ensure_groups(&mut conn).await?;
                    groups_ready = true;
                }
                if last_claim.elapsed() >= claim_every {
                    last_claim = Instant::now();
                    self.reclaim(&mut conn, handler).await?;
                    if self.export_lag {
                        self.record_lag(&mut conn).await?;
                    }
                }
                self.read_new(&mut conn, handler).await
            }
            .await;
            match result {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) if e.code() == Some("NOGROUP") => {
                    tracing::warn!(
                        group = %self.group,
                        "{} group missing (Redis lost it); re-creating from 0",
                        self.label
                    );
                    groups_ready = false;
                }
                Err(e) => {
                    counter!("okta_adapter_redis_errors_total", "op" => self.label).increment(1);
                    tracing::warn!(
                        error = %e,
                        "{} round failed; entries stay pending and are retried",
                        self.label
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!(consumer = %self.consumer, "{} stopped", self.label);
    }

    /// Reads new entries of every stream (one blocking `XREADGROUP`) and hands each stream's
    /// entries to `handler`; returns how many were read.
    pub async fn read_new<H: BatchHandler>(
        &self,
        conn: &mut RedisConn,
        handler: &H,
    ) -> RedisResult<usize> {
        let opts = StreamReadOptions::default()
            .group(&self.group, &self.consumer)
            .count(self.batch)
            .block(self.block_ms as usize);
        let ids = vec![">"; self.streams.len()];
        let reply: Option<StreamReadReply> = conn.xread_options(&self.streams, &ids, &opts).await?;
        let mut read = 0;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            if key.ids.is_empty() {
                continue;
            }
            read += key.ids.len();
            let batch = Batch {
                stream: key.key,
                entries: key.ids,
                deliveries: HashMap::new(),
                reclaimed: false,
            };
            handler.handle(conn, batch).await?;
        }
        Ok(read)
    }

    /// Takes over entries idle longer than `claim_idle_ms` (their consumer died) and hands
    /// them to `handler` with their delivery counts; returns how many were taken over.
    pub async fn reclaim<H: BatchHandler>(
        &self,
        conn: &mut RedisConn,
        handler: &H,
    ) -> RedisResult<usize> {
        let mut taken = 0;
        for stream in &self.streams {
            let mut start = "0-0".to_string();
            loop {
                let reply: StreamAutoClaimReply = conn
                    .xautoclaim_options(
                        stream,
                        &self.group,
                        &self.consumer,
                        self.claim_idle_ms,
                        &start,
                        StreamAutoClaimOptions::default().count(self.batch),
                    )
                    .await?;
                if !reply.claimed.is_empty() {
                    taken += reply.claimed.len();
                    tracing::info!(
                        entries = reply.claimed.len(),
                        %stream,
                        "{} took over entries of a stopped consumer",
                        self.label
                    );
                    let deliveries = self.delivery_counts(conn, stream, &reply.claimed).await?;
                    let batch = Batch {
                        stream: stream.clone(),
                        entries: reply.claimed,
                        deliveries,
                        reclaimed: true,
                    };
                    handler.handle(conn, batch).await?;
                }
                if reply.next_stream_id == "0-0" {
                    break;
                }
                start = reply.next_stream_id;
            }
        }
        Ok(taken)
    }

    async fn delivery_counts(
        &self,
        conn: &mut RedisConn,
        stream: &str,
        entries: &[StreamId],
    ) -> RedisResult<HashMap<String, u64>> {
        let (first, last) = (&entries[0].id, &entries[entries.len() - 1].id);
        let pending: StreamPendingCountReply = conn
            .xpending_count(stream, &self.group, first, last, entries.len() + 10)
            .await?;
        Ok(pending
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u64))
            .collect())
    }

    /// Exports pending count, oldest pending age and group lag (of the first stream).
    async fn record_lag(&self, conn: &mut RedisConn) -> RedisResult<()> {
        let Some(stream) = self.streams.first() else {
            return Ok(());
        };
        let group = self.group.clone();
        let oldest: StreamPendingCountReply =
            conn.xpending_count(stream, &group, "-", "+", 1).await?;
        let age = oldest
            .ids
            .first()
            .map(|p| p.last_delivered_ms as f64 / 1000.0)
            .unwrap_or(0.0);
        let info: redis::streams::StreamInfoGroupsReply = conn.xinfo_groups(stream).await?;
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
