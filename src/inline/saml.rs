//! SAML assertion hook (`com.okta.saml.tokens.transform`). Spec: HOOKS-SPEC §3.6.5,
//! <https://developer.okta.com/docs/reference/saml-hook/>.
//!
//! Adds the user's tenant and roles as assertion attributes with `com.okta.assertion.patch`:
//! `add` for a new attribute, `replace` for one the assertion already has (no `remove` exists).
//! Nothing to add → 204 (the original assertion).

use serde_json::{json, Value};

use super::{pointer_segment, Answer, Decision, Policy};
use crate::okta::inline_hook::{Command, InlineResponse, SamlData};
use crate::projection::UserView;

pub fn decide_saml(policy: &Policy, data: &SamlData, user: Option<&UserView>) -> Decision {
    let Some(user) = user else {
        return Decision::new(Answer::NoContent, "unknown_user");
    };
    let mut attributes: Vec<(&str, Vec<String>)> = Vec::new();
    if let (Some(name), Some(tenant)) = (&policy.saml_tenant_attribute, &user.tenant) {
        attributes.push((name, vec![tenant.clone()]));
    }
    let roles = policy.roles_for_groups(&user.groups);
    if let (Some(name), false) = (&policy.saml_roles_attribute, roles.is_empty()) {
        attributes.push((name, roles));
    }
    if attributes.is_empty() {
        return Decision::new(Answer::NoContent, "unchanged");
    }
    let existing = data.assertion.as_ref().map(|a| &a.claims);
    let ops: Vec<Value> = attributes
        .into_iter()
        .map(|(name, values)| {
            let present = existing.is_some_and(|c| c.contains_key(name));
            json!({
                "op": if present { "replace" } else { "add" },
                "path": format!("/claims/{}", pointer_segment(name)),
                "value": {
                    "attributes": {"NameFormat": policy.saml_name_format},
                    "attributeValues": values.iter().map(|v| json!({
                        "attributes": {"xsi:type": "xs:string"},
                        "value": v
                    })).collect::<Vec<_>>()
                }
            })
        })
        .collect();
    Decision::new(
        Answer::Body(InlineResponse {
            commands: vec![Command::new("com.okta.assertion.patch", Value::Array(ops))],
            ..Default::default()
        }),
        "attributes_added",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inline::policy::policy_from;
    use crate::inline::test_user;
    use crate::okta::inline_hook::InlineRequest;

    fn okta_sample() -> SamlData {
        let r: InlineRequest<SamlData> = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/hooks/inline-saml-request.json"
            ))
            .unwrap(),
        )
        .unwrap();
        r.data.unwrap()
    }

    #[test]
    fn tenant_and_roles_become_attributes_in_okta_s_shape() {
        let p = policy_from(
            "[inline]\nroles = { \"g1\" = [\"viewer\"], \"g2\" = [\"editor\", \"viewer\"] }\n[inline.saml]\nroles_attribute = \"middle\"\n",
        );
        let user = test_user("00uq8tMo3zV0OfJON0g3", Some("acme"), &["g1", "g2"]);
        let d = decide_saml(&p, &okta_sample(), Some(&user));
        assert_eq!(d.outcome, "attributes_added");
        let j = d.answer.to_json();
        assert_eq!(j["commands"][0]["type"], "com.okta.assertion.patch");
        let ops = &j["commands"][0]["value"];
        assert_eq!(
            ops[0],
            json!({"op": "add", "path": "/claims/tenant", "value": {
                "attributes": {"NameFormat": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"},
                "attributeValues": [{"attributes": {"xsi:type": "xs:string"}, "value": "acme"}]}})
        );
        // `middle` exists in Okta's sample assertion: replaced, with both roles.
        assert_eq!(ops[1]["op"], "replace");
        assert_eq!(ops[1]["path"], "/claims/middle");
        assert_eq!(ops[1]["value"]["attributeValues"][1]["value"], "viewer");
    }

    #[test]
    fn an_unknown_user_or_nothing_to_add_keeps_the_original_assertion() {
        let p = policy_from("");
        assert_eq!(
            decide_saml(&p, &okta_sample(), None).answer,
            Answer::NoContent
        );
        let bare = test_user("x", None, &[]);
        assert_eq!(
            decide_saml(&p, &okta_sample(), Some(&bare)).outcome,
            "unchanged"
        );
    }
}
