//! Every authentication of the HTTP surface, and the audit write that goes with it.
//!
//! - Okta's hook requests: a static header secret (HOOKS-SPEC §1), [`HookAuth`]; inline hooks
//!   also accept an OAuth 2.0 bearer token from Okta's OAuth channel, [`InlineAuth`].
//! - The management API: API keys (`Authorization: Bearer oka_…`), [`ApiKey`], resolved to a
//!   [`Principal`] and checked against the roles an endpoint allows ([`require_role`]); what a
//!   support key reads goes to the audit stream ([`record_audit`]). Handlers reach these through
//!   `AppState::require` and `AppState::record_audit`.
//!
//! Okta sends `<hooks.auth_header>: <secret>` on every hook request and does not sign them.
//! Every configured secret is accepted (rotation without downtime). The comparison hashes both
//! sides with SHA-256 and compares the digests in constant time, against every secret without
//! stopping early, so neither the secret's content nor its length nor which secret matched leaks
//! through timing.

use poem::http::{HeaderMap, HeaderName};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

use super::error::HttpError;
use super::jwt::{bearer_token, JwtVerifier};
use crate::store::RedisConn;

use crate::access::{audit, AuditEntry, KeyStore, Principal, Role};
use crate::store::Keys;

#[derive(Clone)]
pub struct HookAuth {
    header: HeaderName,
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for HookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookAuth")
            .field("header", &self.header)
            .field("secrets", &self.digests.len())
            .finish()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl HookAuth {
    /// `header` is `hooks.auth_header`, parsed (and lowercased) at config load.
    pub fn new(header: HeaderName, secrets: &[SecretString]) -> Self {
        Self {
            header,
            digests: secrets
                .iter()
                .map(|s| digest(s.expose_secret().as_bytes()))
                .collect(),
        }
    }

    /// True when the request carries one of the configured secrets.
    pub fn verify(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(&self.header) else {
            return false;
        };
        let presented = digest(value.as_bytes());
        let matched = self
            .digests
            .iter()
            .fold(Choice::from(0), |acc, d| acc | d.ct_eq(&presented));
        matched.into()
    }
}

/// Inline hook authentication: the event hooks' header secrets, or (when enabled) an OAuth 2.0
/// bearer token from Okta's OAuth channel.
#[derive(Debug)]
pub struct InlineAuth {
    header: HookAuth,
    jwt: Option<JwtVerifier>,
}

impl InlineAuth {
    pub fn new(header: HookAuth, jwt: Option<JwtVerifier>) -> Self {
        Self { header, jwt }
    }

    pub async fn verify(&self, headers: &HeaderMap, hook: &'static str) -> bool {
        if self.header.verify(headers) {
            return true;
        }
        let Some(jwt) = &self.jwt else {
            return false;
        };
        let Some(token) = headers
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
        else {
            return false;
        };
        match jwt.verify(token).await {
            Ok(_) => true,
            Err(e) => {
                // The reason helps an operator fix a channel; the token itself is never logged.
                tracing::info!(hook, reason = %e, "inline hook bearer token refused");
                false
            }
        }
    }
}

/// `Authorization: Bearer oka_…` — an API key made with `okta-adapter keys create`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "ApiKey")]
pub struct ApiKey(pub Bearer);

/// Header a caller may set to say why they read a record or act on a user; it goes to the
/// audit stream. Declared as a header parameter on every endpoint that reads it.
pub const AUDIT_REASON_HEADER: &str = "X-Audit-Reason";

/// The caller behind the key, or 401.
pub async fn principal(
    key_store: &KeyStore,
    redis: &RedisConn,
    key: &ApiKey,
) -> Result<Principal, HttpError> {
    let mut conn = redis.clone();
    match key_store.authenticate(&mut conn, &key.0.token).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(HttpError::unauthorized()),
        Err(e) => Err(HttpError::redis("auth", e)),
    }
}

/// The caller, if their role is one of `roles`; 403 otherwise.
pub fn require_role(p: Principal, roles: &[Role]) -> Result<Principal, HttpError> {
    match crate::access::check_role(&p, roles) {
        Ok(()) => Ok(p),
        Err(refused) => Err(HttpError::forbidden(refused.to_string())),
    }
}

/// Appends to the audit stream. The audited thing already happened, so a lost record is
/// not an error for the caller — but it must be visible (log + metric).
pub async fn record_audit(redis: &RedisConn, keys: &Keys, entry: AuditEntry<'_>) {
    let mut conn = redis.clone();
    let subject = entry.subject.to_owned();
    if let Err(e) = audit(&mut conn, keys, entry).await {
        metrics::counter!("okta_adapter_audit_failures_total").increment(1);
        tracing::error!(error = %e, %subject, "audit record could not be written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    #[test]
    fn every_configured_secret_is_accepted_and_nothing_else() {
        let auth = HookAuth::new(
            poem::http::header::AUTHORIZATION,
            &["old".into(), "new".into()],
        );
        assert!(auth.verify(&headers("authorization", "old")));
        assert!(auth.verify(&headers("AUTHORIZATION", "new")));
        assert!(!auth.verify(&headers("authorization", "ol")));
        assert!(!auth.verify(&headers("authorization", "new ")));
        assert!(!auth.verify(&headers("x-other", "new")));
        assert!(!auth.verify(&HeaderMap::new()));
    }

    #[test]
    fn debug_shows_no_secret() {
        let auth = HookAuth::new(
            HeaderName::from_static("x-okta-secret"),
            &["sup3r-secret".into()],
        );
        assert!(!format!("{auth:?}").contains("sup3r"));
    }
}
