//! Registration hook (`com.okta.user.pre-registration`): self-service registration (SSR) and
//! progressive profile. Spec: HOOKS-SPEC §3.6.3, <https://developer.okta.com/docs/guides/registration-inline-hook/>.
//!
//! When `[inline] tenants` list email domains, only those domains may register; anything else is
//! denied with an `errorCauses` entry pointing at the email field, which the Sign-In Widget shows
//! next to it. An allowed registration gets the tenant id (and the tenant's `attributes`) through
//! `com.okta.user.profile.update` (SSR) or `com.okta.user.progressive.profile.update`
//! (progressive; the SSR command is invalid there). Nothing to set → 204 (allow).

use serde_json::{Map, Value};

use super::policy::Tenant;
use super::{cause, Answer, Decision, Policy};
use crate::okta::inline_hook::{
    profile_str, Command, InlineError, InlineResponse, RegistrationData,
};

pub const PROGRESSIVE: &str = "progressive.profile";

/// Decides a registration or progressive profile update.
pub fn decide_registration(
    policy: &Policy,
    request_type: Option<&str>,
    data: &RegistrationData,
) -> Decision {
    let progressive = request_type == Some(PROGRESSIVE);
    // Which email decides, and where the widget should show a refusal.
    let (email, location) = if progressive {
        match profile_str(&data.user_profile_update, "email") {
            Some(e) => (Some(e), "data.userProfileUpdate.email"),
            // The email is not being changed: the existing one only selects the tenant.
            None => (
                data.context
                    .as_ref()
                    .and_then(|c| c.user.as_ref())
                    .and_then(|u| u.profile_str("email").or_else(|| u.profile_str("login"))),
                "",
            ),
        }
    } else {
        (
            profile_str(&data.user_profile, "email")
                .or_else(|| profile_str(&data.user_profile, "login")),
            "data.userProfile.email",
        )
    };
    let tenant = email.and_then(|e| policy.tenant_for_email(e));
    if policy.restricts_email_domains() && tenant.is_none() && !location.is_empty() {
        return Decision::new(deny(location), "deny");
    }
    let updates = tenant
        .map(|t| profile_updates(policy, t))
        .unwrap_or_default();
    if updates.is_empty() {
        return Decision::new(Answer::NoContent, "allow");
    }
    let command = if progressive {
        "com.okta.user.progressive.profile.update"
    } else {
        "com.okta.user.profile.update"
    };
    Decision::new(
        Answer::Body(InlineResponse {
            commands: vec![Command::new(command, Value::Object(updates))],
            ..Default::default()
        }),
        "allow_with_profile",
    )
}

/// The tenant's attributes, then the tenant attribute itself (it wins over a same-named one).
fn profile_updates(policy: &Policy, tenant: &Tenant) -> Map<String, Value> {
    let mut updates = tenant.attributes.clone();
    if let Some(attr) = &policy.tenant_attribute {
        updates.insert(attr.clone(), Value::String(tenant.id.clone()));
    }
    updates
}

/// Okta's documented deny shape: the DENY action plus an error whose cause names the field.
fn deny(location: &str) -> Answer {
    Answer::Body(InlineResponse {
        commands: vec![Command::new(
            "com.okta.action.update",
            serde_json::json!({"registration": "DENY"}),
        )],
        error: Some(InlineError {
            error_summary: "Registration is not available for this email address.".into(),
            error_causes: vec![cause(
                "This email domain cannot register here. Please use your organisation's email address.",
                "INVALID_EMAIL_DOMAIN",
                location,
            )],
        }),
        debug_context: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inline::policy::policy_from;
    use crate::okta::inline_hook::InlineRequest;
    use serde_json::json;

    const TENANTS: &str = r#"[inline]
tenants = [{ id = "acme", email_domains = ["example.com"], attributes = { plan = "pro" } }]"#;

    fn ssr(email: &str) -> RegistrationData {
        serde_json::from_str(&json!({"userProfile": {"email": email, "login": email}}).to_string())
            .unwrap()
    }

    #[test]
    fn okta_s_ssr_sample_from_an_allowed_domain_gets_the_tenant_set() {
        let r: InlineRequest<RegistrationData> = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/hooks/inline-registration-ssr-request.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let d = decide_registration(
            &policy_from(TENANTS),
            r.request_type.as_deref(),
            r.data.as_ref().unwrap(),
        );
        assert_eq!(d.outcome, "allow_with_profile");
        assert_eq!(
            d.answer.to_json(),
            json!({"commands": [{"type": "com.okta.user.profile.update",
                                 "value": {"plan": "pro", "tenant": "acme"}}]})
        );
    }

    #[test]
    fn another_domain_is_denied_with_the_cause_at_the_email_field() {
        let d = decide_registration(&policy_from(TENANTS), None, &ssr("eve@evil.org"));
        assert_eq!(d.outcome, "deny");
        let j = d.answer.to_json();
        assert_eq!(j["commands"][0]["type"], "com.okta.action.update");
        assert_eq!(j["commands"][0]["value"]["registration"], "DENY");
        assert_eq!(
            j["error"]["errorCauses"][0]["location"],
            "data.userProfile.email"
        );
        assert_eq!(
            j["error"]["errorCauses"][0]["reason"],
            "INVALID_EMAIL_DOMAIN"
        );
        assert_eq!(j["error"]["errorCauses"][0]["locationType"], "body");
        assert_eq!(j["error"]["errorCauses"][0]["domain"], "end-user");
    }

    #[test]
    fn a_registration_without_an_email_is_denied_when_domains_are_restricted() {
        let data: RegistrationData =
            serde_json::from_str(&json!({"userProfile": {"firstName": "A"}}).to_string()).unwrap();
        assert_eq!(
            decide_registration(&policy_from(TENANTS), None, &data).outcome,
            "deny"
        );
    }

    #[test]
    fn without_tenant_domains_everyone_may_register_and_nothing_is_set() {
        let d = decide_registration(&policy_from(""), None, &ssr("anyone@anywhere.net"));
        assert_eq!(d, Decision::new(Answer::NoContent, "allow"));
    }

    #[test]
    fn progressive_profile_uses_its_own_command_and_field() {
        let p = policy_from(TENANTS);
        let keep: RegistrationData = serde_json::from_str(
            &json!({
                "context": {"user": {"id": "00u1", "profile": {"email": "jo@example.com"}}},
                "userProfileUpdate": {"employeeNumber": "7"}
            })
            .to_string(),
        )
        .unwrap();
        let d = decide_registration(&p, Some(PROGRESSIVE), &keep);
        assert_eq!(
            d.answer.to_json()["commands"][0]["type"],
            "com.okta.user.progressive.profile.update"
        );
        let change: RegistrationData = serde_json::from_str(
            &json!({
                "context": {"user": {"id": "00u1", "profile": {"email": "jo@example.com"}}},
                "userProfileUpdate": {"email": "jo@elsewhere.org"}
            })
            .to_string(),
        )
        .unwrap();
        let d = decide_registration(&p, Some(PROGRESSIVE), &change);
        assert_eq!(d.outcome, "deny");
        assert_eq!(
            d.answer.to_json()["error"]["errorCauses"][0]["location"],
            "data.userProfileUpdate.email"
        );
    }
}
