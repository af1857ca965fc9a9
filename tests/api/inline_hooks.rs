//! Inline hooks end to end: Okta's requests over real HTTP, a real redis-server, real hashes.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use okta_adapter::inline::credentials::{store_credentials, CredentialRow};
use okta_adapter::inline::password::{argon2id_string, pbkdf2_string, salted_sha_string, Sha};
use okta_adapter::store::Keys;
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::helpers::*;

// ---- helpers for this file ----

const HOOKS: [&str; 6] = [
    "password-import",
    "registration",
    "user-import",
    "token",
    "saml",
    "telephony",
];

fn sample(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// Okta's published request sample for each hook path.
fn okta_request(hook: &str) -> Value {
    sample(match hook {
        "password-import" => "inline-password-import-request.json",
        "registration" => "inline-registration-ssr-request.json",
        "user-import" => "inline-user-import-request.json",
        "token" => "inline-token-request.json",
        "saml" => "inline-saml-request.json",
        "telephony" => "inline-telephony-request.json",
        other => panic!("no sample for {other}"),
    })
}

async fn post_inline_raw(
    app: &TestApp,
    hook: &str,
    body: impl Into<reqwest::Body>,
    auth: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/hooks/okta/inline/{hook}")))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.expect("request completes")
}

/// Posts with the test secret; returns the status and the JSON body (`null` for 204).
async fn post_inline(app: &TestApp, hook: &str, body: &Value) -> (u16, Value) {
    let resp = post_inline_raw(app, hook, body.to_string(), Some(SECRET)).await;
    read(resp).await
}

async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert!(
        text.len() < 256 * 1024,
        "Okta refuses answers of 256 KB or more"
    );
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, body)
}

fn password_request(login: &str, password: &str) -> Value {
    let mut r = okta_request("password-import");
    r["data"]["context"]["credential"] = json!({"username": login, "password": password});
    r
}

fn credential(body: &Value) -> &str {
    assert_eq!(
        body["commands"][0]["type"], "com.okta.action.update",
        "{body}"
    );
    body["commands"][0]["value"]["credential"].as_str().unwrap()
}

async fn store(app: &TestApp, rows: &[(&str, String)]) {
    let mut conn = app.state.redis.clone();
    let rows: Vec<CredentialRow> = rows
        .iter()
        .enumerate()
        .map(|(i, (login, hash))| CredentialRow {
            line: i + 1,
            login: login.to_string(),
            hash: hash.clone(),
        })
        .collect();
    store_credentials(&mut conn, &Keys::new(app.prefix.clone()), &rows)
        .await
        .unwrap();
}

async fn legacy_hash(app: &TestApp, login: &str) -> Option<String> {
    let mut conn = app.conn().await;
    conn.get(Keys::new(app.prefix.clone()).legacy_credential(login))
        .await
        .unwrap()
}

fn decisions_stream(app: &TestApp) -> String {
    Keys::new(app.prefix.clone()).inline_decisions()
}

/// The recorded outcomes for one user, oldest first.
async fn outcomes_for(app: &TestApp, user: &str) -> Vec<String> {
    app.entries(&decisions_stream(app))
        .await
        .into_iter()
        .filter(|e| e["user"] == user)
        .map(|e| e["outcome"].clone())
        .collect()
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

const TENANTS: &str = r#"
[inline]
tenants = [
  { id = "acme", email_domains = ["example.com"], attributes = { plan = "pro" } },
  { id = "clouditude", email_domains = ["clouditude.net"] },
]
roles = { "acme-admins" = ["admin"], "acme-users" = ["user"] }
"#;

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

// ---- authentication and bad input ----

#[tokio::test]
async fn a_wrong_or_missing_secret_gets_401_on_every_inline_hook() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    for hook in HOOKS {
        let body = okta_request(hook).to_string();
        for secret in [
            None,
            Some("wrong"),
            Some("test-secret-1x"),
            Some("Bearer test-secret-1"),
        ] {
            let resp = post_inline_raw(&app, hook, body.clone(), secret).await;
            assert_eq!(resp.status(), 401, "{hook} with {secret:?}");
            assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized");
        }
        // Both rotation secrets work.
        for secret in [SECRET, SECOND_SECRET] {
            let resp = post_inline_raw(&app, hook, body.clone(), Some(secret)).await;
            assert!(resp.status().is_success(), "{hook}: {}", resp.status());
        }
    }
    let m = metrics(&app).await;
    assert!(
        m.contains("okta_adapter_hook_auth_failures_total{hook=\"token\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_json_error_and_oversized_ones_413() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[inline]\nmax_body_bytes = 4096\n").await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("token", "{\"data\": {".into(), "not valid JSON"),
        ("token", "".into(), "not valid JSON"),
        ("saml", "[1, 2]".into(), "expected a JSON object"),
        (
            "registration",
            json!({"eventType": "com.okta.user.pre-registration"}).to_string(),
            "`data` is missing",
        ),
        (
            "registration",
            json!({"data": "ALLOW"}).to_string(),
            "`data` is missing",
        ),
        (
            "password-import",
            okta_request("token").to_string(),
            "this endpoint takes `com.okta.user.credential.password.import`",
        ),
        (
            "telephony",
            json!({"eventType": "com.okta.event_hook", "data": {"events": []}}).to_string(),
            "eventType is `com.okta.event_hook`",
        ),
    ];
    for (hook, body, expected) in cases {
        let resp = post_inline_raw(&app, hook, body.clone(), Some(SECRET)).await;
        assert_eq!(resp.status(), 400, "{hook}: {body:.60}");
        let err: Value = resp.json().await.expect("errors are JSON");
        assert_eq!(err["error"], "bad_request");
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "`{msg}` should mention `{expected}`"
        );
    }
    let mut big = okta_request("token");
    big["data"]["padding"] = json!("x".repeat(5000));
    let resp = post_inline_raw(&app, "token", big.to_string(), Some(SECRET)).await;
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn lenient_parsing_accepts_numbers_for_strings_and_unknown_fields() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, TENANTS).await;
    // The OpenAPI flavour of the samples: numbers where the markdown has strings.
    let mut req = okta_request("telephony");
    req["eventTypeVersion"] = json!(1);
    req["cloudEventVersion"] = json!(0.1);
    req["data"]["messageProfile"]["phoneNumber"] = json!(9876543210u64);
    req["data"]["messageProfile"]["otpCode"] = json!(11111);
    req["data"]["somethingNew"] = json!({"nested": [1, 2]});
    let (status, body) = post_inline(&app, "telephony", &req).await;
    assert_eq!(status, 200);
    assert!(body["error"].is_object());
    let mut reg = okta_request("registration");
    reg["eventTypeVersion"] = json!(1);
    reg["data"]["action"] = json!({"registration": "ALLOW"});
    assert_eq!(post_inline(&app, "registration", &reg).await.0, 200);
}

