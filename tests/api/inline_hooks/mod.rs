//! Inline hooks end to end: Okta's requests over real HTTP, a real redis-server, real hashes.
//! One file per concern; the helpers shared by them are here.

mod auth;
mod deadline_and_records;
mod documented_shapes;
mod password_import;
mod projected_users;

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

const TENANTS: &str = r#"
[inline]
tenants = [
  { id = "acme", email_domains = ["example.com"], attributes = { plan = "pro" } },
  { id = "clouditude", email_domains = ["clouditude.net"] },
]
roles = { "acme-admins" = ["admin"], "acme-users" = ["user"] }
"#;

const RIGHT: &str = "Tr0ub4dor&3-correct";
const WRONG: &str = "Tr0ub4dor&3-wrong";
