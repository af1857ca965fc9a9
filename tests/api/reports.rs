//! The monthly report against real Redis, real HTTP and a real (in-process) SMTP server:
//! exact numbers from a known set of events, the email's structure, send-once across replicas
//! and restarts, SMTP outages, duplicates, and clear errors for bad months.

use std::time::Duration;

use chrono::Utc;
use mail_parser::{MessageParser, MimeHeaders};
use okta_adapter::access::Role;
use okta_adapter::reporting::aggregate::{AckGate, Counter, Op};
use okta_adapter::reporting::ReportMonth;
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::helpers::*;

/// The month the scheduler reports on now: the previous UTC month.
fn due_month() -> ReportMonth {
    ReportMonth::of(Utc::now(), chrono_tz::UTC).previous()
}

fn at(month: ReportMonth, day: u32, hour: u32) -> String {
    format!("{month}-{day:02}T{hour:02}:00:00.000Z")
}

fn report_settings(smtp_url: &str, schedule: &str, out: &std::path::Path) -> String {
    format!(
        r#"
[report]
enabled = true
schedule = "{schedule}"
recipients = ["owner@example.com", "cfo@example.com"]
from = "IAM reports <reports@example.com>"
output_dir = "{}"
check_interval_secs = 1
retry_initial_ms = 100
retry_max_ms = 400
lease_secs = 5
[smtp]
url = "{smtp_url}"
timeout_secs = 2
"#,
        out.display()
    )
}

/// Fires only on 29 February: in these tests sending happens through the API.
const FAR_AWAY: &str = "0 0 0 29 2 *";

/// A known month of events: two tenants (by group rule), lifecycle, sign-ins, MFA, lockout,
/// password reset and import.
fn known_events(m: ReportMonth) -> Vec<Value> {
    let u = |n: u32| (format!("00u{n}"), format!("user{n}@example.com"));
    let (u1, u2, u3, u4) = (u(1), u(2), u(3), u(4));
    let r = |u: &(String, String)| (u.0.clone(), u.1.clone());
    let ev = |id: &str, ty: &str, user: &(String, String), day: u32, outcome: &str| {
        event_at(id, ty, (&user.0, &user.1), &at(m, day, 9), outcome)
    };
    let group = |id: &str, user: &(String, String), g: &str| {
        let mut e = group_add_event(id, (&user.0, &user.1), g);
        e["published"] = json!(at(m, 1, 8));
        e
    };
    let mut factor = ev("f1", "user.mfa.factor.activate", &r(&u1), 2, "SUCCESS");
    factor["target"].as_array_mut().unwrap().push(
        json!({"id": "mbl1", "type": "AuthenticatorEnrollment", "displayName": "Okta Verify"}),
    );
    vec![
        group("g1", &u1, "tenant-acme"),
        group("g2", &u2, "tenant-acme"),
        group("g3", &u3, "tenant-acme"),
        group("g4", &u4, "tenant-globex"),
        ev("c1", "user.lifecycle.create", &u1, 1, "SUCCESS"),
        ev("c2", "user.lifecycle.create", &u2, 1, "SUCCESS"),
        ev("a1", "user.lifecycle.activate", &u1, 1, "SUCCESS"),
        ev("a2", "user.lifecycle.activate", &u2, 1, "SUCCESS"),
        ev("s1", "user.session.start", &u1, 2, "SUCCESS"),
        ev("s2", "user.session.start", &u1, 2, "SUCCESS"),
        ev("s3", "user.session.start", &u1, 3, "SUCCESS"),
        ev("s4", "user.session.start", &u2, 3, "SUCCESS"),
        ev("f2", "user.session.start", &u3, 4, "FAILURE"),
        ev("f3", "user.session.start", &u3, 4, "FAILURE"),
        ev("l1", "user.account.lock", &u3, 4, "SUCCESS"),
        ev("r1", "user.account.reset_password", &u2, 5, "SUCCESS"),
        factor,
        ev("x1", "user.lifecycle.suspend", &u3, 6, "SUCCESS"),
        ev("d1", "user.lifecycle.deactivate", &u2, 7, "SUCCESS"),
        ev("s5", "user.session.start", &u4, 8, "SUCCESS"),
        ev("s6", "user.session.start", &u4, 9, "SUCCESS"),
        ev("i1", "user.import.password", &u4, 8, "SUCCESS"),
        // Not a counted type, and a session start with another outcome: count for nothing.
        ev("n1", "user.account.update_profile", &u4, 8, "SUCCESS"),
        ev("n2", "user.session.start", &u4, 8, "CHALLENGE"),
    ]
}

