//! The org authorization server's OpenID Connect endpoints, as far as a web app's sign-in
//! needs them (Okta: "OpenID Connect & OAuth 2.0 API", org authorization server):
//!
//! - `GET /.well-known/openid-configuration` — discovery; the issuer is the org URL.
//! - `GET /oauth2/v1/authorize` — authorization code flow. There is no login form: the
//!   configured test user (or the one `login_hint` names) consents at once and the browser is
//!   sent back to `redirect_uri` with `code` and `state`. `code_challenge` (S256) is required,
//!   as Okta requires PKCE for its web apps when the app is set to.
//! - `POST /oauth2/v1/token` with `grant_type=authorization_code` — the code (single use,
//!   60 s), the same `redirect_uri`, the PKCE `code_verifier` and the client secret (Basic or
//!   form) are checked; the answer carries an RS256 ID token with `groups`, `nonce`,
//!   `preferred_username`, `email`, `name`.
//! - `GET /oauth2/v1/keys` — the JWKS with the signing key.
//!
//! Errors are OAuth's JSON (`error`, `error_description`) with Okta's status codes. The
//! signing key is a fixed test key compiled in: this is a simulator, never an identity provider.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use poem::http::{header, StatusCode};
use poem::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{json_response, rand_id, Sim};

/// The fixed RS256 test key the simulator signs ID tokens with.
const SIGNING_KEY_PEM: &str = include_str!("oidc-signing-key.pem");
const KEY_ID: &str = "okta-sim-oidc-1";

/// An OIDC web app registered in the simulated org, with the people who may sign in to it.
#[derive(Debug, Clone)]
pub struct OidcApp {
    pub client_id: String,
    pub client_secret: String,
    /// Sign-in redirect URIs the app allows; empty = any (tests on random ports).
    pub redirect_uris: Vec<String>,
    /// The first is who signs in without a `login_hint`.
    pub users: Vec<OidcUser>,
}

/// A person of the simulated org, with the groups their ID token lists.
#[derive(Debug, Clone)]
pub struct OidcUser {
    pub login: String,
    pub name: String,
    pub groups: Vec<String>,
}

impl OidcUser {
    pub fn new(login: &str, groups: &[&str]) -> Self {
        Self {
            login: login.into(),
            name: login.split('@').next().unwrap_or(login).into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

/// An authorization code not yet exchanged.
#[derive(Debug, Clone)]
pub(crate) struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    user: OidcUser,
    expires: Instant,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

pub(crate) fn discovery(sim: &Sim) -> Response {
    let issuer = &sim.url;
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth2/v1/authorize"),
            "token_endpoint": format!("{issuer}/oauth2/v1/token"),
            "jwks_uri": format!("{issuer}/oauth2/v1/keys"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "groups"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "name", "email", "preferred_username", "groups"]
        }),
    )
}

pub(crate) fn keys() -> Response {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes())
        .expect("the compiled-in test key is valid");
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256)
        .expect("an RSA key has a JWK");
    jwk.common.key_id = Some(KEY_ID.into());
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    json_response(StatusCode::OK, &json!({ "keys": [jwk] }))
}

