//! `[self_service]`: the end-user MFA reset (`src/selfservice/`). Off for every tenant until a
//! tenant is listed in `tenants`.

use serde::{Deserialize, Deserializer};

use crate::domain::tenant_id::TenantId;

/// Settings of the self-service MFA reset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfServiceSettings {
    /// Tenants whose users may reset their own MFA (each a valid tenant id). Empty: nobody.
    #[serde(deserialize_with = "tenant_ids")]
    pub tenants: Vec<TenantId>,
    /// How long an emailed link works, in seconds (15 minutes).
    pub link_ttl_secs: u64,
    /// Requests accepted per login per window; more are answered alike but mail nothing.
    pub max_per_login: u64,
    /// Requests accepted per client IP per window.
    pub max_per_ip: u64,
    /// The window of both limits, in seconds.
    pub limit_window_secs: u64,
    /// The adapter's public base URL, used in the emailed link (e.g. `https://id.example.com`).
    /// Empty: `http://<http.listen>`.
    pub public_url: String,
    /// Take the client IP from the first `X-Forwarded-For` address (only behind a proxy that
    /// sets it); otherwise the peer address.
    pub trust_forwarded_for: bool,
    /// Whom the confirmation mail tells the user to contact when the reset was not theirs.
    pub support_contact: String,
    /// Emails waiting to be sent at most (a flood beyond it is dropped, still answered alike).
    pub queue: usize,
}

impl Default for SelfServiceSettings {
    fn default() -> Self {
        Self {
            tenants: Vec::new(),
            link_ttl_secs: 900,
            max_per_login: 3,
            max_per_ip: 3,
            limit_window_secs: 3600,
            public_url: String::new(),
            trust_forwarded_for: false,
            support_contact: "your support team".into(),
            queue: 1000,
        }
    }
}

impl SelfServiceSettings {
    /// Whether users of `tenant` may reset their own MFA.
    pub fn allows(&self, tenant: Option<&str>) -> bool {
        tenant.is_some_and(|t| self.tenants.iter().any(|x| x.as_str() == t))
    }
}

fn tenant_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TenantId>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|t| TenantId::parse(t).map_err(|e| serde::de::Error::custom(format!("`{t}`: {e}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    const BASE: &str = "[hooks]\nsecrets = [\"s\"]\n";

    #[test]
    fn self_service_is_off_until_a_tenant_is_listed() {
        let s = Settings::from_toml_overrides(BASE).unwrap();
        assert!(!s.self_service.allows(Some("acme")));
        let s =
            Settings::from_toml_overrides(&format!("{BASE}[self_service]\ntenants = [\"acme\"]\n"))
                .unwrap();
        assert!(s.self_service.allows(Some("acme")));
        assert!(!s.self_service.allows(Some("globex")));
        assert!(!s.self_service.allows(None));
        assert_eq!(s.self_service.link_ttl_secs, 900);
    }

    #[test]
    fn an_invalid_tenant_is_refused_naming_the_key() {
        let err = Settings::from_toml_overrides(&format!(
            "{BASE}[self_service]\ntenants = [\"Not Valid\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("self_service.tenants"), "{err}");
        assert!(err.contains("Not Valid"), "{err}");
    }
}
