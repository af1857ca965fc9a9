//! Authentication of Okta's requests: a static header secret (HOOKS-SPEC §1).
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