// ---- password import ----

const RIGHT: &str = "Tr0ub4dor&3-correct";
const WRONG: &str = "Tr0ub4dor&3-wrong";

#[tokio::test]
async fn each_legacy_hash_format_verifies_the_right_password_and_refuses_a_wrong_one() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let salt = b"0123456789abcdef";
    let pw = RIGHT.as_bytes();
    let formats = [
        ("bcrypt@acme.com", bcrypt::hash(pw, 4).unwrap()),
        (
            "bcrypt-2y@acme.com",
            bcrypt::hash(pw, 4).unwrap().replacen("$2b$", "$2y$", 1),
        ),
        (
            "pbkdf2-256@acme.com",
            pbkdf2_string(Sha::Sha256, 2000, salt, pw),
        ),
        (
            "pbkdf2-512@acme.com",
            pbkdf2_string(Sha::Sha512, 2000, salt, pw),
        ),
        ("argon2id@acme.com", argon2id_string(1024, 1, 1, salt, pw)),
        ("sha256@acme.com", salted_sha_string(Sha::Sha256, salt, pw)),
        ("sha512@acme.com", salted_sha_string(Sha::Sha512, salt, pw)),
    ];
    store(&app, &formats).await;
    for (login, _) in &formats {
        let (status, body) =
            post_inline(&app, "password-import", &password_request(login, RIGHT)).await;
        assert_eq!((status, credential(&body)), (200, "VERIFIED"), "{login}");
        let (_, body) = post_inline(&app, "password-import", &password_request(login, WRONG)).await;
        assert_eq!(credential(&body), "UNVERIFIED", "{login}");
        // Logins are case-insensitive, as Okta's are.
        let upper = login.to_uppercase();
        let (_, body) =
            post_inline(&app, "password-import", &password_request(&upper, RIGHT)).await;
        assert_eq!(credential(&body), "VERIFIED", "{upper}");
    }
    // A VERIFIED answer alone does not delete the legacy hash (Okta may ask again).
    assert!(legacy_hash(&app, "bcrypt@acme.com").await.is_some());
    let m = metrics(&app).await;
    assert!(m.contains(
        "okta_adapter_inline_hook_requests_total{hook=\"password-import\",outcome=\"verified\"}"
    ));
    assert!(m.contains(
        "okta_adapter_password_verifications_total{scheme=\"argon2id\",result=\"mismatch\"}"
    ));
}

#[tokio::test]
async fn repeated_wrong_passwords_throttle_the_login_until_the_window_ends() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        "[inline.password_import]\nmax_failures = 3\nfailure_window_secs = 2\n",
    )
    .await;
    store(
        &app,
        &[
            ("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap()),
            ("bob@acme.com", bcrypt::hash(RIGHT, 4).unwrap()),
        ],
    )
    .await;
    for _ in 0..3 {
        let (_, b) = post_inline(
            &app,
            "password-import",
            &password_request("jane@acme.com", WRONG),
        )
        .await;
        assert_eq!(credential(&b), "UNVERIFIED");
    }
    // Now even the right password is refused without hashing …
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "UNVERIFIED");
    // … while another login is unaffected.
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("bob@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");
    assert!(
        eventually(5, || async {
            outcomes_for(&app, "jane@acme.com").await.len() == 4
        })
        .await,
        "four decisions recorded"
    );
    assert_eq!(
        outcomes_for(&app, "jane@acme.com").await,
        ["unverified", "unverified", "unverified", "throttled"]
    );
    // After the window the right password works again, and the counter is cleared.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");
}

