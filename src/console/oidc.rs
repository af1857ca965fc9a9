//! Sign-in with the Okta org itself: OpenID Connect authorization code flow with PKCE, through
//! the `openidconnect` crate. The issuer is `okta.org_url` (the org authorization server, whose
//! ID tokens carry a `groups` claim when the app is set up for it); the console is an OIDC web
//! app of that org (`console.client_id`, `console.client_secret`).
//!
//! `start` keeps the PKCE verifier and the nonce in Redis under the SHA-256 of the `state`
//! value (ten minutes, single use), so any replica can finish the sign-in. `finish` takes them
//! back exactly once, exchanges the code, and has `openidconnect` verify the ID token
//! (signature against the org's JWKS, issuer, audience, expiry, nonce). The `groups` claim is
//! then read from that same verified token and mapped to a role by [`role_from_groups`].

use std::collections::HashMap;

use crate::store::RedisConn;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use super::session::digest;
use crate::access::Role;
use crate::config::console::ConsoleRoleSettings;
use crate::config::Settings;
use crate::domain::tenant::TenantId;
use crate::store::Keys;

/// How long a started sign-in may take to come back (seconds).
const LOGIN_TTL_SECS: i64 = 600;

/// The console's OIDC client.
pub struct Oidc {
    issuer: String,
    issuer_origin: String,
    client_id: String,
    client_secret: String,
    /// Discovered on first use (not at start: the org may be unreachable then) and kept.
    metadata: OnceCell<CoreProviderMetadata>,
    http: openidconnect::reqwest::Client,
}

/// Who signed in, once the ID token checked out.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// `preferred_username`, else `email`, else `sub`.
    pub who: String,
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the Okta org's OpenID configuration could not be read: {0}")]
    Discovery(String),
    #[error("this sign-in is unknown or expired; start again")]
    UnknownState,
    #[error("the code exchange failed: {0}")]
    Exchange(String),
    #[error("the ID token was refused: {0}")]
    IdToken(String),
    #[error("storage: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Config(String),
}

impl Oidc {
    /// `None` when `console.client_id` or `okta.org_url` is empty.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        let c = &settings.console;
        let issuer = settings.okta.org_url.trim_end_matches('/').to_owned();
        if c.client_id.is_empty() || issuer.is_empty() {
            return None;
        }
        let client_secret = match c.client_secret() {
            Ok(s) => s.expose_secret().to_owned(),
            Err(e) => {
                tracing::error!(error = %e, "console.client_secret_file unreadable: Okta sign-in is off");
                return None;
            }
        };
        let issuer_origin = url_origin(&issuer);
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would open the client to SSRF (openidconnect's advice).
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .ok()?;
        Some(Self {
            issuer,
            issuer_origin,
            client_id: c.client_id.clone(),
            client_secret,
            metadata: OnceCell::new(),
            http,
        })
    }

    /// `scheme://host[:port]` of the issuer (for the CSP's `form-action`).
    pub fn issuer_origin(&self) -> &str {
        &self.issuer_origin
    }

    async fn metadata(&self) -> Result<&CoreProviderMetadata, OidcError> {
        self.metadata
            .get_or_try_init(|| async {
                let issuer = IssuerUrl::new(self.issuer.clone())
                    .map_err(|e| OidcError::Config(format!("okta.org_url: {e}")))?;
                CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| OidcError::Discovery(error_chain(&e)))
            })
            .await
    }

    /// The authorization URL to send the browser to; the PKCE verifier and nonce are kept.
    pub async fn start(
        &self,
        conn: &mut RedisConn,
        keys: &Keys,
        redirect_uri: &str,
        login_hint: Option<&str>,
    ) -> Result<String, OidcError> {
        let client = CoreClient::from_provider_metadata(
            self.metadata().await?.clone(),
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_owned())
                .map_err(|e| OidcError::Config(format!("redirect URI: {e}")))?,
        );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("groups".into()))
            .set_pkce_challenge(challenge);
        if let Some(hint) = login_hint.filter(|h| !h.is_empty()) {
            request = request.add_extra_param("login_hint", hint.to_owned());
        }
        let (url, state, nonce) = request.url();
        let key = keys.console_login(&digest(state.secret()));
        let _: () = redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("verifier", verifier.secret().as_str()),
                    ("nonce", nonce.secret().as_str()),
                    ("redirect_uri", redirect_uri),
                ],
            )
            .expire(&key, LOGIN_TTL_SECS)
            .query_async(conn)
            .await?;
        Ok(url.to_string())
    }

    /// Finishes a sign-in that `start` began: exactly once per `state`.
    pub async fn finish(
        &self,
        conn: &mut RedisConn,
        keys: &Keys,
        state: &str,
        code: &str,
    ) -> Result<SignedIn, OidcError> {
        let key = keys.console_login(&digest(state));
        let (kept, _): (HashMap<String, String>, i64) = redis::pipe()
            .atomic()
            .hgetall(&key)
            .del(&key)
            .query_async(conn)
            .await?;
        let (Some(verifier), Some(nonce), Some(redirect_uri)) = (
            kept.get("verifier"),
            kept.get("nonce"),
            kept.get("redirect_uri"),
        ) else {
            return Err(OidcError::UnknownState);
        };
        let client = CoreClient::from_provider_metadata(
            self.metadata().await?.clone(),
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.clone())
                .map_err(|e| OidcError::Config(format!("redirect URI: {e}")))?,
        );
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| OidcError::IdToken("Okta sent no ID token".into()))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(nonce.clone()))
            .map_err(|e| OidcError::IdToken(error_chain(&e)))?;
        let who = claims
            .preferred_username()
            .map(|u| u.as_str().to_owned())
            .or_else(|| claims.email().map(|e| e.as_str().to_owned()))
            .unwrap_or_else(|| claims.subject().as_str().to_owned());
        // The token was verified above; `groups` is not a standard claim, so it is read from
        // the payload of that same token.
        let groups = groups_claim(&id_token.to_string());
        Ok(SignedIn { who, groups })
    }
}

