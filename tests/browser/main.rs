//! The web console in a real browser: headless Chromium (Debian's `chromium`) driven over
//! WebDriver (`chromium-driver`) with `thirtyfour`, against a real adapter, a real Redis and
//! the Okta simulator's OIDC endpoints. A missing browser or driver FAILS these tests; it is
//! never a skip.
//!
//! Every test starts its own chromedriver on a free port and quits it at the end; one browser
//! runs at a time (a global lock), which keeps the suite predictable on a small CI machine.
//! Screenshots of every page land in `$CARGO_TARGET_DIR/browser-artifacts/` (default
//! `target/browser-artifacts/`).

// The API suite's helpers (spawn_app, TestRedis, jobs, events); it allows their dead code.
#[path = "../api/cluster.rs"]
mod cluster;
#[path = "../api/helpers.rs"]
mod helpers;
// Jobs, Tenants, Reports and Operations pages (console-b).
mod pages;
// The self-service MFA reset pages (issue 15).
mod selfservice;
// The tenant pages: form, plan, live apply, drift, typed delete (issue 18).
mod tenants;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use helpers::*;
use okta_adapter::access::Role;
use okta_sim::oidc::{OidcApp, OidcUser};
use okta_sim::{OktaSim, SimConfig};
use serde_json::Value;
use thirtyfour::prelude::*;
use thirtyfour::ChromiumLikeCapabilities;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser at a time.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CONSOLE_TOML: &str =
    "[console]\nclient_id = \"console-app\"\nclient_secret = \"console-secret\"\n";

fn console_sim() -> SimConfig {
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

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's `chromium` and `chromium-driver` \
                 (apt-get install -y chromium chromium-driver); the browser tests never skip"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    async fn browser(&self) -> WebDriver {
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).unwrap();
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,900",
        ] {
            caps.add_arg(arg).unwrap();
        }
        WebDriver::new(format!("http://127.0.0.1:{}", self.port), caps)
            .await
            .expect("headless chromium starts under chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(b: &WebDriver, name: &str) {
    b.screenshot(&artifacts().join(format!("{name}.png")))
        .await
        .unwrap();
}

/// The adapter with the simulator as its Okta org (and OIDC provider), plus `extra` config.
async fn console_app(redis: &TestRedis, extra: &str) -> (TestApp, OktaSim) {
    spawn_app_with_okta(
        &redis.url(),
        &random_prefix(),
        console_sim(),
        &merge_toml(CONSOLE_TOML, extra),
    )
    .await
}