const KNOWN_EVENT_COUNT: u64 = 24;

/// Job rows and an inline decision, as the job runner and the inline hooks write them.
async fn write_side_streams(app: &TestApp, m: ReportMonth) {
    let mut c = app.conn().await;
    let rows = format!("{}:{{events}}:job-rows", app.prefix);
    for (line, outcome) in [(1, "done"), (2, "done"), (3, "failed")] {
        let _: String = c
            .xadd(
                &rows,
                "*",
                &[
                    ("job", "j1".to_string()),
                    ("line", line.to_string()),
                    ("kind", "import".to_string()),
                    ("tenant", "acme".to_string()),
                    ("outcome", outcome.to_string()),
                    ("at", at(m, 10, 12)),
                ],
            )
            .await
            .unwrap();
    }
    let decisions = format!("{}:{{events}}:inline-decisions", app.prefix);
    let ms = chrono::DateTime::parse_from_rfc3339(&at(m, 8, 9))
        .unwrap()
        .timestamp_millis();
    let _: String = c
        .xadd(
            &decisions,
            format!("{ms}-0"),
            &[
                ("hook", "password-import"),
                ("user", "00u4"),
                ("outcome", "verified"),
                ("latency_ms", "3.5"),
            ],
        )
        .await
        .unwrap();
}

async fn wait_counted(
    app: &TestApp,
    key: &str,
    m: ReportMonth,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (status, body) = app
            .get_json(&format!("/api/v1/reports/{m}"), Some(key))
            .await;
        if status == 200 && check(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("report never matched; last answer: {last}");
}

fn tenant<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == name)
        .unwrap_or_else(|| panic!("no tenant {name} in {report}"))
}

