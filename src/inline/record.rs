//! The decision stream: every inline hook decision is an event too, so reports can count them.
//!
//! One entry per answered inline hook request in `<prefix>:{events}:inline-decisions`
//! (`MAXLEN ~ inline.decisions_maxlen`), with the fields `v` (1), `type` (hook name), `user`
//! (the login or Okta id the request was about; empty when none), `outcome`, `latency_ms`,
//! `deadline_hit` (0/1), `event_id` (Okta's inline request id) and `at` (RFC 3339). Never a
//! password, an OTP, a token or a hash.
//!
//! The entry is written after the answer is decided, in a task of its own, so a slow or absent
//! Redis never delays an answer; a write that fails is counted and logged, not retried.

use chrono::{SecondsFormat, Utc};
use redis::aio::ConnectionManager;

use crate::store::Keys;

#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub hook: &'static str,
    pub user: String,
    pub outcome: &'static str,
    pub latency_ms: f64,
    pub deadline_hit: bool,
    pub event_id: String,
}

/// Appends one decision; see the module docs for the fields.
pub async fn write_decision(
    conn: &mut ConnectionManager,
    keys: &Keys,
    maxlen: u64,
    record: &DecisionRecord,
) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(keys.inline_decisions());
    if maxlen > 0 {
        cmd.arg("MAXLEN").arg("~").arg(maxlen);
    }
    cmd.arg("*")
        .arg("v")
        .arg(1)
        .arg("type")
        .arg(record.hook)
        .arg("user")
        .arg(&record.user)
        .arg("outcome")
        .arg(record.outcome)
        .arg("latency_ms")
        .arg(format!("{:.3}", record.latency_ms))
        .arg("deadline_hit")
        .arg(u8::from(record.deadline_hit))
        .arg("event_id")
        .arg(&record.event_id)
        .arg("at")
        .arg(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
    let _: String = cmd.query_async(conn).await?;
    Ok(())
}

/// Writes the record in the background.
pub fn spawn_write(conn: ConnectionManager, keys: Keys, maxlen: u64, record: DecisionRecord) {
    tokio::spawn(async move {
        let mut conn = conn;
        if let Err(e) = write_decision(&mut conn, &keys, maxlen, &record).await {
            metrics::counter!("okta_adapter_redis_errors_total", "op" => "inline_decision")
                .increment(1);
            tracing::warn!(error = %e, hook = record.hook, "inline decision not recorded");
        }
    });
}
