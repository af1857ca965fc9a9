//! The one HTTP error enum. Every variant carries a safe, clear message; causes go to the log.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// The JSON body of every error the adapter answers.
#[derive(Debug, Clone, Object, serde::Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `bad_request`.
    pub error: String,
    /// What is wrong, for a person.
    pub message: String,
}

#[derive(Debug, ApiResponse)]
pub enum HttpError {
    /// 400: the body or a parameter is not what this endpoint takes; nothing was changed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// 401: missing or wrong credentials (no detail is given on purpose).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// 403: the key is valid but its role may not do this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// 404: no such resource (or none this key may see — the two look the same).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// 409: the request conflicts with the current state; the message says why.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// 413: the body is larger than `http.max_body_bytes`; nothing was read or changed.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// 502: Okta refused or failed; the message carries Okta's own summary.
    #[oai(status = 502)]
    BadGateway(Json<ErrorBody>),
    /// 503: a dependency (Redis) failed; nothing was acknowledged — retry.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn body(error: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: error.into(),
        message: message.into(),
    })
}

impl HttpError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(body("bad_request", message))
    }

    pub fn unauthorized() -> Self {
        Self::Unauthorized(body("unauthorized", "missing or invalid credentials"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(body("forbidden", message))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(body("not_found", message))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(body("conflict", message))
    }

    /// A Redis failure: logged in full, answered as 503 without internals.
    pub fn redis(op: &'static str, e: redis::RedisError) -> Self {
        metrics::counter!("okta_adapter_redis_errors_total", "op" => op).increment(1);
        tracing::warn!(error = %e, op, "redis error");
        Self::unavailable("storage is unavailable; retry shortly")
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::BadGateway(body("okta_error", message))
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::PayloadTooLarge(body(
            "payload_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        ))
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(body("unavailable", message))
    }
}
