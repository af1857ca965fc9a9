//! The event hook handler's fallback when Redis cannot take a delivery: the local spool.
//!
//! Kept apart from `event_hook` so the handler reads as the normal path; see [`crate::spool`].

use metrics::counter;

use super::error::HttpError;
use super::state::AppState;

/// After the ingest write failed with `e`: spool the delivery and answer 204 when Redis is
/// unavailable and the spool takes it (`Ok`: the delivery is stored); otherwise 503 (Okta
/// retries once).
pub async fn spool_or_unavailable(
    state: &AppState,
    e: &redis::RedisError,
    body: &[u8],
    events: usize,
    received: chrono::DateTime<chrono::Utc>,
) -> Result<(), HttpError> {
    let unavailable = || {
        state.hook_stats.record_unavailable(events);
        HttpError::unavailable("events could not be stored; retry the delivery")
    };
    let Some(spool) = state.spool.get() else {
        tracing::warn!(error = %e, events, "event hook delivery not stored; answering 503");
        return Err(unavailable());
    };
    if !crate::spool::redis_unavailable(e) {
        tracing::warn!(error = %e, events, "event hook delivery not stored (not a Redis outage, not spooled); answering 503");
        return Err(unavailable());
    }
    let started = std::time::Instant::now();
    match spool.append(received.timestamp_millis(), body).await {
        Ok(()) => {
            counter!("okta_adapter_spool_events_total").increment(events as u64);
            state
                .hook_stats
                .record_delivery(events, 0, started.elapsed().as_secs_f64() * 1000.0);
            tracing::debug!(error = %e, events, "event hook delivery spooled");
            Ok(())
        }
        Err(spool_error) => {
            tracing::error!(error = %e, spool = %spool_error, events, "event hook delivery neither stored nor spooled; answering 503");
            Err(unavailable())
        }
    }
}