/// An ACTIVE user created through a create job (so the simulator has them too), in `tenant`
/// (a `tenant-<t>` group membership event); returns their Okta id.
async fn active_user(app: &TestApp, login_tag: &str, tenant: &str) -> String {
    let operator = api_key(app, Role::Operator, None).await;
    let support = api_key(app, Role::Support, None).await;
    let (s, job) = app
        .upload_job(
            &operator,
            "kind=create&activate=true&password_hook=true",
            "text/csv",
            users_csv(login_tag, 1),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    app.wait_for_job(&operator, job["id"].as_str().unwrap(), 15)
        .await;
    let login = format!("{login_tag}0@example.com");
    let user = app
        .wait_for_user(&support, &login, |u| u["status"] == "ACTIVE")
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let group = delivery(vec![group_add_event(
        &format!("grp-{login_tag}"),
        (&id, &login),
        &format!("tenant-{tenant}"),
    )]);
    assert_eq!(app.post_events(&group).await.status(), 204);
    app.wait_for_user(&support, &id, |u| u["tenant"] == tenant)
        .await;
    id
}

/// Signs in through Okta (the simulator) as `login` from the sign-in page.
async fn sign_in(b: &WebDriver, app: &TestApp, login: &str) {
    b.goto(app.url("/console/sign-in")).await.unwrap();
    b.find(By::Id("login_hint"))
        .await
        .unwrap()
        .send_keys(login)
        .await
        .unwrap();
    b.find(By::Id("sign-in-okta"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The click returns before the redirects (adapter → Okta → callback → console) are done:
    // wait until the browser has left the sign-in page, so the next step has the session.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let heading = match b.find(By::Tag("h1")).await {
            Ok(h) => h.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if !heading.is_empty() && heading != "Sign in" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sign-in as {login} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the element `by` finds; retried for up to 5 s while the page is still
/// changing (a navigation or an htmx swap can replace the element between find and read).
async fn text_of(b: &WebDriver, by: By) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let last = match b.find(by.clone()).await {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(err) => err,
            },
            Err(err) => err,
        };
        assert!(Instant::now() < deadline, "{by:?}: {last}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn h1(b: &WebDriver) -> String {
    text_of(b, By::Tag("h1")).await
}

/// Waits (up to 15 s) until the page's heading is `expected`. A click that submits a form
/// returns before the next page has loaded, so reading the heading at once can still see the
/// old page (a sign-out test failed that way now and then).
async fn expect_h1(b: &WebDriver, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = match b.find(By::Tag("h1")).await {
            Ok(h) => h.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the heading {expected:?} (shows {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `#status-badge` reads `status` (the page polls every second).
async fn wait_for_badge(b: &WebDriver, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = match b.find(By::Id("status-badge")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {status} (shows {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn each_role_signs_in_through_okta_and_a_user_without_a_mapped_group_gets_no_access() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let (app, _sim) = console_app(&redis, "").await;
    let driver = Driver::start();
    let b = driver.browser().await;

    b.goto(app.url("/console/")).await.unwrap();
    expect_h1(&b, "Sign in").await;
    screenshot(&b, "sign-in").await;

    sign_in(&b, &app, "sam@corp.example").await;
    expect_h1(&b, "Users").await;
    let header = text_of(&b, By::Css("header .who")).await;
    assert!(header.contains("sam@corp.example · support"), "{header}");
    let nav = text_of(&b, By::Css("header nav")).await;
    assert!(
        nav.contains("Users") && !nav.contains("Operations"),
        "{nav}"
    );
    b.find(By::Css("header .who button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    expect_h1(&b, "Sign in").await;

    sign_in(&b, &app, "olga@corp.example").await;
    let nav = text_of(&b, By::Css("header nav")).await;
    assert!(
        nav.contains("Operations") && !nav.contains("Users"),
        "{nav}"
    );
    b.goto(app.url("/console/users")).await.unwrap();
    assert_eq!(
        h1(&b).await,
        "Not allowed",
        "operators read no user records"
    );
    b.find(By::Css("header .who button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    sign_in(&b, &app, "ada@acme.example").await;
    expect_h1(&b, "Users").await;
    let header = text_of(&b, By::Css("header .who")).await;
    assert!(header.contains("client-admin of acme"), "{header}");
    assert!(
        b.find(By::Id("tenant")).await.is_err(),
        "a client admin does not pick a tenant"
    );
    b.find(By::Css("header .who button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    sign_in(&b, &app, "nobody@corp.example").await;
    assert!(h1(&b).await.contains("No access"));
    assert!(text_of(&b, By::Tag("main"))
        .await
        .contains("none of the Okta groups"));
    screenshot(&b, "no-access").await;
    b.quit().await.unwrap();
}

#[tokio::test]
async fn support_finds_a_user_suspends_and_unsuspends_and_the_page_follows_the_status() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let (app, sim) = console_app(&redis, "").await;
    let id = active_user(&app, "finn", "acme").await;
    let driver = Driver::start();
    let b = driver.browser().await;
    sign_in(&b, &app, "sam@corp.example").await;

    b.find(By::Id("q"))
        .await
        .unwrap()
        .send_keys("finn")
        .await
        .unwrap();
    b.find(By::Id("search"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let table = text_of(&b, By::Id("users")).await;
    assert!(
        table.contains("finn0@example.com") && table.contains("ACTIVE") && table.contains("acme"),
        "{table}"
    );
    screenshot(&b, "users").await;
    b.find(By::LinkText("finn0@example.com"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_badge(&b, "ACTIVE").await;
    assert!(
        b.find(By::Id("action-unsuspend")).await.is_err(),
        "only legal actions"
    );

    // Support must give a reason: without one, nothing happens.
    b.find(By::Css("#action-suspend summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.execute(
        "document.getElementById('reason-suspend').removeAttribute('required')",
        vec![],
    )
    .await
    .unwrap();
    b.find(By::Id("confirm-suspend"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text_of(&b, By::Id("action-result"))
        .await
        .contains("Give a reason")
    {
        assert!(Instant::now() < deadline, "no reason refusal shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.user_status(&id).as_deref(), Some("ACTIVE"));

    b.find(By::Id("reason-suspend"))
        .await
        .unwrap()
        .send_keys("ticket 4711")
        .await
        .unwrap();
    b.find(By::Id("confirm-suspend"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text_of(&b, By::Id("action-result"))
        .await
        .contains("Okta accepted")
    {
        assert!(Instant::now() < deadline, "Okta's answer never shown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_badge(&b, "SUSPENDED").await;
    assert_eq!(sim.user_status(&id).as_deref(), Some("SUSPENDED"));
    let provenance = text_of(&b, By::Id("provenance")).await;
    assert!(
        provenance.contains("user.lifecycle.suspend"),
        "{provenance}"
    );
    assert_eq!(
        text_of(&b, By::Id("can-sign-in")).await,
        "Cannot sign in in this status."
    );
    // The action bar followed: unsuspend now, no suspend.
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.find(By::Id("action-unsuspend")).await.is_err() {
        assert!(Instant::now() < deadline, "the action bar did not follow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(b.find(By::Id("action-suspend")).await.is_err());
    screenshot(&b, "user-suspended").await;

    b.find(By::Css("#action-unsuspend summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find(By::Id("reason-unsuspend"))
        .await
        .unwrap()
        .send_keys("ticket 4711 resolved")
        .await
        .unwrap();
    b.find(By::Id("confirm-unsuspend"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_badge(&b, "ACTIVE").await;
    assert_eq!(sim.user_status(&id).as_deref(), Some("ACTIVE"));
    screenshot(&b, "user").await;

    // The reasons went to the audit stream with the results.
    let mut conn = app.conn().await;
    let audit: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{}:audit", app.prefix))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let actions: Vec<String> = audit
        .iter()
        .map(|(_, f)| {
            f.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|l| l.contains("action=action:"))
        .collect();
    assert!(
        actions.iter().any(|l| l.contains("action:suspend")
            && l.contains("reason=ticket 4711")
            && l.contains("detail=done")
            && l.contains("key=console:sam@corp.example")),
        "{actions:?}"
    );
    b.quit().await.unwrap();
}

#[tokio::test]
async fn a_client_admin_cannot_reach_another_tenants_user_by_search_url_or_forged_post() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let (app, sim) = console_app(&redis, "").await;
    let own = active_user(&app, "anna", "acme").await;
    let other = active_user(&app, "gus", "globex").await;
    let driver = Driver::start();
    let b = driver.browser().await;
    sign_in(&b, &app, "ada@acme.example").await;

    // Search: by login prefix, exact login and Okta id — nothing.
    for q in ["gus", "gus0@example.com", other.as_str()] {
        b.goto(app.url(&format!("/console/users?q={q}")))
            .await
            .unwrap();
        let main = text_of(&b, By::Tag("main")).await;
        assert!(
            b.find(By::Id("no-users")).await.is_ok() && b.find(By::Id("users")).await.is_err(),
            "search {q} found something: {main}"
        );
    }
    // URL: exactly the page of a user that does not exist.
    b.goto(app.url("/console/users/00uDOESNOTEXIST"))
        .await
        .unwrap();
    let missing = (h1(&b).await, text_of(&b, By::Tag("main")).await);
    b.goto(app.url(&format!("/console/users/{other}")))
        .await
        .unwrap();
    let foreign = (h1(&b).await, text_of(&b, By::Tag("main")).await);
    assert_eq!(foreign, missing);
    assert_eq!(missing.0, "Not found");
    screenshot(&b, "not-found").await;

    // A forged post: the own user's suspend form, pointed at the other tenant's user.
    b.goto(app.url(&format!("/console/users/{own}")))
        .await
        .unwrap();
    wait_for_badge(&b, "ACTIVE").await;
    b.execute(
        "const f = document.querySelector('#action-suspend form');
         f.removeAttribute('hx-post');
         f.action = f.action.replace(arguments[0], arguments[1]);
         f.submit();",
        vec![Value::from(own.clone()), Value::from(other.clone())],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forged = (h1(&b).await, text_of(&b, By::Tag("main")).await);
    assert_eq!(
        forged, missing,
        "a forged post is answered as for a missing user"
    );
    assert_eq!(
        sim.user_status(&other).as_deref(),
        Some("ACTIVE"),
        "nothing changed"
    );
    b.quit().await.unwrap();
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let (app, sim) = console_app(&redis, "").await;
    let id = active_user(&app, "cara", "acme").await;
    let driver = Driver::start();
    let b = driver.browser().await;
    sign_in(&b, &app, "ada@acme.example").await;
    b.goto(app.url(&format!("/console/users/{id}")))
        .await
        .unwrap();
    wait_for_badge(&b, "ACTIVE").await;
    // A plain form post without the token (what a cross-site form would send).
    b.execute(
        "const f = document.querySelector('#action-suspend form');
         f.removeAttribute('hx-post');
         f.querySelector('input[name=csrf]').remove();
         f.submit();",
        vec![],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    expect_h1(&b, "Not allowed").await;
    assert!(text_of(&b, By::Tag("main")).await.contains("CSRF"));
    screenshot(&b, "csrf-refused").await;
    assert_eq!(
        sim.user_status(&id).as_deref(),
        Some("ACTIVE"),
        "nothing changed"
    );
    b.quit().await.unwrap();
}

#[tokio::test]
async fn an_idle_session_ends_and_the_open_page_goes_back_to_sign_in() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let (app, _sim) = console_app(&redis, "[console]\nidle_timeout_secs = 2\n").await;
    let id = active_user(&app, "ivy", "acme").await;
    let driver = Driver::start();
    let b = driver.browser().await;
    sign_in(&b, &app, "ada@acme.example").await;
    b.goto(app.url(&format!("/console/users/{id}")))
        .await
        .unwrap();
    wait_for_badge(&b, "ACTIVE").await;
    // The page keeps polling its status, but polling is not use: after 2 s idle the next
    // poll sends the whole page to the sign-in page.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if b.current_url().await.unwrap().path().ends_with("/sign-in") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the open page never left the expired session"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(text_of(&b, By::Tag("main"))
        .await
        .contains("Your session has ended"));
    b.goto(app.url("/console/users")).await.unwrap();
    expect_h1(&b, "Sign in").await;
    b.quit().await.unwrap();
}
