//! Token, SAML and user import hooks answered from the projection of users known from events
//! delivered to the event hook.

use super::*;

// ---- with the projection: users known from events delivered to the event hook ----

const PROJECTED: &str = r#"
[inline]
tenants = [{ id = "clouditude", email_domains = ["clouditude.net"] }]
roles = { "tenant-acme" = ["member"], "acme-admins" = ["admin"] }
"#;

/// Delivers a user's creation and group memberships through the event hook and waits until
/// the projection holds all the groups.
async fn project_user(app: &TestApp, id: &str, login: &str, groups: &[&str]) {
    let mut events = vec![log_event(
        &format!("{id}-create"),
        "user.lifecycle.create",
        (id, login),
    )];
    for (i, g) in groups.iter().enumerate() {
        // Each group needs its own id (the helper's events all use one).
        let mut e = group_add_event(&format!("{id}-g{i}"), (id, login), g);
        e["target"][1]["id"] = json!(format!("00g{i}{id}"));
        events.push(e);
    }
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    let keys = Keys::new(app.prefix.clone());
    let known = eventually(10, || {
        let mut conn = app.state.redis.clone();
        let keys = keys.clone();
        async move {
            okta_adapter::projection::find_user(&mut conn, &keys, id)
                .await
                .ok()
                .flatten()
                .is_some_and(|u| u.groups.len() == groups.len())
        }
    })
    .await;
    assert!(known, "the projection learned {id}");
}

#[tokio::test]
async fn token_and_saml_hooks_add_the_projected_tenant_and_roles() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, PROJECTED).await;
    // The user of Okta's token and SAML samples.
    project_user(
        &app,
        "00uq8tMo3zV0OfJON0g3",
        "administrator1@clouditude.net",
        &["tenant-acme", "acme-admins", "Everyone"],
    )
    .await;

    let (status, body) = post_inline(&app, "token", &okta_request("token")).await;
    assert_eq!(status, 200);
    let ops = json!([
        {"op": "add", "path": "/claims/tenant", "value": "acme"},
        {"op": "add", "path": "/claims/roles", "value": ["admin", "member"]}
    ]);
    assert_eq!(
        body,
        json!({"commands": [
            {"type": "com.okta.identity.patch", "value": ops},
            {"type": "com.okta.access.patch", "value": ops}
        ]})
    );

    // A refresh that mints only an access token gets only the access patch.
    let mut access_only = okta_request("token");
    access_only["data"]
        .as_object_mut()
        .unwrap()
        .remove("identity");
    let (_, body) = post_inline(&app, "token", &access_only).await;
    let commands = body["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["type"], "com.okta.access.patch");

    let (status, body) = post_inline(&app, "saml", &okta_request("saml")).await;
    assert_eq!(status, 200);
    assert_eq!(body["commands"][0]["type"], "com.okta.assertion.patch");
    let ops = body["commands"][0]["value"].as_array().unwrap();
    assert_eq!(ops[0]["path"], "/claims/tenant");
    assert_eq!(ops[0]["value"]["attributeValues"][0]["value"], "acme");
    assert_eq!(ops[1]["path"], "/claims/roles");
    let roles: Vec<&str> = ops[1]["value"]["attributeValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["admin", "member"]);

    let stream = decisions_stream(&app);
    assert!(
        eventually(5, || async {
            let outcomes: Vec<String> = app
                .entries(&stream)
                .await
                .into_iter()
                .map(|e| e["outcome"].clone())
                .collect();
            outcomes == ["claims_added", "claims_added", "attributes_added"]
        })
        .await
    );
}

#[tokio::test]
async fn user_import_links_a_user_the_projection_knows_and_creates_the_others() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, PROJECTED).await;
    // Okta's import sample is for sally.admin@clouditude.net; she is already an Okta user.
    project_user(
        &app,
        "00usally0000000001",
        "sally.admin@clouditude.net",
        &["tenant-sally-co"],
    )
    .await;
    let (status, body) = post_inline(&app, "user-import", &okta_request("user-import")).await;
    assert_eq!(status, 200);
    // Okta's own LINK_USER sample shape, with her id and her projected tenant.
    assert_eq!(
        body,
        json!({"commands": [
            {"type": "com.okta.action.update", "value": {"result": "LINK_USER"}},
            {"type": "com.okta.user.update", "value": {"id": "00usally0000000001"}},
            {"type": "com.okta.user.profile.update", "value": {"tenant": "sally-co"}}
        ]})
    );
    // Matched case-insensitively, as Okta logins are.
    let mut upper = okta_request("user-import");
    upper["data"]["user"]["profile"]["login"] = json!("SALLY.ADMIN@CLOUDITUDE.NET");
    let (_, body) = post_inline(&app, "user-import", &upper).await;
    assert_eq!(body["commands"][0]["value"]["result"], "LINK_USER");

    // Someone the projection does not know is created, with the email domain's tenant.
    let mut other = okta_request("user-import");
    other["data"]["user"]["profile"]["login"] = json!("new.hire@clouditude.net");
    other["data"]["user"]["profile"]["email"] = json!("new.hire@clouditude.net");
    other["data"]["appUser"]["profile"]["email"] = json!("new.hire@clouditude.net");
    let (_, body) = post_inline(&app, "user-import", &other).await;
    assert_eq!(
        body,
        json!({"commands": [
            {"type": "com.okta.action.update", "value": {"result": "CREATE_USER"}},
            {"type": "com.okta.user.profile.update", "value": {"tenant": "clouditude"}}
        ]})
    );
}
