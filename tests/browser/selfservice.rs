//! The self-service MFA reset in headless Chromium: an end user asks for a link on
//! `/self-service/mfa`, gets it by mail (a real SMTP server in the test process), opens it,
//! sees exactly their own factors, resets one, and gets the success page and a confirmation
//! mail; the same link then no longer works, and an unknown login gets the very same answer
//! as a known one. Screenshots of each page go to the artifacts directory with the others.

use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use okta_adapter::access::Role;
use okta_sim::{OktaSim, SimConfig};
use serde_json::{json, Value};
use thirtyfour::prelude::*;

use super::helpers::*;
use super::{expect_h1, h1, screenshot, text_of, Driver, BROWSER};

const TENANTS: &str = r#"
[tenants]
rules = [
  { kind = "email_domain", map = { "acme.example" = "acme", "globex.example" = "globex" } },
]
"#;

/// The adapter with self-service on for tenant acme, mailing through `smtp`.
async fn self_service_app(redis: &TestRedis, smtp: &TestSmtp) -> (TestApp, OktaSim) {
    let config = format!(
        "{TENANTS}\n[smtp]\nurl = \"{}\"\n[self_service]\ntenants = [\"acme\"]\n",
        smtp.url()
    );
    spawn_app_with_okta(
        &redis.url(),
        &random_prefix(),
        SimConfig::default(),
        &config,
    )
    .await
}

