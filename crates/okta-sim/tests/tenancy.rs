//! The simulator's tenant-provisioning surface against Okta's documented behaviour: group rules
//! (INACTIVE on create, membership on activate), OIDC apps (secret on create only, lifecycle,
//! secrets, group assignments with GROUP scope) and the `apps` rate bucket.

use std::time::Duration;

use okta_sim::{OktaSim, SimConfig};
use serde_json::{json, Value};

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("authorization", "SSWS sim-token");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn start(config: SimConfig) -> (OktaSim, Client) {
    let sim = OktaSim::start(
        config,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let client = Client {
        http: reqwest::Client::new(),
        base: sim.url(),
    };
    (sim, client)
}

fn oidc_app(label: &str) -> Value {
    json!({
        "name": "oidc_client", "label": label, "signOnMode": "OPENID_CONNECT",
        "credentials": {"oauthClient": {"token_endpoint_auth_method": "client_secret_basic", "pkce_required": true}},
        "settings": {"oauthClient": {
            "redirect_uris": ["https://acme.example.com/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "application_type": "web"}}
    })
}

#[tokio::test]
async fn a_group_rule_is_inactive_until_activated_then_assigns_matching_users() {
    let (sim, c) = start(SimConfig::default()).await;
    let (_, user) = c
        .call(
            "POST",
            "/api/v1/users?activate=true",
            Some(json!({"profile": {"login": "a@acme.com", "email": "a@acme.com", "tenant": "acme"}})),
        )
        .await;
    let (_, other) = c
        .call(
            "POST",
            "/api/v1/users?activate=true",
            Some(json!({"profile": {"login": "b@globex.com", "email": "b@globex.com", "tenant": "globex"}})),
        )
        .await;
    let (s, group) = c
        .call(
            "POST",
            "/api/v1/groups",
            Some(json!({"profile": {"name": "tenant-acme"}})),
        )
        .await;
    assert_eq!(s, 200);
    let gid = group["id"].as_str().unwrap();
    let rule = json!({"type": "group_rule", "name": "tenant-acme",
        "conditions": {"expression": {"value": "user.tenant==\"acme\"", "type": "urn:okta:expression:1.0"}},
        "actions": {"assignUserToGroups": {"groupIds": [gid]}}});
    let (s, created) = c
        .call("POST", "/api/v1/groups/rules", Some(rule.clone()))
        .await;
    assert_eq!(s, 200, "{created}");
    assert_eq!(created["status"], "INACTIVE");
    assert!(
        sim.group_members(gid).is_empty(),
        "inactive rules do nothing"
    );
    let rid = created["id"].as_str().unwrap();
    let (s, _) = c
        .call(
            "POST",
            &format!("/api/v1/groups/rules/{rid}/lifecycle/activate"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        sim.group_members(gid),
        vec![user["id"].as_str().unwrap().to_string()]
    );
    assert!(!sim
        .group_members(gid)
        .contains(&other["id"].as_str().unwrap().to_string()));
    // An active rule cannot be changed; a bad expression is refused; search finds by name.
    let (s, e) = c
        .call("PUT", &format!("/api/v1/groups/rules/{rid}"), Some(rule))
        .await;
    assert_eq!((s, e["errorCode"].as_str()), (400, Some("E0000001")));
    let mut bad = json!({"name": "x", "conditions": {"expression": {"value": "true"}},
        "actions": {"assignUserToGroups": {"groupIds": [gid]}}});
    let (s, _) = c
        .call("POST", "/api/v1/groups/rules", Some(bad.clone()))
        .await;
    assert_eq!(s, 400);
    bad["conditions"]["expression"]["value"] = json!("user.tenant==\"x\"");
    bad["actions"]["assignUserToGroups"]["groupIds"] = json!(["00gmissing"]);
    let (s, _) = c.call("POST", "/api/v1/groups/rules", Some(bad)).await;
    assert_eq!(s, 400);
    let (_, found) = c
        .call("GET", "/api/v1/groups/rules?search=tenant-acme", None)
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    // A user created later who matches joins at once.
    let (_, late) = c
        .call(
            "POST",
            "/api/v1/users?activate=true",
            Some(json!({"profile": {"login": "c@acme.com", "email": "c@acme.com", "tenant": "acme"}})),
        )
        .await;
    assert!(sim
        .group_members(gid)
        .contains(&late["id"].as_str().unwrap().to_string()));
}

#[tokio::test]
async fn an_oidc_app_shows_its_secret_once_and_follows_okta_s_lifecycle() {
    let (sim, c) = start(SimConfig::default()).await;
    let (s, app) = c
        .call(
            "POST",
            "/api/v1/apps?activate=true",
            Some(oidc_app("acme efs")),
        )
        .await;
    assert_eq!(s, 200, "{app}");
    let id = app["id"].as_str().unwrap();
    assert_eq!(app["credentials"]["oauthClient"]["client_id"], id);
    let secret = app["credentials"]["oauthClient"]["client_secret"]
        .as_str()
        .unwrap();
    assert!(sim.app_has_secret(id, secret));
    let (_, again) = c.call("GET", &format!("/api/v1/apps/{id}"), None).await;
    assert!(again["credentials"]["oauthClient"]["client_secret"].is_null());
    assert_eq!(again["status"], "ACTIVE");
    let (_, listed) = c.call("GET", "/api/v1/apps?q=acme%20e", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // Without redirect URIs an authorization-code app is refused.
    let mut bad = oidc_app("bad");
    bad["settings"]["oauthClient"]["redirect_uris"] = json!([]);
    let (s, e) = c.call("POST", "/api/v1/apps", Some(bad)).await;
    assert_eq!((s, e["errorCode"].as_str()), (400, Some("E0000001")));
    // Rotation: a second secret, then the old one deactivated and deleted.
    let (s, new) = c
        .call(
            "POST",
            &format!("/api/v1/apps/{id}/credentials/secrets"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            "POST",
            &format!("/api/v1/apps/{id}/credentials/secrets"),
            None,
        )
        .await;
    assert_eq!(s, 400, "at most two secrets");
    let (_, secrets) = c
        .call(
            "GET",
            &format!("/api/v1/apps/{id}/credentials/secrets"),
            None,
        )
        .await;
    assert!(secrets
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["client_secret"].is_null()));
    let old = secrets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] != new["id"])
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = c
        .call(
            "DELETE",
            &format!("/api/v1/apps/{id}/credentials/secrets/{old}"),
            None,
        )
        .await;
    assert_eq!(s, 400, "an active secret cannot be deleted");
    c.call(
        "POST",
        &format!("/api/v1/apps/{id}/credentials/secrets/{old}/lifecycle/deactivate"),
        None,
    )
    .await;
    let (s, _) = c
        .call(
            "DELETE",
            &format!("/api/v1/apps/{id}/credentials/secrets/{old}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert!(!sim.app_has_secret(id, secret));
    assert!(sim.app_has_secret(id, new["client_secret"].as_str().unwrap()));
    // Group assignment: members get GROUP scope.
    let (_, user) = c
        .call(
            "POST",
            "/api/v1/users?activate=true",
            Some(json!({"profile": {"login": "a@acme.com", "email": "a@acme.com"}})),
        )
        .await;
    let uid = user["id"].as_str().unwrap();
    let gid = sim.create_group("tenant-acme");
    c.call("PUT", &format!("/api/v1/groups/{gid}/users/{uid}"), None)
        .await;
    let (s, _) = c
        .call(
            "PUT",
            &format!("/api/v1/apps/{id}/groups/{gid}"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, users) = c
        .call("GET", &format!("/api/v1/apps/{id}/users"), None)
        .await;
    assert_eq!(users[0]["scope"], "GROUP");
    // Delete: only once deactivated.
    let (s, e) = c.call("DELETE", &format!("/api/v1/apps/{id}"), None).await;
    assert_eq!((s, e["errorCode"].as_str()), (403, Some("E0000056")));
    c.call(
        "POST",
        &format!("/api/v1/apps/{id}/lifecycle/deactivate"),
        None,
    )
    .await;
    let (s, _) = c.call("DELETE", &format!("/api/v1/apps/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, e) = c.call("GET", &format!("/api/v1/apps/{id}"), None).await;
    assert_eq!((s, e["errorCode"].as_str()), (404, Some("E0000007")));
}

#[tokio::test]
async fn apps_have_their_own_rate_bucket_with_okta_s_headers() {
    let (sim, c) = start(SimConfig {
        apps_limit: 3,
        window: Duration::from_secs(5),
        ..SimConfig::default()
    })
    .await;
    for _ in 0..3 {
        let (s, _) = c.call("GET", "/api/v1/apps", None).await;
        assert_eq!(s, 200);
    }
    let resp = c
        .http
        .get(format!("{}/api/v1/apps", c.base))
        .header("authorization", "SSWS sim-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["x-rate-limit-limit"], "3");
    assert_eq!(resp.headers()["x-rate-limit-remaining"], "0");
    assert!(resp.headers().contains_key("x-rate-limit-reset"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorCode"], "E0000047");
    // Groups are a different bucket.
    let (s, _) = c.call("GET", "/api/v1/groups", None).await;
    assert_eq!(s, 200);
    assert_eq!(sim.stats()["writes"], json!({}));
}
