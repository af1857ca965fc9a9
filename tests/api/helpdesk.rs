//! Helpdesk endpoints (groups, apps, factors) and the self-service MFA reset, against the Okta
//! simulator (its System Log events flow back through the event hook into the projection), a
//! real Redis and a real SMTP server in the test process.

use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use okta_adapter::access::Role;
use okta_sim::{OktaSim, SimConfig};
use serde_json::{json, Value};

use crate::helpers::*;

const TENANTS: &str = r#"
[tenants]
rules = [
  { kind = "group", pattern = "^tenant-(?P<tenant>[a-z0-9-]+)$" },
  { kind = "email_domain", map = { "acme.example" = "acme", "globex.example" = "globex" } },
  { kind = "app", map = { "0oaAcmeSurvey" = "acme", "0oaGlobexPortal" = "globex" } },
]
"#;

/// `api_key`, retried: right after start, a loaded machine can miss the test Redis
/// connection's 500 ms response timeout.
async fn key(app: &TestApp, role: Role, tenant: Option<&str>) -> String {
    for _ in 0..20 {
        let mut conn = app.state.redis.clone();
        match app.state.key_store.create(&mut conn, role, tenant).await {
            Ok(Ok((token, _))) => return token,
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("invalid role/tenant: {e}"),
        }
    }
    panic!("Redis did not answer in 20 attempts");
}

struct Desk {
    app: TestApp,
    sim: OktaSim,
    smtp: TestSmtp,
    support: String,
    _redis: TestRedis,
}

async fn desk(extra: &str) -> Desk {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let config = merge_toml(
        &format!(
            "{TENANTS}\n[smtp]\nurl = \"{}\"\n[self_service]\ntenants = [\"acme\"]\ntrust_forwarded_for = true\n",
            smtp.url()
        ),
        extra,
    );
    let (app, sim) = spawn_app_with_okta(
        &redis.url(),
        &random_prefix(),
        SimConfig::default(),
        &config,
    )
    .await;
    let support = key(&app, Role::Support, None).await;
    Desk {
        app,
        sim,
        smtp,
        support,
        _redis: redis,
    }
}