/// An ACTIVE user created in the simulator; returns its id once the projection has it.
async fn sim_user(app: &TestApp, sim: &OktaSim, support: &str, login: &str) -> String {
    let resp = app
        .client
        .post(format!("{}/api/v1/users?activate=true", sim.url()))
        .header("authorization", "SSWS sim-token")
        .json(&json!({
            "profile": {"login": login, "email": login, "firstName": "Sam", "lastName": "Doe"},
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
    app.wait_for_user(support, &id, |u| {
        u["status"] == "ACTIVE" && u["tenant"] == "acme"
    })
    .await;
    id
}

/// Waits until the projection lists `n` factors for `id`.
async fn wait_for_factors(app: &TestApp, support: &str, id: &str, n: usize) {
    let url = app.url(&format!("/api/v1/users/{id}/factors"));
    let seen = eventually(15, || async {
        let resp = app.client.get(&url).bearer_auth(support).send().await;
        match resp {
            Ok(r) if r.status() == 200 => r
                .json::<Value>()
                .await
                .is_ok_and(|b| b["factors"].as_array().is_some_and(|f| f.len() == n)),
            _ => false,
        }
    })
    .await;
    assert!(seen, "the projection never listed {n} factors of {id}");
}

/// Waits until the page's `<h1>` reads `heading` (a submit navigates).
async fn wait_for_h1(b: &WebDriver, heading: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = match b.find(By::Tag("h1")).await {
            Ok(h) => h.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if now == heading {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {heading:?} (shows {now:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fills in the request form with `login` and submits it; returns the answer page's text.
async fn request_link(b: &WebDriver, app: &TestApp, login: &str) -> String {
    b.goto(app.url("/self-service/mfa")).await.unwrap();
    assert_eq!(h1(b).await, "Reset your sign-in factors");
    b.find(By::Id("login"))
        .await
        .unwrap()
        .send_keys(login)
        .await
        .unwrap();
    b.find(By::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_h1(b, "Check your email").await;
    text_of(b, By::Tag("main")).await
}

/// The path and query of the link in a mail (the adapter's own address in the mail is its
/// configured `http.listen`, not the test's port).
fn link_of(mail: &[u8]) -> String {
    let mail = MessageParser::default().parse(mail).unwrap();
    let text = mail.body_text(0).unwrap().to_string();
    let line = text
        .lines()
        .find(|l| l.contains("/self-service/mfa/reset?token="))
        .expect("the mail carries the link");
    let at = line.find("/self-service/").unwrap();
    line[at..].trim().to_owned()
}

#[tokio::test]
async fn an_end_user_resets_a_factor_from_the_mailed_link_which_then_no_longer_works() {
    let _one = BROWSER.lock().await;
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let (app, sim) = self_service_app(&redis, &smtp).await;
    let support = api_key(&app, Role::Support, None).await;
    let sam = sim_user(&app, &sim, &support, "sam@acme.example").await;
    let ann = sim_user(&app, &sim, &support, "ann@acme.example").await;
    let push = sim.enroll_factor(&sam, "push", "OKTA").unwrap();
    let sms = sim.enroll_factor(&sam, "sms", "OKTA").unwrap();
    let anns = sim.enroll_factor(&ann, "sms", "OKTA").unwrap();
    wait_for_factors(&app, &support, &sam, 2).await;
    wait_for_factors(&app, &support, &ann, 1).await;

    let driver = Driver::start();
    let b = driver.browser().await;

    // The request form, then the neutral answer.
    b.goto(app.url("/self-service/mfa")).await.unwrap();
    screenshot(&b, "self-service-request").await;
    let known = request_link(&b, &app, "sam@acme.example").await;
    assert!(
        known.contains("If an account with that username exists"),
        "{known}"
    );
    screenshot(&b, "self-service-sent").await;
    assert!(
        eventually(10, || async { !smtp.received().is_empty() }).await,
        "the link mail never came"
    );
    let mails = smtp.received();
    assert_eq!(mails.len(), 1);
    assert!(String::from_utf8_lossy(&mails[0]).contains("To: sam@acme.example"));
    let link = link_of(&mails[0]);

    // The link: exactly Sam's factors, all preselected.
    b.goto(app.url(&link)).await.unwrap();
    expect_h1(&b, "Reset your sign-in factors").await;
    let main = text_of(&b, By::Tag("main")).await;
    assert!(main.contains("sam@acme.example"), "{main}");
    assert!(
        main.contains("Okta Verify") && main.contains("SMS Authentication"),
        "{main}"
    );
    let boxes = b
        .find_all(By::Css("input[type=checkbox][name=factor]"))
        .await
        .unwrap();
    let mut listed = Vec::new();
    for cb in &boxes {
        assert!(cb.is_selected().await.unwrap(), "preselected");
        listed.push(cb.attr("value").await.unwrap().unwrap());
    }
    listed.sort();
    let mut own = vec![push.clone(), sms.clone()];
    own.sort();
    assert_eq!(listed, own, "exactly Sam's factors, not Ann's {anns}");
    screenshot(&b, "self-service-reset").await;

    // Keep SMS, reset only the push factor.
    b.find(By::Css(format!("input[name=factor][value='{sms}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find(By::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_h1(&b, "Your factors were reset").await;
    let done = text_of(&b, By::Tag("main")).await;
    assert!(done.contains("1 factor was reset"), "{done}");
    screenshot(&b, "self-service-done").await;
    assert_eq!(
        sim.factors_of(&sam),
        vec![sms.clone()],
        "only push was reset"
    );
    assert_eq!(sim.factors_of(&ann), vec![anns], "nobody else's changed");

    // The confirmation mail, without any link.
    assert!(
        eventually(10, || async { smtp.received().len() == 2 }).await,
        "the confirmation mail never came"
    );
    let mails = smtp.received();
    let confirmation = MessageParser::default().parse(&mails[1]).unwrap();
    assert_eq!(confirmation.subject(), Some("Your MFA was reset"));
    assert!(String::from_utf8_lossy(&mails[1]).contains("To: sam@acme.example"));
    assert!(!confirmation.body_text(0).unwrap().contains("token="));

    // The link worked once.
    b.goto(app.url(&link)).await.unwrap();
    expect_h1(&b, "This link no longer works").await;
    assert!(text_of(&b, By::Tag("main"))
        .await
        .contains("was already used"));
    assert!(b.find(By::Css("input[name=factor]")).await.is_err());
    screenshot(&b, "self-service-used").await;
    assert_eq!(sim.factors_of(&sam), vec![sms]);

    // An unknown login gets the identical answer, and no mail.
    let unknown = request_link(&b, &app, "nobody@acme.example").await;
    assert_eq!(unknown, known, "the answer does not tell who exists");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.received().len(), 2, "no mail for an unknown login");
    b.quit().await.unwrap();
}
