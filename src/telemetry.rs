//! Logs (tracing, JSON or pretty) and metrics (Prometheus text at `/metrics`).
//!
//! The metrics recorder is process-global; [`metrics_handle`] installs it once and hands out the
//! same handle afterwards, so several in-process apps (tests) share it. Installing it also
//! registers the adapter's counters at zero ([`register_metrics`]): a series that only appears
//! after its first increment cannot be graphed or alerted on (`rate()` and `absent()` see
//! nothing until the first failure).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Buckets for latencies, in seconds: fine-grained below 10 ms where hook answers should be.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Installs the log subscriber. Safe to call more than once (later calls do nothing).
pub fn init_logs(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.level.clone()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The global Prometheus recorder's handle, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding program); then
            // our handle simply renders nothing, which is visible on /metrics.
            if metrics::set_global_recorder(recorder).is_ok() {
                register_metrics();
            }
            handle
        })
        .clone()
}

/// Counters shown at zero from the start, with their help text. Labelled counters are
/// registered for the label values known up front (event types start at `other`, see
/// `fanout::labels`).
/// (name, labels of the zero series, help text).
type CounterSpec = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const COUNTERS: &[CounterSpec] = &[
    (
        "okta_adapter_events_received_total",
        &[("type", "other")],
        "Events received in event hook deliveries, by type (unknown types as `other`).",
    ),
    (
        "okta_adapter_events_accepted_total",
        &[("type", "other")],
        "Events written to the streams, by type.",
    ),
    (
        "okta_adapter_events_duplicate_total",
        &[("type", "other")],
        "Events skipped as duplicates, by type.",
    ),
    (
        "okta_adapter_event_hook_rejected_total",
        &[],
        "Event hook deliveries refused as malformed.",
    ),
    (
        "okta_adapter_hook_auth_failures_total",
        &[("hook", "events")],
        "Hook calls with wrong credentials.",
    ),
    (
        "okta_adapter_audit_failures_total",
        &[],
        "Audit records that could not be written.",
    ),
    (
        "okta_adapter_redis_errors_total",
        &[("op", "ingest")],
        "Redis errors, by operation.",
    ),
    (
        "okta_adapter_inline_decisions_dropped_total",
        &[],
        "Inline hook decision records dropped.",
    ),
    (
        "okta_adapter_projection_applied_total",
        &[],
        "Firehose entries applied to user projections.",
    ),
    (
        "okta_adapter_projection_skipped_total",
        &[],
        "Firehose entries the projections do not use.",
    ),
    (
        "okta_adapter_projection_dead_lettered_total",
        &[],
        "Entries moved to the dead-letter stream.",
    ),
    (
        "okta_adapter_projection_failed_total",
        &[],
        "Entries that failed to apply (retried).",
    ),
    (
        "okta_adapter_projection_reclaimed_total",
        &[],
        "Pending entries reclaimed from dead consumers.",
    ),
    (
        "okta_adapter_dedup_expired_total",
        &[],
        "Event uuids trimmed from the de-duplication set.",
    ),
    (
        "okta_adapter_report_entries_counted_total",
        &[],
        "Firehose entries counted for the monthly report.",
    ),
    (
        "okta_adapter_reports_sent_total",
        &[],
        "Monthly reports sent.",
    ),
    (
        "okta_adapter_report_send_failures_total",
        &[],
        "Monthly report sends that failed.",
    ),
    (
        "okta_adapter_jwks_fetches_total",
        &[],
        "Fetches of Okta's signing keys (JWKS).",
    ),
    (
        "okta_adapter_credential_cleanup_reclaimed_total",
        &[],
        "Credential clean-up entries reclaimed.",
    ),
    (
        "okta_adapter_legacy_credentials_deleted_total",
        &[],
        "Legacy password hashes deleted after import.",
    ),
    // The local spool (issue 16).
    (
        "okta_adapter_spool_batches_total",
        &[],
        "Event hook deliveries spooled to disk while Redis was unavailable.",
    ),
    (
        "okta_adapter_spool_full_total",
        &[],
        "Deliveries refused (503) because the spool was full.",
    ),
    (
        "okta_adapter_spool_torn_records_total",
        &[],
        "Spool files found with a torn last record (cut off at start).",
    ),
    (
        "okta_adapter_spool_drained_batches_total",
        &[],
        "Spooled deliveries written to Redis by the drain task.",
    ),
];

/// Describes and zero-registers [`COUNTERS`]; called once, when the recorder is installed.
pub fn register_metrics() {
    for (name, labels, help) in COUNTERS {
        metrics::describe_counter!(*name, *help);
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, *v))
            .collect();
        metrics::counter!(*name, labels).increment(0);
    }
}
