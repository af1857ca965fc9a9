//! Okta's published samples answered in the documented shapes, and the registration hook's
//! tenant policy.

use super::*;

// ---- Okta's samples and the documented shapes ----

#[tokio::test]
async fn every_okta_sample_is_answered_in_the_documented_shape() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, TENANTS).await;

    // Password import for a login without a legacy hash: the documented UNVERIFIED command.
    let (status, body) =
        post_inline(&app, "password-import", &okta_request("password-import")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"commands": [{"type": "com.okta.action.update", "value": {"credential": "UNVERIFIED"}}]})
    );

    // SSR from example.com: Okta's profile-update command shape, with the tenant.
    let (status, body) = post_inline(&app, "registration", &okta_request("registration")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"commands": [{"type": "com.okta.user.profile.update",
                             "value": {"plan": "pro", "tenant": "acme"}}]})
    );

    // User import of a user nobody knows: CREATE_USER with the email domain's tenant.
    let (status, body) = post_inline(&app, "user-import", &okta_request("user-import")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"commands": [
            {"type": "com.okta.action.update", "value": {"result": "CREATE_USER"}},
            {"type": "com.okta.user.profile.update", "value": {"tenant": "clouditude"}}
        ]})
    );

    // Token and SAML for a user the projection does not know: 204, unchanged.
    for hook in ["token", "saml"] {
        let (status, body) = post_inline(&app, hook, &okta_request(hook)).await;
        assert_eq!((status, body), (204, Value::Null), "{hook}");
    }

    // Telephony without a provider: the error object that makes Okta use its own providers.
    let (status, body) = post_inline(&app, "telephony", &okta_request("telephony")).await;
    assert_eq!(status, 200);
    assert!(body.get("commands").is_none());
    assert!(body["error"]["errorSummary"]
        .as_str()
        .unwrap()
        .contains("Okta's telephony providers"));
    assert_eq!(
        body["error"]["errorCauses"][0]["reason"],
        "PROVIDER_UNAVAILABLE"
    );
}

#[tokio::test]
async fn registration_from_another_domain_is_denied_at_the_email_field() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, TENANTS).await;
    let mut req = okta_request("registration");
    req["data"]["userProfile"]["email"] = json!("mallory@evil.example.org");
    req["data"]["userProfile"]["login"] = json!("mallory@evil.example.org");
    let (status, body) = post_inline(&app, "registration", &req).await;
    assert_eq!(
        status, 200,
        "a refusal travels in the body, not as an HTTP error"
    );
    // The shape of Okta's own deny sample.
    let okta = sample("inline-registration-ssr-response-deny.json");
    assert_eq!(body["commands"], okta["commands"]);
    let cause = &body["error"]["errorCauses"][0];
    for field in ["reason", "locationType", "location", "domain"] {
        assert_eq!(
            cause[field], okta["error"]["errorCauses"][0][field],
            "{field}"
        );
    }
    assert!(body["error"]["errorSummary"].is_string());

    // Progressive profile: its own command, only the tenant and attributes.
    let progressive = json!({
        "eventType": "com.okta.user.pre-registration",
        "eventId": "prog-1",
        "cloudEventVersion": "0.1",
        "requestType": "progressive.profile",
        "source": "regt4qeBKU29vSoPz0g3",
        "data": {
            "context": {"request": {"method": "POST", "url": {"value": "/idp/idx/enroll/update"}},
                        "user": {"id": "00u1", "profile": {"login": "jo@example.com", "email": "jo@example.com"}}},
            "userProfileUpdate": {"employeeNumber": "1234"},
            "action": "ALLOW"
        }
    });
    let (status, body) = post_inline(&app, "registration", &progressive).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"commands": [{"type": "com.okta.user.progressive.profile.update",
                             "value": {"plan": "pro", "tenant": "acme"}}]})
    );
}

#[tokio::test]
async fn without_tenant_policy_registration_is_allowed_with_204() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let (status, body) = post_inline(&app, "registration", &okta_request("registration")).await;
    assert_eq!((status, body), (204, Value::Null));
}
