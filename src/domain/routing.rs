//! Which route streams an event goes to.
//!
//! A route matches by event-type pattern (`*` matches any run of characters, so
//! `user.lifecycle.*` also matches `user.lifecycle.delete.initiated`) and, optionally, by tenant.
//! The type match is decided here; the tenant match is decided inside the ingest script, because
//! an event's tenant may only be known from Redis (the tenant remembered for its user).

use regex::Regex;

use crate::config::RouteSettings;

/// A configured route, compiled.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// The stream key.
    pub stream: String,
    pub maxlen: u64,
    pub groups: Vec<String>,
    /// Empty = every tenant. Otherwise `|a|b|`, so the script can test membership with a plain
    /// substring search for `|tenant|`.
    pub tenant_filter: String,
    types: Regex,
}

impl Route {
    pub fn compile(settings: &RouteSettings, stream: String) -> Self {
        let alternatives: Vec<String> = settings
            .event_types
            .iter()
            .map(|p| {
                p.split('*')
                    .map(regex::escape)
                    .collect::<Vec<_>>()
                    .join(".*")
            })
            .collect();
        let types = Regex::new(&format!("^(?:{})$", alternatives.join("|")))
            .expect("escaped patterns always form a valid regex");
        let tenant_filter = if settings.tenants.is_empty() {
            String::new()
        } else {
            format!("|{}|", settings.tenants.join("|"))
        };
        Self {
            name: settings.name.clone(),
            stream,
            maxlen: settings.maxlen,
            groups: settings.groups.clone(),
            tenant_filter,
            types,
        }
    }

    pub fn matches_type(&self, event_type: &str) -> bool {
        self.types.is_match(event_type)
    }

    /// The same test the ingest script applies.
    pub fn matches_tenant(&self, tenant: &str) -> bool {
        self.tenant_filter.is_empty() || self.tenant_filter.contains(&format!("|{tenant}|"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(types: &[&str], tenants: &[&str]) -> Route {
        Route::compile(
            &RouteSettings {
                name: "r".into(),
                event_types: types.iter().map(|s| s.to_string()).collect(),
                tenants: tenants.iter().map(|s| s.to_string()).collect(),
                maxlen: 10,
                groups: vec![],
            },
            "stream".into(),
        )
    }

    #[test]
    fn a_wildcard_matches_any_suffix_including_dots() {
        let r = route(&["user.lifecycle.*"], &[]);
        assert!(r.matches_type("user.lifecycle.suspend"));
        assert!(r.matches_type("user.lifecycle.delete.initiated"));
        assert!(!r.matches_type("user.session.start"));
        assert!(!r.matches_type("xuser.lifecycle.create"));
    }

    #[test]
    fn dots_are_literal_and_exact_names_match_exactly() {
        let r = route(&["user.account.lock", "group.user_membership.add"], &[]);
        assert!(r.matches_type("user.account.lock"));
        assert!(!r.matches_type("user.account.lock.limit"));
        assert!(!r.matches_type("userXaccount.lock"));
        assert!(r.matches_type("group.user_membership.add"));
    }

    #[test]
    fn a_lone_star_matches_everything() {
        assert!(route(&["*"], &[]).matches_type("anything.at.all"));
    }

    #[test]
    fn tenant_filter_matches_whole_names_only() {
        let r = route(&["*"], &["acme", "globex"]);
        assert!(r.matches_tenant("acme"));
        assert!(!r.matches_tenant("acm"));
        assert!(!r.matches_tenant(""));
        assert!(route(&["*"], &[]).matches_tenant(""));
    }
}
