//! The Okta Management API client (reqwest, `SSWS` token).
//!
//! Every request goes through the shared rate scheduler (`okta::rate`) and a per-process
//! concurrency cap; 429 waits for `X-Rate-Limit-Reset` (with jitter), 5xx and network errors are
//! retried with exponential back-off, up to `okta.max_attempts`. Okta's error body
//! (`errorCode`, `errorSummary`, `errorCauses`) is kept so callers can explain failures.

use std::sync::Arc;
use std::time::Duration;

use crate::store::RedisConn;
use rand::Rng;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::rate::{bucket_for, Lane, RateHeaders, RateLimiter};
use crate::config::OktaSettings;
use crate::store::Keys;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OktaError {
    /// Okta answered with an error (4xx, or 5xx/429 after every attempt).
    #[error("Okta answered {status} {code}: {summary}")]
    Api {
        status: u16,
        code: String,
        summary: String,
        causes: Vec<String>,
    },
    #[error("Okta could not be reached: {0}")]
    Network(String),
    #[error("the shared rate budget is unavailable (Redis): {0}")]
    Redis(String),
}

impl OktaError {
    pub fn code(&self) -> Option<&str> {
        match self {
            OktaError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            OktaError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How a created user gets a password (HOOKS-SPEC §4.1).
#[derive(Debug, Clone)]
pub enum Credentials {
    /// No credentials: the user sets a password through activation.
    None,
    /// A password value.
    Password(SecretString),
    /// Checked at first sign-in by the password import inline hook.
    ImportHook,
    /// An imported hash object (`credentials.password.hash`), e.g. `{"algorithm":"BCRYPT",…}`.
    Hash(Value),
}

impl Credentials {
    fn to_json(&self) -> Option<Value> {
        match self {
            Credentials::None => None,
            Credentials::Password(p) => Some(json!({"password": {"value": p.expose_secret()}})),
            Credentials::ImportHook => Some(json!({"password": {"hook": {"type": "default"}}})),
            Credentials::Hash(h) => Some(json!({"password": {"hash": h}})),
        }
    }
}

/// How requests to Okta are authorised.
#[derive(Clone)]
enum Auth {
    /// `Authorization: SSWS <api token>`.
    Ssws(SecretString),
    /// OAuth 2.0 client credentials with a signed client assertion (`private_key_jwt`); the
    /// access token is cached until shortly before it expires.
    PrivateKeyJwt {
        client_id: String,
        key: Arc<jsonwebtoken::EncodingKey>,
        key_id: Option<String>,
        scopes: String,
        cached: Arc<tokio::sync::Mutex<Option<(SecretString, std::time::Instant)>>>,
    },
}

#[derive(Clone)]
pub struct OktaClient {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    rate: RateLimiter,
    redis: RedisConn,
    permits: Arc<Semaphore>,
    max_attempts: u32,
}

impl OktaClient {
    /// `None` when Okta is not configured (no `okta.org_url`, or no credentials).
    pub fn new(settings: &OktaSettings, keys: Keys, redis: RedisConn) -> Option<Self> {
        if settings.org_url.is_empty() {
            return None;
        }
        let auth = if settings.auth == "private_key_jwt" {
            let pem = settings.private_key_pem().ok()?;
            Auth::PrivateKeyJwt {
                client_id: settings.client_id.clone(),
                key: Arc::new(jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).ok()?),
                key_id: (!settings.key_id.is_empty()).then(|| settings.key_id.clone()),
                scopes: settings.scopes.join(" "),
                cached: Arc::default(),
            }
        } else if settings.api_token.expose_secret().is_empty() {
            return None;
        } else {
            Auth::Ssws(settings.api_token.clone())
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("okta-adapter/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with static settings builds");
        Some(Self {
            http,
            base: settings.org_url.trim_end_matches('/').to_owned(),
            auth,
            rate: RateLimiter::new(keys, settings),
            redis,
            permits: Arc::new(Semaphore::new(settings.max_concurrency)),
            max_attempts: settings.max_attempts,
        })
    }

    /// The path and query of `url` when it points into `okta.org_url` (a link Okta returned),
    /// else `None`: the adapter never sends its credentials to another host.
    pub fn relative_path(&self, url: &str) -> Option<String> {
        url.strip_prefix(&self.base)
            .filter(|rest| rest.starts_with('/'))
            .map(str::to_owned)
    }

    /// One API call with scheduling and retries. `Ok(None)` for an empty success body.
    pub async fn call(
        &self,
        lane: Lane,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, OktaError> {
        let (text, _) = self.call_raw(lane, method, path_and_query, body).await?;
        Ok(if text.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }

    /// [`Self::call`] returning the success body unparsed and the response headers (the System
    /// Log's `Link` header; events kept byte for byte).
    pub async fn call_raw(
        &self,
        lane: Lane,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<(String, reqwest::header::HeaderMap), OktaError> {
        // An id of `.` or `..` (or an empty one) would make the URL resolve to another
        // endpoint — `/api/v1/groups/../users/{id}` is `/api/v1/users/{id}` — and percent-encoding
        // does not help (URL parsers treat `%2E%2E` as `..`). Such an id names nothing in Okta.
        if names_nothing(path_and_query) {
            return Err(OktaError::Api {
                status: 404,
                code: "E0000007".into(),
                summary: "Not found: an empty, `.` or `..` id names no Okta resource".into(),
                causes: Vec::new(),
            });
        }
        let bucket = bucket_for(method.as_str(), path_and_query);
        let mut conn = self.redis.clone();
        let mut last = OktaError::Network("no attempt made".into());
        for attempt in 1..=self.max_attempts {
            self.rate
                .acquire(&mut conn, bucket, lane)
                .await
                .map_err(|e| OktaError::Redis(e.to_string()))?;
            let response = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .expect("semaphore never closed");
                let authorization = self.authorization().await?;
                let mut req = self
                    .http
                    .request(method.clone(), format!("{}{path_and_query}", self.base))
                    .header("Authorization", authorization.expose_secret())
                    .header("Accept", "application/json");
                if let Some(b) = body {
                    req = req.json(b);
                }
                req.send().await
            };
            let resp = match response {
                Ok(r) => r,
                Err(e) => {
                    metrics::counter!("okta_adapter_okta_errors_total", "kind" => "network")
                        .increment(1);
                    last = OktaError::Network(e.without_url().to_string());
                    backoff(attempt).await;
                    continue;
                }
            };
            let status = resp.status();
            let headers = RateHeaders::from_headers(resp.headers());
            let response_headers = resp.headers().clone();
            let too_many = status.as_u16() == 429;
            if let Err(e) = self
                .rate
                .observe(&mut conn, bucket, headers, too_many)
                .await
            {
                tracing::warn!(error = %e, "could not record Okta rate headers");
            }
            let text = resp.text().await.unwrap_or_default();
            if status.is_success() {
                return Ok((text, response_headers));
            }
            let err = api_error(status.as_u16(), &text);
            if status.as_u16() == 401 && self.forget_token().await && attempt < self.max_attempts {
                // The cached access token expired or was revoked early: get a new one.
                last = err;
                continue;
            }
            metrics::counter!("okta_adapter_okta_errors_total", "kind" => status.as_u16().to_string()).increment(1);
            if too_many {
                // `acquire` now waits for X-Rate-Limit-Reset (+ jitter) before the next attempt.
                last = err;
                continue;
            }
            if status.is_server_error() {
                last = err;
                backoff(attempt).await;
                continue;
            }
            return Err(err);
        }
        Err(last)
    }

    /// The `Authorization` header value.
    async fn authorization(&self) -> Result<SecretString, OktaError> {
        match &self.auth {
            Auth::Ssws(token) => Ok(format!("SSWS {}", token.expose_secret()).into()),
            Auth::PrivateKeyJwt {
                client_id,
                key,
                key_id,
                scopes,
                cached,
            } => {
                let mut cached = cached.lock().await;
                if let Some((token, until)) = cached.as_ref() {
                    if std::time::Instant::now() < *until {
                        return Ok(format!("Bearer {}", token.expose_secret()).into());
                    }
                }
                let (token, lifetime) = self
                    .fetch_token(client_id, key, key_id.as_deref(), scopes)
                    .await?;
                // Renew a minute early so a request never leaves with a token about to expire.
                let until =
                    std::time::Instant::now() + lifetime.saturating_sub(Duration::from_secs(60));
                let header = format!("Bearer {}", token.expose_secret()).into();
                *cached = Some((token, until));
                Ok(header)
            }
        }
    }

    /// Drops a cached OAuth token; `true` when there was one to drop.
    async fn forget_token(&self) -> bool {
        match &self.auth {
            Auth::PrivateKeyJwt { cached, .. } => cached.lock().await.take().is_some(),
            Auth::Ssws(_) => false,
        }
    }

    /// Client credentials grant with a `private_key_jwt` client assertion (RFC 7523).
    async fn fetch_token(
        &self,
        client_id: &str,
        key: &jsonwebtoken::EncodingKey,
        key_id: Option<&str>,
        scopes: &str,
    ) -> Result<(SecretString, Duration), OktaError> {
        let token_url = format!("{}/oauth2/v1/token", self.base);
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": token_url,
            "iat": now, "exp": now + 300,
            "jti": format!("{:032x}", rand::rng().random::<u128>()),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = key_id.map(str::to_owned);
        let assertion = jsonwebtoken::encode(&header, &claims, key)
            .map_err(|e| OktaError::Network(format!("cannot sign the client assertion: {e}")))?;
        let resp = self
            .http
            .post(&token_url)
            .header("Accept", "application/json")
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scopes),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| OktaError::Network(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        match body["access_token"].as_str() {
            Some(token) if status == 200 => {
                let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(3600));
                Ok((token.to_owned().into(), lifetime))
            }
            _ => Err(OktaError::Api {
                status,
                code: body["error"].as_str().unwrap_or("token_error").to_owned(),
                summary: body["error_description"]
                    .as_str()
                    .unwrap_or("Okta refused the access token request")
                    .to_owned(),
                causes: vec![],
            }),
        }
    }

    pub async fn create_user(
        &self,
        lane: Lane,
        profile: &Value,
        credentials: &Credentials,
        activate: bool,
    ) -> Result<Value, OktaError> {
        let mut body = json!({ "profile": profile });
        if let Some(c) = credentials.to_json() {
            body["credentials"] = c;
        }
        let path = format!("/api/v1/users?activate={activate}");
        Ok(self
            .call(lane, Method::POST, &path, Some(&body))
            .await?
            .unwrap_or(Value::Null))
    }

    pub async fn get_user(&self, lane: Lane, id_or_login: &str) -> Result<Value, OktaError> {
        let path = format!("/api/v1/users/{}", encode(id_or_login));
        Ok(self
            .call(lane, Method::GET, &path, None)
            .await?
            .unwrap_or(Value::Null))
    }

    /// Partial profile update (`POST /api/v1/users/{id}`).
    pub async fn update_profile(
        &self,
        lane: Lane,
        id: &str,
        profile: &Value,
    ) -> Result<Value, OktaError> {
        let path = format!("/api/v1/users/{}", encode(id));
        let body = json!({ "profile": profile });
        Ok(self
            .call(lane, Method::POST, &path, Some(&body))
            .await?
            .unwrap_or(Value::Null))
    }

    /// `POST /api/v1/users/{id}/lifecycle/{op}` with optional `sendEmail`.
    pub async fn lifecycle(
        &self,
        lane: Lane,
        id: &str,
        op: &str,
        send_email: Option<bool>,
    ) -> Result<Option<Value>, OktaError> {
        let mut path = format!("/api/v1/users/{}/lifecycle/{op}", encode(id));
        if let Some(send) = send_email {
            path.push_str(&format!("?sendEmail={send}"));
        }
        self.call(lane, Method::POST, &path, None).await
    }

    pub async fn clear_sessions(&self, lane: Lane, id: &str) -> Result<(), OktaError> {
        let path = format!("/api/v1/users/{}/sessions?oauthTokens=true", encode(id));
        self.call(lane, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// Deletes a user; Okta deactivates a user that is not yet DEPROVISIONED instead.
    pub async fn delete_user(&self, lane: Lane, id: &str) -> Result<(), OktaError> {
        let path = format!("/api/v1/users/{}?sendEmail=false", encode(id));
        self.call(lane, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// A group (`GET /api/v1/groups/{id}`); its name is `profile.name`.
    pub async fn get_group(&self, lane: Lane, id: &str) -> Result<Value, OktaError> {
        let path = format!("/api/v1/groups/{}", encode(id));
        Ok(self
            .call(lane, Method::GET, &path, None)
            .await?
            .unwrap_or(Value::Null))
    }

    pub async fn add_to_group(&self, lane: Lane, group: &str, user: &str) -> Result<(), OktaError> {
        let path = format!("/api/v1/groups/{}/users/{}", encode(group), encode(user));
        self.call(lane, Method::PUT, &path, None).await.map(|_| ())
    }

    pub async fn remove_from_group(
        &self,
        lane: Lane,
        group: &str,
        user: &str,
    ) -> Result<(), OktaError> {
        let path = format!("/api/v1/groups/{}/users/{}", encode(group), encode(user));
        self.call(lane, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    pub async fn assign_app(&self, lane: Lane, app: &str, user: &str) -> Result<(), OktaError> {
        let path = format!("/api/v1/apps/{}/users", encode(app));
        let body = json!({ "id": user, "scope": "USER" });
        self.call(lane, Method::POST, &path, Some(&body))
            .await
            .map(|_| ())
    }

    pub async fn unassign_app(&self, lane: Lane, app: &str, user: &str) -> Result<(), OktaError> {
        let path = format!("/api/v1/apps/{}/users/{}", encode(app), encode(user));
        self.call(lane, Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }
}

/// Whether a path has an empty, `.` or `..` segment ([`encode`] leaves dots as they are and
/// encodes `%`, so only literal ones can occur).
fn names_nothing(path_and_query: &str) -> bool {
    let path = path_and_query.split('?').next().unwrap_or_default();
    path.split('/')
        .skip(1)
        .any(|segment| matches!(segment, "" | "." | ".."))
}

/// Percent-encodes a path segment (logins contain `@`, `+`).
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn api_error(status: u16, body: &str) -> OktaError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    OktaError::Api {
        status,
        code: s("errorCode").unwrap_or_else(|| format!("HTTP{status}")),
        summary: s("errorSummary").unwrap_or_else(|| "no error body".into()),
        causes: v
            .get("errorCauses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| {
                        c.get("errorSummary")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

async fn backoff(attempt: u32) {
    let base = 100u64 << attempt.min(6);
    let jitter = rand::rng().random_range(0..=base / 2);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_error_bodies_are_kept() {
        let e = api_error(
            400,
            r#"{"errorCode":"E0000001","errorSummary":"Api validation failed: login","errorCauses":[{"errorSummary":"login: An object with this field already exists in the current organization"}]}"#,
        );
        assert_eq!(e.code(), Some("E0000001"));
        let OktaError::Api { causes, .. } = e else {
            panic!()
        };
        assert!(causes[0].contains("already exists"));
        assert_eq!(api_error(502, "<html>").code(), Some("HTTP502"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("jane+x@acme.com"), "jane%2Bx@acme.com");
        assert_eq!(encode("a/b"), "a%2Fb");
    }

    #[test]
    fn dot_and_empty_ids_never_reach_another_endpoint() {
        let group_path = |g: &str| format!("/api/v1/groups/{}/users/00u1", encode(g));
        assert!(names_nothing(&group_path("..")));
        assert!(names_nothing(&group_path(".")));
        assert!(names_nothing(&group_path("")));
        assert!(
            !names_nothing(&group_path("%2e%2e")),
            "encoded as %252e%252e"
        );
        assert!(!names_nothing(&group_path("00g1.x")));
        assert!(!names_nothing("/api/v1/users?search=a..b"));
    }
}