impl Desk {
    /// An ACTIVE user created in the simulator; returns its id once the projection has it.
    async fn user(&self, login: &str) -> String {
        let resp = self
            .app
            .client
            .post(format!("{}/api/v1/users?activate=true", self.sim.url()))
            .header("authorization", "SSWS sim-token")
            .json(&json!({
                "profile": {"login": login, "email": login, "firstName": "Pat", "lastName": "Doe"},
                "credentials": {"password": {"value": "correct horse battery staple"}}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.app
            .wait_for_user(&self.support, &id, |u| u["status"] == "ACTIVE")
            .await;
        id
    }

    async fn call(&self, method: &str, path: &str, key: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .app
            .client
            .request(method, self.app.url(path))
            .bearer_auth(key)
            .header("x-audit-reason", "ticket 42")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Polls `GET path` (support) until `check` holds on the answer.
    async fn wait_for(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            let (status, body) = self.call("GET", path, &self.support).await;
            if status == 200 && check(&body) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{path} never matched; last answer: {last}");
    }

    async fn audit(&self) -> Vec<std::collections::HashMap<String, String>> {
        self.app
            .entries(&format!("{}:audit", self.app.prefix))
            .await
    }

    /// Asks for a self-service link for `login` from `ip`; returns status and page.
    async fn request_link(&self, login: &str, ip: &str) -> (u16, String) {
        let resp = self
            .app
            .client
            .post(self.app.url("/self-service/mfa"))
            .header("x-forwarded-for", ip)
            .form(&[("login", login)])
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// The token of the `n`th mail (waits for it).
    async fn token_of_mail(&self, n: usize) -> String {
        assert!(
            eventually(10, || async { self.smtp.received().len() > n }).await,
            "mail {n} never came"
        );
        let raw = self.smtp.received()[n].clone();
        let mail = MessageParser::default().parse(&raw).unwrap();
        let text = mail.body_text(0).unwrap().to_string();
        let at = text.find("token=").expect("the mail carries the link") + "token=".len();
        text[at..at + 64].to_owned()
    }

    async fn link_page(&self, token: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let resp = self
            .app
            .client
            .get(
                self.app
                    .url(&format!("/self-service/mfa/reset?token={token}")),
            )
            .send()
            .await
            .unwrap();
        let headers = resp.headers().clone();
        (resp.status().as_u16(), resp.text().await.unwrap(), headers)
    }

    async fn confirm(&self, fields: &[(&str, &str)]) -> (u16, String) {
        let resp = self
            .app
            .client
            .post(self.app.url("/self-service/mfa/reset"))
            .form(fields)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

/// The value of the hidden `csrf` field of a link page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

#[tokio::test]
async fn a_group_is_added_and_removed_through_okta_and_the_projection_follows() {
    let d = desk("").await;
    let id = d.user("gina@acme.example").await;
    let group = d.sim.create_group("staff");
    let (s, body) = d
        .call(
            "PUT",
            &format!("/api/v1/users/{id}/groups/{group}"),
            &d.support,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["result"], "done");
    assert_eq!(d.sim.group_members(&group), vec![id.clone()]);
    let groups = d
        .wait_for(&format!("/api/v1/users/{id}/groups"), |b| {
            b["groups"].as_array().is_some_and(|g| !g.is_empty())
        })
        .await;
    let g = &groups["groups"][0];
    assert_eq!(g["id"], group.as_str());
    assert_eq!(g["name"], "staff");
    assert_eq!(g["granted"], "direct");
    assert_eq!(g["read_only"], false);
    assert!(g["since"].as_str().unwrap().starts_with("20"));

    let (s, _) = d
        .call(
            "DELETE",
            &format!("/api/v1/users/{id}/groups/{group}"),
            &d.support,
        )
        .await;
    assert_eq!(s, 200);
    assert!(d.sim.group_members(&group).is_empty());
    d.wait_for(&format!("/api/v1/users/{id}/groups"), |b| {
        b["groups"].as_array().is_some_and(|g| g.is_empty())
    })
    .await;
    // An unknown group: 404, nothing changed.
    let (s, body) = d
        .call(
            "PUT",
            &format!("/api/v1/users/{id}/groups/00gNOPE"),
            &d.support,
        )
        .await;
    assert_eq!(
        (s, body["message"].as_str()),
        (404, Some("no group `00gNOPE`"))
    );
    let audit = d.audit().await;
    let changes: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e["action"].starts_with("group:"))
        .map(|e| (e["action"].as_str(), e["detail"].as_str()))
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(changes[0].1.ends_with("done") && changes[2].1.contains("refused"));
    assert!(audit
        .iter()
        .filter(|e| e["action"].starts_with("group:") || e["action"] == "read-groups")
        .all(|e| e["reason"] == "ticket 42" && e["role"] == "support"));
}

#[tokio::test]
async fn a_membership_a_group_rule_made_is_read_only() {
    let d = desk("").await;
    let id = d.user("rita@acme.example").await;
    let group = d.sim.create_group("engineering");
    assert!(d.sim.add_member(&group, &id));
    // Okta itself (a group rule) adding the user: the System Log's actor is SystemPrincipal.
    let mut event = log_event(
        "rule-add-1",
        "group.user_membership.add",
        (&id, "rita@acme.example"),
    );
    event["published"] = json!((chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339());
    event["actor"] = json!({"id": "0prRule1", "type": "SystemPrincipal", "alternateId": "system@okta.com", "displayName": "Okta System"});
    event["target"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": group, "type": "UserGroup", "alternateId": "engineering", "displayName": "engineering"}));
    assert_eq!(
        d.app.post_events(&delivery(vec![event])).await.status(),
        204
    );
    let groups = d
        .wait_for(&format!("/api/v1/users/{id}/groups"), |b| {
            b["groups"][0]["granted"] == "group_rule"
        })
        .await;
    assert_eq!(groups["groups"][0]["read_only"], true);
    let (s, body) = d
        .call(
            "DELETE",
            &format!("/api/v1/users/{id}/groups/{group}"),
            &d.support,
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("group rule"));
    assert_eq!(d.sim.group_members(&group), vec![id]);
}

#[tokio::test]
async fn an_app_group_is_refused_with_its_reason_and_nothing_changes() {
    let d = desk("").await;
    let id = d.user("ada@acme.example").await;
    let group = d.sim.create_app_group("ad-engineering");
    let (s, body) = d
        .call(
            "PUT",
            &format!("/api/v1/users/{id}/groups/{group}"),
            &d.support,
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("APP_GROUP"),
        "{body}"
    );
    assert!(d.sim.group_members(&group).is_empty());
}

#[tokio::test]
async fn an_app_is_assigned_and_unassigned_but_an_inherited_one_is_a_clear_409() {
    let d = desk("").await;
    let id = d.user("ari@acme.example").await;
    let (s, body) = d
        .call(
            "POST",
            &format!("/api/v1/users/{id}/apps/0oaAcmeSurvey"),
            &d.support,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(d.sim.app_assigned("0oaAcmeSurvey", &id));
    let apps = d
        .wait_for(&format!("/api/v1/users/{id}/apps"), |b| {
            b["apps"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(apps["apps"][0]["granted"], "direct");
    let (s, _) = d
        .call(
            "DELETE",
            &format!("/api/v1/users/{id}/apps/0oaAcmeSurvey"),
            &d.support,
        )
        .await;
    assert_eq!(s, 200);
    assert!(!d.sim.app_assigned("0oaAcmeSurvey", &id));
    d.wait_for(&format!("/api/v1/users/{id}/apps"), |b| {
        b["apps"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;

    // Inherited: the user is in a group the app is assigned to.
    let group = d.sim.create_group("tenant-acme");
    assert!(d.sim.add_member(&group, &id));
    assert_eq!(d.sim.assign_app_to_group("0oaAcmeSurvey", &group), 1);
    let apps = d
        .wait_for(&format!("/api/v1/users/{id}/apps"), |b| {
            b["apps"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let app = &apps["apps"][0];
    assert_eq!(
        (&app["granted"], &app["via_group"], &app["read_only"]),
        (&json!("group"), &json!(group), &json!(true))
    );
    let (s, body) = d
        .call(
            "DELETE",
            &format!("/api/v1/users/{id}/apps/0oaAcmeSurvey"),
            &d.support,
        )
        .await;
    assert_eq!(s, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("inherited") && message.contains(&group),
        "{message}"
    );
    assert!(
        d.sim.app_assigned("0oaAcmeSurvey", &id),
        "still assigned in Okta"
    );
    // App calls went to Okta's apps bucket, which answers with its own rate-limit headers.
    assert_eq!(
        d.sim.stats()["requests"]["apps"],
        3,
        "assign; app user + unassign"
    );
    let resp = d
        .app
        .client
        .get(format!(
            "{}/api/v1/apps/0oaAcmeSurvey/users/{id}",
            d.sim.url()
        ))
        .header("authorization", "SSWS sim-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-rate-limit-limit"], "100");
    assert_eq!(resp.json::<Value>().await.unwrap()["scope"], "GROUP");
    // Leaving the group takes the inherited app away, and the projection follows.
    let (s, _) = d
        .call(
            "DELETE",
            &format!("/api/v1/users/{id}/groups/{group}"),
            &d.support,
        )
        .await;
    assert_eq!(s, 200);
    assert!(!d.sim.app_assigned("0oaAcmeSurvey", &id));
    d.wait_for(&format!("/api/v1/users/{id}/apps"), |b| {
        b["apps"].as_array().is_some_and(|a| a.is_empty())
    })
    .await;
    // Not assigned at all: 404.
    let (s, _) = d
        .call(
            "DELETE",
            &format!("/api/v1/users/{id}/apps/0oaOther"),
            &d.support,
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_client_admin_reaches_only_its_tenant_on_every_helpdesk_endpoint() {
    let d = desk("").await;
    let acme_user = d.user("ann@acme.example").await;
    let globex_user = d.user("gus@globex.example").await;
    let factor = d.sim.enroll_factor(&globex_user, "sms", "OKTA").unwrap();
    let acme_group = d.sim.create_group("tenant-acme");
    let globex_group = d.sim.create_group("tenant-globex");
    let admin = key(&d.app, Role::ClientAdmin, Some("acme")).await;
    let operator = key(&d.app, Role::Operator, None).await;

    // Another tenant's user: every endpoint answers as for a missing user.
    let g = &globex_user;
    for (method, path) in [
        ("GET", format!("/api/v1/users/{g}/groups")),
        ("GET", format!("/api/v1/users/{g}/apps")),
        ("GET", format!("/api/v1/users/{g}/factors")),
        ("PUT", format!("/api/v1/users/{g}/groups/{acme_group}")),
        ("DELETE", format!("/api/v1/users/{g}/groups/{acme_group}")),
        ("POST", format!("/api/v1/users/{g}/apps/0oaAcmeSurvey")),
        ("DELETE", format!("/api/v1/users/{g}/apps/0oaAcmeSurvey")),
        ("DELETE", format!("/api/v1/users/{g}/factors/{factor}")),
        ("DELETE", format!("/api/v1/users/{g}/factors")),
    ] {
        let (s, body) = d.call(method, &path, &admin).await;
        assert_eq!(
            (s, body["message"].as_str().unwrap_or("")),
            (404, format!("no user `{g}`").as_str()),
            "{method} {path}"
        );
        assert_eq!(
            d.call(method, &path, &operator).await.0,
            403,
            "{method} {path}"
        );
    }
    assert_eq!(d.sim.factors_of(g).len(), 1, "nothing changed in Okta");

    // Its own user, another tenant's group or app: "no group" / "no app", as unknown ones.
    let a = &acme_user;
    let (s, body) = d
        .call(
            "PUT",
            &format!("/api/v1/users/{a}/groups/{globex_group}"),
            &admin,
        )
        .await;
    assert_eq!(
        (s, body["message"].clone()),
        (404, json!(format!("no group `{globex_group}`")))
    );
    let (s, body) = d
        .call(
            "POST",
            &format!("/api/v1/users/{a}/apps/0oaGlobexPortal"),
            &admin,
        )
        .await;
    assert_eq!(
        (s, body["message"].clone()),
        (404, json!("no app `0oaGlobexPortal`"))
    );
    assert!(d.sim.group_members(&globex_group).is_empty());
    assert!(!d.sim.app_assigned("0oaGlobexPortal", a));

    // Its own group and app work.
    let (s, body) = d
        .call(
            "PUT",
            &format!("/api/v1/users/{a}/groups/{acme_group}"),
            &admin,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = d
        .call(
            "POST",
            &format!("/api/v1/users/{a}/apps/0oaAcmeSurvey"),
            &admin,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        d.call("GET", &format!("/api/v1/users/{a}/groups"), &admin)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn factors_are_listed_and_one_or_all_are_reset() {
    let d = desk("").await;
    let id = d.user("fay@acme.example").await;
    let push = d.sim.enroll_factor(&id, "push", "OKTA").unwrap();
    let totp = d
        .sim
        .enroll_factor(&id, "token:software:totp", "GOOGLE")
        .unwrap();
    let factors = d
        .wait_for(&format!("/api/v1/users/{id}/factors"), |b| {
            b["factors"].as_array().is_some_and(|f| f.len() == 2)
        })
        .await;
    assert_eq!(factors["can_reset"], true);
    let google = factors["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == totp.as_str())
        .unwrap();
    assert_eq!(
        (
            &google["name"],
            &google["factor_type"],
            &google["provider"],
            &google["status"]
        ),
        (
            &json!("Google Authenticator"),
            &json!("token:software:totp"),
            &json!("GOOGLE"),
            &json!("ACTIVE")
        )
    );
    let (s, body) = d
        .call(
            "DELETE",
            &format!("/api/v1/users/{id}/factors/{push}"),
            &d.support,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(d.sim.factors_of(&id), vec![totp.clone()]);
    d.wait_for(&format!("/api/v1/users/{id}/factors"), |b| {
        b["factors"].as_array().is_some_and(|f| f.len() == 1)
    })
    .await;
    let (s, body) = d
        .call(
            "DELETE",
            &format!("/api/v1/users/{id}/factors/{push}"),
            &d.support,
        )
        .await;
    assert_eq!(s, 404, "{body}");

    let (s, _) = d
        .call("DELETE", &format!("/api/v1/users/{id}/factors"), &d.support)
        .await;
    assert_eq!(s, 200);
    assert!(d.sim.factors_of(&id).is_empty());
    let after = d
        .wait_for(&format!("/api/v1/users/{id}/factors"), |b| {
            b["factors"].as_array().is_some_and(|f| f.is_empty())
        })
        .await;
    assert_eq!(after["can_reset"], false);
    let (s, body) = d
        .call("DELETE", &format!("/api/v1/users/{id}/factors"), &d.support)
        .await;
    assert_eq!(s, 409, "offered only when factors are enrolled: {body}");
}

#[tokio::test]
async fn the_self_service_flow_resets_the_factors_and_confirms_by_mail() {
    let d = desk("").await;
    let id = d.user("sam@acme.example").await;
    let push = d.sim.enroll_factor(&id, "push", "OKTA").unwrap();
    // Enrolled through the simulator's HTTP control, as `okta-sim` run standalone offers it.
    let enrolled: Value = d
        .app
        .client
        .post(format!("{}/sim/users/{id}/factors/sms", d.sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sms = enrolled["id"].as_str().unwrap().to_owned();
    d.wait_for(&format!("/api/v1/users/{id}/factors"), |b| {
        b["factors"].as_array().is_some_and(|f| f.len() == 2)
    })
    .await;

    let form = d
        .app
        .client
        .get(d.app.url("/self-service/mfa"))
        .send()
        .await
        .unwrap();
    let csp = form.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"));
    assert!(!form.text().await.unwrap().contains("<script"));

    let (s, answer) = d.request_link("Sam@Acme.example", "198.51.100.1").await;
    assert_eq!(s, 200);
    assert!(answer.contains("If an account with that username exists"));
    let token = d.token_of_mail(0).await;
    let mails = d.smtp.received();
    let raw = String::from_utf8_lossy(&mails[0]).to_string();
    assert!(raw.contains("To: sam@acme.example"), "to the primary email");
    let mail = MessageParser::default().parse(&mails[0]).unwrap();
    assert!(
        mail.body_html(0).unwrap().contains("token="),
        "HTML part too"
    );

    let (s, page, headers) = d.link_page(&token).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Okta Verify") && page.contains("SMS Authentication"));
    assert!(page.contains(&push) && page.contains(&sms));
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    let csrf = csrf_of(&page);

    let (s, done) = d
        .confirm(&[
            ("token", &token),
            ("csrf", &csrf),
            ("factor", &push),
            ("factor", &sms),
        ])
        .await;
    assert_eq!(s, 200, "{done}");
    assert!(done.contains("2 factors were"));
    assert!(d.sim.factors_of(&id).is_empty(), "reset in Okta");
    // The projection follows through Okta's events.
    d.wait_for(&format!("/api/v1/users/{id}/factors"), |b| {
        b["factors"].as_array().is_some_and(|f| f.is_empty())
    })
    .await;
    // The confirmation mail.
    assert!(eventually(10, || async { d.smtp.received().len() == 2 }).await);
    let confirmations = d.smtp.received();
    let confirmation = MessageParser::default().parse(&confirmations[1]).unwrap();
    assert_eq!(confirmation.subject(), Some("Your MFA was reset"));
    let text = confirmation.body_text(0).unwrap().to_string();
    assert!(text.contains("If this was not you") && !text.contains("token="));

    // The link worked once.
    assert_eq!(d.link_page(&token).await.0, 404);
    let (s, _) = d
        .confirm(&[("token", &token), ("csrf", &csrf), ("factor", &push)])
        .await;
    assert_eq!(s, 404, "a reused link");
    let audit = d.audit().await;
    let outcomes: Vec<String> = audit
        .iter()
        .filter(|e| e["role"] == "self-service")
        .map(|e| format!("{} {}", e["action"], e["detail"]))
        .collect();
    assert!(
        outcomes.iter().any(|o| o.contains("mfa-request link sent")),
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|o| o.contains("mfa-reset reset 2")),
        "{outcomes:?}"
    );
    assert!(
        audit
            .iter()
            .all(|e| !e.values().any(|v| v.contains(&token))),
        "the token is never audited"
    );
    // Redis holds only the token's hash.
    let mut conn = d.app.conn().await;
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut conn, format!("{}:*", d.app.prefix))
        .await
        .unwrap();
    assert!(keys.iter().all(|k| !k.contains(&token)));
}

#[tokio::test]
async fn expired_replaced_and_foreign_links_reset_nothing() {
    let d = desk("[self_service]\nlink_ttl_secs = 2\n").await;
    let ann = d.user("ann@acme.example").await;
    let bob = d.user("bob@acme.example").await;
    let ann_factor = d.sim.enroll_factor(&ann, "push", "OKTA").unwrap();
    let bob_factor = d.sim.enroll_factor(&bob, "sms", "OKTA").unwrap();
    for u in [&ann, &bob] {
        d.wait_for(&format!("/api/v1/users/{u}/factors"), |b| {
            b["factors"].as_array().is_some_and(|f| f.len() == 1)
        })
        .await;
    }
    // A newer request replaces the older link.
    d.request_link("ann@acme.example", "198.51.100.2").await;
    let first = d.token_of_mail(0).await;
    d.request_link("ann@acme.example", "198.51.100.2").await;
    let ann_token = d.token_of_mail(1).await;
    assert_eq!(d.link_page(&first).await.0, 404, "replaced");
    d.request_link("bob@acme.example", "198.51.100.3").await;
    let bob_token = d.token_of_mail(2).await;

    // Ann's link cannot reset Bob's factor, nor be confirmed with Bob's form token.
    let (_, ann_page, _) = d.link_page(&ann_token).await;
    assert!(
        !ann_page.contains(&bob_factor),
        "only her own factors are listed"
    );
    let (_, bob_page, _) = d.link_page(&bob_token).await;
    let (s, _) = d
        .confirm(&[
            ("token", &ann_token),
            ("csrf", &csrf_of(&ann_page)),
            ("factor", &bob_factor),
        ])
        .await;
    assert_eq!(s, 400);
    let (s, _) = d
        .confirm(&[
            ("token", &ann_token),
            ("csrf", &csrf_of(&bob_page)),
            ("factor", &ann_factor),
        ])
        .await;
    assert_eq!(s, 403);
    assert_eq!(d.sim.factors_of(&bob), vec![bob_factor.clone()]);
    assert_eq!(d.sim.factors_of(&ann), vec![ann_factor.clone()]);

    // Expired.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(d.link_page(&ann_token).await.0, 404);
    let (s, _) = d
        .confirm(&[
            ("token", &ann_token),
            ("csrf", &csrf_of(&ann_page)),
            ("factor", &ann_factor),
        ])
        .await;
    assert_eq!(s, 404);
    assert_eq!(d.sim.factors_of(&ann), vec![ann_factor]);
    // A made-up token.
    assert_eq!(d.link_page(&"ab".repeat(32)).await.0, 404);
    assert_eq!(d.link_page("short").await.0, 404);
}

#[tokio::test]
async fn floods_unknown_logins_and_disabled_tenants_get_the_same_answer_and_no_extra_mail() {
    let d = desk("").await;
    let id = d.user("flo@acme.example").await;
    let globex = d.user("gil@globex.example").await;
    let plain = d.user("nofactor@acme.example").await;
    d.sim.enroll_factor(&id, "push", "OKTA").unwrap();
    d.sim.enroll_factor(&globex, "push", "OKTA").unwrap();
    d.wait_for(&format!("/api/v1/users/{globex}/factors"), |b| {
        b["factors"].as_array().is_some_and(|f| f.len() == 1)
    })
    .await;
    d.wait_for(&format!("/api/v1/users/{id}/factors"), |b| {
        b["factors"].as_array().is_some_and(|f| f.len() == 1)
    })
    .await;
    let (_, reference) = d.request_link("flo@acme.example", "203.0.113.1").await;
    // The login limit (3 per hour) holds across IPs.
    for i in 2..=8 {
        let (s, page) = d
            .request_link("flo@acme.example", &format!("203.0.113.{i}"))
            .await;
        assert_eq!((s, &page), (200, &reference));
    }
    // Unknown login, tenant not enabled, no factors: the same page.
    for login in [
        "nobody@acme.example",
        "gil@globex.example",
        "nofactor@acme.example",
    ] {
        let (s, page) = d.request_link(login, "203.0.113.50").await;
        assert_eq!((s, &page), (200, &reference), "{login}");
    }
    // The IP limit holds across logins (3 per hour): the 4th login from one IP gets no mail.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        d.smtp.received().len(),
        3,
        "3 links for flo, none for the others"
    );
    let second = d.user("sid@acme.example").await;
    d.sim.enroll_factor(&second, "push", "OKTA").unwrap();
    d.wait_for(&format!("/api/v1/users/{second}/factors"), |b| {
        b["factors"].as_array().is_some_and(|f| f.len() == 1)
    })
    .await;
    d.request_link("sid@acme.example", "203.0.113.50").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.smtp.received().len(), 3, "the IP had used its 3 requests");
    let audit = d.audit().await;
    let details: Vec<&str> = audit
        .iter()
        .filter(|e| e["action"] == "self-service:mfa-request")
        .map(|e| e["detail"].as_str())
        .collect();
    assert_eq!(details.len(), 12, "every request is audited: {details:?}");
    for why in [
        "limited",
        "unknown-login",
        "tenant-not-enabled",
        "no-factors",
    ] {
        assert!(
            details.iter().any(|d| d.contains(why)),
            "{why}: {details:?}"
        );
    }
    let _ = plain;
}

/// The request path does the same work for every login: 200 requests, alternately a known
/// login (a link is mailed off the request path) and an unknown one; the medians of the two
/// must be within 5 ms (loose: the test machine is shared; typical gaps are well under 1 ms).
#[tokio::test]
async fn known_and_unknown_logins_are_answered_in_the_same_time() {
    let d = desk("[self_service]\nmax_per_login = 1000\nmax_per_ip = 1000\n").await;
    let id = d.user("tim@acme.example").await;
    d.sim.enroll_factor(&id, "push", "OKTA").unwrap();
    d.wait_for(&format!("/api/v1/users/{id}/factors"), |b| {
        b["factors"].as_array().is_some_and(|f| f.len() == 1)
    })
    .await;
    // Warm up connections and templates.
    for _ in 0..10 {
        d.request_link("warm@acme.example", "192.0.2.1").await;
    }
    let (mut known, mut unknown) = (vec![], vec![]);
    for i in 0..200 {
        let (login, times) = if i % 2 == 0 {
            ("tim@acme.example", &mut known)
        } else {
            ("tom@acme.example", &mut unknown)
        };
        let started = Instant::now();
        let (s, _) = d.request_link(login, "192.0.2.1").await;
        times.push(started.elapsed());
        assert_eq!(s, 200);
        // Lets the known login's background work (lookup, link, mail) finish, so it does not
        // land on the next (unknown) request's time and bias the comparison.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (k, u) = (median(&mut known), median(&mut unknown));
    eprintln!("self-service request medians: known {k:?}, unknown {u:?}");
    let gap = k.abs_diff(u);
    assert!(
        gap < Duration::from_millis(3),
        "known {k:?} vs unknown {u:?}"
    );
    assert!(
        eventually(20, || async { d.smtp.received().len() >= 100 }).await,
        "the known login's links were mailed: {}",
        d.smtp.received().len()
    );
}

/// The simulator's helpdesk subset answers in Okta's shapes: factors, deletion of an unknown
/// factor, `APP_GROUP` membership, and rate-limit headers on each.
#[tokio::test]
async fn the_simulator_serves_factors_and_app_groups_as_okta_documents() {
    let d = desk("").await;
    let id = d.user("sim@acme.example").await;
    let factor = d.sim.enroll_factor(&id, "sms", "OKTA").unwrap();
    let okta = |method: reqwest::Method, path: String| {
        d.app
            .client
            .request(method, format!("{}{path}", d.sim.url()))
            .header("authorization", "SSWS sim-token")
            .send()
    };
    let resp = okta(reqwest::Method::GET, format!("/api/v1/users/{id}/factors"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-rate-limit-remaining"));
    let list: Value = resp.json().await.unwrap();
    assert_eq!(list[0]["id"], factor.as_str());
    assert_eq!(
        (
            &list[0]["factorType"],
            &list[0]["provider"],
            &list[0]["status"]
        ),
        (&json!("sms"), &json!("OKTA"), &json!("ACTIVE"))
    );
    let resp = okta(
        reqwest::Method::DELETE,
        format!("/api/v1/users/{id}/factors/smsNOPE"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["errorCode"], "E0000007");
    assert!(err["errorId"].is_string() && err["errorCauses"].is_array());

    let group = d.sim.create_app_group("ad-sales");
    let resp = okta(reqwest::Method::GET, format!("/api/v1/groups/{group}"))
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["type"], "APP_GROUP");
    let resp = okta(
        reqwest::Method::PUT,
        format!("/api/v1/groups/{group}/users/{id}"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["errorCode"], "E0000060");
    assert!(d.sim.group_members(&group).is_empty());
}