#[tokio::test]
async fn thirty_concurrent_wrong_passwords_record_no_more_failures_than_the_limit() {
    let redis = TestRedis::start();
    // Two permits and a cheap hash: many attempts are judged at the same time, which is where
    // a read-then-write throttle let through 7 failures against a limit of 5.
    let app = spawn_app_with(
        &redis,
        "[inline.password_import]\nmax_concurrent_hashes = 2\nmax_failures = 5\n",
    )
    .await;
    store(
        &app,
        &[(
            "jane@acme.com",
            salted_sha_string(Sha::Sha256, b"NaCl", RIGHT.as_bytes()),
        )],
    )
    .await;
    let answers = futures::future::join_all((0..30).map(|_| {
        let app = &app;
        async move {
            let (status, body) = post_inline(
                app,
                "password-import",
                &password_request("jane@acme.com", WRONG),
            )
            .await;
            (status, credential(&body).to_string())
        }
    }))
    .await;
    assert!(answers
        .iter()
        .all(|a| *a == (200, "UNVERIFIED".to_string())));
    let mut conn = app.conn().await;
    let failures: u64 = conn
        .get(Keys::new(app.prefix.clone()).credential_failures("jane@acme.com"))
        .await
        .unwrap();
    assert_eq!(failures, 5, "the counter stops at the limit");
    assert!(
        eventually(5, || async {
            outcomes_for(&app, "jane@acme.com").await.len() == 30
        })
        .await
    );
    let outcomes = outcomes_for(&app, "jane@acme.com").await;
    let judged = outcomes.iter().filter(|o| *o == "unverified").count();
    let throttled = outcomes.iter().filter(|o| *o == "throttled").count();
    assert_eq!(
        (judged, throttled),
        (5, 25),
        "only five passwords were checked: {outcomes:?}"
    );
    // The right password is refused too now, without hashing.
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "UNVERIFIED");
}

/// A valid bcrypt string of any cost that matches no password: checking it costs the full
/// 2^cost rounds (cost 16: seconds) without computing it in the test first.
fn bcrypt_of_cost(cost: u32) -> String {
    format!("$2b${cost:02}$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy")
}

#[tokio::test]
async fn a_slow_legacy_hash_in_redis_does_not_hold_the_only_permit_against_other_sign_ins() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        "[inline.password_import]\nmax_concurrent_hashes = 1\n",
    )
    .await;
    // A cost-16 hash stored before the limits existed (or by hand): 3 s+ of one core.
    store(
        &app,
        &[
            ("slow@acme.com", bcrypt_of_cost(16)),
            ("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap()),
        ],
    )
    .await;
    let slow = async {
        let t = Instant::now();
        let (_, b) = post_inline(
            &app,
            "password-import",
            &password_request("slow@acme.com", RIGHT),
        )
        .await;
        (credential(&b).to_string(), t.elapsed())
    };
    let others = async {
        // Arrive while the slow sign-in would be hashing.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut answers = Vec::new();
        for _ in 0..3 {
            let (_, b) = post_inline(
                &app,
                "password-import",
                &password_request("jane@acme.com", RIGHT),
            )
            .await;
            answers.push(credential(&b).to_string());
        }
        answers
    };
    let ((slow_answer, slow_took), answers) = tokio::join!(slow, others);
    assert_eq!(answers, ["VERIFIED"; 3], "other sign-ins are not blocked");
    assert_eq!(slow_answer, "UNVERIFIED");
    assert!(
        slow_took < Duration::from_millis(500),
        "refused without hashing, took {slow_took:?}"
    );
    assert!(
        eventually(5, || async {
            outcomes_for(&app, "slow@acme.com").await == ["over_cost"]
        })
        .await,
        "{:?}",
        outcomes_for(&app, "slow@acme.com").await
    );
}

#[tokio::test]
async fn sign_ins_shed_for_load_do_not_count_as_wrong_passwords() {
    let redis = TestRedis::start();
    // One permit, a 400 ms deadline, a bcrypt-12 hash (~205 ms by the reference): one fits, a
    // second behind it cannot, so it is shed before hashing.
    let app = spawn_app_with(
        &redis,
        "[inline]\ndeadline_ms = 400\n[inline.password_import]\nmax_concurrent_hashes = 1\nmax_failures = 5\nmax_pbkdf2_iterations = 600000\nmax_argon2_kib_passes = 131072\n",
    )
    .await;
    store(&app, &[("jane@acme.com", bcrypt_of_cost(12))]).await;
    let answers = futures::future::join_all((0..4).map(|_| {
        let app = &app;
        async move {
            let (_, b) = post_inline(
                app,
                "password-import",
                &password_request("jane@acme.com", WRONG),
            )
            .await;
            credential(&b).to_string()
        }
    }))
    .await;
    assert!(answers.iter().all(|a| a == "UNVERIFIED"));
    assert!(
        eventually(5, || async {
            outcomes_for(&app, "jane@acme.com").await.len() == 4
        })
        .await
    );
    let outcomes = outcomes_for(&app, "jane@acme.com").await;
    let shed = outcomes.iter().filter(|o| *o == "shed").count();
    assert!(shed >= 3, "{outcomes:?}");
    // Only a judged password counts (at most the one that ran; none if it was cut off by the
    // deadline): the shed attempts were given back.
    let failures = eventually(5, || async {
        let mut conn = app.conn().await;
        let n: Option<u64> = conn
            .get(Keys::new(app.prefix.clone()).credential_failures("jane@acme.com"))
            .await
            .unwrap();
        n.unwrap_or(0) <= 1
    })
    .await;
    assert!(failures, "shed attempts counted as failures");
}

