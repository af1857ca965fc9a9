//! Which Okta groups a client admin's group jobs may touch.
//!
//! Group membership decides tenants (a `group` tenant rule) and privileges (`[inline] roles`), so
//! adding a user to another tenant's group moves the user into that tenant, and adding one to a
//! role group makes it, say, an admin. A client admin may therefore use only a group that
//! belongs to its own tenant:
//! - its id is in the tenant's explicit allow-list (`[tenants] groups`), or
//! - its Okta name (`profile.name`, looked up through the Okta client under the rate scheduler)
//!   resolves by the configured `group` tenant rules — the same code the event resolver uses —
//!   to exactly the admin's tenant, and `[inline] roles` does not map it to roles.
//!
//! Everything else, an unknown group included, gets the same refusal, so a client admin cannot
//! tell another tenant's group from a missing one. A failed lookup refuses too (fail closed).
//! The check runs when the job is created and again when each row runs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::config::Settings;
use crate::domain::tenant::TenantResolver;
use crate::okta::client::{OktaClient, OktaError};
use crate::okta::rate::Lane;

/// Why a client admin may not use a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRefusal {
    /// Unknown, another tenant's, or a role group: all worded alike.
    NotYours,
    /// Okta could not be asked; the group is refused until it can.
    Lookup(String),
}

impl GroupRefusal {
    /// The reason shown to a client admin. `NotYours` reads exactly like an unknown group.
    pub fn message(&self, group: &str) -> String {
        match self {
            GroupRefusal::NotYours => not_found_message(group),
            // Okta's own words stay in the log: they may describe the adapter's credentials.
            GroupRefusal::Lookup(e) => {
                tracing::warn!(%group, error = %e, "group lookup in Okta failed");
                format!("group `{group}` could not be checked in Okta; try again later")
            }
        }
    }
}

/// The one wording of "no such group (for you)".
pub fn not_found_message(group: &str) -> String {
    format!("no group `{group}`")
}

/// The group rules of the configuration, compiled once.
#[derive(Debug, Clone, Default)]
pub struct GroupGuard {
    resolver: TenantResolver,
    /// tenant → group ids.
    allowed: BTreeMap<String, BTreeSet<String>>,
    /// Lower-cased names of groups `[inline] roles` maps to roles.
    role_groups: BTreeSet<String>,
}

impl GroupGuard {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            resolver: TenantResolver::from_settings(&settings.tenants.rules),
            allowed: settings
                .tenants
                .groups
                .iter()
                .map(|(t, ids)| (t.clone(), ids.iter().map(|i| i.trim().to_owned()).collect()))
                .collect(),
            role_groups: settings
                .inline
                .roles
                .keys()
                .map(|n| n.to_lowercase())
                .collect(),
        }
    }

    /// Whether the allow-list names this group for this tenant (no Okta call needed).
    pub fn listed(&self, tenant: &str, group: &str) -> bool {
        self.allowed
            .get(tenant)
            .is_some_and(|ids| ids.contains(group))
    }

    /// Whether a group of this Okta name belongs to `tenant` by the rules (pure).
    pub fn name_belongs_to(&self, tenant: &str, name: &str) -> bool {
        !tenant.is_empty()
            && !self.role_groups.contains(&name.to_lowercase())
            && self.resolver.tenant_of_group(name).as_deref() == Some(tenant)
    }

    /// Decides for a client admin of `tenant`; looks the group up in Okta unless it is listed.
    pub async fn check(
        &self,
        okta: &OktaClient,
        lane: Lane,
        tenant: &str,
        group: &str,
    ) -> Result<(), GroupRefusal> {
        if tenant.is_empty() || group.is_empty() {
            return Err(GroupRefusal::NotYours);
        }
        if self.listed(tenant, group) {
            return Ok(());
        }
        match okta.get_group(lane, group).await {
            Ok(g) => match g.pointer("/profile/name").and_then(Value::as_str) {
                Some(name) if self.name_belongs_to(tenant, name) => Ok(()),
                _ => Err(GroupRefusal::NotYours),
            },
            // 404 (unknown) and 400 (a malformed id) mean "no such group".
            Err(OktaError::Api { status, .. }) if status == 404 || status == 400 => {
                Err(GroupRefusal::NotYours)
            }
            Err(e) => Err(GroupRefusal::Lookup(e.to_string())),
        }
    }
}

/// Most distinct groups one upload's rows may name for a client admin: each costs an Okta
/// lookup during the request.
pub const MAX_GROUPS_PER_UPLOAD: usize = 50;

/// One client-admin upload's group decisions, cached so a file naming the same group on every
/// row costs one Okta lookup.
pub struct GroupScope<'a> {
    guard: &'a GroupGuard,
    okta: &'a OktaClient,
    tenant: &'a str,
    decided: std::sync::Mutex<std::collections::HashMap<String, Result<(), GroupRefusal>>>,
}

impl<'a> GroupScope<'a> {
    pub fn new(guard: &'a GroupGuard, okta: &'a OktaClient, tenant: &'a str) -> Self {
        Self {
            guard,
            okta,
            tenant,
            decided: Default::default(),
        }
    }

    /// The guard's decision for this tenant, at most one Okta lookup per distinct group.
    pub async fn check(&self, group: &str) -> Result<(), GroupRefusal> {
        {
            let decided = self.decided.lock().expect("not poisoned");
            if let Some(d) = decided.get(group) {
                return d.clone();
            }
            if decided.len() >= MAX_GROUPS_PER_UPLOAD {
                return Err(GroupRefusal::Lookup(format!(
                    "the file names more than {MAX_GROUPS_PER_UPLOAD} distinct groups"
                )));
            }
        }
        let d = self
            .guard
            .check(self.okta, Lane::Interactive, self.tenant, group)
            .await;
        self.decided
            .lock()
            .expect("not poisoned")
            .insert(group.to_owned(), d.clone());
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(extra: &str) -> GroupGuard {
        let settings =
            Settings::from_toml_overrides(&format!("[hooks]\nsecrets = [\"s\"]\n{extra}"))
                .expect("test settings");
        GroupGuard::from_settings(&settings)
    }

    #[test]
    fn a_name_belongs_to_the_tenant_the_group_rule_gives_unless_it_carries_roles() {
        let g = guard(
            "[inline]\nroles = { \"tenant-acme-admins\" = [\"admin\"], \"Tenant-Initech\" = [\"admin\"] }\n",
        );
        assert!(g.name_belongs_to("acme", "tenant-acme"));
        assert!(!g.name_belongs_to("acme", "tenant-globex"));
        assert!(!g.name_belongs_to("acme", "acme"));
        assert!(!g.name_belongs_to("", "tenant-"));
        // The default rule reads `tenant-acme-admins` as tenant `acme-admins` anyway, but a role
        // group is refused even when its name resolves to the admin's tenant.
        assert!(!g.name_belongs_to("acme-admins", "tenant-acme-admins"));
        assert!(!g.name_belongs_to("initech", "tenant-initech"));
    }

    #[test]
    fn the_allow_list_is_per_tenant() {
        let g = guard("[tenants.groups]\nacme = [\"00gA\"]\n");
        assert!(g.listed("acme", "00gA"));
        assert!(!g.listed("globex", "00gA"));
        assert!(!g.listed("acme", "00gB"));
    }

    #[test]
    fn a_refusal_reads_like_an_unknown_group() {
        assert_eq!(GroupRefusal::NotYours.message("00gX"), "no group `00gX`");
    }
}