#[tokio::test]
async fn a_known_set_of_events_gives_exactly_the_expected_numbers_in_json_and_email() {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    let app = spawn_app_with(&redis, &report_settings(&smtp.url(), FAR_AWAY, out.path())).await;
    let key = api_key(&app, Role::Operator, None).await;
    let m = due_month();
    let events = known_events(m);
    assert_eq!(
        app.post_events(&delivery(events.clone())).await.status(),
        204
    );
    // Okta re-delivers the whole batch: ingest drops it, the numbers must not move.
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    write_side_streams(&app, m).await;

    let r = wait_counted(&app, &key, m, |r| {
        r["overview"]["job_rows_failed"] == 1
            && r["hooks"]["inline_decisions"]
                .as_array()
                .is_some_and(|d| !d.is_empty())
    })
    .await;
    // Hook health belongs to the month the deliveries arrived in: this one.
    let now = ReportMonth::of(Utc::now(), chrono_tz::UTC);
    let current = wait_counted(&app, &key, now, |r| {
        r["hooks"]["events_received"] == 2 * KNOWN_EVENT_COUNT
    })
    .await;
    assert_eq!(current["hooks"]["duplicates_dropped"], KNOWN_EVENT_COUNT);
    assert_eq!(current["hooks"]["unavailable_503"], 0);
    assert!(current["hooks"]["ingest_p99_ms"].is_string());
    let acme = tenant(&r, "acme");
    let c = &acme["counts"];
    for (field, want) in [
        ("active_users", 2),
        ("new_users", 2),
        ("activations", 2),
        ("deactivations", 1),
        ("suspensions", 1),
        ("sign_ins_ok", 4),
        ("sign_ins_failed", 2),
        ("lockouts", 1),
        ("password_resets", 1),
        ("mfa_enrolments", 1),
        ("job_rows_done", 2),
        ("job_rows_failed", 1),
        ("imports_verified", 0),
    ] {
        assert_eq!(c[field], want, "acme {field}: {acme}");
    }
    let globex = &tenant(&r, "globex")["counts"];
    assert_eq!(globex["active_users"], 1);
    assert_eq!(globex["sign_ins_ok"], 2);
    assert_eq!(globex["imports_verified"], 1);
    assert_eq!(r["overview"]["active_users"], 3);
    assert_eq!(r["overview"]["sign_ins_ok"], 6);
    assert_eq!(r["overview"]["sign_ins_failed"], 2);
    // u1 enrolled Okta Verify (projection), u2 did not: half of acme's active users.
    assert_eq!(acme["mfa"]["checked"], 2);
    assert_eq!(acme["mfa"]["with_factor"], 1);
    assert_eq!(r["hooks"]["inline_p99_ms"], "5");
    assert_eq!(
        r["hooks"]["inline_decisions"][0],
        json!({"hook": "password-import", "outcome": "verified", "count": 1})
    );
    let day = |d: usize| r["daily_sign_ins"][d - 1].clone();
    assert_eq!(day(2), json!({"day": 2, "ok": 2, "failed": 0}));
    assert_eq!(day(4), json!({"day": 4, "ok": 0, "failed": 2}));
    assert_eq!(r["complete"], true);

    // The email says the same.
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/reports/{m}/send")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sent: Value = resp.json().await.unwrap();
    assert_eq!(sent["status"], "sent");
    let mails = smtp.received();
    assert_eq!(mails.len(), 1);
    let raw = String::from_utf8_lossy(&mails[0]).to_string();
    assert!(raw.contains("multipart/alternative"), "{raw:.400}");
    assert!(raw.contains("multipart/related"));
    let mail = MessageParser::default().parse(&mails[0]).unwrap();
    assert_eq!(
        mail.message_id(),
        Some(
            sent["record"]["message_id"]
                .as_str()
                .unwrap()
                .trim_matches(['<', '>'])
        )
    );
    let text = mail.body_text(0).unwrap().to_string();
    let html = mail.body_html(0).unwrap().to_string();
    let png = mail
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "image" && c.subtype() == Some("png"))
        })
        .expect("an inline PNG part");
    let cid = png.content_id().expect("the PNG has a Content-ID");
    assert!(
        html.contains(&format!("cid:{cid}")),
        "HTML references the chart"
    );
    assert_eq!(&png.contents()[1..4], b"PNG");
    for (label, value) in [
        ("Active users", "3"),
        ("Successful sign-ins", "6"),
        ("Failed sign-ins", "2"),
        ("Job rows done", "2"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{label:<32} ")))
            .unwrap_or_else(|| panic!("{label} row in the text part:\n{text}"));
        assert_eq!(line[32..].split_whitespace().next(), Some(value), "{line}");
        assert!(
            html.contains(&format!(
                "<td class=\"l\">{label}</td><td class=\"b\">{value}</td>"
            )),
            "{label} = {value} in the HTML"
        );
    }
    assert!(text.contains("acme") && text.contains("globex"));
    assert!(text.contains("50.0%"), "acme MFA share in the text");
    assert!(html.contains("50.0%"));
    // Asking again sends nothing.
    let again: Value = app
        .client
        .post(app.url(&format!("/api/v1/reports/{m}/send")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "already_sent");
    assert_eq!(smtp.received().len(), 1);
    let metrics = app.metrics().await;
    assert!(metrics.contains("okta_adapter_report_last_sent_timestamp_seconds"));
}

#[tokio::test]
async fn an_entry_counted_once_is_not_counted_again_when_redelivered() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let mut conn = app.state.redis.clone();
    let stream = format!("{}:{{events}}:firehose", app.prefix);
    let _: () = conn
        .xgroup_create_mkstream(&stream, "g", "0")
        .await
        .unwrap();
    let id: String = conn.xadd(&stream, "*", &[("uuid", "e1")]).await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c")
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    let key = format!("{}:{{events}}:report:x", app.prefix);
    let batch = vec![(
        id,
        vec![Op::Incr {
            key: key.clone(),
            field: "n".into(),
            by: 1,
        }],
    )];
    let counter = Counter::new();
    let gate = Some(AckGate {
        stream: &stream,
        group: "g",
    });
    assert_eq!(counter.apply(&mut conn, gate, &batch).await.unwrap(), 1);
    // The same entry again (a crash before the reply, a reclaim by another replica).
    assert_eq!(counter.apply(&mut conn, gate, &batch).await.unwrap(), 0);
    let n: i64 = conn.hget(&key, "n").await.unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn two_instances_scheduled_at_the_same_moment_send_one_email() {
    let redis = TestRedis::start();
    // A slow server: a second sender would start while the first is still sending.
    let smtp = TestSmtp::start_slow(Duration::from_millis(1500)).await;
    let out = tempfile::tempdir().unwrap();
    let prefix = random_prefix();
    // Every second: both replicas fire together, again and again.
    let extra = report_settings(&smtp.url(), "* * * * * *", out.path());
    let a = spawn_app_on(&redis.url(), &prefix, &extra).await;
    let b = spawn_app_on(&redis.url(), &prefix, &extra).await;
    let m = due_month();
    assert_eq!(
        a.post_events(&delivery(known_events(m))).await.status(),
        204
    );
    assert!(
        eventually(15, || async { !smtp.received().is_empty() }).await,
        "one replica sent it"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        smtp.received().len(),
        1,
        "exactly one email for two replicas over several runs"
    );
    let _ = b;
}

#[tokio::test]
async fn a_restart_after_the_scheduled_time_sends_the_missed_report_once() {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    let prefix = random_prefix();
    // Counting only: no replica runs the schedule while the month ends.
    let counting = format!("{}\n", report_settings(&smtp.url(), FAR_AWAY, out.path())).replace(
        "recipients = [\"owner@example.com\", \"cfo@example.com\"]",
        "recipients = []",
    );
    let mut first = spawn_app_on(&redis.url(), &prefix, &counting).await;
    let m = due_month();
    assert_eq!(
        first.post_events(&delivery(known_events(m))).await.status(),
        204
    );
    let key = api_key(&first, Role::Operator, None).await;
    wait_counted(&first, &key, m, |r| r["overview"]["sign_ins_ok"] == 6).await;
    first.stop().await;
    assert!(smtp.received().is_empty());
    // Started after 06:00 on the 1st (the default schedule): the missed run is caught up.
    let default_schedule = report_settings(&smtp.url(), "0 0 6 1 * *", out.path());
    let mut second = spawn_app_on(&redis.url(), &prefix, &default_schedule).await;
    assert!(
        eventually(10, || async { smtp.received().len() == 1 }).await,
        "caught up at start"
    );
    second.stop().await;
    let third = spawn_app_on(&redis.url(), &prefix, &default_schedule).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        smtp.received().len(),
        1,
        "a second restart does not send it again"
    );
    let subject = MessageParser::default()
        .parse(&smtp.received()[0])
        .unwrap()
        .subject()
        .unwrap()
        .to_string();
    assert!(subject.contains(&m.long_name()), "{subject}");
    drop(third);
}