#[tokio::test]
async fn an_import_refuses_hashes_too_slow_for_the_deadline_with_their_line_numbers() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("legacy.jsonl");
    std::fs::write(
        &file,
        format!(
            "# exported from the old portal\n{}\n{}\n{}\n",
            json!({"login": "ok@acme.com", "hash": bcrypt::hash(RIGHT, 4).unwrap()}),
            json!({"login": "slow@acme.com", "hash": bcrypt_of_cost(13)}),
            json!({"login": "huge@acme.com",
                   "hash": "$argon2id$v=19$m=1048576,t=1,p=1$c29tZXNhbHQ$MDEyMzQ1Njc4OWFiY2RlZg"}),
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
        .args(["credentials", "import"])
        .arg(&file)
        .env("OKTA_ADAPTER__REDIS__URL", &app.redis_url)
        .env("OKTA_ADAPTER__REDIS__PREFIX", &app.prefix)
        .env("OKTA_ADAPTER__HOOKS__SECRETS", "unused")
        .env_remove("OKTA_ADAPTER_CONFIG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "refused rows make the exit code non-zero"
    );
    assert!(
        stderr.contains("line 3 (slow@acme.com): bcrypt cost 13 exceeds the limit 12 (inline.password_import.max_bcrypt_cost)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "line 4 (huge@acme.com): argon2 m×t = 1048576×1 KiB·passes exceeds the limit 262144"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("N9qo8uLOickgx2ZMRZoMy"),
        "hashes are never echoed"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 legacy credential(s) stored"));
    assert!(legacy_hash(&app, "slow@acme.com").await.is_none());
    assert!(legacy_hash(&app, "huge@acme.com").await.is_none());
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("ok@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");

    // A deployment with a shorter deadline refuses limits that could not fit it, at start.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
        .args(["credentials", "import", "--dry-run"])
        .arg(&file)
        .env("OKTA_ADAPTER__INLINE__DEADLINE_MS", "300")
        .env("OKTA_ADAPTER__HOOKS__SECRETS", "unused")
        .env_remove("OKTA_ADAPTER_CONFIG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "inline.password_import.max_pbkdf2_iterations: a hash at this limit takes about 320 ms"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_legacy_hash_is_deleted_only_after_okta_reports_a_successful_import() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    store(
        &app,
        &[
            (
                "jane.doe@acme.com",
                salted_sha_string(Sha::Sha256, b"s", RIGHT.as_bytes()),
            ),
            (
                "marker@acme.com",
                salted_sha_string(Sha::Sha256, b"s", RIGHT.as_bytes()),
            ),
        ],
    )
    .await;
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane.doe@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");

    let import_event = |uuid: &str, login: &str, result: &str| {
        let mut e = log_event(uuid, "user.import.password", ("00ujane", login));
        e["outcome"]["result"] = json!(result);
        e
    };
    // A FAILURE for Jane, then a SUCCESS for a marker user: the consumer reads in order, so once
    // the marker's hash is gone, Jane's FAILURE has been applied too — and must have kept hers.
    let first = delivery(vec![
        import_event("imp-fail", "jane.doe@acme.com", "FAILURE"),
        log_event(
            "other",
            "user.session.start",
            ("00ujane", "jane.doe@acme.com"),
        ),
        import_event("imp-marker", "marker@acme.com", "SUCCESS"),
    ]);
    assert_eq!(app.post_events(&first).await.status(), 204);
    assert!(
        eventually(10, || async {
            legacy_hash(&app, "marker@acme.com").await.is_none()
        })
        .await,
        "the clean-up consumer deletes the hash after a SUCCESS event"
    );
    assert!(
        legacy_hash(&app, "jane.doe@acme.com").await.is_some(),
        "a FAILURE event leaves the hash in place"
    );
    // Okta's own event fixture for the success (its target is jane.doe@acme.com).
    let success = fixture("events/user.import.password.json");
    assert_eq!(
        app.post_events_raw(success, Some(SECRET)).await.status(),
        204
    );
    assert!(
        eventually(10, || async {
            legacy_hash(&app, "jane.doe@acme.com").await.is_none()
        })
        .await,
        "deleted after the SUCCESS event"
    );
    // The entries were acknowledged: nothing pending in the group.
    let mut conn = app.conn().await;
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(
            Keys::new(app.prefix.clone()).credential_imports(),
            "credential-cleanup",
        )
        .await
        .unwrap();
    assert_eq!(pending.count(), 0);
    // And the user now just gets UNVERIFIED from the hook (Okta holds the password).
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane.doe@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "UNVERIFIED");
}

#[tokio::test]
async fn the_credentials_import_command_loads_csv_and_json_lines_and_names_bad_rows() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    let pbkdf2 = pbkdf2_string(Sha::Sha256, 1000, b"saltsalt", RIGHT.as_bytes());
    let csv = dir.path().join("legacy.csv");
    std::fs::write(
        &csv,
        format!("login,hash,extra\nAnn@Acme.com,\"{pbkdf2}\",x\nbroken@acme.com,$md5$abc$def,y\n"),
    )
    .unwrap();
    let jsonl = dir.path().join("legacy.jsonl");
    std::fs::write(
        &jsonl,
        format!(
            "# users from the old portal\n{}\n",
            json!({"login": "ben@acme.com", "hash": bcrypt::hash(RIGHT, 4).unwrap()})
        ),
    )
    .unwrap();
    let run = |file: std::path::PathBuf| {
        let url = app.redis_url.clone();
        let prefix = app.prefix.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
                .args(["credentials", "import"])
                .arg(file)
                .env("OKTA_ADAPTER__REDIS__URL", url)
                .env("OKTA_ADAPTER__REDIS__PREFIX", prefix)
                .env("OKTA_ADAPTER__HOOKS__SECRETS", "unused")
                .env_remove("OKTA_ADAPTER_CONFIG")
                .output()
                .await
                .unwrap()
        }
    };
    let out = run(csv).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a skipped row makes the exit code non-zero"
    );
    assert!(
        stderr.contains("line 3 (broken@acme.com): unsupported hash scheme `md5`"),
        "{stderr}"
    );
    assert!(!stderr.contains("$md5$abc"), "hashes are never echoed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 legacy credential(s) stored"));
    let out = run(jsonl).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for login in ["ann@acme.com", "ben@acme.com"] {
        let (_, b) = post_inline(&app, "password-import", &password_request(login, RIGHT)).await;
        assert_eq!(credential(&b), "VERIFIED", "{login}");
    }
    assert!(legacy_hash(&app, "broken@acme.com").await.is_none());
}

