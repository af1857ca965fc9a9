//! Tenant resolution from ordered rules (SPEC "Tenants"); tenant ids are
//! [`TenantId`].
//!
//! Rules are tried in config order; the first that yields a valid tenant id wins. When none
//! does, the ingest script falls back to the tenant remembered for the event's user, and a
//! tenant found here is remembered for that user's later events.

use std::collections::BTreeMap;

use regex::Regex;

pub use super::tenant_id::{InvalidTenantId, TenantId, TENANT_ID_MAX_LEN, TENANT_ID_RULE};
use crate::config::TenantRuleSettings;
use crate::okta::event_hook::LogEventSummary;

/// The only event whose group target assigns a tenant: joining a group, not leaving one.
pub const GROUP_MEMBERSHIP_ADD: &str = "group.user_membership.add";

/// A rule's raw result as a tenant, or nothing when it is not a valid id (a group named
/// `tenant-Acme|x`, an attribute value with spaces): such a value names no tenant at all,
/// rather than a tenant no key or route could ever refer to.
fn valid(raw: &str) -> Option<String> {
    TenantId::parse(raw).ok().map(TenantId::into_string)
}

#[derive(Debug, Clone)]
pub enum TenantRule {
    Group(Regex),
    App(BTreeMap<String, String>),
    EmailDomain(BTreeMap<String, String>),
    Attribute(String),
}

#[derive(Debug, Clone, Default)]
pub struct TenantResolver {
    rules: Vec<TenantRule>,
}

impl TenantResolver {
    /// Takes the rules as config parsed them (group patterns are compiled at load).
    pub fn from_settings(rules: &[TenantRuleSettings]) -> Self {
        let rules = rules
            .iter()
            .map(|r| match r {
                TenantRuleSettings::Group { pattern } => TenantRule::Group(pattern.clone()),
                TenantRuleSettings::App { map } => TenantRule::App(map.clone()),
                TenantRuleSettings::EmailDomain { map } => TenantRule::EmailDomain(
                    map.iter()
                        .map(|(d, t)| (d.to_ascii_lowercase(), t.clone()))
                        .collect(),
                ),
                TenantRuleSettings::Attribute { attribute } => {
                    TenantRule::Attribute(attribute.clone())
                }
            })
            .collect();
        Self { rules }
    }

    /// The tenant this event itself reveals, if any.
    pub fn resolve(&self, event: &LogEventSummary) -> Option<String> {
        self.rules.iter().find_map(|rule| apply_rule(rule, event))
    }

    /// The tenant a group of this name belongs to by the `group` rules (first match in config
    /// order), exactly as a `group.user_membership.add` to it would assign: jobs use it to decide
    /// whether a client admin's group is its own.
    pub fn tenant_of_group(&self, name: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            TenantRule::Group(pattern) => tenant_from_group_name(pattern, name),
            _ => None,
        })
    }
}

impl TenantResolver {
    /// The tenant an app instance belongs to by the `app` rules (first match in config order),
    /// exactly as an `application.user_membership.add` to it would assign: the helpdesk uses it
    /// to decide whether a client admin's app is its own.
    pub fn tenant_of_app(&self, app_id: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            TenantRule::App(map) => map.get(app_id).and_then(|t| valid(t)),
            _ => None,
        })
    }
}

fn apply_rule(rule: &TenantRule, event: &LogEventSummary) -> Option<String> {
    match rule {
        TenantRule::Group(pattern) => {
            if event.event_type.as_deref() != Some(GROUP_MEMBERSHIP_ADD) {
                return None;
            }
            event
                .target
                .iter()
                .filter(|t| t.kind.as_deref() == Some("UserGroup"))
                .flat_map(|t| [t.display_name.as_deref(), t.alternate_id.as_deref()])
                .flatten()
                .find_map(|name| tenant_from_group_name(pattern, name))
        }
        TenantRule::App(map) => event
            .target
            .iter()
            .filter(|t| t.kind.as_deref() == Some("AppInstance"))
            .find_map(|t| t.id.as_deref().and_then(|id| map.get(id)))
            .and_then(|t| valid(t)),
        TenantRule::EmailDomain(map) => {
            let login = event.subject_user()?.login?;
            let (_, domain) = login.rsplit_once('@')?;
            map.get(&domain.to_ascii_lowercase()).and_then(|t| valid(t))
        }
        TenantRule::Attribute(attribute) => {
            let target = event.subject_user()?.target?;
            let from_changes = target
                .change_details
                .as_ref()
                .and_then(|c| c.get("to"))
                .and_then(|to| to.get(attribute));
            let from_detail = target.detail_entry.as_ref().and_then(|d| d.get(attribute));
            from_changes
                .or(from_detail)
                .and_then(|v| v.as_str())
                .and_then(valid)
        }
    }
}

