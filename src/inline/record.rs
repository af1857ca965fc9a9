//! The decision stream: every inline hook decision is an event too, so reports can count them.
//!
//! One entry per answered inline hook request in `<prefix>:{events}:inline-decisions`
//! (`MAXLEN ~ inline.decisions_maxlen`), with the fields `v` (1), `type` (hook name), `user`
//! (the login or Okta id the request was about; empty when none), `outcome`, `latency_ms`,
//! `deadline_hit` (0/1), `event_id` (Okta's inline request id) and `at` (RFC 3339). Never a
//! password, an OTP, a token or a hash.
//!
//! Handlers only put the record on a bounded channel; one writer task pipelines whatever has
//! queued up into a single round trip. So a slow or absent Redis never delays an answer, and at
//! thousands of token hooks per second the stream costs one round trip per batch rather than a
//! task and a round trip per request. When the channel is full (Redis down for long) records are
//! dropped and counted (`okta_adapter_inline_decisions_dropped_total`) — an answer to Okta always
//! matters more than its record.

use crate::store::RedisConn;
use chrono::{SecondsFormat, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::Keys;

/// Records waiting for the writer; beyond this they are dropped.
const QUEUE: usize = 10_000;
/// Records per pipelined round trip.
const BATCH: usize = 500;

#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub hook: &'static str,
    pub user: String,
    pub outcome: &'static str,
    pub latency_ms: f64,
    pub deadline_hit: bool,
    pub event_id: String,
    /// When the answer was decided (RFC 3339, milliseconds).
    pub at: String,
}

impl DecisionRecord {
    pub fn now(
        hook: &'static str,
        user: String,
        outcome: &'static str,
        latency_ms: f64,
        deadline_hit: bool,
        event_id: String,
    ) -> Self {
        Self {
            hook,
            user,
            outcome,
            latency_ms,
            deadline_hit,
            event_id,
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }
}

/// The handlers' end of the channel.
pub struct DecisionRecorder {
    tx: mpsc::Sender<DecisionRecord>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<DecisionRecord>>>,
}

impl DecisionRecorder {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }

    /// Queues a record; never waits.
    pub fn record(&self, record: DecisionRecord) {
        if self.tx.try_send(record).is_err() {
            metrics::counter!("okta_adapter_inline_decisions_dropped_total").increment(1);
        }
    }

    /// Runs the writer until `cancel`, then writes what is still queued. Only the first call
    /// gets the queue; later calls return at once.
    pub async fn run_writer(
        &self,
        mut conn: RedisConn,
        keys: Keys,
        maxlen: u64,
        cancel: CancellationToken,
    ) {
        let Some(mut rx) = self.rx.lock().expect("recorder lock").take() else {
            return;
        };
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => None,
                r = rx.recv() => r,
            };
            let Some(first) = first else { break };
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            write_batch(&mut conn, &keys, maxlen, &mut batch).await;
        }
        // Shutdown: what was decided is still worth recording.
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
            if batch.len() == BATCH {
                write_batch(&mut conn, &keys, maxlen, &mut batch).await;
            }
        }
        write_batch(&mut conn, &keys, maxlen, &mut batch).await;
    }
}

impl Default for DecisionRecorder {
    fn default() -> Self {
        Self::new()
    }
}

async fn write_batch(
    conn: &mut RedisConn,
    keys: &Keys,
    maxlen: u64,
    batch: &mut Vec<DecisionRecord>,
) {
    if batch.is_empty() {
        return;
    }
    let stream = keys.inline_decisions();
    let mut pipe = redis::pipe();
    for r in batch.iter() {
        let cmd = pipe.cmd("XADD").arg(&stream);
        if maxlen > 0 {
            cmd.arg("MAXLEN").arg("~").arg(maxlen);
        }
        cmd.arg("*")
            .arg("v")
            .arg(1)
            .arg("type")
            .arg(r.hook)
            .arg("user")
            .arg(&r.user)
            .arg("outcome")
            .arg(r.outcome)
            .arg("latency_ms")
            .arg(format!("{:.3}", r.latency_ms))
            .arg("deadline_hit")
            .arg(u8::from(r.deadline_hit))
            .arg("event_id")
            .arg(&r.event_id)
            .arg("at")
            .arg(&r.at)
            .ignore();
    }
    if let Err(e) = pipe.query_async::<()>(conn).await {
        metrics::counter!("okta_adapter_redis_errors_total", "op" => "inline_decision")
            .increment(1);
        metrics::counter!("okta_adapter_inline_decisions_dropped_total")
            .increment(batch.len() as u64);
        tracing::warn!(error = %e, records = batch.len(), "inline decisions not recorded");
    }
    batch.clear();
}