#[tokio::test]
async fn smtp_down_then_up_gives_exactly_one_email() {
    let redis = TestRedis::start();
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(&redis, &report_settings(&url, "0 0 6 1 * *", out.path())).await;
    let m = due_month();
    assert_eq!(
        app.post_events(&delivery(known_events(m))).await.status(),
        204
    );
    // Several attempts fail while nothing listens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failures = app.metrics().await;
    assert!(
        failures.contains("okta_adapter_report_send_failures_total"),
        "failures are counted"
    );
    let smtp = TestSmtp::start_on(port).await;
    assert!(
        eventually(10, || async { smtp.received().len() == 1 }).await,
        "sent once it is up"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.received().len(), 1);
    let mut conn = app.conn().await;
    let sent: Option<String> = conn
        .get(format!("{}:{{report}}:sent:{m}", app.prefix))
        .await
        .unwrap();
    assert!(sent.unwrap().contains("message_id"));
}

#[tokio::test]
async fn unknown_and_future_months_get_clear_errors_and_an_empty_month_a_warning() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let key = api_key(&app, Role::Operator, None).await;
    let (status, body) = app.get_json("/api/v1/reports/2026-13", Some(&key)).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("YYYY-MM"),
        "{body}"
    );
    let future = ReportMonth::of(Utc::now(), chrono_tz::UTC).next().next();
    let (status, body) = app
        .get_json(&format!("/api/v1/reports/{future}"), Some(&key))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("has not started"),
        "{body}"
    );
    // A month without events is a report with a warning, not an error: the silence is news.
    let (status, body) = app.get_json("/api/v1/reports/2001-01", Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["no_events"], true);
    assert_eq!(body["overview"]["sign_ins_ok"], 0);
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("No events were recorded for January 2001"),
        "{body}"
    );
    let support = api_key(&app, Role::Support, None).await;
    let (status, _) = app
        .get_json("/api/v1/reports/2001-01", Some(&support))
        .await;
    assert_eq!(status, 403, "only operator keys");
    let (status, _) = app.get_json("/api/v1/reports/2001-01", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_html_preview_is_served_for_browsers() {
    let redis = TestRedis::start();
    let out = tempfile::tempdir().unwrap();
    let app = spawn_app_with(&redis, &report_settings("", FAR_AWAY, out.path())).await;
    let key = api_key(&app, Role::Operator, None).await;
    let m = due_month();
    assert_eq!(
        app.post_events(&delivery(known_events(m))).await.status(),
        204
    );
    wait_counted(&app, &key, m, |r| r["overview"]["sign_ins_ok"] == 6).await;
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/reports/{m}")))
        .bearer_auth(&key)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("data:image/png;base64,"),
        "the chart is inline for a browser"
    );
    assert!(html.contains(&m.long_name()));
}

