//! `POST /api/v1/backfill`: an on-demand System Log backfill from a time (operator keys).
//!
//! After an outage: everything Okta logged since `since` goes through the ingest step; events the
//! hook missed are written once, the rest are duplicates. See [`crate::backfill`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::Role;
use crate::backfill::{Backfill, BackfillError, BackfillReport, Start};

pub struct BackfillApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct BackfillRequest {
    /// Start of the range, RFC 3339 (e.g. `2026-12-01T00:00:00Z`). The run follows Okta's
    /// `next` links until the log is caught up (or `backfill.max_pages_per_round` pages).
    pub since: String,
}

/// What the run did.
#[derive(Debug, Object)]
pub struct BackfillResult {
    pub pages: u64,
    pub events: u64,
    /// Events the event hook had missed, now written.
    pub new: u64,
    /// Events already in the streams.
    pub present: u64,
    /// `event_hook.delivery` FAILURE events seen (Okta gave up on a delivery).
    pub hook_delivery_failures: u64,
    /// Events skipped because the adapter cannot read them.
    pub unreadable: u64,
    /// Where a further run would continue (path and query of Okta's `next` link).
    pub next: Option<String>,
}

impl From<BackfillReport> for BackfillResult {
    fn from(r: BackfillReport) -> Self {
        Self {
            pages: r.pages,
            events: r.events,
            new: r.new,
            present: r.present,
            hook_delivery_failures: r.hook_delivery_failures,
            unreadable: r.unreadable,
            next: r.next,
        }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Delivery")]
impl BackfillApi {
    /// Backfill from Okta's System Log since a time.
    ///
    /// Runs in the request (bounded by `backfill.max_pages_per_round` pages, under the shared
    /// rate scheduler's `logs` bucket). The continuous backfill's watermark is not changed.
    #[oai(path = "/backfill", method = "post", operation_id = "run_backfill")]
    async fn run_backfill(
        &self,
        auth: ApiKey,
        body: Json<BackfillRequest>,
    ) -> Result<Json<BackfillResult>, HttpError> {
        let state = &self.state;
        let principal = state.require(&auth, &[Role::Operator]).await?;
        let since: DateTime<Utc> = DateTime::parse_from_rfc3339(&body.since)
            .map_err(|e| HttpError::bad_request(format!("since: not an RFC 3339 time ({e})")))?
            .with_timezone(&Utc);
        if since > Utc::now() {
            return Err(HttpError::bad_request("since: is in the future"));
        }
        let okta = state
            .okta
            .clone()
            .ok_or_else(|| HttpError::unavailable("Okta is not configured"))?;
        let backfill = Backfill::new(okta, state.keys.clone(), state.settings.backfill.clone())
            .with_report_timezone(state.settings.report_timezone());
        let mut conn = state.redis.clone();
        let report = backfill
            .round(&state.ingestor, &mut conn, Start::Since(since))
            .await
            .map_err(|e| match e {
                BackfillError::Redis(e) => HttpError::redis("backfill", e),
                e => HttpError::bad_gateway(e.to_string()),
            })?;
        tracing::info!(
            by = %principal.key_id,
            since = %since,
            new = report.new,
            present = report.present,
            "on-demand System Log backfill"
        );
        Ok(Json(report.into()))
    }
}
