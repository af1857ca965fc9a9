//! HTTP surface: Okta hooks, operations endpoints, OpenAPI document and Swagger UI.
//!
//! Handlers are thin (authenticate → parse → one domain call → one Redis step → answer). Every
//! error leaves as JSON (`{"error": …, "message": …}`), including poem's own 404/405 and
//! parameter errors, and every request is timed into `okta_adapter_http_request_duration_seconds`
//! labelled by operation id.

pub mod actions;
pub mod auth;
pub mod error;
pub mod event_hook;
pub mod inline_hooks;
pub mod jobs;
pub mod jwt;
pub mod keys;
pub mod ops;
pub mod raw_json;
pub mod reports;
pub mod slow_client;
pub mod users;

use std::sync::Arc;
use std::time::Instant;

use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route};
use poem_openapi::{OpenApiService, OperationId, Tags};

use crate::startup::AppState;

#[derive(Tags)]
pub enum ApiTags {
    /// Endpoints Okta calls (event hooks and inline hooks).
    OktaHooks,
    /// Support and client-admin lookups of users' Okta status (from projections).
    Users,
    /// Queued bulk jobs against Okta.
    Jobs,
    /// API key management (operator keys).
    Keys,
    /// Monthly IAM report: preview and send (operator keys).
    Reports,
    /// Health, readiness and metrics.
    Operations,
}

/// Every API, in the order they appear in the OpenAPI document.
pub type Apis = (
    event_hook::EventHookApi,
    inline_hooks::InlineHookApi,
    users::UsersApi,
    actions::ActionsApi,
    jobs::JobsApi,
    keys::KeysApi,
    reports::ReportsApi,
    ops::OpsApi,
);

/// The OpenAPI service for all APIs; also used by `okta-adapter openapi`.
pub fn api_service(state: Arc<AppState>) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            event_hook::EventHookApi {
                state: state.clone(),
            },
            inline_hooks::InlineHookApi {
                state: state.clone(),
            },
            users::UsersApi {
                state: state.clone(),
            },
            actions::ActionsApi {
                state: state.clone(),
            },
            jobs::JobsApi {
                state: state.clone(),
            },
            keys::KeysApi {
                state: state.clone(),
            },
            reports::ReportsApi {
                state: state.clone(),
            },
            ops::OpsApi { state },
        ),
        "okta-adapter",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Receives Okta event hooks and inline hooks, fans events into Redis Streams, and serves \
         the management API. Okta hook endpoints authenticate with the configured header secret \
         (`hooks.auth_header`); inline hooks also accept Okta's OAuth 2.0 bearer tokens when \
         `inline.oauth` is enabled.",
    )
}

/// The whole application as one endpoint.
pub fn router(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let api = api_service(state);
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .around(|ep, req| async move {
            // Lifts the header-read deadline of this connection while the request is handled.
            let _in_flight = slow_client::track_request(&req);
            let started = Instant::now();
            let response = match ep.call(req).await {
                Ok(resp) => resp.into_response(),
                Err(err) => json_error(err),
            };
            let operation = response
                .data::<OperationId>()
                .map(|id| id.0)
                .unwrap_or("other");
            metrics::histogram!(
                "okta_adapter_http_request_duration_seconds",
                "operation" => operation,
                "status" => response.status().as_u16().to_string()
            )
            .record(started.elapsed().as_secs_f64());
            Ok(response)
        })
}

/// poem's own errors (unknown path, wrong method, bad parameter) as the adapter's JSON error.
fn json_error(err: poem::Error) -> Response {
    if err.is_from_response() {
        // Our own `HttpError`s already carry their JSON response.
        return err.into_response();
    }
    let status = err.status();
    let operation = err.data::<OperationId>().copied();
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "_");
    let body = serde_json::json!({ "error": code, "message": err.to_string() });
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string());
    if let Some(op) = operation {
        resp.set_data(op);
    }
    resp
}
