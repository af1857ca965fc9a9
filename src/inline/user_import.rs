//! User import hook (`com.okta.import.transform`). Spec: HOOKS-SPEC §3.6.4,
//! <https://developer.okta.com/docs/reference/import-hook/>.
//!
//! The incoming user is matched against the projection by login, then email. A match becomes
//! `LINK_USER` plus `com.okta.user.update {id}` (Okta requires both: there is no
//! `com.okta.link.user`); otherwise `CREATE_USER`. Either way the tenant attribute is set: the
//! matched user's tenant, else the importing app's tenant, else the email domain's tenant.

use serde_json::{json, Map, Value};

use super::{Answer, Decision, Policy};
use crate::okta::inline_hook::{profile_str, Command, InlineResponse, UserImportData};
use crate::projection::UserView;

/// The login and email to look up, in that order (empty ones left out, duplicates once).
pub fn lookup_keys(data: &UserImportData) -> Vec<String> {
    let user = data.user.as_ref().map(|u| &u.profile);
    let app = data.app_user.as_ref().map(|u| &u.profile);
    let mut keys: Vec<String> = Vec::new();
    for (profile, attr) in [(user, "login"), (user, "email"), (app, "email")] {
        if let Some(v) = profile.and_then(|p| profile_str(p, attr)) {
            if !keys.iter().any(|k| k.eq_ignore_ascii_case(v)) {
                keys.push(v.to_string());
            }
        }
    }
    keys
}

pub fn decide_user_import(
    policy: &Policy,
    data: &UserImportData,
    matched: Option<&UserView>,
) -> Decision {
    let app_tenant = data
        .context
        .as_ref()
        .and_then(|c| c.application.as_ref())
        .and_then(|a| a.id.as_deref())
        .and_then(|id| policy.tenant_for_app(id))
        .map(|t| t.id.clone());
    let email_tenant = || {
        lookup_keys(data)
            .iter()
            .find_map(|k| policy.tenant_for_email(k))
            .map(|t| t.id.clone())
    };
    let tenant = matched
        .and_then(|u| u.tenant.clone())
        .or(app_tenant)
        .or_else(email_tenant);
    let mut commands = Vec::new();
    let outcome = match matched {
        Some(user) => {
            commands.push(Command::new(
                "com.okta.action.update",
                json!({"result": "LINK_USER"}),
            ));
            commands.push(Command::new("com.okta.user.update", json!({"id": user.id})));
            "link"
        }
        None => {
            commands.push(Command::new(
                "com.okta.action.update",
                json!({"result": "CREATE_USER"}),
            ));
            "create"
        }
    };
    if let (Some(attr), Some(tenant)) = (&policy.tenant_attribute, tenant) {
        let mut profile = Map::new();
        profile.insert(attr.clone(), Value::String(tenant));
        commands.push(Command::new(
            "com.okta.user.profile.update",
            Value::Object(profile),
        ));
    }
    Decision::new(
        Answer::Body(InlineResponse {
            commands,
            ..Default::default()
        }),
        outcome,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inline::policy::policy_from;
    use crate::inline::test_user;
    use crate::okta::inline_hook::InlineRequest;

    fn okta_sample() -> UserImportData {
        let r: InlineRequest<UserImportData> = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/hooks/inline-user-import-request.json"
            ))
            .unwrap(),
        )
        .unwrap();
        r.data.unwrap()
    }

    const POLICY: &str = r#"[inline]
tenants = [{ id = "clouditude", email_domains = ["clouditude.net"] },
           { id = "app-tenant", apps = ["0oa7ey7aLRuBvcYUD0g4"] }]"#;

    #[test]
    fn okta_s_sample_is_looked_up_by_login_then_email() {
        assert_eq!(lookup_keys(&okta_sample()), ["sally.admin@clouditude.net"]);
    }

    #[test]
    fn a_known_user_is_linked_by_id_and_keeps_its_tenant() {
        let user = test_user("00garwpuyxHaWOkdV0g4", Some("acme"), &[]);
        let d = decide_user_import(&policy_from(POLICY), &okta_sample(), Some(&user));
        assert_eq!(d.outcome, "link");
        let j = d.answer.to_json();
        // Okta's own LINK_USER sample, plus the tenant attribute.
        let okta: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/hooks/inline-user-import-response-link-user.json"
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(j["commands"][0], okta["commands"][0]);
        assert_eq!(j["commands"][1], okta["commands"][1]);
        assert_eq!(
            j["commands"][2],
            json!({"type": "com.okta.user.profile.update", "value": {"tenant": "acme"}})
        );
    }

    #[test]
    fn an_unknown_user_is_created_with_the_app_s_tenant_before_the_domain_s() {
        let d = decide_user_import(&policy_from(POLICY), &okta_sample(), None);
        assert_eq!(d.outcome, "create");
        let j = d.answer.to_json();
        assert_eq!(j["commands"][0]["value"]["result"], "CREATE_USER");
        assert_eq!(j["commands"][1]["value"]["tenant"], "app-tenant");

        let only_domain = policy_from(
            r#"[inline]
tenants = [{ id = "clouditude", email_domains = ["clouditude.net"] }]"#,
        );
        let j = decide_user_import(&only_domain, &okta_sample(), None)
            .answer
            .to_json();
        assert_eq!(j["commands"][1]["value"]["tenant"], "clouditude");
    }

    #[test]
    fn without_a_tenant_only_the_action_is_sent() {
        let j = decide_user_import(&policy_from(""), &okta_sample(), None)
            .answer
            .to_json();
        assert_eq!(j["commands"].as_array().unwrap().len(), 1);
    }
}
