//! Token hook (`com.okta.oauth2.tokens.transform`). Spec: HOOKS-SPEC §3.6.2,
//! <https://developer.okta.com/docs/reference/token-hook/>.
//!
//! Adds the user's tenant and the roles derived from their groups (`[inline] roles`) as claims,
//! with `com.okta.identity.patch` / `com.okta.access.patch` — only for tokens Okta is minting in
//! this request (a patch for a token that is not being minted is invalid), `add` for a claim the
//! token lacks and `replace` for one it has (Okta refuses `replace` of a missing claim). Reserved
//! claim names are refused when the config is loaded. Nothing to add → 204 (token unchanged).

use serde_json::{json, Map, Value};

use super::{pointer_segment, Answer, Decision, Policy};
use crate::okta::inline_hook::{Command, InlineResponse, TokenData};
use crate::projection::UserView;

pub fn decide_token(policy: &Policy, data: &TokenData, user: Option<&UserView>) -> Decision {
    let Some(user) = user else {
        return Decision::new(Answer::NoContent, "unknown_user");
    };
    let mut claims: Vec<(&str, Value)> = Vec::new();
    if let (Some(name), Some(tenant)) = (&policy.token_tenant_claim, &user.tenant) {
        claims.push((name, Value::String(tenant.clone())));
    }
    let roles = policy.roles_for_groups(&user.groups);
    if let (Some(name), false) = (&policy.token_roles_claim, roles.is_empty()) {
        claims.push((name, json!(roles)));
    }
    let mut commands = Vec::new();
    for (enabled, minted, command) in [
        (
            policy.token_identity,
            &data.identity,
            "com.okta.identity.patch",
        ),
        (policy.token_access, &data.access, "com.okta.access.patch"),
    ] {
        let Some(token) = minted.as_ref().filter(|_| enabled) else {
            continue;
        };
        let ops = patch_ops(&token.claims, &claims);
        if !ops.is_empty() {
            commands.push(Command::new(command, Value::Array(ops)));
        }
    }
    if commands.is_empty() {
        return Decision::new(Answer::NoContent, "unchanged");
    }
    Decision::new(
        Answer::Body(InlineResponse {
            commands,
            ..Default::default()
        }),
        "claims_added",
    )
}

/// One `add`/`replace` op per claim, by whether the token already carries it.
fn patch_ops(existing: &Map<String, Value>, claims: &[(&str, Value)]) -> Vec<Value> {
    claims
        .iter()
        .map(|(name, value)| {
            let op = if existing.contains_key(*name) {
                "replace"
            } else {
                "add"
            };
            json!({"op": op, "path": format!("/claims/{}", pointer_segment(name)), "value": value})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inline::policy::policy_from;
    use crate::inline::test_user;
    use crate::okta::inline_hook::InlineRequest;

    fn okta_sample() -> TokenData {
        let r: InlineRequest<TokenData> = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/hooks/inline-token-request.json"
            ))
            .unwrap(),
        )
        .unwrap();
        r.data.unwrap()
    }

    fn jane() -> UserView {
        test_user(
            "00uq8tMo3zV0OfJON0g3",
            Some("acme"),
            &["acme-admins", "Everyone"],
        )
    }

    const ROLES: &str = "[inline]\nroles = { \"acme-admins\" = [\"admin\"] }\n";

    #[test]
    fn both_minted_tokens_get_tenant_and_roles() {
        let d = decide_token(&policy_from(ROLES), &okta_sample(), Some(&jane()));
        assert_eq!(d.outcome, "claims_added");
        let ops = json!([
            {"op": "add", "path": "/claims/tenant", "value": "acme"},
            {"op": "add", "path": "/claims/roles", "value": ["admin"]}
        ]);
        assert_eq!(
            d.answer.to_json(),
            json!({"commands": [
                {"type": "com.okta.identity.patch", "value": ops},
                {"type": "com.okta.access.patch", "value": ops}
            ]})
        );
    }

    #[test]
    fn only_tokens_being_minted_are_patched_and_existing_claims_are_replaced() {
        let mut data = okta_sample();
        data.identity = None;
        data.access
            .as_mut()
            .unwrap()
            .claims
            .insert("tenant".into(), json!("stale"));
        let j = decide_token(&policy_from(ROLES), &data, Some(&jane()))
            .answer
            .to_json();
        let commands = j["commands"].as_array().unwrap();
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0]["type"], "com.okta.access.patch");
        assert_eq!(commands[0]["value"][0]["op"], "replace");
        assert_eq!(commands[0]["value"][1]["op"], "add");
    }

    #[test]
    fn nothing_to_add_or_an_unknown_user_answers_204() {
        let nobody = test_user("00u2", None, &[]);
        let p = policy_from(ROLES);
        assert_eq!(
            decide_token(&p, &okta_sample(), Some(&nobody)),
            Decision::new(Answer::NoContent, "unchanged")
        );
        assert_eq!(
            decide_token(&p, &okta_sample(), None).outcome,
            "unknown_user"
        );
        let only_access = policy_from("[inline.token]\ntokens = [\"access\"]\n");
        let mut data = okta_sample();
        data.access = None;
        assert_eq!(
            decide_token(&only_access, &data, Some(&jane())).answer,
            Answer::NoContent,
            "the ID token is minted but not configured"
        );
    }

    #[test]
    fn claim_names_with_slashes_are_pointer_escaped() {
        let p = policy_from("[inline.token]\ntenant_claim = \"https://example.com/tenant\"\n");
        let j = decide_token(&p, &okta_sample(), Some(&jane()))
            .answer
            .to_json();
        assert_eq!(
            j["commands"][0]["value"][0]["path"],
            "/claims/https:~1~1example.com~1tenant"
        );
    }
}