fn adapter() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OKTA_ADAPTER") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[tokio::test]
async fn the_report_command_writes_a_preview_and_sends_through_the_file_transport_once() {
    let redis = TestRedis::start();
    let out = tempfile::tempdir().unwrap();
    let mut app = spawn_app_with(&redis, &report_settings("", FAR_AWAY, out.path())).await;
    let key = api_key(&app, Role::Operator, None).await;
    let m = due_month();
    assert_eq!(
        app.post_events(&delivery(known_events(m))).await.status(),
        204
    );
    wait_counted(&app, &key, m, |r| r["overview"]["sign_ins_ok"] == 6).await;
    app.stop().await;
    let run = |month: &str, send: bool| {
        let mut cmd = adapter();
        cmd.arg("report").arg("--month").arg(month);
        if send {
            cmd.arg("--send");
        }
        cmd.env("OKTA_ADAPTER__REDIS__URL", &app.redis_url)
            .env(
                "OKTA_ADAPTER__REDIS__CLUSTER",
                crate::cluster::cluster_mode().to_string(),
            )
            .env("OKTA_ADAPTER__REDIS__PREFIX", &app.prefix)
            .env("OKTA_ADAPTER__REPORT__OUTPUT_DIR", out.path())
            .env(
                "OKTA_ADAPTER__REPORT__RECIPIENTS",
                r#"["owner@example.com"]"#,
            )
            .env("OKTA_ADAPTER__LOG__LEVEL", "warn")
            .output()
            .unwrap()
    };
    let bad = run("2026-13", false);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("use YYYY-MM"));
    // A month without events is previewed, with the warning on the terminal and in the files.
    let empty = run("2001-01", false);
    let err = String::from_utf8_lossy(&empty.stderr).to_string();
    assert!(empty.status.success(), "{err}");
    assert!(
        err.contains("WARNING: No events were recorded for January 2001"),
        "{err}"
    );
    let preview = std::fs::read_to_string(out.path().join("preview").join("2001-01.txt")).unwrap();
    assert!(preview.contains("!!! WARNING: No events were recorded for January 2001"));

    let first = run(&m.to_string(), true);
    let err = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(first.status.success(), "{err}");
    for suffix in [".html", ".txt", "-chart.png", ".eml"] {
        let path = out.path().join("preview").join(format!("{m}{suffix}"));
        assert!(
            path.metadata().is_ok_and(|p| p.len() > 100),
            "{path:?}: {err}"
        );
    }
    let outbox: Vec<_> = std::fs::read_dir(out.path().join("outbox"))
        .unwrap()
        .collect();
    assert_eq!(outbox.len(), 1, "one mail in the file transport's outbox");
    let eml = std::fs::read(outbox[0].as_ref().unwrap().path()).unwrap();
    let mail = MessageParser::default().parse(&eml).unwrap();
    assert!(mail.body_text(0).unwrap().contains("Successful sign-ins"));

    let second = run(&m.to_string(), true);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already sent"));
    let outbox = std::fs::read_dir(out.path().join("outbox"))
        .unwrap()
        .count();
    assert_eq!(outbox, 1, "not sent again");
}

