//! `GET|POST /hooks/okta/events`: Okta event hooks.
//!
//! Spec: <https://developer.okta.com/docs/concepts/event-hooks/> (HOOKS-SPEC §2).

use std::sync::Arc;
use std::time::Instant;

use metrics::{counter, histogram};
use poem::Request;
use poem_openapi::param::Header;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::error::HttpError;
use super::raw_json::RawJson;
use super::state::AppState;
use super::tags::ApiTags;
use crate::fanout::EventOutcome;

pub struct EventHookApi {
    pub state: Arc<AppState>,
}

/// The answer to Okta's one-time verification request.
#[derive(Debug, Object)]
pub struct Verification {
    /// The value of the `x-okta-verification-challenge` request header, echoed.
    pub verification: String,
}

/// An Okta event hook delivery (CloudEvents 0.1 envelope). Only `data.events` is required; the
/// adapter ignores fields it does not know and keeps each event's JSON unchanged.
#[derive(Debug, Object)]
#[oai(rename = "EventHookDelivery")]
pub struct EventHookDeliveryDoc {
    /// Always `com.okta.event_hook`.
    #[oai(rename = "eventType")]
    pub event_type: Option<String>,
    /// Identifies the delivery (batch).
    #[oai(rename = "eventId")]
    pub event_id: Option<String>,
    #[oai(rename = "cloudEventsVersion")]
    pub cloud_events_version: Option<String>,
    pub source: Option<String>,
    pub data: EventHookDataDoc,
}

#[derive(Debug, Object)]
#[oai(rename = "EventHookData")]
pub struct EventHookDataDoc {
    /// One or more Okta System Log `LogEvent`s; each needs `uuid`, `published`, `eventType`.
    pub events: Vec<serde_json::Value>,
}

#[derive(Debug, ApiResponse)]
pub enum Delivered {
    /// Every event is durable in Redis (new ones written, re-deliveries recognised).
    #[oai(status = 204)]
    Stored,
}

#[OpenApi]
impl EventHookApi {
    /// Answer Okta's one-time verification request.
    ///
    /// Okta sends a GET with `x-okta-verification-challenge` when the hook is verified; the
    /// value is echoed as `{"verification": …}`. The hook's auth header is checked first.
    #[oai(
        path = "/hooks/okta/events",
        method = "get",
        operation_id = "verify_event_hook",
        tag = "ApiTags::OktaHooks"
    )]
    async fn verify_event_hook(
        &self,
        req: &Request,
        #[oai(name = "x-okta-verification-challenge")] challenge: Header<Option<String>>,
    ) -> Result<Json<Verification>, HttpError> {
        if !self.state.hook_auth.verify(req.headers()) {
            counter!("okta_adapter_hook_auth_failures_total", "hook" => "events").increment(1);
            return Err(HttpError::unauthorized());
        }
        match challenge.0 {
            Some(verification) => Ok(Json(Verification { verification })),
            None => Err(HttpError::bad_request(
                "missing header x-okta-verification-challenge",
            )),
        }
    }

    /// Receive an event hook delivery.
    ///
    /// Authenticated by the configured header secret. Each event is de-duplicated by `uuid` and
    /// written to the firehose and matching route streams in one atomic Redis step; the 204 is
    /// sent only after that step succeeded. 503 means nothing was acknowledged (Okta retries).
    #[oai(
        path = "/hooks/okta/events",
        method = "post",
        operation_id = "receive_event_hook",
        tag = "ApiTags::OktaHooks"
    )]
    async fn receive_event_hook(
        &self,
        req: &Request,
        body: RawJson<EventHookDeliveryDoc>,
    ) -> Result<Delivered, HttpError> {
        let state = &self.state;
        if !state.hook_auth.verify(req.headers()) {
            counter!("okta_adapter_hook_auth_failures_total", "hook" => "events").increment(1);
            return Err(HttpError::unauthorized());
        }
        let bytes = body.read(req, state.settings.http.max_body_bytes).await?;
        let events = state.ingestor.prepare(&bytes).map_err(|e| {
            counter!("okta_adapter_event_hook_rejected_total").increment(1);
            tracing::info!(reason = %e, "event hook delivery rejected");
            HttpError::bad_request(e.0)
        })?;
        for e in &events {
            counter!("okta_adapter_events_received_total", "type" => state.ingestor.type_label(&e.event_type))
                .increment(1);
        }
        let started = Instant::now();
        let received = chrono::Utc::now();
        let mut conn = state.redis.clone();
        let outcomes = match state.ingestor.write(&mut conn, &events, received).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                counter!("okta_adapter_redis_errors_total", "op" => "ingest").increment(1);
                return super::spooled::spool_or_unavailable(
                    state,
                    &e,
                    &bytes,
                    events.len(),
                    received,
                )
                .await
                .map(|()| Delivered::Stored);
            }
        };
        let write_time = started.elapsed();
        histogram!("okta_adapter_ingest_write_seconds").record(write_time.as_secs_f64());
        let mut duplicates = 0usize;
        for (e, outcome) in events.iter().zip(&outcomes) {
            let name = match outcome {
                EventOutcome::Written => "okta_adapter_events_accepted_total",
                EventOutcome::Duplicate => {
                    duplicates += 1;
                    "okta_adapter_events_duplicate_total"
                }
            };
            counter!(name, "type" => state.ingestor.type_label(&e.event_type)).increment(1);
        }
        // In-process atomics only: the monthly report's hook health costs no Redis round trip
        // here (see reporting::hook_stats).
        state.hook_stats.record_delivery(
            events.len(),
            duplicates,
            write_time.as_secs_f64() * 1000.0,
        );
        tracing::debug!(
            events = events.len(),
            duplicates,
            "event hook delivery stored"
        );
        Ok(Delivered::Stored)
    }
}