/// The `groups` claim of a (verified) compact JWT; empty when absent.
fn groups_claim(jwt: &str) -> Vec<String> {
    let Some(payload) = jwt.split('.').nth(1) else {
        return vec![];
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.get("groups").and_then(|g| g.as_array()).map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default()
}

fn url_origin(url: &str) -> String {
    match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let end = rest.find('/').unwrap_or(rest.len());
            url[..i + 3 + end].to_owned()
        }
        None => url.to_owned(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The console role of someone in `groups`: support wins over operator over client admin
/// (of the first matching tenant group, in token order). `None`: no mapped group — no access.
pub fn role_from_groups(
    roles: &ConsoleRoleSettings,
    groups: &[String],
) -> Option<(Role, Option<String>)> {
    if groups.iter().any(|g| roles.support.contains(g)) {
        return Some((Role::Support, None));
    }
    if groups.iter().any(|g| roles.operator.contains(g)) {
        return Some((Role::Operator, None));
    }
    groups.iter().find_map(|g| {
        let tenant = roles.client_admin_pattern.captures(g)?.name("tenant")?;
        // Fail closed, as API keys do: a client admin is always of a valid tenant.
        let tenant = TenantId::parse(tenant.as_str()).ok()?;
        Some((Role::ClientAdmin, Some(tenant.into_string())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> ConsoleRoleSettings {
        ConsoleRoleSettings {
            support: vec!["okta-adapter-support".into()],
            operator: vec!["okta-adapter-operators".into()],
            client_admin_pattern: regex::Regex::new("^tenant-(?P<tenant>[a-z0-9-]+)-admins$")
                .unwrap(),
        }
    }

    fn g(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_map_to_roles_with_support_first() {
        let r = roles();
        assert_eq!(
            role_from_groups(&r, &g(&["Everyone", "okta-adapter-support"])),
            Some((Role::Support, None))
        );
        assert_eq!(
            role_from_groups(&r, &g(&["okta-adapter-operators", "okta-adapter-support"])),
            Some((Role::Support, None))
        );
        assert_eq!(
            role_from_groups(&r, &g(&["okta-adapter-operators"])),
            Some((Role::Operator, None))
        );
        assert_eq!(
            role_from_groups(&r, &g(&["tenant-acme-admins"])),
            Some((Role::ClientAdmin, Some("acme".into())))
        );
    }

    #[test]
    fn no_mapped_group_is_no_access() {
        let r = roles();
        assert_eq!(role_from_groups(&r, &g(&[])), None);
        assert_eq!(role_from_groups(&r, &g(&["Everyone", "tenant-acme"])), None);
        assert_eq!(role_from_groups(&r, &g(&["tenant--admins"])), None);
    }

    #[test]
    fn the_groups_claim_is_read_from_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"x","groups":["a","b"]}"#);
        assert_eq!(groups_claim(&format!("h.{payload}.s")), g(&["a", "b"]));
        assert!(groups_claim("garbage").is_empty());
    }

    #[test]
    fn the_issuer_origin_drops_the_path() {
        assert_eq!(
            url_origin("https://org.okta.com/oauth2/default"),
            "https://org.okta.com"
        );
        assert_eq!(url_origin("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
    }
}
