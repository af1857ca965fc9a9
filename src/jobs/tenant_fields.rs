//! Profile values that decide a user's tenant, which a client admin's job must not set.
//!
//! A client admin may create and update users of its own tenant only. A row that writes an
//! attribute some tenant rule reads (`tenants.rules` of kind `attribute`, `inline.tenant_attribute`
//! and the attributes the registration hook sets per tenant), or a login or email in a domain that
//! an `email_domain` rule gives to another tenant, would move the user to another tenant through
//! Okta's next event — the same escape as a foreign group. Such rows fail with their line; the
//! one allowed exception is `jobs.tenant_profile_attribute` on create, which the job sets to the
//! admin's own tenant.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::config::{Settings, TenantRuleSettings};

/// What, in a profile, decides a tenant (from the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantFields {
    /// Attribute names, lower case (Okta's profile names are compared without case here, to be
    /// safe against `Tenant` vs `tenant`).
    attributes: BTreeSet<String>,
    /// Email domain (lower case) → the tenant an `email_domain` rule gives it.
    domains: BTreeMap<String, String>,
}

/// Profile fields whose domain an `email_domain` rule reads.
const ADDRESS_FIELDS: [&str; 2] = ["login", "email"];

impl TenantFields {
    pub fn from_settings(settings: &Settings) -> Self {
        let mut fields = TenantFields::default();
        let mut attribute = |name: &str| {
            if !name.is_empty() {
                fields.attributes.insert(name.to_ascii_lowercase());
            }
        };
        attribute(&settings.inline.tenant_attribute);
        attribute(&settings.jobs.tenant_profile_attribute);
        for tenant in &settings.inline.tenants {
            for name in tenant.attributes.keys() {
                attribute(name);
            }
        }
        for rule in &settings.tenants.rules {
            if let TenantRuleSettings::Attribute { attribute: name } = rule {
                attribute(name);
            }
        }
        for rule in &settings.tenants.rules {
            if let TenantRuleSettings::EmailDomain { map } = rule {
                for (domain, tenant) in map {
                    fields
                        .domains
                        .entry(domain.to_ascii_lowercase())
                        .or_insert_with(|| tenant.clone());
                }
            }
        }
        for tenant in &settings.inline.tenants {
            for domain in &tenant.email_domains {
                fields
                    .domains
                    .entry(domain.to_ascii_lowercase())
                    .or_insert_with(|| tenant.id.clone());
            }
        }
        fields
    }

    /// Why a client admin of `tenant` may not write `profile`, if it may not. `allowed` is the
    /// one tenant attribute the caller sets to `tenant` itself (create's
    /// `jobs.tenant_profile_attribute`).
    pub fn check(
        &self,
        tenant: &str,
        profile: &Map<String, Value>,
        allowed: Option<&str>,
    ) -> Result<(), String> {
        for name in profile.keys() {
            let is_allowed = allowed.is_some_and(|a| a.eq_ignore_ascii_case(name));
            if !is_allowed && self.attributes.contains(&name.to_ascii_lowercase()) {
                return Err(format!(
                    "{name} decides a user's tenant and cannot be set by a client admin"
                ));
            }
        }
        for field in ADDRESS_FIELDS {
            let Some(address) = profile.get(field).and_then(Value::as_str) else {
                continue;
            };
            let domain = address
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase());
            if let Some(owner) = domain.as_deref().and_then(|d| self.domains.get(d)) {
                if owner != tenant {
                    return Err(format!(
                        "the domain of {field} `{address}` belongs to another tenant"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(extra: &str) -> TenantFields {
        let settings =
            Settings::from_toml_overrides(&format!("[hooks]\nsecrets = [\"x\"]\n{extra}")).unwrap();
        TenantFields::from_settings(&settings)
    }

    fn profile(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const RULES: &str = r#"
[tenants]
rules = [
  { kind = "email_domain", map = { "globex.example" = "globex", "acme.example" = "acme" } },
  { kind = "attribute", attribute = "tenantId" },
]
[jobs]
tenant_profile_attribute = "org"
"#;

    #[test]
    fn attributes_any_rule_reads_are_refused_except_the_one_the_job_sets() {
        let f = fields(RULES);
        let check = |p: Value, allowed| f.check("acme", &profile(p), allowed);
        assert!(check(json!({"tenantId": "globex"}), None)
            .unwrap_err()
            .contains("tenantId decides a user's tenant"));
        assert!(
            check(json!({"TENANTID": "acme"}), None).is_err(),
            "any case"
        );
        // `inline.tenant_attribute` (default `tenant`) is read by the hooks.
        assert!(check(json!({"tenant": "globex"}), None).is_err());
        assert!(check(json!({"org": "acme"}), None).is_err(), "on update");
        assert_eq!(check(json!({"org": "acme"}), Some("org")), Ok(()));
        assert_eq!(check(json!({"costCenter": "7"}), None), Ok(()));
    }

    #[test]
    fn an_address_in_another_tenants_domain_is_refused() {
        let f = fields(RULES);
        let check = |p: Value| f.check("acme", &profile(p), None);
        assert!(check(json!({"email": "eve@GLOBEX.example"}))
            .unwrap_err()
            .contains("belongs to another tenant"));
        assert!(check(json!({"login": "eve@globex.example"})).is_err());
        assert_eq!(check(json!({"email": "eve@acme.example"})), Ok(()));
        assert_eq!(check(json!({"email": "eve@elsewhere.org"})), Ok(()));
    }
}