pub(crate) fn authorize(sim: &Sim, query: &HashMap<String, String>) -> Response {
    let Some(app) = &sim.config.oidc_app else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "no OIDC app is configured",
        );
    };
    let q = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
    // Okta shows an error page (no redirect) when client or redirect URI are wrong.
    if q("client_id") != app.client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Invalid value for 'client_id' parameter.",
        );
    }
    let redirect_uri = q("redirect_uri");
    if redirect_uri.is_empty()
        || !(app.redirect_uris.is_empty() || app.redirect_uris.iter().any(|u| u == redirect_uri))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The 'redirect_uri' parameter must be a Login redirect URI in the client app settings",
        );
    }
    let back = |params: &[(&str, &str)]| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            ser.append_pair(k, v);
        }
        if let Some(state) = query.get("state") {
            ser.append_pair("state", state);
        }
        let sep = if redirect_uri.contains('?') { '&' } else { '?' };
        Response::builder()
            .status(StatusCode::FOUND)
            .header(
                header::LOCATION,
                format!("{redirect_uri}{sep}{}", ser.finish()),
            )
            .finish()
    };
    if q("response_type") != "code" {
        return back(&[
            ("error", "unsupported_response_type"),
            ("error_description", "only code"),
        ]);
    }
    if !q("scope").split(' ').any(|s| s == "openid") {
        return back(&[
            ("error", "invalid_scope"),
            ("error_description", "openid is required"),
        ]);
    }
    if q("code_challenge").is_empty() || q("code_challenge_method") != "S256" {
        return back(&[
            ("error", "invalid_request"),
            (
                "error_description",
                "PKCE code_challenge with code_challenge_method=S256 is required",
            ),
        ]);
    }
    let user = match query.get("login_hint").filter(|h| !h.is_empty()) {
        Some(hint) => app
            .users
            .iter()
            .find(|u| u.login.eq_ignore_ascii_case(hint)),
        None => app.users.first(),
    };
    let Some(user) = user.cloned() else {
        return back(&[
            ("error", "access_denied"),
            (
                "error_description",
                "User is not assigned to the client application.",
            ),
        ]);
    };
    let code = rand_id(32);
    sim.state.lock().unwrap().oidc_codes.insert(
        code.clone(),
        PendingCode {
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            challenge: q("code_challenge").to_owned(),
            nonce: query.get("nonce").cloned(),
            user,
            expires: Instant::now() + Duration::from_secs(60),
        },
    );
    back(&[("code", &code)])
}

/// `grant_type=authorization_code` at `/oauth2/v1/token`.
pub(crate) fn token(
    sim: &Sim,
    authorization: Option<&str>,
    fields: &HashMap<String, String>,
) -> Response {
    let Some(app) = &sim.config.oidc_app else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no OIDC app is configured",
        );
    };
    let f = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    // Client authentication: `client_secret_basic` or `client_secret_post`.
    let (id, secret) = match authorization.and_then(|a| a.strip_prefix("Basic ")) {
        Some(b64) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let (i, s) = decoded.split_once(':').unwrap_or(("", ""));
            let unescape = |v: &str| {
                form_urlencoded::parse(format!("v={v}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (unescape(i), unescape(s))
        }
        None => (f("client_id").to_owned(), f("client_secret").to_owned()),
    };
    if id != app.client_id || secret != app.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        );
    }
    let pending = sim.state.lock().unwrap().oidc_codes.remove(f("code"));
    let Some(pending) = pending.filter(|p| p.expires > Instant::now() && p.client_id == id) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The authorization code is invalid or has expired.",
        );
    };
    if f("redirect_uri") != pending.redirect_uri {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The redirect_uri does not match the one used in the authorization request.",
        );
    }
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(f("code_verifier").as_bytes()));
    if f("code_verifier").is_empty() || challenge != pending.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed.",
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let user = &pending.user;
    let mut claims = json!({
        "iss": sim.url,
        "aud": app.client_id,
        "sub": format!("00u{}", &hex_of(&user.login)[..17]),
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "name": user.name,
        "email": user.login,
        "preferred_username": user.login,
        "groups": user.groups,
    });
    if let Some(nonce) = &pending.nonce {
        claims["nonce"] = Value::String(nonce.clone());
    }
    let mut head = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    head.kid = Some(KEY_ID.into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(SIGNING_KEY_PEM.as_bytes())
        .expect("the compiled-in test key is valid");
    let id_token = jsonwebtoken::encode(&head, &claims, &key).expect("RS256 signing works");
    sim.state.lock().unwrap().id_tokens_issued += 1;
    json_response(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": 3600,
            // Good for nothing here: the Management API takes SSWS tokens and the service
            // app's tokens only.
            "access_token": rand_id(40),
            "scope": "openid profile email groups",
            "id_token": id_token,
        }),
    )
}

fn hex_of(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