fn tenant_from_group_name(pattern: &Regex, name: &str) -> Option<String> {
    let caps = pattern.captures(name)?;
    let m = caps.name("tenant").or_else(|| caps.get(1))?;
    valid(m.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(toml: &str) -> TenantResolver {
        #[derive(serde::Deserialize)]
        struct W {
            rules: Vec<TenantRuleSettings>,
        }
        let w: W = toml::from_str(toml).unwrap();
        TenantResolver::from_settings(&w.rules)
    }

    fn event(json: &str) -> LogEventSummary {
        serde_json::from_str(json).unwrap()
    }

    const RULES: &str = r#"rules = [
        { kind = "group", pattern = "^tenant-(?P<tenant>[a-z0-9-]+)$" },
        { kind = "app", map = { "0oaSurvey" = "survey-co" } },
        { kind = "email_domain", map = { "Acme.com" = "acme" } },
        { kind = "attribute", attribute = "tenantId" },
    ]"#;

    #[test]
    fn a_group_membership_add_to_a_tenant_group_names_the_tenant() {
        let e = event(
            r#"{"eventType":"group.user_membership.add","target":[
                {"id":"00u1","type":"User","alternateId":"x@other.org"},
                {"id":"00g1","type":"UserGroup","displayName":"tenant-globex"}]}"#,
        );
        assert_eq!(resolver(RULES).resolve(&e).as_deref(), Some("globex"));
    }

    #[test]
    fn leaving_a_tenant_group_assigns_nothing() {
        let e = event(
            r#"{"eventType":"group.user_membership.remove","target":[
                {"id":"00u1","type":"User","alternateId":"x@other.org"},
                {"id":"00g1","type":"UserGroup","displayName":"tenant-globex"}]}"#,
        );
        assert_eq!(resolver(RULES).resolve(&e), None);
    }

    #[test]
    fn app_instance_and_email_domain_rules_apply_in_order() {
        let app = event(
            r#"{"eventType":"application.user_membership.add","target":[
                {"id":"00u1","type":"User","alternateId":"x@acme.com"},
                {"id":"0oaSurvey","type":"AppInstance"}]}"#,
        );
        assert_eq!(resolver(RULES).resolve(&app).as_deref(), Some("survey-co"));
        let mail = event(
            r#"{"eventType":"user.lifecycle.create","target":[
                {"id":"00u1","type":"User","alternateId":"X@ACME.COM"}]}"#,
        );
        assert_eq!(resolver(RULES).resolve(&mail).as_deref(), Some("acme"));
    }

    #[test]
    fn a_profile_attribute_in_change_details_names_the_tenant() {
        let e = event(
            r#"{"eventType":"user.account.update_profile","target":[
                {"id":"00u1","type":"User","alternateId":"x@nowhere.org",
                 "changeDetails":{"from":{},"to":{"tenantId":"initech"}}}]}"#,
        );
        assert_eq!(resolver(RULES).resolve(&e).as_deref(), Some("initech"));
    }

    #[test]
    fn a_group_name_resolves_by_the_group_rules_only() {
        let r = resolver(RULES);
        assert_eq!(r.tenant_of_group("tenant-acme").as_deref(), Some("acme"));
        assert_eq!(r.tenant_of_group("acme-admins"), None);
        assert_eq!(r.tenant_of_group("tenant-"), None);
        assert_eq!(
            TenantResolver::default().tenant_of_group("tenant-acme"),
            None
        );
    }

    #[test]
    fn tenant_ids_follow_one_character_set() {
        for ok in ["acme", "a", "0", "acme-2", "a-b-c", &"a".repeat(63)] {
            assert_eq!(TenantId::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(TenantId::parse(""), Err(InvalidTenantId::Empty));
        assert_eq!(TenantId::parse("  \t"), Err(InvalidTenantId::Empty));
        for bad in [
            "Acme",
            " acme",
            "acme ",
            "-acme",
            "a|b",
            "|",
            "a_b",
            "a.b",
            "é",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(TenantId::parse(bad), Err(InvalidTenantId::Malformed(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn a_rule_value_that_is_not_a_tenant_id_names_no_tenant() {
        let rules = r#"rules = [
            { kind = "group", pattern = "^tenant-(?P<tenant>.+)$" },
            { kind = "attribute", attribute = "tenantId" },
        ]"#;
        let group = |name: &str| {
            event(&format!(
                r#"{{"eventType":"group.user_membership.add","target":[
                {{"id":"00u1","type":"User","alternateId":"x@other.org"}},
                {{"id":"00g1","type":"UserGroup","displayName":"{name}"}}]}}"#
            ))
        };
        assert_eq!(resolver(rules).resolve(&group("tenant-a|b")), None);
        assert_eq!(resolver(rules).resolve(&group("tenant-Acme")), None);
        assert_eq!(
            resolver(rules).resolve(&group("tenant-acme")).as_deref(),
            Some("acme")
        );
        let attr = |value: &str| {
            event(&format!(
                r#"{{"eventType":"user.account.update_profile","target":[
                {{"id":"00u1","type":"User","alternateId":"x@nowhere.org",
                 "changeDetails":{{"from":{{}},"to":{{"tenantId":"{value}"}}}}}}]}}"#
            ))
        };
        assert_eq!(resolver(rules).resolve(&attr(" ")), None);
        assert_eq!(resolver(rules).resolve(&attr("in|itech")), None);
    }

    #[test]
    fn no_rule_no_tenant() {
        let e = event(
            r#"{"eventType":"user.session.start","actor":{"id":"00u1","type":"User","alternateId":"a@b.org"}}"#,
        );
        assert_eq!(resolver(RULES).resolve(&e), None);
        assert_eq!(TenantResolver::default().resolve(&e), None);
    }
}
