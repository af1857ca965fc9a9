//! The Tenants pages in headless Chromium (issue 18): an operator creates a tenant with two
//! installations from the form, reads the plan, applies and watches every step finish, edits
//! one installation's redirect URI (the plan shows exactly one update), sees the drift after
//! changes made by hand in the simulator, copies an installation's config, and a delete with a
//! wrongly typed name is refused. A client admin of another tenant gets the "not found" page
//! for the tenant's pages and for a forged form.

use std::time::{Duration, Instant};

use okta_adapter::access::Role;
use serde_json::{json, Value};
use thirtyfour::components::SelectElement;
use thirtyfour::prelude::*;

use super::helpers::*;
use super::{console_app, expect_h1, h1, screenshot, sign_in, text_of, Driver, BROWSER};

async fn click(b: &WebDriver, by: By) {
    b.find(by).await.unwrap().click().await.unwrap();
}

async fn type_into(b: &WebDriver, id: &str, text: &str) {
    let e = b.find(By::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn select(b: &WebDriver, id: &str, value: &str) {
    SelectElement::new(&b.find(By::Id(id)).await.unwrap())
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

/// Waits until the text of `by` satisfies `ok` (pages poll, navigate and swap).
async fn wait_text(b: &WebDriver, by: By, secs: u64, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = match b.find(by.clone()).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{by:?} never read as expected (reads {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_h1(b: &WebDriver, prefix: &str) -> String {
    wait_text(b, By::Tag("h1"), 15, |h| h.starts_with(prefix)).await
}

/// The rows of a steps table: (action, resource, detail).
async fn steps(b: &WebDriver, table: &str) -> Vec<(String, String, String)> {
    let rows = b
        .find_all(By::Css(format!("#{table} tbody tr")))
        .await
        .unwrap();
    let mut out = vec![];
    for row in rows {
        let tds = row.find_all(By::Tag("td")).await.unwrap();
        out.push((
            tds[1].text().await.unwrap(),
            tds[2].text().await.unwrap(),
            tds[5].text().await.unwrap(),
        ));
    }
    out
}

/// Presses Apply on the plan page and waits until the live progress says the apply finished.
async fn apply_and_wait(b: &WebDriver, tenant: &str) -> String {
    click(b, By::Id("apply")).await;
    wait_for_h1(b, &format!("Applying tenant {tenant}")).await;
    let state = wait_text(b, By::Id("apply-state"), 30, |s| {
        s == "succeeded" || s == "failed"
    })
    .await;
    assert_eq!(state, "succeeded");
    text_of(b, By::Id("apply-finished")).await
}

/// The heading and text of the page at `url`.
async fn page_at(b: &WebDriver, url: String) -> (String, String) {
    b.goto(url).await.unwrap();
    (h1(b).await, text_of(b, By::Tag("main")).await)
}

/// Opens the installation page `own`, points its rotate-secret form at tenant path `to`
/// (`/tenants/<other>/`) and submits it; returns the answer page's heading and text.
async fn forge_rotate(b: &WebDriver, own: &str, to: &str) -> (String, String) {
    b.goto(own).await.unwrap();
    wait_for_h1(b, "Installation efs").await;
    b.execute(
        "const f = document.querySelector('#rotate form');
         f.action = f.action.replace('/tenants/acme/', arguments[0]);
         f.submit();",
        vec![Value::from(to)],
    )
    .await
    .unwrap();
    wait_for_h1(b, "Not found").await;
    (h1(b).await, text_of(b, By::Tag("main")).await)
}

fn redirect_uris(app: &Value) -> Value {
    app["settings"]["oauthClient"]["redirect_uris"].clone()
}

#[tokio::test]
async fn an_operator_creates_a_tenant_from_the_form_applies_edits_a_redirect_uri_and_sees_drift() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let (app, sim) = console_app(&redis, "").await;
    let driver = Driver::start();
    let b = driver.browser().await;
    sign_in(&b, &app, "olga@corp.example").await;

    // The form: one installation, then a second one added without any script.
    b.goto(app.url("/console/tenants")).await.unwrap();
    click(&b, By::Id("new-tenant")).await;
    wait_for_h1(&b, "New tenant").await;
    type_into(&b, "tenant", "globex").await;
    type_into(&b, "display_name", "Globex Corp").await;
    type_into(&b, "i0_name", "efs").await;
    select(&b, "i0_kind", "efs").await;
    type_into(&b, "i0_redirect_uris", "https://efs.globex.example/cb").await;
    click(&b, By::Id("add-installation")).await;
    wait_text(&b, By::Css("#installation-1 legend"), 10, |l| {
        l == "Installation 2"
    })
    .await;
    // What was typed survives the round trip, and focus is on the new installation's name.
    let kept = b.find(By::Id("i0_redirect_uris")).await.unwrap();
    assert_eq!(
        kept.prop("value").await.unwrap().as_deref(),
        Some("https://efs.globex.example/cb")
    );
    let focused = b.active_element().await.unwrap();
    assert_eq!(focused.id().await.unwrap().as_deref(), Some("i1_name"));
    type_into(&b, "i1_name", "portal").await;
    select(&b, "i1_kind", "portals").await;
    type_into(&b, "i1_redirect_uris", "https://portal.globex.example/cb").await;
    screenshot(&b, "tenant-form").await;

    // A broken field first: the form comes back with the problem in words, nothing planned.
    type_into(&b, "i1_settings", "not json").await;
    click(&b, By::Id("show-plan")).await;
    let problems = wait_text(&b, By::Id("form-problems"), 10, |p| !p.is_empty()).await;
    assert!(
        problems.contains("Installation 2 (portal): settings must be a JSON object"),
        "{problems}"
    );
    type_into(&b, "i1_settings", "{\"theme\": \"dark\"}").await;

    // The plan: every resource is new.
    click(&b, By::Id("show-plan")).await;
    wait_for_h1(&b, "Plan for tenant globex").await;
    assert_eq!(
        text_of(&b, By::Id("plan-heading")).await,
        "8 changes in Okta"
    );
    let plan = steps(&b, "plan-steps").await;
    let resources: Vec<(&str, &str)> = plan
        .iter()
        .map(|(a, r, _)| (a.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        resources,
        vec![
            ("create", "tenant-globex"),
            ("create", "tenant-globex-admins"),
            ("create", "tenant-globex"),
            ("activate", "tenant-globex"),
            ("create", "tenant-globex-efs"),
            ("create", "tenant-globex-efs"),
            ("create", "tenant-globex-portal"),
            ("create", "tenant-globex-portal"),
        ]
    );
    assert_eq!(
        sim.groups_named("tenant-globex"),
        0,
        "a plan writes nothing"
    );
    screenshot(&b, "tenant-plan").await;

    // Apply, and watch it to the end.
    let finished = apply_and_wait(&b, "globex").await;
    assert!(finished.starts_with("Finished: succeeded"), "{finished}");
    assert_eq!(text_of(&b, By::Id("apply-count")).await, "8 of 8 steps");
    screenshot(&b, "tenant-apply").await;
    assert_eq!(sim.groups_named("tenant-globex"), 1);
    assert_eq!(sim.groups_named("tenant-globex-admins"), 1);
    assert_eq!(sim.rules_named("tenant-globex")[0]["status"], "ACTIVE");
    let efs = sim.apps_labelled("tenant-globex-efs");
    let portal = sim.apps_labelled("tenant-globex-portal");
    assert_eq!((efs.len(), portal.len()), (1, 1));
    let (efs_id, portal_id) = (
        efs[0]["id"].as_str().unwrap().to_owned(),
        portal[0]["id"].as_str().unwrap().to_owned(),
    );
    // The new apps' client secrets are on the Apply answer, once: Okta's own.
    assert!(
        !finished.contains("Nobody has the new apps' client secrets"),
        "{finished}"
    );
    for (installation, app_id) in [("efs", &efs_id), ("portal", &portal_id)] {
        let secret = b
            .find(By::Id(format!("secret-{installation}")))
            .await
            .unwrap()
            .value()
            .await
            .unwrap()
            .unwrap();
        assert!(sim.app_has_secret(app_id, &secret), "{installation}");
    }

    // The list: the declared tenant with its state and installations, linked.
    b.goto(app.url("/console/tenants")).await.unwrap();
    let row = text_of(&b, By::Id("tenant-globex")).await;
    assert!(
        row.contains("Globex Corp") && row.contains("applied") && row.contains("efs, portal"),
        "{row}"
    );
    screenshot(&b, "tenants-declared").await;

    // The tenant page: in sync, groups, rule, installations with their app ids.
    b.goto(app.url("/console/tenants/globex")).await.unwrap();
    expect_h1(&b, "Tenant globex").await;
    // The page is there at once; the drift section then reads Okta (htmx, on load).
    wait_text(&b, By::Id("in-sync"), 15, |t| {
        t == "None: Okta matches the declared state."
    })
    .await;
    wait_text(&b, By::Id("rule-status"), 5, |t| t == "ACTIVE").await;
    let installations = text_of(&b, By::Id("installations")).await;
    for expected in [
        "efs",
        "portal",
        efs_id.as_str(),
        portal_id.as_str(),
        "https://portal.globex.example/cb",
    ] {
        assert!(
            installations.contains(expected),
            "{expected}: {installations}"
        );
    }
    assert!(text_of(&b, By::Id("groups"))
        .await
        .contains("tenant-globex-admins"));
    screenshot(&b, "tenant").await;

    // Edit the portal's redirect URI: the plan is exactly one update.
    click(&b, By::Id("edit-tenant")).await;
    wait_for_h1(&b, "Edit tenant globex").await;
    assert_eq!(
        b.find(By::Id("i1_name"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("portal")
    );
    type_into(
        &b,
        "i1_redirect_uris",
        "https://portal.globex.example/callback",
    )
    .await;
    click(&b, By::Id("show-plan")).await;
    wait_for_h1(&b, "Plan for tenant globex").await;
    assert_eq!(
        text_of(&b, By::Id("plan-heading")).await,
        "1 change in Okta"
    );
    let changed: Vec<_> = steps(&b, "plan-steps")
        .await
        .into_iter()
        .filter(|(a, _, _)| a != "unchanged")
        .collect();
    assert_eq!(
        changed,
        vec![(
            "update".to_owned(),
            "tenant-globex-portal".to_owned(),
            "redirect_uris".to_owned()
        )]
    );
    apply_and_wait(&b, "globex").await;
    assert_eq!(
        redirect_uris(&sim.apps_labelled("tenant-globex-portal")[0]),
        json!(["https://portal.globex.example/callback"])
    );
    assert_eq!(
        sim.apps_labelled("tenant-globex-portal")[0]["id"],
        portal_id.as_str(),
        "updated in place"
    );

    // The installation page: the config products read, and the copy button.
    b.goto(app.url("/console/tenants/globex/installations/portal"))
        .await
        .unwrap();
    expect_h1(&b, "Installation portal of globex").await;
    let config: Value = serde_json::from_str(&text_of(&b, By::Id("config-json")).await).unwrap();
    assert_eq!(config["client_id"], portal_id.as_str());
    assert_eq!(
        config["redirect_uris"],
        json!(["https://portal.globex.example/callback"])
    );
    assert_eq!(config["settings"]["theme"], "dark");
    assert!(config.get("client_secret").is_none());
    click(&b, By::Id("copy-config")).await;
    let copied = wait_text(&b, By::Id("copy-status"), 5, |s| !s.is_empty()).await;
    assert_eq!(copied, "Copied to the clipboard.");
    screenshot(&b, "tenant-installation").await;

    // Rotate the portal's secret: the new one is shown on the answer only, and is Okta's.
    click(&b, By::Css("#rotate summary")).await;
    click(&b, By::Id("rotate-secret")).await;
    wait_for_h1(&b, "New client secret").await;
    let secret = b
        .find(By::Id("new-secret"))
        .await
        .unwrap()
        .value()
        .await
        .unwrap()
        .unwrap();
    assert!(secret.len() >= 20, "{secret}");
    assert!(sim.app_has_secret(&portal_id, &secret));
    screenshot(&b, "tenant-secret-rotated").await;
    b.goto(app.url("/console/tenants/globex/installations/portal"))
        .await
        .unwrap();
    assert!(
        !b.source().await.unwrap().contains(&secret),
        "the secret is shown only once"
    );

    // By hand in Okta (the simulator): one app's redirect URIs changed, the other app deleted.
    assert!(sim.set_redirect_uris_by_hand(&efs_id, &["https://evil.example/cb"]));
    assert!(sim.delete_app_by_hand(&portal_id));
    b.goto(app.url("/console/tenants/globex")).await.unwrap();
    let drift = wait_text(&b, By::Id("drift"), 15, |t| !t.is_empty()).await;
    for expected in [
        "Drift: Okta differs from the declared state",
        "App tenant-globex-efs (installation efs) differs from the declared state: redirect URIs.",
        "App tenant-globex-portal (installation portal) is missing in Okta.",
    ] {
        assert!(drift.contains(expected), "{expected} missing in: {drift}");
    }
    assert!(b.find(By::Id("in-sync")).await.is_err());
    screenshot(&b, "tenant-drift").await;

    // Delete with a wrongly typed name: refused in words, nothing changes.
    click(&b, By::Css("#delete-tenant summary")).await;
    type_into(&b, "confirm-name", "globx").await;
    click(&b, By::Id("confirm-delete")).await;
    wait_for_h1(&b, "Not deleted").await;
    let refused = text_of(&b, By::Id("delete-refused")).await;
    assert!(
        refused.contains("You typed “globx”, which is not the tenant's name")
            && refused.contains("Nothing was deleted"),
        "{refused}"
    );
    screenshot(&b, "tenant-delete-refused").await;
    assert_eq!(sim.groups_named("tenant-globex"), 1, "nothing deleted");
    assert_eq!(sim.apps_labelled("tenant-globex-efs").len(), 1);
    let support = api_key(&app, Role::Support, None).await;
    let (s, _) = app
        .get_json("/api/v1/tenants/globex?drift=false", Some(&support))
        .await;
    assert_eq!(s, 200, "the tenant is still declared");

    // The right name: the teardown runs, live, and the tenant's Okta resources are gone.
    b.goto(app.url("/console/tenants/globex")).await.unwrap();
    click(&b, By::Css("#delete-tenant summary")).await;
    type_into(&b, "confirm-name", "globex").await;
    click(&b, By::Id("confirm-delete")).await;
    wait_for_h1(&b, "Deleting tenant globex").await;
    let state = wait_text(&b, By::Id("apply-state"), 30, |s| {
        s == "succeeded" || s == "failed"
    })
    .await;
    assert_eq!(state, "succeeded");
    assert!(text_of(&b, By::Id("apply-finished"))
        .await
        .contains("its users were kept"));
    assert_eq!(sim.groups_named("tenant-globex"), 0);
    assert!(sim.apps_labelled("tenant-globex-efs").is_empty());
    let (s, _) = app
        .get_json("/api/v1/tenants/globex?drift=false", Some(&support))
        .await;
    assert_eq!(s, 404, "deleted");

    // The console's writes are audited as the API's are, under the person's name.
    let mut conn = app.conn().await;
    let audit: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{}:audit", app.prefix))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let by_olga = |action: &str| {
        audit
            .iter()
            .filter(|(_, f)| {
                f.iter().any(|(k, v)| k == "action" && v == action)
                    && f.iter()
                        .any(|(k, v)| k == "key" && v == "console:olga@corp.example")
            })
            .count()
    };
    assert_eq!(
        (
            by_olga("tenant:apply"),
            by_olga("tenant:rotate-secret"),
            by_olga("tenant:delete")
        ),
        (2, 1, 1),
        "{audit:?}"
    );
    b.quit().await.unwrap();
}

#[tokio::test]
async fn a_client_admin_of_another_tenant_gets_not_found_for_its_pages_and_a_forged_post() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let (app, sim) = console_app(&redis, "").await;
    let support = api_key(&app, Role::Support, None).await;
    for tenant in ["acme", "globex"] {
        let doc = json!({"installations": {"efs": {"kind": "efs",
            "redirect_uris": [format!("https://efs.{tenant}.example/cb")]}}});
        let resp = app
            .client
            .put(app.url(&format!("/api/v1/tenants/{tenant}?wait=30")))
            .bearer_auth(&support)
            .json(&doc)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{tenant}");
    }
    let driver = Driver::start();
    let b = driver.browser().await;
    sign_in(&b, &app, "ada@acme.example").await;

    // The list: only its own tenant, and no "New tenant" (client admins do not write tenants).
    b.goto(app.url("/console/tenants")).await.unwrap();
    let main = text_of(&b, By::Tag("main")).await;
    assert!(main.contains("acme") && !main.contains("globex"), "{main}");
    assert!(b.find(By::Id("new-tenant")).await.is_err());

    // Its own tenant: read-only.
    b.goto(app.url("/console/tenants/acme")).await.unwrap();
    expect_h1(&b, "Tenant acme").await;
    assert!(b.find(By::Id("edit-tenant")).await.is_err());
    assert!(b.find(By::Id("delete-tenant")).await.is_err());

    // Another tenant's pages read exactly like a tenant that does not exist.
    let missing = page_at(&b, app.url("/console/tenants/nosuchtenant")).await;
    assert_eq!(missing.0, "Not found");
    assert_eq!(
        page_at(&b, app.url("/console/tenants/globex")).await,
        missing
    );
    assert_eq!(
        page_at(&b, app.url("/console/tenants/globex/installations/efs")).await,
        page_at(
            &b,
            app.url("/console/tenants/nosuchtenant/installations/efs")
        )
        .await
    );
    screenshot(&b, "tenant-not-found").await;

    // A forged post: its own installation's rotate-secret form, pointed at the other tenant.
    let own = app.url("/console/tenants/acme/installations/efs");
    let forged = forge_rotate(&b, &own, "/tenants/globex/").await;
    assert_eq!(forged.0, "Not found");
    assert_eq!(
        forged,
        forge_rotate(&b, &own, "/tenants/nosuchtenant/").await,
        "a forged post reads like one for a missing tenant"
    );
    // And an apply it may not make at all is refused by role, as the API refuses it.
    b.execute(
        "const f = document.createElement('form');
         f.method = 'post';
         f.action = arguments[0];
         for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value],
                               ['doc', '{\"installations\": {}}']]) {
           const i = document.createElement('input');
           i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
         }
         document.body.appendChild(f);
         f.submit();",
        vec![Value::from("/console/tenants/globex/apply")],
    )
    .await
    .unwrap();
    wait_for_h1(&b, "Not allowed").await;

    // Nothing changed: no secret rotated, no apply queued, globex's app is still there.
    let mut conn = app.conn().await;
    let audit: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{}:audit", app.prefix))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        !audit.iter().any(|(_, f)| f
            .iter()
            .any(|(k, v)| k == "action" && v.starts_with("tenant:") && !v.ends_with("apply"))),
        "{audit:?}"
    );
    let applies = audit
        .iter()
        .filter(|(_, f)| f.iter().any(|(k, v)| k == "action" && v == "tenant:apply"))
        .count();
    assert_eq!(applies, 2, "only the two API applies: {audit:?}");
    assert_eq!(sim.apps_labelled("tenant-globex-efs").len(), 1);
    b.quit().await.unwrap();
}
