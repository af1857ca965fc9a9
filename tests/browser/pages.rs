//! The Jobs, Tenants, Reports and Operations pages in headless Chromium: an operator uploads a
//! CSV with two broken rows and watches the job finish with those rows failed by line number,
//! previews the report email, creates an API key (its secret shown once) and revokes it; a
//! client admin sees only its tenant and is refused the operator pages. Screenshots of each
//! page go to the artifacts directory with the others.

use std::time::{Duration, Instant};

use okta_adapter::access::Role;
use thirtyfour::components::SelectElement;
use thirtyfour::prelude::*;

use super::helpers::*;
use super::{active_user, console_app, expect_h1, screenshot, sign_in, text_of, Driver, BROWSER};

/// Five users to create; line 3 is not an email address, line 5 has no email.
const TWO_BROKEN: &str = "login,email,firstName,lastName\n\
                          pat1@example.com,pat1@example.com,A,One\n\
                          broken,pat2@example.com,B,Two\n\
                          pat3@example.com,pat3@example.com,C,Three\n\
                          pat4@example.com,,D,Four\n\
                          pat5@example.com,pat5@example.com,E,Five\n";

async fn click(b: &WebDriver, by: By) {
    b.find(by).await.unwrap().click().await.unwrap();
}

/// Waits until the page's `<h1>` starts with `prefix` (after a click that navigates, the old
/// page may still be there, or go stale while it is read).
async fn wait_for_h1(b: &WebDriver, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = match b.find(By::Tag("h1")).await {
            Ok(h) => h.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now.starts_with(prefix) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed a heading starting {prefix:?} (shows {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the job page's state badge reads `done` (the page polls its progress and
/// reloads itself when the job ends).
async fn wait_for_job_done(b: &WebDriver) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = match b.find(By::Css("#job-progress .badge")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if state == "done" && b.find(By::Id("results")).await.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the job page never showed the job done (shows {state:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_operator_watches_a_csv_job_fail_two_rows_by_line_and_uses_reports_and_operations() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let (app, sim) = console_app(&redis, "").await;
    active_user(&app, "tess", "acme").await;
    let driver = Driver::start();
    let b = driver.browser().await;
    sign_in(&b, &app, "olga@corp.example").await;
    let nav = text_of(&b, By::Css("header nav")).await;
    assert!(nav.contains("Jobs") && nav.contains("Operations"), "{nav}");
    b.goto(app.url("/console/jobs")).await.unwrap();
    expect_h1(&b, "Jobs").await;

    // Upload through the form: the file input gets a real file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two-broken.csv");
    std::fs::write(&file, TWO_BROKEN).unwrap();
    let kind = SelectElement::new(&b.find(By::Id("job-kind")).await.unwrap())
        .await
        .unwrap();
    kind.select_by_value("create").await.unwrap();
    b.find(By::Id("job-file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    screenshot(&b, "jobs").await;
    click(
        &b,
        By::Css("form[enctype='multipart/form-data'] button[type=submit]"),
    )
    .await;
    wait_for_h1(&b, "Job ").await;
    wait_for_job_done(&b).await;

    // The two broken rows come first, by line number, with their reasons.
    let rows = b.find_all(By::Css("#results tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 5);
    let mut cells = Vec::new();
    for row in &rows {
        let tds = row.find_all(By::Tag("td")).await.unwrap();
        cells.push((
            tds[0].text().await.unwrap(),
            tds[3].text().await.unwrap(),
            tds[4].text().await.unwrap(),
        ));
    }
    assert_eq!((cells[0].0.as_str(), cells[0].1.as_str()), ("3", "failed"));
    assert!(cells[0].2.contains("not an email address"), "{cells:?}");
    assert_eq!((cells[1].0.as_str(), cells[1].1.as_str()), ("5", "failed"));
    assert!(cells[1].2.contains("missing email"), "{cells:?}");
    assert!(cells[2..].iter().all(|c| c.1 == "done"), "{cells:?}");
    let progress = text_of(&b, By::Id("job-progress")).await;
    assert!(progress.contains("5 of 5 rows finished"), "{progress}");
    assert_eq!(
        sim.user_status("pat5@example.com").as_deref(),
        Some("STAGED")
    );
    assert!(
        sim.user_status("pat4@example.com").is_none(),
        "a failed row made nobody"
    );
    screenshot(&b, "job").await;

    // Tenants: every tenant with its counts.
    b.goto(app.url("/console/tenants")).await.unwrap();
    expect_h1(&b, "Tenants").await;
    let table = text_of(&b, By::Id("tenants")).await;
    assert!(table.contains("acme"), "{table}");
    screenshot(&b, "tenants").await;

    // Reports: the email as recipients see it, in its sandboxed frame.
    b.goto(app.url("/console/reports")).await.unwrap();
    expect_h1(&b, "Reports").await;
    let frame = b.find(By::Id("report-preview")).await.unwrap();
    assert_eq!(frame.attr("sandbox").await.unwrap().as_deref(), Some(""));
    frame.enter_frame().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let heading = match b.find(By::Tag("h1")).await {
            Ok(h) => h.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if heading.starts_with("Identity & access") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the preview never rendered ({heading:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.enter_default_frame().await.unwrap();
    screenshot(&b, "reports").await;

    // Operations: streams, dead letters, keys, audit log; create a key and revoke it.
    b.goto(app.url("/console/operations")).await.unwrap();
    expect_h1(&b, "Operations").await;
    let streams = text_of(&b, By::Id("streams")).await;
    assert!(streams.contains("firehose"), "{streams}");
    screenshot(&b, "operations").await;
    let role = SelectElement::new(&b.find(By::Id("key-role")).await.unwrap())
        .await
        .unwrap();
    role.select_by_value("support").await.unwrap();
    click(
        &b,
        By::Css("form[action$='/operations/keys'] button[type=submit]"),
    )
    .await;
    wait_for_h1(&b, "New API key").await;
    let token = b
        .find(By::Id("new-token"))
        .await
        .unwrap()
        .value()
        .await
        .unwrap()
        .unwrap();
    assert!(token.starts_with("oka_"), "{token}");
    screenshot(&b, "key-created").await;
    assert_eq!(
        app.get_json("/api/v1/users?limit=1", Some(&token)).await.0,
        200
    );
    let id = token[4..16].to_owned();

    b.goto(app.url("/console/operations")).await.unwrap();
    let source = b.source().await.unwrap();
    assert!(
        !source.contains(&token[17..]),
        "the secret is shown only once"
    );
    click(&b, By::Css(format!("#key-{id} summary"))).await;
    click(&b, By::Css(format!("#key-{id} button.danger"))).await;
    wait_for_h1(&b, "Operations").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let notice = loop {
        if let Ok(n) = b.find(By::Id("revoked-notice")).await {
            break n.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "no revoke notice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(notice.contains(&id), "{notice}");
    assert_eq!(
        app.get_json("/api/v1/users?limit=1", Some(&token)).await.0,
        401
    );
    b.quit().await.unwrap();
}

#[tokio::test]
async fn a_client_admin_sees_only_its_tenant_and_cannot_open_operations_or_reports() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let (app, _sim) = console_app(&redis, "").await;
    active_user(&app, "ace", "acme").await;
    active_user(&app, "gil", "globex").await;
    let support = api_key(&app, Role::Support, None).await;
    assert_eq!(
        app.get_json("/api/v1/users?tenant=globex", Some(&support))
            .await
            .0,
        200
    );
    let driver = Driver::start();
    let b = driver.browser().await;
    sign_in(&b, &app, "ada@acme.example").await;
    let nav = text_of(&b, By::Css("header nav")).await;
    assert!(
        nav.contains("Tenants") && !nav.contains("Reports") && !nav.contains("Operations"),
        "{nav}"
    );

    b.goto(app.url("/console/tenants")).await.unwrap();
    expect_h1(&b, "Tenants").await;
    let main = text_of(&b, By::Tag("main")).await;
    assert!(main.contains("acme"), "{main}");
    assert!(!main.contains("globex"), "only its own tenant: {main}");
    screenshot(&b, "tenants-client-admin").await;

    for path in ["/console/operations", "/console/reports"] {
        b.goto(app.url(path)).await.unwrap();
        expect_h1(&b, "Not allowed").await;
    }
    screenshot(&b, "operations-refused").await;
    b.quit().await.unwrap();
}
