//! HTTP surface: Okta hooks, operations endpoints, OpenAPI document and Swagger UI.
//!
//! Handlers are thin (authenticate → parse → one domain call → one Redis step → answer). Every
//! error leaves as JSON (`{"error": …, "message": …}`), including poem's own 404/405 and
//! parameter errors, and every request is timed into `okta_adapter_http_request_duration_seconds`
//! labelled by operation id.
//!
//! The state every handler shares is [`state::AppState`] (built by `startup`, which imports this
//! module and never the other way round); every authentication — Okta's hook secrets and OAuth
//! tokens, API keys and roles — and the audit write are in [`auth`].

pub mod actions;
pub mod auth;
pub mod backfill;
pub mod contract;
pub mod error;
pub mod event_hook;
pub mod helpdesk;
pub mod inline_hooks;
pub mod jobs;
pub mod json_string;
pub mod jwt;
pub mod keys;
pub mod ops;
pub mod raw_json;
pub mod replay;
pub mod reports;
pub mod role_gate;
pub mod slow_client;
pub mod spooled;
pub mod state;
pub mod tags;
pub mod tenant_access;
pub mod tenants;
pub mod users;

use std::sync::Arc;
use std::time::Instant;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, EndpointExt, IntoResponse, Response, Route};
use poem_openapi::{OpenApiService, OperationId};

use state::AppState;
pub use tags::ApiTags;

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
    crate::console::links::ConsoleLinksApi,
    helpdesk::HelpdeskApi,
    tenants::TenantsApi,
    backfill::BackfillApi,
    replay::ReplayApi,
    tenant_access::TenantAccessApi,
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
            ops::OpsApi {
                state: state.clone(),
            },
            crate::console::links::ConsoleLinksApi {
                state: state.clone(),
            },
            helpdesk::HelpdeskApi::new(state.clone()),
            tenants::TenantsApi {
                state: state.clone(),
            },
            backfill::BackfillApi {
                state: state.clone(),
            },
            replay::ReplayApi {
                state: state.clone(),
            },
            tenant_access::TenantAccessApi { state },
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

/// The published OpenAPI document (`/openapi.json`, `okta-adapter openapi`).
///
/// poem-openapi serializes an absent optional field as `null` but documents it only as "not
/// required", so a schema-checking client would refuse the adapter's own answers. The rule is
/// the same for every object of this API, so it is applied here once: every property that is
/// not required is also `nullable`.
pub fn openapi_document(state: Arc<AppState>) -> String {
    let spec = api_service(state).spec();
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&spec) else {
        return spec;
    };
    optional_is_nullable(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or(spec)
}

/// Marks every optional property of every object schema in `v` nullable (see
/// [`openapi_document`]). A `$ref` cannot carry siblings in OpenAPI 3.0, so it is wrapped in
/// `allOf`.
fn optional_is_nullable(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let required: Vec<String> = map
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                for (name, schema) in props.iter_mut() {
                    if required.contains(name) {
                        continue;
                    }
                    if let Value::Object(s) = schema {
                        if s.contains_key("$ref") {
                            let reference = std::mem::take(s);
                            *schema = serde_json::json!({
                                "allOf": [Value::Object(reference)],
                                "nullable": true
                            });
                        } else {
                            s.insert("nullable".into(), Value::Bool(true));
                        }
                    }
                }
            }
            for child in map.values_mut() {
                optional_is_nullable(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(optional_is_nullable),
        _ => {}
    }
}

/// The whole application as one endpoint.
pub fn router(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let document = openapi_document(state.clone());
    let body_idle = std::time::Duration::from_millis(state.settings.http.header_read_timeout_ms);
    let console = state.settings.console.clone();
    let console_state = state.clone();
    let self_service = crate::selfservice::routes(state.clone());
    let roles = state.settings.process.roles.clone();
    let console_path = state.settings.console.path.clone();
    let api = api_service(state);
    let docs = api.swagger_ui();
    let contract = Arc::new(contract::Contract::from_spec(&document));
    let spec = poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json")
            .body(document.clone())
    });
    let mut routes = Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .nest("/self-service", self_service);
    // The web console, at `console.path`.
    if console.enabled {
        routes = routes.nest(&console.path, crate::console::router(console_state));
    }
    routes
        .around(move |ep, mut req| {
            let contract = contract.clone();
            async move {
                // Lifts the header-read deadline of this connection while the request is handled.
                let _in_flight = slow_client::track_request(&req);
                // ...but not for a body that stops coming: each gap is bounded instead.
                let body = req.take_body();
                req.set_body(slow_client::idle_limited(body, body_idle));
                let started = Instant::now();
                let path = req.uri().path().to_owned();
                if !req.headers().contains_key(header::CONTENT_TYPE) {
                    if let Some(media) = contract
                        .default_media_type(&path, req.method())
                        .and_then(|m| HeaderValue::from_str(m).ok())
                    {
                        req.headers_mut().insert(header::CONTENT_TYPE, media);
                    }
                }
                let mut response = match ep.call(req).await {
                    Ok(resp) => resp.into_response(),
                    Err(err) => json_error(err, &contract),
                };
                if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                    if let Some(allow) = contract
                        .allow(&path)
                        .and_then(|a| HeaderValue::from_str(&a).ok())
                    {
                        response.headers_mut().insert(header::ALLOW, allow);
                    }
                }
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
            }
        })
        .with(role_gate::RoleGate::new(roles, console_path))
}

/// poem's own errors (unknown path, wrong method, bad parameter) as the adapter's JSON error.
fn json_error(err: poem::Error, contract: &contract::Contract) -> Response {
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
    let message = err.to_string();
    let message = contract.explain_enum_error(&message).unwrap_or(message);
    let body = serde_json::json!({ "error": code, "message": message });
    let mut resp = Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string());
    if let Some(op) = operation {
        resp.set_data(op);
    }
    resp
}
