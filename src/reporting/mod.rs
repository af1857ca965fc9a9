//! Monthly IAM metrics: counted as events arrive, compiled on a schedule, mailed exactly once.
//!
//! - [`aggregate`] + `count.lua` — entries → per-tenant, per-month counters, a HyperLogLog of
//!   active users and a bottom-k sample of them; counting and `XACK` are one atomic step, so an
//!   entry is counted exactly once.
//! - [`consumer`] — the `report.group` consumer group on the firehose, the inline decision stream
//!   and the job-rows stream.
//! - [`hook_stats`] — hook health counted in-process on the ingest path, flushed to Redis.
//! - [`compile`] — aggregates → [`compile::MonthlyReport`] with month-over-month change.
//! - [`render`] + [`chart`] — HTML and text from `reports/templates/`, the PNG chart;
//!   [`words`] — numbers as the report writes them.
//! - [`deliver`] — the email and the send-once protocol (lease + sent record);
//!   [`migrate`] — the send record's move to the `{report}` hash tag, at start.
//! - [`service`] — preview and send for a caller (role, month rules), shared by the API and
//!   the console.
//! - [`schedule`] — which month is due; [`run_scheduler`] fires the cron job and catches up.

pub mod aggregate;
pub mod chart;
pub mod compile;
pub mod consumer;
pub mod deliver;
pub mod hook_backfill;
pub mod hook_stats;
pub mod migrate;
pub mod month;
pub mod render;
pub mod schedule;
pub mod service;
pub mod words;

use std::sync::Arc;
use std::time::Duration;

use crate::store::RedisConn;
use chrono::Utc;
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

pub use deliver::{Reporter, SendOutcome, SentRecord};
pub use month::ReportMonth;

use crate::config::Settings;

/// How often in-process hook statistics are written to Redis.
const HOOK_STATS_FLUSH: Duration = Duration::from_secs(2);

/// Runs the scheduled sender until `cancel`: a tokio-cron-scheduler job on `report.schedule`
/// (UTC) wakes it, and so do start-up (catch-up) and every `report.check_interval_secs`
/// (retries after failures). Each wake-up sends the due month unless some replica already has.
pub async fn run_scheduler(
    settings: Settings,
    reporter: Arc<Reporter>,
    mut conn: RedisConn,
    cancel: CancellationToken,
) {
    let cron = settings.report.schedule.cron();
    let wake = Arc::new(Notify::new());
    let scheduler = start_cron_job(settings.report.schedule.as_str(), wake.clone()).await;
    let every = Duration::from_secs(settings.report.check_interval_secs);
    tracing::info!(schedule = %settings.report.schedule, timezone = %reporter.tz, transport = %reporter.transport.describe(), "report scheduler started");
    let mut reported_nothing_for = None;
    loop {
        let due = schedule::due_month(cron, reporter.tz, Utc::now());
        match reporter.scheduler_should_send(&mut conn, due).await {
            Ok(true) => match reporter.send_once(&mut conn, due, None, &cancel).await {
                Ok(SendOutcome::Failed(e)) => {
                    tracing::warn!(month = %due, error = %e, "report not sent; next check retries")
                }
                Ok(SendOutcome::NoRecipients) if reported_nothing_for != Some(due) => {
                    reported_nothing_for = Some(due);
                    tracing::info!(month = %due, "no report mailed: report.recipients is empty");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(month = %due, error = %e, "report check failed (Redis); next check retries")
                }
            },
            Ok(false) if reported_nothing_for != Some(due) => {
                reported_nothing_for = Some(due);
                tracing::info!(month = %due, "no report mailed: nothing was recorded and the month ended before this installation's first report check");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(month = %due, error = %e, "report check failed (Redis); next check retries")
            }
        }
        if let Ok(Some(t)) = reporter.last_sent(&mut conn).await {
            metrics::gauge!("okta_adapter_report_last_sent_timestamp_seconds").set(t as f64);
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
    if let Some(mut s) = scheduler {
        let _ = s.shutdown().await;
    }
    tracing::info!("report scheduler stopped");
}

async fn start_cron_job(expr: &str, wake: Arc<Notify>) -> Option<JobScheduler> {
    let started = async {
        let scheduler = JobScheduler::new().await?;
        let job = Job::new_async(expr, move |_, _| {
            let wake = wake.clone();
            Box::pin(async move { wake.notify_one() })
        })?;
        scheduler.add(job).await?;
        scheduler.start().await?;
        Ok::<_, tokio_cron_scheduler::JobSchedulerError>(scheduler)
    }
    .await;
    match started {
        Ok(s) => Some(s),
        Err(e) => {
            // The periodic check still sends the due month, only up to check_interval later.
            tracing::error!(error = %e, "cron scheduler did not start; relying on periodic checks");
            None
        }
    }
}

/// Flushes in-process hook statistics every few seconds, and once more at shutdown.
pub async fn run_hook_stats_flush(
    stats: Arc<hook_stats::HookStats>,
    keys: crate::store::Keys,
    tz: chrono_tz::Tz,
    mut conn: RedisConn,
    cancel: CancellationToken,
) {
    loop {
        let stop = tokio::select! {
            _ = cancel.cancelled() => true,
            _ = tokio::time::sleep(HOOK_STATS_FLUSH) => false,
        };
        if let Err(e) = stats.flush(&mut conn, &keys, tz).await {
            tracing::warn!(error = %e, "hook statistics not flushed; kept for the next try");
        }
        if stop {
            return;
        }
    }
}
