//! OAuth 2.0 bearer tokens on inline hooks (HOOKS-SPEC §3.2).
//!
//! With an `OAUTH` channel (`client_secret_post` or `private_key_jwt`), Okta obtains an access
//! token from the configured authorization server and sends `Authorization: Bearer <JWT>`. The
//! token is checked against the issuer's JWKS: signature (asymmetric algorithms only — an `HS*`
//! token could be forged with a public key), `iss`, `aud`, `exp`/`nbf` (with leeway), `cid` (the
//! channel's client id) and, when configured, a scope in `scp`.
//!
//! The key set is fetched on first use and cached. A token signed with an unknown `kid` (the
//! issuer rotated its keys) triggers one re-fetch, at most every `jwks_refresh_min_secs`, so a
//! stream of made-up `kid`s cannot turn the adapter into a load generator against the issuer.
//! Concurrent requests that miss the same `kid` share one fetch.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::InlineOAuthSettings;

/// Why a bearer token was refused. Messages are for logs; the client only ever sees 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error("no key with kid `{0}` in the issuer's key set")]
    UnknownKey(String),
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("`cid` is not the configured client id")]
    WrongClient,
    #[error("the required scope is missing from `scp`")]
    MissingScope,
    #[error("key set unavailable: {0}")]
    KeySet(String),
}

/// Asymmetric algorithms only.
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// The claims checked beyond what `jsonwebtoken` validates.
#[derive(Debug, Deserialize)]
pub struct AccessTokenClaims {
    #[serde(default)]
    pub cid: Option<String>,
    #[serde(default)]
    pub scp: Option<Scopes>,
    #[serde(default)]
    pub sub: Option<String>,
}

/// Okta writes `scp` as an array; other issuers use a space-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Scopes {
    List(Vec<String>),
    Spaced(String),
}

impl Scopes {
    fn contains(&self, scope: &str) -> bool {
        match self {
            Scopes::List(v) => v.iter().any(|s| s == scope),
            Scopes::Spaced(s) => s.split_whitespace().any(|s| s == scope),
        }
    }
}

type KeyMap = HashMap<String, DecodingKey>;

pub struct JwtVerifier {
    settings: InlineOAuthSettings,
    http: reqwest::Client,
    keys: RwLock<Arc<KeyMap>>,
    /// Held while fetching; remembers when the last fetch started.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.settings.issuer)
            .field("jwks_url", &self.settings.jwks_url)
            .finish()
    }
}

impl JwtVerifier {
    pub fn new(settings: &InlineOAuthSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.jwks_timeout_ms))
            .build()
            .expect("the HTTP client builds");
        Self {
            settings: settings.clone(),
            http,
            keys: RwLock::new(Arc::new(HashMap::new())),
            fetch: tokio::sync::Mutex::new(None),
        }
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().expect("jwks lock").get(kid).cloned()
    }

    /// Verifies a bearer token; `Ok` carries its claims.
    pub async fn verify(&self, token: &str) -> Result<AccessTokenClaims, JwtError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(JwtError::Algorithm(header.alg));
        }
        let kid = header
            .kid
            .ok_or_else(|| JwtError::Malformed("the header has no kid".into()))?;
        let key = match self.cached(&kid) {
            Some(k) => k,
            None => self
                .refresh_for(&kid)
                .await?
                .ok_or_else(|| JwtError::UnknownKey(kid.clone()))?,
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.settings.leeway_secs;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation)
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.cid.as_deref() != Some(self.settings.client_id.as_str()) {
            return Err(JwtError::WrongClient);
        }
        let scope = &self.settings.required_scope;
        if !scope.is_empty() && !claims.scp.as_ref().is_some_and(|s| s.contains(scope)) {
            return Err(JwtError::MissingScope);
        }
        Ok(claims)
    }

    /// Re-fetches the key set unless one was fetched too recently; returns the key for `kid`.
    async fn refresh_for(&self, kid: &str) -> Result<Option<DecodingKey>, JwtError> {
        let mut last = self.fetch.lock().await;
        // Someone else may have fetched while this request waited for the lock.
        if let Some(k) = self.cached(kid) {
            return Ok(Some(k));
        }
        let min = Duration::from_secs(self.settings.jwks_refresh_min_secs);
        if last.is_some_and(|at| at.elapsed() < min) {
            return Ok(None);
        }
        *last = Some(Instant::now());
        let keys = self.fetch_keys().await?;
        metrics::counter!("okta_adapter_jwks_fetches_total").increment(1);
        let found = keys.get(kid).cloned();
        *self.keys.write().expect("jwks lock") = Arc::new(keys);
        Ok(found)
    }

    async fn fetch_keys(&self) -> Result<KeyMap, JwtError> {
        let set: JwkSet = self
            .http
            .get(&self.settings.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| JwtError::KeySet(e.to_string()))?
            .json()
            .await
            .map_err(|e| JwtError::KeySet(format!("not a JWK set: {e}")))?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                // Keys of an unsupported type are skipped, not fatal: Okta may add new kinds.
                DecodingKey::from_jwk(jwk).ok().map(|k| (kid, k))
            })
            .collect())
    }
}

/// The token of an `Authorization: Bearer <token>` value.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_taken_from_the_authorization_value() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer  x "), Some("x"));
        assert_eq!(bearer_token("Basic YWRtaW4="), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn scopes_are_read_from_okta_s_array_or_a_spaced_string() {
        let list: Scopes = serde_json::from_str(r#"["okta.hooks", "x"]"#).unwrap();
        assert!(list.contains("okta.hooks") && !list.contains("okta"));
        let spaced: Scopes = serde_json::from_str(r#""a okta.hooks""#).unwrap();
        assert!(spaced.contains("okta.hooks"));
    }

    #[tokio::test]
    async fn an_hs256_token_is_refused_before_any_key_lookup() {
        let v = JwtVerifier::new(&InlineOAuthSettings {
            enabled: true,
            issuer: "i".into(),
            audience: "a".into(),
            client_id: "c".into(),
            required_scope: String::new(),
            jwks_url: "http://127.0.0.1:9/keys".into(),
            jwks_refresh_min_secs: 0,
            jwks_timeout_ms: 100,
            leeway_secs: 0,
        });
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"exp": 4_000_000_000u64}),
            &jsonwebtoken::EncodingKey::from_secret(b"public-key-bytes"),
        )
        .unwrap();
        assert_eq!(
            v.verify(&token).await.unwrap_err(),
            JwtError::Algorithm(Algorithm::HS256)
        );
    }
}
