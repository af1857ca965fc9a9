//! The binary's commands, run as a user would.

use std::process::Command;

use crate::helpers::*;

fn adapter() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_okta-adapter"));
    // Only what each test sets: no stray OKTA_ADAPTER__* from the environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("OKTA_ADAPTER") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn check_config_accepts_a_valid_config_and_never_prints_secrets() {
    let out = adapter()
        .arg("check-config")
        .env(
            "OKTA_ADAPTER__HOOKS__SECRETS",
            r#"["s3cr3t-one", "s3cr3t-two"]"#,
        )
        .env(
            "OKTA_ADAPTER__REDIS__URL",
            "redis://:redis-pw@127.0.0.1:6390",
        )
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("2 hook secret(s)"), "{all}");
    for secret in ["s3cr3t-one", "s3cr3t-two", "redis-pw"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
}

#[test]
fn check_config_names_every_bad_key_in_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[http]\nlisten = \"nowhere\"\nport = 1\n").unwrap();
    let out = adapter()
        .arg("--config")
        .arg(&file)
        .arg("check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("http.port: unknown key"), "{err}");

    std::fs::write(
        &file,
        "[http]\nlisten = \"nowhere\"\n[redis]\nurl = \"http://x\"\n",
    )
    .unwrap();
    let out = adapter()
        .arg("--config")
        .arg(&file)
        .arg("check-config")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["http.listen", "redis.url", "hooks.secrets"] {
        assert!(
            err.lines().any(|l| l.starts_with(key)),
            "{key} missing in:\n{err}"
        );
    }
    let out = adapter()
        .args(["--config", "/no/such/file.toml", "check-config"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[tokio::test]
async fn keys_create_prints_a_working_key_once_and_list_and_revoke_manage_it() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let run = |args: &[&str]| {
        adapter()
            .args(args)
            .env("OKTA_ADAPTER__REDIS__URL", redis.url())
            .env("OKTA_ADAPTER__REDIS__PREFIX", &app.prefix)
            .output()
            .unwrap()
    };
    let out = run(&[
        "keys",
        "create",
        "--role",
        "client-admin",
        "--tenant",
        "acme",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("oka_"));
    let (status, _) = app.get_json("/api/v1/users", Some(&token)).await;
    assert_eq!(status, 200, "the printed key works");

    let out = run(&["keys", "create", "--role", "client-admin"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tenant"));
    // Issue 12 item 2: an empty, blank or malformed tenant is refused and nothing is stored.
    for (tenant, says) in [
        ("", "must not be empty"),
        ("  ", "must not be empty"),
        ("a|b", "is not a tenant id"),
    ] {
        let out = run(&[
            "keys",
            "create",
            "--role",
            "client-admin",
            "--tenant",
            tenant,
        ]);
        assert!(!out.status.success(), "--tenant {tenant:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "--tenant {tenant:?}: {err}");
    }

    let listed = String::from_utf8(run(&["keys", "list"]).stdout).unwrap();
    assert_eq!(listed.lines().count(), 1, "only the valid key: {listed}");
    let id = token.split('_').nth(1).unwrap();
    assert!(listed.contains(id) && listed.contains("client-admin") && listed.contains("acme"));
    assert!(
        !listed.contains(token.split('_').nth(2).unwrap()),
        "secrets are never listed"
    );

    assert!(run(&["keys", "revoke", id]).status.success());
    assert_eq!(app.get_json("/api/v1/users", Some(&token)).await.0, 401);
    assert!(!run(&["keys", "revoke", "ffffffffffff"]).status.success());
}

#[tokio::test]
async fn serve_logs_no_secret_and_drains_on_sigterm() {
    let redis = TestRedis::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = adapter()
        .arg("serve")
        .env(
            "OKTA_ADAPTER__REDIS__URL",
            format!("redis://:{}@127.0.0.1:{}", "", redis.server.port()),
        )
        .env("OKTA_ADAPTER__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("OKTA_ADAPTER__HOOKS__SECRETS", r#"["hook-secret-AAA"]"#)
        .env("OKTA_ADAPTER__HOOKS__SIGNING_KEY", "signing-key-BBB")
        .env("OKTA_ADAPTER__LOG__LEVEL", "debug")
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let up = eventually(10, || async {
        client.get(format!("{base}/healthz")).send().await.is_ok()
    })
    .await;
    assert!(up, "serve did not come up");
    // Issue 12 item 14: counters exist at zero before their first use, so dashboards and
    // alerts see them from the start.
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for zero in [
        "okta_adapter_events_received_total{type=\"other\"} 0",
        "okta_adapter_hook_auth_failures_total{hook=\"events\"} 0",
        "okta_adapter_audit_failures_total 0",
        "okta_adapter_projection_dead_lettered_total 0",
        "okta_adapter_report_send_failures_total 0",
        "# HELP okta_adapter_audit_failures_total",
    ] {
        assert!(metrics.contains(zero), "missing `{zero}` in\n{metrics}");
    }
    let post = |secret: &'static str, body: String| {
        client
            .post(format!("{base}/hooks/okta/events"))
            .header("authorization", secret)
            .body(body)
            .send()
    };
    assert_eq!(
        post("hook-secret-AAA", lifecycle_batch("log", 2).to_string())
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        post("wrong-secret-CCC", lifecycle_batch("log", 2).to_string())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        post("hook-secret-AAA", "{broken".into())
            .await
            .unwrap()
            .status(),
        400
    );

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");

    let logs = std::fs::read_to_string(log.path()).unwrap();
    assert!(logs.contains("shutdown requested"), "{logs}");
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON lines:\n{logs}"
    );
    for secret in ["hook-secret-AAA", "signing-key-BBB", "wrong-secret-CCC"] {
        assert!(!logs.contains(secret), "{secret} in logs:\n{logs}");
    }
}