#[tokio::test]
async fn smtp_credentials_from_the_url_are_used_and_never_shown() {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    let url = format!("smtp://reporter:smtp-pw-s3cret@127.0.0.1:{}", smtp.port);
    let app = spawn_app_with(&redis, &report_settings(&url, FAR_AWAY, out.path())).await;
    let key = api_key(&app, Role::Operator, None).await;
    let m = due_month();
    assert_eq!(
        app.post_events(&delivery(known_events(m))).await.status(),
        204
    );
    wait_counted(&app, &key, m, |r| r["overview"]["sign_ins_ok"] == 6).await;

    // Operators' tools never print it, not even when the server is unreachable (the CLI's send
    // fails here, after its attempts, and releases the month).
    let unreachable = format!("smtp://reporter:smtp-pw-s3cret@127.0.0.1:{}", free_port());
    let month = m.to_string();
    for args in [
        vec!["check-config"],
        vec!["report", "--month", month.as_str(), "--send"],
    ] {
        let run = adapter()
            .args(&args)
            .env("OKTA_ADAPTER__HOOKS__SECRETS", r#"["x"]"#)
            .env("OKTA_ADAPTER__REDIS__URL", &app.redis_url)
            .env(
                "OKTA_ADAPTER__REDIS__CLUSTER",
                crate::cluster::cluster_mode().to_string(),
            )
            .env("OKTA_ADAPTER__REDIS__PREFIX", &app.prefix)
            .env("OKTA_ADAPTER__REPORT__OUTPUT_DIR", out.path())
            .env(
                "OKTA_ADAPTER__REPORT__RECIPIENTS",
                r#"["owner@example.com"]"#,
            )
            .env("OKTA_ADAPTER__REPORT__RETRY_INITIAL_MS", "10")
            .env("OKTA_ADAPTER__REPORT__RETRY_MAX_MS", "20")
            .env("OKTA_ADAPTER__SMTP__URL", &unreachable)
            .env("OKTA_ADAPTER__LOG__LEVEL", "debug")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            !all.contains("smtp-pw-s3cret"),
            "{args:?} leaked the password: {all}"
        );
        if args[0] == "report" {
            assert!(!run.status.success() && all.contains("not sent"), "{all}");
        }
    }
    assert!(smtp.received().is_empty());

    let resp = app
        .client
        .post(app.url(&format!("/api/v1/reports/{m}/send")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let body = resp.text().await.unwrap();
    assert!(body.contains("\"sent\""), "{body}");
    assert_eq!(*smtp.logins.lock().unwrap(), ["reporter:smtp-pw-s3cret"]);
    assert!(!body.contains("smtp-pw-s3cret"));
}

/// The HTML and text parts of a mail.
fn parts(raw: &[u8]) -> (String, String, String) {
    let mail = MessageParser::default().parse(raw).unwrap();
    (
        mail.subject().unwrap_or_default().to_string(),
        mail.body_html(0).unwrap().to_string(),
        mail.body_text(0).unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_month_without_events_is_mailed_once_with_a_warning_to_check_the_event_hook() {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    let prefix = random_prefix();
    // This installation's scheduler has been running for years: the due month's silence means
    // the event hook broke.
    let mut conn = redis.conn().await;
    let _: () = conn
        .set(format!("{prefix}:report:scheduled-since"), 946_684_800)
        .await
        .unwrap();
    let app = spawn_app_on(
        &redis.url(),
        &prefix,
        &report_settings(&smtp.url(), "0 0 6 1 * *", out.path()),
    )
    .await;
    assert!(
        eventually(10, || async { smtp.received().len() == 1 }).await,
        "the silent month is mailed"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.received().len(), 1, "once");
    let (subject, html, text) = parts(&smtp.received()[0]);
    assert!(
        subject.contains("no events recorded, check the event hook"),
        "{subject}"
    );
    assert!(html.contains("role=\"alert\""), "a prominent box");
    for part in [&html, &text] {
        assert!(part.contains("No events were recorded for"), "{part}");
        assert!(part.contains("Check the Okta event hook"), "{part}");
    }
    assert!(
        text.contains("!!! WARNING: No events were recorded"),
        "{text}"
    );
    let m = okta_adapter::reporting::schedule::due_month(
        &okta_adapter::reporting::schedule::parse_cron("0 0 6 1 * *").unwrap(),
        chrono_tz::UTC,
        Utc::now(),
    );
    assert!(subject.contains(&m.long_name()), "{subject}");
    let sent: Option<String> = conn
        .get(format!("{prefix}:{{report}}:sent:{m}"))
        .await
        .unwrap();
    assert!(sent.is_some(), "recorded as sent");
    // The API preview shows the same.
    let key = api_key(&app, Role::Operator, None).await;
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/reports/{m}")))
        .bearer_auth(&key)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("No events were recorded for"));
}

#[tokio::test]
async fn a_fresh_installation_does_not_mail_the_silent_months_before_it() {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    let app = spawn_app_with(
        &redis,
        &report_settings(&smtp.url(), "0 0 6 1 * *", out.path()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        smtp.received().is_empty(),
        "the month before the adapter existed is not reported as broken"
    );
    // Once events for the due month arrive, it is mailed as before.
    let m = due_month();
    assert_eq!(
        app.post_events(&delivery(known_events(m))).await.status(),
        204
    );
    assert!(eventually(10, || async { smtp.received().len() == 1 }).await);
    let (subject, _, text) = parts(&smtp.received()[0]);
    assert!(subject.contains("3 active users"), "{subject}");
    assert!(!text.contains("WARNING"), "{text}");
}

#[tokio::test]
async fn a_tenant_without_events_this_month_gets_its_own_warning() {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}\n[inline]\ntenants = [{{ id = \"initech\", email_domains = [\"initech.com\"] }}]\n",
        report_settings(&smtp.url(), FAR_AWAY, out.path())
    );
    let app = spawn_app_with(&redis, &extra).await;
    let key = api_key(&app, Role::Operator, None).await;
    let m = due_month();
    // Last month acme and globex had events; this month only acme (user1's sign-in).
    assert_eq!(
        app.post_events(&delivery(known_events(m.previous())))
            .await
            .status(),
        204
    );
    let signin = event_at(
        "now-1",
        "user.session.start",
        ("00u1", "user1@example.com"),
        &at(m, 3, 9),
        "SUCCESS",
    );
    assert_eq!(app.post_events(&delivery(vec![signin])).await.status(), 204);
    let r = wait_counted(&app, &key, m, |r| r["overview"]["sign_ins_ok"] == 1).await;
    assert_eq!(r["no_events"], false);
    assert_eq!(tenant(&r, "acme")["no_events"], false);
    assert_eq!(tenant(&r, "globex")["no_events"], true);
    assert_eq!(
        tenant(&r, "initech")["no_events"],
        true,
        "configured tenant"
    );
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with(&format!(
        "No events were recorded for tenant globex in {} (it had 1 active user in {})",
        m.long_name(),
        m.previous()
    )));
    assert!(warnings[1].contains("tenant initech") && warnings[1].contains("configured tenant"));

    let resp = app
        .client
        .post(app.url(&format!("/api/v1/reports/{m}/send")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (subject, html, text) = parts(&smtp.received()[0]);
    assert!(
        subject.contains("1 active user, 2 tenants without events"),
        "{subject}"
    );
    assert!(html.contains("2 tenants without events"));
    for part in [&html, &text] {
        assert!(
            part.contains("No events were recorded for tenant globex"),
            "{part}"
        );
        assert!(
            part.contains("No events were recorded for tenant initech"),
            "{part}"
        );
    }
    assert!(
        html.contains("globex</a> <span class=\"warn\">no events</span>")
            || html.contains("globex <span class=\"warn\">no events</span>"),
        "{html}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("globex") && l.ends_with("<- NO EVENTS")),
        "{text}"
    );
}

/// Upgrade (issue 17): the send record moved to the `{report}` hash tag. A month recorded as
/// sent under the old name, `<prefix>:report:sent:<month>`, must not be mailed again: the start
/// copies it (and moves the attempt and last-sent records), and the old name is still read.
#[tokio::test]
async fn a_month_sent_before_the_report_hash_tag_is_not_sent_again_after_the_upgrade() {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    let prefix = random_prefix();
    let m = due_month();
    let older = m.previous();
    let mut conn = redis.conn().await;
    let record = json!({
        "month": m.to_string(), "message_id": "<iam-report-old@okta-adapter>",
        "sent_at": "2026-01-01T06:00:00Z", "instance": "old-replica",
        "recipients": ["owner@example.com"],
    })
    .to_string();
    let old_sent = format!("{prefix}:report:sent:{m}");
    let _: () = conn.set(&old_sent, &record).await.unwrap();
    let _: () = conn
        .set(format!("{prefix}:report:last-sent"), 1_767_247_200i64)
        .await
        .unwrap();
    // An attempt of an older month a crash left behind: its Message-ID must survive the move.
    let _: () = conn
        .set(
            format!("{prefix}:report:attempt:{older}"),
            "<iam-report-crashed@okta-adapter>",
        )
        .await
        .unwrap();
    // Every second, with events of the month: without the old record this would mail at once.
    let every_second = report_settings(&smtp.url(), "* * * * * *", out.path());
    let mut app = spawn_app_on(&redis.url(), &prefix, &every_second).await;
    assert_eq!(
        app.post_events(&delivery(known_events(m))).await.status(),
        204
    );
    let new_sent: Option<String> = conn
        .get(format!("{prefix}:{{report}}:sent:{m}"))
        .await
        .unwrap();
    assert_eq!(
        new_sent.as_deref(),
        Some(record.as_str()),
        "copied at start"
    );
    let kept: Option<String> = conn.get(&old_sent).await.unwrap();
    assert!(kept.is_some(), "the old record stays for older replicas");
    let marked: bool = conn
        .exists(format!("{prefix}:{{report}}:migrated"))
        .await
        .unwrap();
    assert!(marked, "later starts skip the scan");
    let attempt: Option<String> = conn
        .get(format!("{prefix}:{{report}}:attempt:{older}"))
        .await
        .unwrap();
    assert_eq!(
        attempt.as_deref(),
        Some("<iam-report-crashed@okta-adapter>")
    );
    let old_attempt: Option<String> = conn
        .get(format!("{prefix}:report:attempt:{older}"))
        .await
        .unwrap();
    assert!(old_attempt.is_none(), "moved, not copied");
    let last: Option<i64> = conn
        .get(format!("{prefix}:{{report}}:last-sent"))
        .await
        .unwrap();
    assert_eq!(last, Some(1_767_247_200));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        smtp.received().is_empty(),
        "a month sent before the upgrade is not mailed again"
    );
    let key = api_key(&app, Role::Operator, None).await;
    let again: Value = app
        .client
        .post(app.url(&format!("/api/v1/reports/{m}/send")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["status"], "already_sent");
    assert_eq!(again["record"]["instance"], "old-replica");
    app.stop().await;

    // A second start changes nothing (idempotent) and still sends nothing.
    let restarted = spawn_app_on(&redis.url(), &prefix, &every_second).await;
    let migrated_again: Option<String> = conn
        .get(format!("{prefix}:{{report}}:sent:{m}"))
        .await
        .unwrap();
    assert_eq!(migrated_again.as_deref(), Some(record.as_str()));
    // Only the old name, as when an older replica still running during a rolling upgrade
    // records a send after this one's start migrated: it is still read, so still not sent.
    let _: () = conn
        .del(format!("{prefix}:{{report}}:sent:{m}"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        smtp.received().is_empty(),
        "the old name alone still counts"
    );
    drop(restarted);
}

/// Rolling upgrade, the other direction: a replica of this build sends a month while an older
/// replica (which reads only `<prefix>:report:sent:<month>`) still runs. The older one takes the
/// free lease (same name in both builds), finds no record under the name it reads and mails the
/// month again — unless this build also writes the old name. It writes it first, right after the
/// mail server accepted (a crash before the `{report}` MULTI then still leaves the month sent for
/// both builds: new ones fall back to the old name).
#[tokio::test]
async fn a_month_this_build_sent_is_seen_as_sent_by_an_older_replica_during_a_rolling_upgrade() {
    let redis = TestRedis::start();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    let prefix = random_prefix();
    let m = due_month();
    let never = report_settings(&smtp.url(), FAR_AWAY, out.path());
    let app = spawn_app_on(&redis.url(), &prefix, &never).await;
    assert_eq!(
        app.post_events(&delivery(known_events(m))).await.status(),
        204
    );
    let key = api_key(&app, Role::Operator, None).await;
    let sent: Value = app
        .client
        .post(app.url(&format!("/api/v1/reports/{m}/send")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(smtp.received().len(), 1);
    let mut conn = redis.conn().await;
    // What the older replica's send-once check reads, before and after taking the lease.
    let old_view: Option<String> = conn.get(format!("{prefix}:report:sent:{m}")).await.unwrap();
    let old_view: Value = serde_json::from_str(
        old_view
            .as_deref()
            .expect("an older replica would mail this month again"),
    )
    .unwrap();
    assert_eq!(old_view["message_id"], sent["record"]["message_id"]);
    let lease: Option<String> = conn
        .get(format!("{prefix}:report:lease:{m}"))
        .await
        .unwrap();
    assert!(lease.is_none(), "the lease is free for the older replica");
}
