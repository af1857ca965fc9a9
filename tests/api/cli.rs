//! The binary's commands, run as a user would.

use std::process::Command;

use serde_json::{json, Value};

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

/// `okta-adapter dev` as a child process; stopped with SIGTERM when dropped, so a failing test
/// leaves no adapter or redis-server behind.
struct DevProcess {
    child: Option<std::process::Child>,
    stdout: tempfile::NamedTempFile,
    stderr: tempfile::NamedTempFile,
}

impl DevProcess {
    fn spawn(dir: &std::path::Path, port: u16, envs: &[(&str, &str)]) -> Self {
        let stdout = tempfile::NamedTempFile::new().unwrap();
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = adapter()
            .arg("dev")
            .current_dir(dir)
            .env("OKTA_ADAPTER__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .envs(envs.iter().copied())
            .stdout(stdout.reopen().unwrap())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            std::fs::read_to_string(self.stdout.path()).unwrap(),
            std::fs::read_to_string(self.stderr.path()).unwrap()
        )
    }

    /// The banner, once `dev` printed it.
    async fn banner(&self) -> String {
        let ready = eventually(60, || async {
            std::fs::read_to_string(self.stdout.path())
                .unwrap()
                .contains("Ctrl-C stops everything")
        })
        .await;
        assert!(ready, "dev did not come up:\n{}", self.output());
        std::fs::read_to_string(self.stdout.path()).unwrap()
    }

    /// SIGTERM, and the exit status.
    async fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap()
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `NAME=value` of the `export` line in dev's banner.
fn exported(banner: &str, name: &str) -> String {
    banner
        .lines()
        .find(|l| l.trim_start().starts_with("export "))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        })
        .unwrap_or_else(|| panic!("no {name} in:\n{banner}"))
        .to_string()
}

