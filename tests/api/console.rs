//! The web console over plain HTTP (the real-browser tests are `tests/browser/`): the OIDC
//! round trip through the simulator for each role, CSRF, one-time links, security headers.

use okta_adapter::access::Role;
use okta_sim::oidc::{OidcApp, OidcUser};
use okta_sim::SimConfig;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

use crate::helpers::*;

pub const CONSOLE_TOML: &str =
    "[console]\nclient_id = \"console-app\"\nclient_secret = \"console-secret\"\n";

pub fn console_sim() -> SimConfig {
    SimConfig {
        oidc_app: Some(OidcApp {
            client_id: "console-app".into(),
            client_secret: "console-secret".into(),
            redirect_uris: vec![],
            users: vec![
                OidcUser::new("sam@corp.example", &["Everyone", "okta-adapter-support"]),
                OidcUser::new("olga@corp.example", &["okta-adapter-operators"]),
                OidcUser::new("ada@acme.example", &["tenant-acme-admins"]),
                OidcUser::new("nobody@corp.example", &["Everyone"]),
            ],
        }),
        ..Default::default()
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// Signs in through the simulator's OIDC flow as `login`; returns the last answer (the
/// callback's) and the session cookie, if one was set.
async fn oidc_sign_in(app: &TestApp, login: &str) -> (reqwest::Response, Option<String>) {
    let c = no_redirects();
    let start = c
        .get(app.url(&format!("/console/auth/start?login_hint={login}")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let authorize = c.get(location(&start)).send().await.unwrap();
    assert_eq!(authorize.status(), 302, "{:?}", authorize.text().await);
    let callback = c.get(location(&authorize)).send().await.unwrap();
    let cookie = callback
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    (callback, cookie)
}

async fn get_page(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let resp = no_redirects()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn okta_sign_in_maps_groups_to_roles_and_no_group_to_a_no_access_page() {
    let redis = TestRedis::start();
    let (app, _sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), console_sim(), CONSOLE_TOML).await;

    let (resp, cookie) = oidc_sign_in(&app, "sam@corp.example").await;
    assert_eq!(resp.status(), 303);
    let set_cookie = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let cookie = cookie.unwrap();
    let (s, html) = get_page(&app, &cookie, "/console/users").await;
    assert_eq!(s, 200);
    assert!(html.contains("sam@corp.example · support"), "{html}");

    let (_, cookie) = oidc_sign_in(&app, "olga@corp.example").await;
    let cookie = cookie.unwrap();
    let (s, html) = get_page(&app, &cookie, "/console/users").await;
    assert_eq!(s, 403, "operators read no user records, as with the API");
    assert!(html.contains("operator"));

    let (_, cookie) = oidc_sign_in(&app, "ada@acme.example").await;
    let (s, html) = get_page(&app, &cookie.unwrap(), "/console/users").await;
    assert_eq!(s, 200);
    assert!(
        html.contains("client-admin of <strong>acme</strong>"),
        "{html}"
    );

    let (resp, cookie) = oidc_sign_in(&app, "nobody@corp.example").await;
    assert_eq!(resp.status(), 403);
    assert!(cookie.is_none(), "no session without a mapped group");
    assert!(resp.text().await.unwrap().contains("You have no access"));
}

#[tokio::test]
async fn a_sign_in_state_is_good_once_and_a_forged_code_is_refused() {
    let redis = TestRedis::start();
    let (app, _sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), console_sim(), CONSOLE_TOML).await;
    let c = no_redirects();
    let start = c.get(app.url("/console/auth/start")).send().await.unwrap();
    let authorize = c.get(location(&start)).send().await.unwrap();
    let callback_url = location(&authorize);
    let first = c.get(&callback_url).send().await.unwrap();
    assert!(first.headers().contains_key(SET_COOKIE));
    let replay = c.get(&callback_url).send().await.unwrap();
    assert_eq!(replay.status(), 303);
    assert!(
        !replay.headers().contains_key(SET_COOKIE),
        "a replayed callback starts nothing"
    );
    assert!(location(&replay).contains("/console/sign-in?error="));
    let forged = c
        .get(app.url("/console/auth/callback?code=made-up&state=made-up"))
        .send()
        .await
        .unwrap();
    assert!(!forged.headers().contains_key(SET_COOKIE));
}

#[tokio::test]
async fn a_one_time_link_signs_in_a_client_admin_once() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let support = api_key(&app, Role::Support, None).await;
    let acme = api_key(&app, Role::ClientAdmin, Some("acme")).await;
    let (s, _) = app
        .post_json(
            "/api/v1/console/links",
            &acme,
            Some(json!({"tenant": "acme"})),
        )
        .await;
    assert_eq!(s, 403, "a client admin cannot mint links");
    let (s, body) = app
        .post_json(
            "/api/v1/console/links",
            &support,
            Some(json!({"tenant": "Not A Tenant"})),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    let (s, link) = app
        .post_json(
            "/api/v1/console/links",
            &support,
            Some(json!({"tenant": "acme"})),
        )
        .await;
    assert_eq!(s, 200, "{link}");
    let url = link["url"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap();
    // Opening the link spends nothing (mail scanners fetch links).
    let c = no_redirects();
    assert_eq!(c.get(url).send().await.unwrap().status(), 200);
    let follow = || {
        c.post(app.url("/console/link"))
            .form(&[("token", token)])
            .send()
    };
    let first = follow().await.unwrap();
    let cookie = first.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (s, html) = get_page(&app, &cookie, "/console/users").await;
    assert_eq!(s, 200);
    assert!(html.contains("client-admin of <strong>acme</strong>"));
    let second = follow().await.unwrap();
    assert!(
        !second.headers().contains_key(SET_COOKIE),
        "a link is good once"
    );
    // Redis holds only its hash.
    let mut conn = app.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.iter().all(|k| !k.contains(token)));
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_assets_are_cached_by_content() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let c = no_redirects();
    let page = c.get(app.url("/console/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // minijinja escapes `/` in attributes; the browser reads it back.
    let html = page.text().await.unwrap().replace("&#x2f;", "/");
    assert!(!html.contains("<script>"), "no inline script");
    let htmx = html
        .split('"')
        .find(|s| s.contains("/assets/htmx-2.0.4.min.js?v="))
        .unwrap()
        .to_owned();
    let asset = c.get(app.url(&htmx)).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert!(asset.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let etag = asset.headers()["etag"].to_str().unwrap().to_owned();
    let again = c
        .get(app.url(&htmx))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // Unsigned: the console's pages send the browser to sign in.
    let users = c.get(app.url("/console/users")).send().await.unwrap();
    assert_eq!(users.status(), 303);
    assert!(location(&users).ends_with("/console/sign-in?expired=1"));
}

#[tokio::test]
async fn dev_sign_in_is_refused_unless_dev_mode_turned_it_on() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let c = no_redirects();
    let resp = c
        .post(app.url("/console/dev-sign-in"))
        .form(&[("role", "support")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(!resp.headers().contains_key(SET_COOKIE));
}