#[tokio::test]
async fn more_sign_ins_than_the_cores_can_hash_in_time_are_shed_and_none_answers_late() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        "[inline]\ndeadline_ms = 700\n[inline.password_import]\nmax_concurrent_hashes = 1\n",
    )
    .await;
    // ~250 ms per hash in a debug build (the release build is ~10x faster; the benchmark uses it).
    let slow = pbkdf2_string(Sha::Sha256, 40_000, b"saltsalt", RIGHT.as_bytes());
    let logins: Vec<String> = (0..16).map(|i| format!("user{i}@acme.com")).collect();
    let rows: Vec<(&str, String)> = logins.iter().map(|l| (l.as_str(), slow.clone())).collect();
    store(&app, &rows).await;
    // One sign-in teaches the pool what a hash costs.
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("user0@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");

    let started = Instant::now();
    let answers = futures::future::join_all(logins.iter().map(|login| {
        let app = &app;
        async move {
            let t = Instant::now();
            let (status, body) =
                post_inline(app, "password-import", &password_request(login, RIGHT)).await;
            (status, credential(&body).to_string(), t.elapsed())
        }
    }))
    .await;
    let verified = answers.iter().filter(|a| a.1 == "VERIFIED").count();
    let slowest = answers.iter().map(|a| a.2).max().unwrap();
    assert!(answers.iter().all(|a| a.0 == 200));
    assert!(verified >= 1, "the pool still verifies what fits");
    assert!(verified < 16, "not everything fits in 700 ms on one permit");
    assert!(
        slowest < Duration::from_millis(700 + 300),
        "an answer took {slowest:?}, past the deadline"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let m = metrics(&app).await;
    assert!(
        m.contains(
            "okta_adapter_inline_hook_requests_total{hook=\"password-import\",outcome=\"shed\"}"
        ),
        "{m}"
    );
}

// ---- deadline and Redis outages ----

