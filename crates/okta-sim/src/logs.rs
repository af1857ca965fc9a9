//! The System Log (`GET /api/v1/logs`, polling form) over every event the simulator generates,
//! and the switch that makes it "lose" a share of its event hook deliveries.
//!
//! As Okta documents it (<https://developer.okta.com/docs/reference/api/system-log/>):
//! - results in ascending order of when they were recorded; `limit` 1–1000 (default 100);
//!   `since` (default: 7 days ago) bounds the start; a polling request (no `until`) always gets a
//!   `Link: <…>; rel="next"` header, even on an empty page, to poll from later;
//! - its own rate-limit bucket (`logs`, small: Okta's is 60–120 a minute on many orgs) with the
//!   usual `X-Rate-Limit-*` headers.
//!
//! A dropped delivery leaves an `event_hook.delivery` event with outcome FAILURE in the log, as
//! Okta records a delivery it gave up on.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::DateTime;
use poem::http::StatusCode;
use poem::Response;
use serde_json::{json, Value};

/// Every event, in the order it was recorded.
#[derive(Default)]
pub(crate) struct SystemLog {
    events: Mutex<Vec<Value>>,
    drops: Mutex<DropState>,
}

#[derive(Default)]
struct DropState {
    /// Bresenham accumulator: exactly `rate` of the deliveries are dropped, spread evenly.
    acc: f64,
    dropped_events: Vec<String>,
    dropped_deliveries: u64,
}

impl SystemLog {
    pub(crate) fn record(&self, event: Value) {
        self.events.lock().unwrap().push(event);
    }

    /// Whether to drop this delivery (share `rate`); a dropped one is remembered and logged.
    pub(crate) fn drop_delivery(&self, rate: f64, events: &[Value]) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let mut d = self.drops.lock().unwrap();
        d.acc += rate.min(1.0);
        if d.acc < 1.0 {
            return false;
        }
        d.acc -= 1.0;
        d.dropped_deliveries += 1;
        d.dropped_events.extend(
            events
                .iter()
                .filter_map(|e| e["uuid"].as_str().map(str::to_owned)),
        );
        drop(d);
        self.record(json!({
            "uuid": format!("{:032x}", rand::random::<u128>()),
            "published": crate::now(),
            "eventType": "event_hook.delivery",
            "version": "0",
            "severity": "WARN",
            "displayMessage": "Event hook delivery failed",
            "actor": {"id": "whosim", "type": "EventHook", "alternateId": "sim hook", "displayName": "sim hook"},
            "client": null,
            "outcome": {"result": "FAILURE", "reason": "Read timed out"},
            "target": [],
            "transaction": {"type": "JOB", "id": crate::rand_id(20), "detail": {}},
            "debugContext": {"debugData": {"eventCount": events.len()}},
        }));
        true
    }

    pub(crate) fn dropped_events(&self) -> Vec<String> {
        self.drops.lock().unwrap().dropped_events.clone()
    }

    pub(crate) fn dropped_deliveries(&self) -> u64 {
        self.drops.lock().unwrap().dropped_deliveries
    }

    pub(crate) fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// `GET /api/v1/logs`: `after` is the simulator's cursor (an index), as opaque to clients
    /// as Okta's.
    pub(crate) fn list(&self, base: &str, query: &HashMap<String, String>) -> Response {
        if query.contains_key("until") {
            // Only the polling form is simulated; say so instead of answering wrongly.
            return crate::okta_error(
                StatusCode::BAD_REQUEST,
                "E0000001",
                "Api validation failed: until (the simulator implements only polling requests)",
                &["until: not supported by the simulator"],
            );
        }
        let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
            None => 100,
            Some(Ok(l)) if (1..=1000).contains(&l) => l,
            Some(_) => {
                return crate::okta_error(
                    StatusCode::BAD_REQUEST,
                    "E0000001",
                    "Api validation failed: limit",
                    &["limit: must be between 1 and 1000"],
                )
            }
        };
        let events = self.events.lock().unwrap();
        let start = match (query.get("after"), query.get("since")) {
            (Some(after), _) => after.parse::<usize>().unwrap_or(0).min(events.len()),
            (None, Some(since)) => {
                let Ok(since) = DateTime::parse_from_rfc3339(since) else {
                    return crate::okta_error(
                        StatusCode::BAD_REQUEST,
                        "E0000001",
                        "Api validation failed: since",
                        &["since: not an ISO 8601 time"],
                    );
                };
                events
                    .iter()
                    .position(|e| {
                        e["published"]
                            .as_str()
                            .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
                            .is_some_and(|p| p >= since)
                    })
                    .unwrap_or(events.len())
            }
            (None, None) => 0,
        };
        let end = (start + limit).min(events.len());
        let page: Vec<&Value> = events[start..end].iter().collect();
        let mut resp = crate::json_response(StatusCode::OK, &json!(page));
        let next = format!("<{base}/api/v1/logs?limit={limit}&after={end}>; rel=\"next\"");
        resp.headers_mut()
            .append("link", next.parse().expect("a valid header value"));
        resp
    }
}