#[tokio::test]
async fn dev_is_a_working_demo_on_its_own_redis_and_the_cli_finds_it() {
    // A Redis that already answers (as a system Redis would): dev must not write into it.
    let other = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut dev = DevProcess::spawn(
        dir.path(),
        port,
        &[("OKTA_ADAPTER__REDIS__URL", other.url().as_str())],
    );
    let banner = dev.banner().await;
    assert!(
        banner.contains("is NOT used") && banner.contains(&other.url()),
        "says loudly that the configured Redis is not used:\n{banner}"
    );
    let dev_redis = banner
        .lines()
        .find_map(|l| l.strip_prefix("Redis     "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the Redis URL is printed")
        .to_string();
    assert_ne!(dev_redis, other.url());

    // The printed keys and examples work at once: demo users in two tenants, projected from the
    // simulator's events.
    let (operator, support, acme_admin) = (
        exported(&banner, "OPERATOR"),
        exported(&banner, "SUPPORT"),
        exported(&banner, "ACME_ADMIN"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let get = |path: String, key: String| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let r = client.get(url).bearer_auth(key).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, alice) = get(
        "/api/v1/users/alice.anders@acme.example".into(),
        support.clone(),
    )
    .await;
    assert_eq!(status, 200, "{alice}");
    assert_eq!(alice["user"]["status"], "ACTIVE");
    assert_eq!(alice["user"]["tenant"], "acme");
    let (status, globex) = get(
        "/api/v1/users/erin.evans@globex.example".into(),
        support.clone(),
    )
    .await;
    assert_eq!((status, &globex["user"]["tenant"]), (200, &json!("globex")));
    assert_eq!(globex["user"]["status"], "SUSPENDED");

    let (status, list) = get("/api/v1/users".into(), acme_admin.clone()).await;
    assert_eq!(status, 200, "{list}");
    let logins: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap())
        .collect();
    assert_eq!(
        logins,
        [
            "alice.anders@acme.example",
            "bob.berg@acme.example",
            "carol.chen@acme.example"
        ],
        "acme's admin sees acme's users only"
    );
    assert_eq!(get("/api/v1/jobs".into(), operator.clone()).await.0, 200);
    assert_eq!(
        get("/api/v1/jobs".into(), support.clone()).await.0,
        403,
        "the roles are what they say"
    );

    // An action runs against the simulator and its event flows back into the projection.
    let acted = client
        .post(format!(
            "{base}/api/v1/users/bob.berg@acme.example/actions/suspend"
        ))
        .bearer_auth(&acme_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(acted.status(), 200, "{}", acted.text().await.unwrap());
    let flowed_back = eventually(10, || async {
        get(
            "/api/v1/users/bob.berg@acme.example".into(),
            support.clone(),
        )
        .await
        .1["user"]["status"]
            == "SUSPENDED"
    })
    .await;
    assert!(flowed_back, "the simulator's event reached the projection");

    // The CLI, with no config at all, run in dev's directory, uses dev's Redis and says so.
    let cli = |args: &[&str]| {
        adapter()
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = cli(&["keys", "list"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("using Redis {dev_redis}")) && stderr.contains("dev's"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().count(), 3, "the three demo keys:\n{stdout}");
    assert!(stdout.contains("client-admin\tacme"), "{stdout}");
    let out = cli(&["keys", "create", "--role", "support"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        get("/api/v1/users/dan.diaz@globex.example".into(), token)
            .await
            .0,
        200,
        "a key the CLI created works against dev"
    );

    // A second dev in the same directory is refused (it would take the CLI's file away).
    let second = adapter()
        .arg("dev")
        .current_dir(dir.path())
        .env(
            "OKTA_ADAPTER__HTTP__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another `okta-adapter dev` is running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    let mut other_conn = other.conn().await;
    let size: u64 = redis::cmd("DBSIZE")
        .query_async(&mut other_conn)
        .await
        .unwrap();
    assert_eq!(
        size, 0,
        "nothing was written into the Redis that was already running"
    );

    let status = dev.stop().await;
    assert!(status.success(), "{status:?}\n{}", dev.output());
    assert!(
        !okta_adapter::dev::ping(dev_redis.rsplit(':').next().unwrap().parse().unwrap()),
        "dev's redis-server stopped with it"
    );

    // dev is gone: a clear error, never a fallback to some other Redis.
    let out = cli(&["keys", "list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`okta-adapter dev` is not running"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_cli_refuses_a_redis_on_devs_port_that_is_not_devs() {
    let stranger = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    okta_adapter::dev::cli_config::write(
        &dir.path().join(okta_adapter::dev::cli_config::DATA_DIR),
        &okta_adapter::dev::cli_config::DevEndpoints {
            redis_url: stranger.url(),
            prefix: "okta-adapter".into(),
            okta_org_url: "http://127.0.0.1:9".into(),
            okta_api_token: "sim-token".into(),
        },
    )
    .unwrap();
    let out = adapter()
        .args(["keys", "create", "--role", "operator"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("is not dev's"), "{stderr}");
    let size: u64 = redis::cmd("DBSIZE")
        .query_async(&mut stranger.conn().await)
        .await
        .unwrap();
    assert_eq!(size, 0, "nothing written");

    // Named explicitly, the same Redis is used, and the CLI says which one (no keys yet: an
    // empty list, not an error).
    let out = adapter()
        .args(["keys", "list"])
        .current_dir(dir.path())
        .env("OKTA_ADAPTER__REDIS__URL", stranger.url())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("using Redis {}", stranger.url()))
            && stderr.contains("OKTA_ADAPTER__REDIS__URL"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `okta-adapter openapi | head`: the reader goes away before the ~100 KB document is written.
    let mut child = adapter()
        .arg("openapi")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "no panic, no message: {stderr}");
}

#[test]
fn every_command_says_the_same_when_redis_does_not_answer_and_hides_its_password() {
    let url = format!("redis://:redis-pw@127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds.csv");
    std::fs::write(&file, "login,hash\n").unwrap();
    let file = file.to_str().unwrap();
    for args in [
        vec!["keys", "list"],
        vec!["projections", "rebuild"],
        vec!["credentials", "import", file],
        vec!["serve"],
    ] {
        let out = adapter()
            .args(&args)
            .current_dir(dir.path())
            .env("OKTA_ADAPTER__REDIS__URL", &url)
            .env("OKTA_ADAPTER__REDIS__CONNECT_TIMEOUT_MS", "300")
            .env("OKTA_ADAPTER__HOOKS__SECRETS", r#"["s"]"#)
            .env("OKTA_ADAPTER__HTTP__LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("cannot reach Redis at redis://:***@127.0.0.1:"),
            "{args:?}: {err}"
        );
        assert!(err.contains("or run `okta-adapter dev`"), "{args:?}: {err}");
        assert!(!err.contains("redis-pw"), "{args:?}: {err}");
    }
}