#[tokio::test]
async fn a_stalled_redis_hits_the_deadline_and_gets_the_safe_answer_in_time() {
    let redis = TestRedis::start();
    // (A deadline this short needs hash limits that fit it, or the settings are refused.)
    let app = spawn_app_with(
        &redis,
        "[inline]\ndeadline_ms = 300\n[inline.password_import]\nmax_pbkdf2_iterations = 600000\nmax_argon2_kib_passes = 131072\n",
    )
    .await;
    store(&app, &[("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap())]).await;
    let mut admin = redis.conn().await;
    // Redis stops answering clients (but keeps the connection): the worst case for a hook.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let t = Instant::now();
    let (status, body) = post_inline(
        &app,
        "password-import",
        &password_request("jane@acme.com", RIGHT),
    )
    .await;
    let took = t.elapsed();
    assert_eq!((status, credential(&body)), (200, "UNVERIFIED"));
    assert!(
        took >= Duration::from_millis(240),
        "{took:?}: it did wait for Redis"
    );
    assert!(
        took < Duration::from_millis(700),
        "{took:?}: answered at the deadline"
    );
    // The token hook's projection lookup stalls the same way: the original token (204), in time.
    let t = Instant::now();
    let (status, _) = post_inline(&app, "token", &okta_request("token")).await;
    assert_eq!(status, 204);
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let m = metrics(&app).await;
    assert!(
        m.contains("okta_adapter_inline_hook_deadline_hits_total{hook=\"password-import\"}"),
        "{m}"
    );
    // The decision was recorded once Redis answered again.
    assert!(
        eventually(5, || async {
            app.entries(&decisions_stream(&app))
                .await
                .iter()
                .any(|e| e["outcome"] == "deadline" && e["deadline_hit"] == "1")
        })
        .await
    );
}

#[tokio::test]
async fn with_redis_down_every_hook_answers_its_safe_default_fast() {
    let mut redis = TestRedis::start();
    let app = spawn_app_with(&redis, &format!("{TENANTS}\ndeadline_ms = 800\n")).await;
    store(&app, &[("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap())]).await;
    redis.server.stop();
    for hook in HOOKS {
        let req = if hook == "password-import" {
            password_request("jane@acme.com", RIGHT)
        } else {
            okta_request(hook)
        };
        let t = Instant::now();
        let (status, body) = post_inline(&app, hook, &req).await;
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1300), "{hook} took {took:?}");
        match hook {
            "password-import" => assert_eq!(credential(&body), "UNVERIFIED"),
            "token" | "saml" => assert_eq!(status, 204, "{hook}: original token/assertion"),
            // The projection lookup fails: Okta's default (create), not a guess.
            "user-import" => assert_eq!(status, 204),
            // Registration needs no Redis; telephony falls back either way.
            "registration" => assert_eq!(status, 200),
            "telephony" => assert!(body["error"].is_object()),
            _ => unreachable!(),
        }
    }
    redis.server.restart().unwrap();
    store(&app, &[("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap())]).await;
    let recovered = eventually(5, || async {
        let (_, b) = post_inline(
            &app,
            "password-import",
            &password_request("jane@acme.com", RIGHT),
        )
        .await;
        credential(&b) == "VERIFIED"
    })
    .await;
    assert!(recovered, "answers come back once Redis does");
}

// ---- the decision stream, metrics, OpenAPI ----

#[tokio::test]
async fn each_decision_is_recorded_with_type_user_outcome_and_latency() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, TENANTS).await;
    for hook in HOOKS {
        post_inline(&app, hook, &okta_request(hook)).await;
    }
    let stream = decisions_stream(&app);
    assert!(eventually(5, || async { app.entries(&stream).await.len() == 6 }).await);
    let entries = app.entries(&stream).await;
    let by_type: HashMap<String, HashMap<String, String>> = entries
        .into_iter()
        .map(|e| (e["type"].clone(), e))
        .collect();
    let expect = [
        (
            "password-import",
            "isaac.brock@example.com",
            "unknown_login",
            "3o9jBzq1SmOGmmsDsqyyeQ",
        ),
        (
            "registration",
            "rosario.jones@example.com",
            "allow_with_profile",
            "04Dmt8BcT_aEgM",
        ),
        (
            "user-import",
            "sally.admin@clouditude.net",
            "create",
            "JUGOUiYZTaKPmH6db0nDag",
        ),
        (
            "token",
            "00uq8tMo3zV0OfJON0g3",
            "unknown_user",
            "3OWo4oo-QQ-rBWfRyTmQYw",
        ),
        (
            "saml",
            "00uq8tMo3zV0OfJON0g3",
            "unknown_user",
            "XMFoHCM1S4Wi_SGWzL8T9A",
        ),
        (
            "telephony",
            "00uyxxSknGtK8022w0g3",
            "fallback",
            "uS5871kJThSsU8qlA1LTcg",
        ),
    ];
    for (hook, user, outcome, event_id) in expect {
        let e = &by_type[hook];
        assert_eq!(
            (
                e["user"].as_str(),
                e["outcome"].as_str(),
                e["event_id"].as_str()
            ),
            (user, outcome, event_id),
            "{hook}"
        );
        let ms: f64 = e["latency_ms"].parse().unwrap();
        assert!((0.0..1000.0).contains(&ms), "{hook}: {ms}");
        assert_eq!(e["deadline_hit"], "0");
        assert_eq!(e["v"], "1");
        let mut fields: Vec<&str> = e.keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "at",
                "deadline_hit",
                "event_id",
                "latency_ms",
                "outcome",
                "type",
                "user",
                "v"
            ]
        );
    }
    // The OTP of the telephony sample is nowhere in the stream.
    assert!(!format!("{:?}", app.entries(&stream).await).contains("11111"));
    let m = metrics(&app).await;
    for needle in [
        "okta_adapter_inline_hook_requests_total{hook=\"telephony\",outcome=\"fallback\"}",
        "okta_adapter_inline_hook_duration_seconds_bucket{hook=\"token\",le=\"0.005\"}",
        "okta_adapter_inline_hook_duration_seconds_count{hook=\"saml\"}",
    ] {
        assert!(m.contains(needle), "missing {needle}");
    }
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for hook in HOOKS {
        let op = &spec["paths"][format!("/hooks/okta/inline/{hook}")]["post"];
        assert_eq!(op["tags"][0], "OktaHooks", "{hook}");
        assert!(op["responses"]["200"].is_object() && op["responses"]["401"].is_object());
    }
}

// ---- secrets never leak ----

/// Every log line of this test binary, from the moment the first test asks for it.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        #[derive(Clone)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Buffer(buf.clone());
        // TRACE for every crate (poem, hyper, redis, ours): the strictest capture there is.
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        buf
    })
    .clone()
}

