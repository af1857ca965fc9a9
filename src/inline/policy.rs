//! `[inline]` config compiled into lookups the decisions use: tenants by email domain and by
//! app, roles by group, and which claims/attributes the token and SAML hooks add.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::config::{InlineSettings, TokenKind};

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    /// Extra attributes set at registration.
    pub attributes: Map<String, Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Profile attribute for the tenant id; `None` = not set.
    pub tenant_attribute: Option<String>,
    tenants: Vec<Tenant>,
    by_domain: HashMap<String, usize>,
    by_app: HashMap<String, usize>,
    roles: BTreeMap<String, Vec<String>>,
    pub token_tenant_claim: Option<String>,
    pub token_roles_claim: Option<String>,
    pub token_access: bool,
    pub token_identity: bool,
    pub saml_tenant_attribute: Option<String>,
    pub saml_roles_attribute: Option<String>,
    pub saml_name_format: String,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl Policy {
    pub fn from_settings(s: &InlineSettings) -> Self {
        let mut by_domain = HashMap::new();
        let mut by_app = HashMap::new();
        let tenants = s
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| {
                for d in &t.email_domains {
                    by_domain.insert(d.to_ascii_lowercase(), i);
                }
                for a in &t.apps {
                    by_app.insert(a.clone(), i);
                }
                Tenant {
                    id: t.id.clone(),
                    attributes: t.attributes.clone().into_iter().collect(),
                }
            })
            .collect();
        Self {
            tenant_attribute: non_empty(&s.tenant_attribute),
            tenants,
            by_domain,
            by_app,
            roles: s.roles.clone(),
            token_tenant_claim: non_empty(&s.token.tenant_claim),
            token_roles_claim: non_empty(&s.token.roles_claim),
            token_access: s.token.tokens.contains(&TokenKind::Access),
            token_identity: s.token.tokens.contains(&TokenKind::Identity),
            saml_tenant_attribute: non_empty(&s.saml.tenant_attribute),
            saml_roles_attribute: non_empty(&s.saml.roles_attribute),
            saml_name_format: s.saml.name_format.clone(),
        }
    }

    /// True when tenants list email domains: registration is then limited to those domains.
    pub fn restricts_email_domains(&self) -> bool {
        !self.by_domain.is_empty()
    }

    /// The tenant whose `email_domains` contain `email`'s domain (case-insensitive).
    pub fn tenant_for_email(&self, email: &str) -> Option<&Tenant> {
        let domain = email_domain(email)?;
        self.by_domain.get(&domain).map(|&i| &self.tenants[i])
    }

    pub fn tenant_for_app(&self, app_id: &str) -> Option<&Tenant> {
        self.by_app.get(app_id).map(|&i| &self.tenants[i])
    }

    /// Roles of a user in these groups: the union of the mapped roles, sorted, each once.
    pub fn roles_for_groups(&self, groups: &[String]) -> Vec<String> {
        let set: BTreeSet<&String> = groups
            .iter()
            .filter_map(|g| self.roles.get(g))
            .flatten()
            .collect();
        set.into_iter().cloned().collect()
    }
}

/// The lower-cased domain of an address, `None` when it is not `local@domain`.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

#[cfg(test)]
pub(crate) fn policy_from(toml: &str) -> Policy {
    let s = crate::config::Settings::from_toml_overrides(&format!(
        "[hooks]\nsecrets = [\"s\"]\n{toml}"
    ))
    .expect("valid test config");
    Policy::from_settings(&s.inline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_found_by_domain_and_app_and_roles_by_group() {
        let p = policy_from(
            r#"[inline]
tenants = [{ id = "acme", email_domains = ["Acme.com"], apps = ["0oaA"] }]
roles = { "acme-admins" = ["admin", "user"], "acme-users" = ["user"] }"#,
        );
        assert_eq!(p.tenant_for_email("Jane@ACME.COM").unwrap().id, "acme");
        assert!(p.tenant_for_email("jane@acme.com.evil.org").is_none());
        assert!(p.tenant_for_email("no-at-sign").is_none());
        assert_eq!(p.tenant_for_app("0oaA").unwrap().id, "acme");
        assert_eq!(
            p.roles_for_groups(&["acme-users".into(), "acme-admins".into(), "x".into()]),
            ["admin", "user"]
        );
        assert!(p.restricts_email_domains());
    }
}
