//! `[console]`: the web console (`src/console/`): where it is mounted, how people sign in
//! (Okta OIDC, one-time links, the `dev` one-click sign-in) and how long a session lives.

use regex::Regex;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Serve the console at all.
    pub enabled: bool,
    /// Where it is mounted, e.g. `/console` (starts with `/`, no trailing `/`).
    pub path: String,
    /// The URL people reach the adapter at, e.g. `https://iam-adapter.example.com`; the OIDC
    /// redirect URI is `<public_url><path>/auth/callback`. Empty: taken from the request's
    /// `Host` over plain http (local use only). `https://` here also makes the session cookie
    /// `Secure`.
    pub public_url: String,
    /// The console's OIDC app in the Okta org (`okta.org_url` is the issuer).
    pub client_id: String,
    pub client_secret: SecretString,
    /// Read the client secret from this file instead (Kubernetes secrets).
    pub client_secret_file: String,
    /// A session unused this long ends (seconds).
    pub idle_timeout_secs: u64,
    /// A session ends this long after sign-in, used or not (seconds).
    pub absolute_timeout_secs: u64,
    /// A one-time sign-in link is good for this long (seconds).
    pub link_ttl_secs: u64,
    /// The sign-in page offers one-click local sign-in as any role. Only `okta-adapter dev`
    /// turns this on; never in production.
    pub dev_sign_in: bool,
    pub roles: ConsoleRoleSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleRoleSettings {
    /// Okta groups (the ID token's `groups` claim) whose members are support staff.
    pub support: Vec<String>,
    /// Okta groups whose members are operators.
    pub operator: Vec<String>,
    /// A group whose name matches this is a client admin of the tenant the named group
    /// `tenant` captures.
    #[serde(deserialize_with = "client_admin_pattern")]
    pub client_admin_pattern: Regex,
}

fn client_admin_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<Regex, D::Error> {
    let s = String::deserialize(d)?;
    let re = Regex::new(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid regex: {}",
            e.to_string().lines().last().unwrap_or_default()
        ))
    })?;
    if !re.capture_names().any(|n| n == Some("tenant")) {
        return Err(serde::de::Error::custom(
            "needs a named group `(?P<tenant>…)`",
        ));
    }
    Ok(re)
}

impl ConsoleSettings {
    /// The OIDC client secret: `client_secret`, or the contents of `client_secret_file`.
    pub fn client_secret(&self) -> Result<SecretString, String> {
        if self.client_secret_file.is_empty() {
            return Ok(self.client_secret.clone());
        }
        std::fs::read_to_string(&self.client_secret_file)
            .map(|s| SecretString::from(s.trim().to_owned()))
            .map_err(|e| format!("cannot read {}: {e}", self.client_secret_file))
    }

    /// Problems with these settings, one line each, leading with the key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.path.starts_with('/') || self.path.ends_with('/') || self.path.len() < 2 {
            p.push(
                "console.path: must start with `/` and not end with `/`, e.g. `/console`".into(),
            );
        }
        if self.idle_timeout_secs == 0 || self.absolute_timeout_secs == 0 {
            p.push("console.idle_timeout_secs / absolute_timeout_secs: must be > 0".into());
        }
        if self.link_ttl_secs == 0 {
            p.push("console.link_ttl_secs: must be > 0".into());
        }
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            p.push("console.public_url: must be an http(s) URL".into());
        }
        if !self.client_secret.expose_secret().is_empty() && !self.client_secret_file.is_empty() {
            p.push("console.client_secret / client_secret_file: set one, not both".into());
        }
        p
    }
}