#[tokio::test]
async fn the_plaintext_password_reaches_no_log_metric_stream_key_or_error() {
    let logs = captured_logs();
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[inline.password_import]\nmax_failures = 2\n").await;
    let secret = "Zq9-unique-PLAINTEXT-hunter2";
    store(
        &app,
        &[("leaky@acme.com", bcrypt::hash(secret, 4).unwrap())],
    )
    .await;
    // Right, wrong (with the secret inside the wrong one), throttled, unknown login.
    let wrong = format!("{secret}-typo");
    for (login, pw) in [
        ("leaky@acme.com", secret),
        ("leaky@acme.com", wrong.as_str()),
        ("leaky@acme.com", wrong.as_str()),
        ("leaky@acme.com", secret),
        ("nobody@acme.com", secret),
    ] {
        let (status, body) =
            post_inline(&app, "password-import", &password_request(login, pw)).await;
        assert_eq!(status, 200);
        assert!(!body.to_string().contains(secret));
    }
    // A malformed body that contains the password: the 400 message must not quote it.
    let broken = format!(
        "{{\"eventType\":\"com.okta.user.credential.password.import\",\"data\":{{\"context\":{{\"credential\":{{\"username\":\"leaky@acme.com\",\"password\":\"{secret}\"}}}}}} trailing"
    );
    let resp = post_inline_raw(&app, "password-import", broken, Some(SECRET)).await;
    assert_eq!(resp.status(), 400);
    assert!(!resp.text().await.unwrap().contains(secret));
    // A wrong type for `data` that holds the password.
    let odd = json!({"data": [secret]}).to_string();
    let resp = post_inline_raw(&app, "password-import", odd, Some(SECRET)).await;
    assert!(!resp.text().await.unwrap().contains(secret));

    // Wait until all five decisions are recorded, so every write path has run.
    let stream = decisions_stream(&app);
    assert!(eventually(5, || async { app.entries(&stream).await.len() == 5 }).await);
    let outcomes: Vec<String> = app
        .entries(&stream)
        .await
        .into_iter()
        .map(|e| e["outcome"].clone())
        .collect();
    assert_eq!(
        outcomes,
        [
            "verified",
            "unverified",
            "unverified",
            "throttled",
            "unknown_login"
        ]
    );

    // Every value of every key under the prefix.
    let mut conn = app.conn().await;
    let keys: Vec<String> = conn.keys(format!("{}:*", app.prefix)).await.unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let dump: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&dump).contains(secret),
            "the password is stored in {key}"
        );
    }
    assert!(!metrics(&app).await.contains(secret));
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        text.contains("inline hook request rejected"),
        "the capture works: it holds the adapter's own log of the malformed requests"
    );
    assert!(!text.contains(secret), "the password is in the logs");
}

// ---- OAuth 2.0 bearer tokens ----

const ISSUER: &str = "https://test.okta.example/oauth2/default";
const AUDIENCE: &str = "api://okta-adapter-hooks";
const CLIENT_ID: &str = "0oahookclient";
const SCOPE: &str = "okta.inlinehooks.call";

/// A JWKS endpoint like the issuer's: serves whatever key set the test puts in, counts fetches.
struct Jwks {
    url: String,
    set: Arc<Mutex<Value>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
}

async fn serve_jwks(initial: Value) -> Jwks {
    use poem::{handler, web::Data, EndpointExt};
    #[handler]
    fn keys(
        Data(state): Data<&(Arc<Mutex<Value>>, Arc<std::sync::atomic::AtomicUsize>)>,
    ) -> poem::web::Json<Value> {
        state.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        poem::web::Json(state.0.lock().unwrap().clone())
    }
    let set = Arc::new(Mutex::new(initial));
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = poem::Route::new()
        .at("/oauth2/default/v1/keys", poem::get(keys))
        .data((set.clone(), fetches.clone()));
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    Jwks {
        url: format!("http://{addr}/oauth2/default/v1/keys"),
        set,
        fetches,
    }
}

/// Test-only RSA keys (tests/fixtures/jwt/README.md).
fn signing_key(n: u8) -> jsonwebtoken::EncodingKey {
    let pem = std::fs::read(format!(
        "{}/tests/fixtures/jwt/okta-hook-key-{n}.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap()
}

fn public_jwk(n: u8, kid: &str) -> Value {
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&signing_key(n), jsonwebtoken::Algorithm::RS256)
            .unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn good_claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "cid": CLIENT_ID, "scp": [SCOPE],
           "sub": CLIENT_ID, "iat": now(), "exp": now() + 3600, "ver": 1,
           "jti": "AT.test"})
}

fn jwt(key: u8, kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &signing_key(key)).unwrap()
}

fn oauth_config(jwks_url: &str, refresh_min_secs: u64) -> String {
    format!(
        r#"
[inline.oauth]
enabled = true
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
client_id = "{CLIENT_ID}"
required_scope = "{SCOPE}"
jwks_url = "{jwks_url}"
jwks_refresh_min_secs = {refresh_min_secs}
leeway_secs = 5
"#
    )
}

