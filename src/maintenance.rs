//! The maintenance loop: the periodic upkeep one replica needs to stay healthy for months.
//!
//! It sits above the HTTP state it reads (the consumer groups and streams the configuration asks
//! for, the metrics handle) and below `startup`, which spawns it and stops it on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::http::state::AppState;
use crate::jobs::store::JobStore;

/// Until cancelled, every `redis.maintenance_interval_secs`: trims expired uuids from the dedup
/// set, cancels job uploads a crash cut off, re-creates lost consumer groups and refreshes
/// gauges.
pub async fn maintenance_loop(state: Arc<AppState>, cancel: CancellationToken) {
    let every = Duration::from_secs(state.settings.redis.maintenance_interval_secs);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        // First and on its own: a failing group check must not let the set grow without bound.
        let mut conn = state.redis.clone();
        match state.ingestor.trim_dedup(&mut conn, None).await {
            Ok(n) => metrics::counter!("okta_adapter_dedup_expired_total").increment(n),
            Err(e) => {
                metrics::counter!("okta_adapter_redis_errors_total", "op" => "dedup_trim")
                    .increment(1);
                tracing::warn!(error = %e, "de-duplication set trim failed");
            }
        }
        // Jobs whose upload a crash cut off would otherwise stay `validating` forever.
        let stale = Duration::from_secs(state.settings.jobs.stale_upload_secs);
        let jobs = JobStore::new(state.keys.clone());
        if let Err(e) = jobs.settle_stale_uploads(&mut conn, stale).await {
            tracing::warn!(error = %e, "stale job upload sweep failed");
        }
        if let Err(e) = state.ensure_consumer_groups().await {
            metrics::counter!("okta_adapter_redis_errors_total", "op" => "maintenance")
                .increment(1);
            tracing::warn!(error = %e, "consumer group check failed");
            continue;
        }
        if let Err(e) = crate::http::ops::record_stream_lengths(&state).await {
            tracing::warn!(error = %e, "stream length refresh failed");
        }
        // Dead letters wait for an operator (replay::redrive); alert on this gauge.
        let depth: redis::RedisResult<u64> =
            redis::AsyncCommands::xlen(&mut conn, state.keys.dead_letter()).await;
        if let Ok(depth) = depth {
            metrics::gauge!("okta_adapter_dead_letter_depth").set(depth as f64);
        }
        state.metrics.run_upkeep();
    }
}