#[tokio::test]
async fn a_valid_okta_bearer_token_is_accepted_and_every_invalid_one_gets_401() {
    let jwks = serve_jwks(json!({"keys": [public_jwk(1, "k1")]})).await;
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, &oauth_config(&jwks.url, 0)).await;
    let body = okta_request("token").to_string();
    let status = |token: String| {
        let app = &app;
        let body = body.clone();
        async move {
            post_inline_raw(app, "token", body, Some(&format!("Bearer {token}")))
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        status(jwt(1, "k1", &good_claims())).await,
        204,
        "a valid token"
    );

    let with = |key: &str, value: Value| {
        let mut c = good_claims();
        c[key] = value;
        c
    };
    let cases = [
        (
            "wrong issuer",
            jwt(
                1,
                "k1",
                &with("iss", json!("https://evil.example/oauth2/default")),
            ),
        ),
        (
            "wrong audience",
            jwt(1, "k1", &with("aud", json!("api://default"))),
        ),
        ("expired", jwt(1, "k1", &with("exp", json!(now() - 600)))),
        (
            "not yet valid",
            jwt(1, "k1", &with("nbf", json!(now() + 600))),
        ),
        (
            "another client",
            jwt(1, "k1", &with("cid", json!("0oaother"))),
        ),
        (
            "missing scope",
            jwt(1, "k1", &with("scp", json!(["openid"]))),
        ),
        ("unknown kid", jwt(2, "k2", &good_claims())),
        ("right kid, wrong key", jwt(2, "k1", &good_claims())),
        ("no exp", {
            let mut c = good_claims();
            c.as_object_mut().unwrap().remove("exp");
            jwt(1, "k1", &c)
        }),
        ("HS256 signed with the public modulus", {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some("k1".into());
            let n = public_jwk(1, "k1")["n"].as_str().unwrap().to_string();
            jsonwebtoken::encode(
                &header,
                &good_claims(),
                &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()),
            )
            .unwrap()
        }),
        ("not a JWT", "abc.def".to_string()),
    ];
    for (what, token) in cases {
        assert_eq!(status(token).await, 401, "{what}");
    }
    // The static header secrets keep working next to OAuth.
    let resp = post_inline_raw(&app, "token", body.clone(), Some(SECRET)).await;
    assert_eq!(resp.status(), 204);

    // Key rotation: the issuer publishes k2; a token with the new kid triggers a re-fetch.
    jwks.set.lock().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(public_jwk(2, "k2"));
    let before = jwks.fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        status(jwt(2, "k2", &good_claims())).await,
        204,
        "rotated key"
    );
    assert_eq!(
        jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );
    // Known kids are served from the cache.
    assert_eq!(status(jwt(1, "k1", &good_claims())).await, 204);
    assert_eq!(
        jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );
}

#[tokio::test]
async fn made_up_key_ids_do_not_make_the_adapter_refetch_the_key_set_each_time() {
    let jwks = serve_jwks(json!({"keys": [public_jwk(1, "k1")]})).await;
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, &oauth_config(&jwks.url, 3600)).await;
    let body = okta_request("saml").to_string();
    for i in 0..5 {
        let token = jwt(2, &format!("random-{i}"), &good_claims());
        let resp =
            post_inline_raw(&app, "saml", body.clone(), Some(&format!("Bearer {token}"))).await;
        assert_eq!(resp.status(), 401);
    }
    assert_eq!(
        jwks.fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one fetch, then the minimum refresh interval holds"
    );
    let ok = post_inline_raw(
        &app,
        "saml",
        body,
        Some(&format!("Bearer {}", jwt(1, "k1", &good_claims()))),
    )
    .await;
    assert_eq!(ok.status(), 204, "the cached key still verifies");
}

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

#[tokio::test]
async fn an_import_confirmation_left_pending_by_a_dead_replica_is_taken_over() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let keys = Keys::new(prefix.clone());
    let mut conn = redis.conn().await;
    // Another replica read Okta's SUCCESS event and died before deleting and acknowledging.
    let _: () = conn
        .xgroup_create_mkstream(keys.credential_imports(), "credential-cleanup", "0")
        .await
        .unwrap();
    let event = log_event(
        "imp-dead",
        "user.import.password",
        ("00ujane", "jane@acme.com"),
    );
    let _: String = conn
        .xadd(
            keys.credential_imports(),
            "*",
            &[
                ("v", "1".to_string()),
                ("uuid", "imp-dead".to_string()),
                ("type", "user.import.password".to_string()),
                ("published", "2026-10-01T09:00:00.000Z".to_string()),
                ("received", "2026-10-01T09:00:01.000Z".to_string()),
                ("tenant", String::new()),
                ("user", "00ujane".to_string()),
                ("actor", "00uadmin".to_string()),
                ("outcome", "SUCCESS".to_string()),
                ("event", event.to_string()),
            ],
        )
        .await
        .unwrap();
    let taken: redis::streams::StreamReadReply = conn
        .xread_options(
            &[keys.credential_imports()],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group("credential-cleanup", "dead-replica"),
        )
        .await
        .unwrap();
    assert_eq!(
        taken.keys[0].ids.len(),
        1,
        "the dead replica holds the entry"
    );
    let _: () = conn
        .set(
            keys.legacy_credential("jane@acme.com"),
            salted_sha_string(Sha::Sha256, b"s", RIGHT.as_bytes()),
        )
        .await
        .unwrap();

    let app = spawn_app_on(
        &redis.url(),
        &prefix,
        "[inline.password_import]\ncleanup_claim_idle_secs = 1\n",
    )
    .await;
    assert!(
        eventually(10, || async {
            legacy_hash(&app, "jane@acme.com").await.is_none()
        })
        .await,
        "the running replica took the entry over and deleted the hash"
    );
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(keys.credential_imports(), "credential-cleanup")
        .await
        .unwrap();
    assert_eq!(pending.count(), 0, "and acknowledged it");
}
