//! Bulk jobs against the Okta simulator and real Redis.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use okta_adapter::access::Role;
use okta_sim::SimConfig;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn bad_rows_fail_with_their_line_and_good_rows_still_run() {
    let redis = TestRedis::start();
    let (app, sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let operator = api_key(&app, Role::Operator, None).await;
    let csv = "login,email,firstName,lastName\n\
               ok1@example.com,ok1@example.com,A,One\n\
               broken,ok2@example.com,B,Two\n\
               ok3@example.com,,C,Three\n\
               q@example.com,q@example.com,\"Doe, Jr\",Q\n\
               too,many,fields,here,extra\n\
               ok6@example.com,ok6@example.com,F,Six\n";
    let (s, job) = app
        .upload_job(&operator, "kind=create", "text/csv", csv.into())
        .await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(
        (
            job["total"].as_u64(),
            job["invalid"].as_u64(),
            job["valid"].as_u64()
        ),
        (Some(6), Some(3), Some(3))
    );
    let id = job["id"].as_str().unwrap();
    let job = app.wait_for_job(&operator, id, 10).await;
    assert_eq!(
        (
            job["state"].as_str(),
            job["done"].as_u64(),
            job["failed"].as_u64()
        ),
        (Some("done"), Some(3), Some(0)),
        "{job}"
    );
    assert!(job["rows_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(
        sim.user_status("ok1@example.com").as_deref(),
        Some("STAGED")
    );

    let resp = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{id}/results?format=csv")))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/csv");
    let results = resp.text().await.unwrap();
    let lines: Vec<&str> = results.lines().collect();
    assert_eq!(lines[0], "line,login,okta_id,outcome,error");
    assert!(lines[1].starts_with("2,ok1@example.com,00u"), "{results}");
    // A failed row names its login when the row had one.
    assert!(
        lines[2].starts_with("3,broken,,failed,line 3 login `broken` is not an email address"),
        "{results}"
    );
    assert!(
        lines[3].starts_with("4,ok3@example.com,,failed,line 4 missing email"),
        "{results}"
    );
    assert!(
        lines[4].contains("done"),
        "quoted CSV fields are fine: {results}"
    );
    assert_eq!(
        lines[5], "6,,,failed,\"line 6 has 5 fields, the header has 4\"",
        "{results}"
    );
    assert!(lines[6].starts_with("7,ok6@example.com"), "{results}");

    let jsonl = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{id}/results?format=jsonl")))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[5]["outcome"], "done");
}

#[tokio::test]
async fn json_lines_jobs_update_and_suspend_users_found_by_login() {
    let redis = TestRedis::start();
    let (app, sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let operator = api_key(&app, Role::Operator, None).await;
    let (_, job) = app
        .upload_job(
            &operator,
            "kind=create&activate=true&password_hook=true",
            "text/csv",
            users_csv("u", 3),
        )
        .await;
    app.wait_for_job(&operator, job["id"].as_str().unwrap(), 10)
        .await;
    let body = "{\"login\":\"u0@example.com\",\"department\":\"Sales\"}\n\n{\"login\":\"u1@example.com\",\"department\":\"Ops\"}\nnot json\n";
    let (s, job) = app
        .upload_job(
            &operator,
            "kind=update",
            "application/x-ndjson",
            body.into(),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(job["invalid"], 1);
    let job = app
        .wait_for_job(&operator, job["id"].as_str().unwrap(), 10)
        .await;
    assert_eq!(job["done"], 2, "{job}");
    let (_, job) = app
        .upload_job(
            &operator,
            "kind=suspend&format=jsonl",
            "text/plain",
            "{\"login\":\"u2@example.com\"}\n{\"login\":\"nobody@example.com\"}\n".into(),
        )
        .await;
    let job = app
        .wait_for_job(&operator, job["id"].as_str().unwrap(), 10)
        .await;
    assert_eq!(
        (job["done"].as_u64(), job["failed"].as_u64()),
        (Some(1), Some(1)),
        "{job}"
    );
    assert_eq!(
        sim.user_status("u2@example.com").as_deref(),
        Some("SUSPENDED")
    );
}

#[tokio::test]
async fn migration_phases_create_staged_hook_users_then_activate_them_without_mail() {
    let redis = TestRedis::start();
    let (app, sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let operator = api_key(&app, Role::Operator, None).await;
    let support = api_key(&app, Role::Support, None).await;
    let (_, job) = app
        .upload_job(&operator, "phase=create", "text/csv", users_csv("mig", 5))
        .await;
    let job = app
        .wait_for_job(&operator, job["id"].as_str().unwrap(), 10)
        .await;
    assert_eq!(job["done"], 5);
    assert_eq!(
        job["options"]["password_hook"], true,
        "options are an object: {job}"
    );
    for i in 0..5 {
        assert_eq!(
            sim.user_status(&format!("mig{i}@example.com")).as_deref(),
            Some("STAGED")
        );
    }
    app.wait_for_user(&support, "mig4@example.com", |u| u["status"] == "STAGED")
        .await;

    let activate = (0..5).fold(String::from("login\n"), |s, i| {
        s + &format!("mig{i}@example.com\n")
    });
    let (_, job) = app
        .upload_job(&operator, "phase=activate", "text/csv", activate)
        .await;
    let job = app
        .wait_for_job(&operator, job["id"].as_str().unwrap(), 10)
        .await;
    assert_eq!(job["done"], 5, "{job}");
    for i in 0..5 {
        // The hook is their credential, so activation makes them ACTIVE at once.
        assert_eq!(
            sim.user_status(&format!("mig{i}@example.com")).as_deref(),
            Some("ACTIVE")
        );
    }
    assert_eq!(
        sim.stats()["activation_emails"],
        0,
        "nobody got a confusing activation mail"
    );
}

#[tokio::test]
async fn a_cancelled_job_fails_its_remaining_rows_and_client_admins_see_only_their_jobs() {
    let redis = TestRedis::start();
    let sim = SimConfig {
        latency: Duration::from_millis(30),
        ..SimConfig::default()
    };
    let extra = "[jobs]\nconcurrency = 1\ntenant_profile_attribute = \"tenantId\"\n";
    let (app, _sim) = spawn_app_with_okta(&redis.url(), &random_prefix(), sim, extra).await;
    let acme = api_key(&app, Role::ClientAdmin, Some("acme")).await;
    let globex = api_key(&app, Role::ClientAdmin, Some("globex")).await;
    let (s, job) = app
        .upload_job(&acme, "kind=create", "text/csv", users_csv("c", 200))
        .await;
    assert_eq!(s, 202);
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["tenant"], "acme");
    assert_eq!(
        app.get_json(&format!("/api/v1/jobs/{id}"), Some(&globex))
            .await
            .0,
        404
    );
    assert_eq!(
        app.post_json(&format!("/api/v1/jobs/{id}/cancel"), &globex, None)
            .await
            .0,
        404
    );
    let (_, list) = app.get_json("/api/v1/jobs", Some(&globex)).await;
    assert_eq!(list.as_array().unwrap().len(), 0);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, cancelled) = app
        .post_json(&format!("/api/v1/jobs/{id}/cancel"), &acme, None)
        .await;
    assert_eq!((s, cancelled["state"].as_str()), (200, Some("cancelled")));
    let job = app.wait_for_job(&acme, &id, 20).await;
    let (done, failed) = (
        job["done"].as_u64().unwrap(),
        job["failed"].as_u64().unwrap(),
    );
    assert!(
        done > 0 && done < 200,
        "some rows ran before the cancel: {job}"
    );
    assert_eq!(done + failed, 200);
    assert_eq!(
        app.post_json(&format!("/api/v1/jobs/{id}/cancel"), &acme, None)
            .await
            .0,
        409
    );
}

/// The review's escape through profile rows: a client admin may not write what a tenant rule
/// reads (an `attribute` rule, the hooks' tenant attribute) nor an address in another tenant's
/// email domain, on create or update; the rows fail with their line, the rest run.
#[tokio::test]
async fn a_client_admin_cannot_move_users_to_another_tenant_through_profile_rows() {
    let redis = TestRedis::start();
    let extra = r#"
[tenants]
rules = [
  { kind = "email_domain", map = { "globex.example" = "globex" } },
  { kind = "attribute", attribute = "tenantId" },
]
[jobs]
tenant_profile_attribute = "tenantId"
"#;
    let (app, sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), extra).await;
    let acme = api_key(&app, Role::ClientAdmin, Some("acme")).await;
    let create = "login,email,firstName,lastName,tenantId,tenant\n\
        ok@acme.example,ok@acme.example,O,K,,\n\
        eve@globex.example,eve@globex.example,E,V,,\n\
        mail@acme.example,eve@GLOBEX.example,M,A,,\n\
        hook@acme.example,hook@acme.example,H,O,,globex\n\
        own@acme.example,own@acme.example,O,W,globex,\n";
    let (s, job) = app
        .upload_job(&acme, "kind=create", "text/csv", create.into())
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let job = app.wait_for_job(&acme, &id, 20).await;
    assert_eq!(
        (job["done"].as_u64(), job["invalid"].as_u64()),
        (Some(1), Some(4)),
        "{job}"
    );
    let out = results(&app, &acme, &id, "jsonl").await;
    let error_of = |line: u64| -> String {
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|r| r["line"] == line)
            .map(|r| r["error"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(error_of(3).contains("belongs to another tenant"), "{out}");
    assert!(error_of(4).contains("belongs to another tenant"), "{out}");
    assert!(
        error_of(5).contains("tenant decides a user's tenant"),
        "{out}"
    );
    assert!(error_of(6).contains("is not your tenant"), "{out}");
    assert_eq!(
        sim.users_with_login("eve@globex.example"),
        0,
        "never created"
    );

    let update = "login,email,tenant,title\n\
        ok@acme.example,,globex,\n\
        ok@acme.example,ok@globex.example,,\n\
        ok@acme.example,,,Engineer\n";
    let (s, job) = app
        .upload_job(&acme, "kind=update", "text/csv", update.into())
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let job = app.wait_for_job(&acme, &id, 20).await;
    let out = results(&app, &acme, &id, "jsonl").await;
    assert_eq!(job["invalid"].as_u64(), Some(2), "{job} {out}");
    assert!(out.contains("tenant decides a user's tenant"), "{out}");
    assert!(out.contains("belongs to another tenant"), "{out}");
}

#[tokio::test]
async fn a_client_admin_cannot_create_users_unless_the_tenant_attribute_is_configured() {
    let redis = TestRedis::start();
    let (app, _sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let acme = api_key(&app, Role::ClientAdmin, Some("acme")).await;
    let support = api_key(&app, Role::Support, None).await;
    let (s, body) = app
        .upload_job(&acme, "kind=create", "text/csv", users_csv("x", 1))
        .await;
    assert_eq!(s, 403, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("tenant_profile_attribute"));
    assert_eq!(
        app.upload_job(&support, "kind=create", "text/csv", users_csv("x", 1))
            .await
            .0,
        403
    );
    assert_eq!(
        app.upload_job(&acme, "kind=explode", "text/csv", "id\n1\n".into())
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn two_replicas_share_one_rate_budget_and_interactive_actions_stay_prompt() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    // 20 creates per 1 s window for the whole "org"; the adapters keep 10% headroom.
    let sim = SimConfig {
        users_create_list_limit: 20,
        window: Duration::from_millis(1000),
        latency: Duration::from_millis(5),
        ..SimConfig::default()
    };
    let extra = "[okta]\ndefault_limit = 20\n";
    let (a, sim) = spawn_app_with_okta(&redis.url(), &prefix, sim, extra).await;
    let b = spawn_app_on(
        &redis.url(),
        &prefix,
        &merge_toml(
            &format!(
                "[okta]\norg_url = \"{}\"\napi_token = \"sim-token\"\nrate_window_ms = 1000\n",
                sim.url()
            ),
            extra,
        ),
    )
    .await;
    let operator = api_key(&a, Role::Operator, None).await;
    let support = api_key(&a, Role::Support, None).await;
    let (_, seed) = a
        .upload_job(
            &operator,
            "kind=create&activate=true&password_hook=true",
            "text/csv",
            users_csv("vip", 1),
        )
        .await;
    a.wait_for_job(&operator, seed["id"].as_str().unwrap(), 10)
        .await;
    let vip = a
        .wait_for_user(&support, "vip0@example.com", |u| u["status"] == "ACTIVE")
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let started = Instant::now();
    let (s, job) = b
        .upload_job(&operator, "kind=create", "text/csv", users_csv("bulk", 90))
        .await;
    assert_eq!(s, 202);
    let id = job["id"].as_str().unwrap().to_string();
    // While the job runs on both replicas, a support action goes through promptly.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = Instant::now();
    let (s, body) = a
        .post_json(
            &format!("/api/v1/users/{vip}/actions/suspend"),
            &support,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let interactive = t.elapsed();
    let job = a.wait_for_job(&operator, &id, 30).await;
    assert_eq!(job["done"], 90, "{job}");
    let elapsed = started.elapsed().as_secs_f64();

    let stats = sim.stats();
    assert_eq!(stats["rejected_429"], 0, "{stats}");
    assert!(
        stats["busiest_window"]["users-create-list"]
            .as_u64()
            .unwrap()
            <= 20,
        "{stats}"
    );
    // 91 creates at 18 per second take about 5 s; both replicas worked, neither ran alone.
    assert!(
        elapsed >= 4.0,
        "the budget was shared, not doubled: {elapsed:.1} s"
    );
    assert!(
        interactive < Duration::from_millis(1000),
        "interactive action took {interactive:?}"
    );
    drop(b);
}

#[tokio::test]
async fn a_crash_mid_job_leaves_no_row_doubled_or_lost() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let sim_config = SimConfig {
        latency: Duration::from_millis(25),
        ..SimConfig::default()
    };
    let (app, sim) = spawn_app_with_okta(
        &redis.url(),
        &prefix,
        sim_config,
        "[jobs]\nworkers = false\n",
    )
    .await;
    let operator = api_key(&app, Role::Operator, None).await;
    let (s, job) = app
        .upload_job(
            &operator,
            "kind=create",
            "text/csv",
            users_csv("crash", 120),
        )
        .await;
    assert_eq!(s, 202);
    let id = job["id"].as_str().unwrap().to_string();

    // A real worker process, killed with SIGKILL while rows are in flight.
    let spawn_worker = || {
        Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
            .arg("serve")
            .env("OKTA_ADAPTER__REDIS__URL", redis.url())
            .env(
                "OKTA_ADAPTER__REDIS__CLUSTER",
                crate::cluster::cluster_mode().to_string(),
            )
            .env("OKTA_ADAPTER__REDIS__PREFIX", &prefix)
            .env("OKTA_ADAPTER__HTTP__LISTEN", "127.0.0.1:0")
            .env("OKTA_ADAPTER__HOOKS__SECRETS", "[\"x\"]")
            .env("OKTA_ADAPTER__OKTA__ORG_URL", sim.url())
            .env("OKTA_ADAPTER__OKTA__API_TOKEN", "sim-token")
            .env("OKTA_ADAPTER__JOBS__CONCURRENCY", "8")
            .env("OKTA_ADAPTER__JOBS__CLAIM_IDLE_MS", "300")
            .env("OKTA_ADAPTER__PROJECTION__ENABLED", "false")
            .env("OKTA_ADAPTER__LOG__LEVEL", "error")
            .spawn()
            .unwrap()
    };
    let mut first = spawn_worker();
    let some_done = eventually(20, || async {
        let (_, j) = app
            .get_json(&format!("/api/v1/jobs/{id}"), Some(&operator))
            .await;
        j["done"].as_u64().unwrap_or(0) >= 30
    })
    .await;
    assert!(some_done);
    first.kill().unwrap();
    first.wait().unwrap();
    let (_, at_crash) = app
        .get_json(&format!("/api/v1/jobs/{id}"), Some(&operator))
        .await;
    assert!(
        at_crash["pending"].as_u64().unwrap() > 0,
        "killed mid-job: {at_crash}"
    );

    let mut second = spawn_worker();
    let job = app.wait_for_job(&operator, &id, 60).await;
    second.kill().unwrap();
    second.wait().unwrap();

    assert_eq!(
        (job["done"].as_u64(), job["failed"].as_u64()),
        (Some(120), Some(0)),
        "{job}"
    );
    for i in 0..120 {
        assert_eq!(
            sim.users_with_login(&format!("crash{i}@example.com")),
            1,
            "user {i}"
        );
    }
    let results = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{id}/results?format=jsonl")))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<u64> = results
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        lines,
        (2..122).collect::<Vec<u64>>(),
        "each row exactly once, in order"
    );
}

#[tokio::test]
async fn the_import_command_runs_a_migration_phase_with_progress() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let (_app, sim) = spawn_app_with_okta(
        &redis.url(),
        &prefix,
        SimConfig::default(),
        "[jobs]\nworkers = false\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(&file, users_csv("cli", 12) + "bad-row,x,y,z\n").unwrap();
    // tokio's Command: the simulator answers on this test's runtime while the CLI runs.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
        .arg("import")
        .arg(&file)
        .args(["--phase", "create"])
        .env("OKTA_ADAPTER__REDIS__URL", redis.url())
        .env(
            "OKTA_ADAPTER__REDIS__CLUSTER",
            crate::cluster::cluster_mode().to_string(),
        )
        .env("OKTA_ADAPTER__REDIS__PREFIX", &prefix)
        .env("OKTA_ADAPTER__OKTA__ORG_URL", sim.url())
        .env("OKTA_ADAPTER__OKTA__API_TOKEN", "sim-token")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("12 done, 0 failed, 1 invalid"), "{err}");
    assert!(
        err.contains("line 14"),
        "the bad row is shown with its line: {err}"
    );
    assert_eq!(
        sim.user_status("cli11@example.com").as_deref(),
        Some("STAGED")
    );
}

#[tokio::test]
async fn the_api_and_the_import_command_refuse_a_bad_job_request_with_the_same_words() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let (app, sim) = spawn_app_with_okta(
        &redis.url(),
        &prefix,
        SimConfig::default(),
        "[jobs]\nworkers = false\n",
    )
    .await;
    let operator = api_key(&app, Role::Operator, None).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(&file, "id\n00u1\n").unwrap();
    for (query, flags, message) in [
        (
            "kind=explode",
            ["--kind", "explode"],
            "unknown job kind `explode`",
        ),
        (
            "phase=migrate",
            ["--phase", "migrate"],
            "unknown phase `migrate`; create or activate",
        ),
    ] {
        let (status, body) = app
            .upload_job(&operator, query, "text/csv", "id\n00u1\n".into())
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["message"], message);
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
            .arg("import")
            .arg(&file)
            .args(flags)
            .env("OKTA_ADAPTER__REDIS__URL", redis.url())
            .env(
                "OKTA_ADAPTER__REDIS__CLUSTER",
                crate::cluster::cluster_mode().to_string(),
            )
            .env("OKTA_ADAPTER__REDIS__PREFIX", &prefix)
            .env("OKTA_ADAPTER__OKTA__ORG_URL", sim.url())
            .env("OKTA_ADAPTER__OKTA__API_TOKEN", "sim-token")
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(message), "{err}");
    }
    let (_, jobs) = app.get_json("/api/v1/jobs", Some(&operator)).await;
    assert_eq!(
        jobs,
        serde_json::json!([]),
        "a refused request creates no job"
    );
}

/// Parses a CSV results body (header first) with a real CSV reader.
fn csv_rows(body: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

async fn results(app: &TestApp, key: &str, id: &str, format: &str) -> String {
    app.client
        .get(app.url(&format!("/api/v1/jobs/{id}/results?format={format}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn csv_results_neutralise_formulas_and_name_the_failed_rows_login() {
    let redis = TestRedis::start();
    let (app, _sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let operator = api_key(&app, Role::Operator, None).await;
    let csv = "login,email,firstName,lastName\n\
               \"=cmd|' /C calc'!A0\",a@example.com,A,A\n\
               @SUM(1+1),b@example.com,B,B\n\
               +1,c@example.com,C,C\n\
               \"\tx\",d@example.com,D,D\n\
               -x@example.com,-x@example.com,E,E\n";
    let (s, job) = app
        .upload_job(&operator, "kind=create", "text/csv", csv.into())
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    assert!(job["options"].is_object(), "options are an object: {job}");
    assert_eq!(job["options"]["activate"], false);
    let job = app.wait_for_job(&operator, id, 10).await;
    assert_eq!(
        (job["invalid"].as_u64(), job["done"].as_u64()),
        (Some(4), Some(1)),
        "{job}"
    );

    let body = results(&app, &operator, id, "csv").await;
    let rows = csv_rows(&body);
    assert_eq!(rows[0], ["line", "login", "okta_id", "outcome", "error"]);
    let logins: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    // Trimmed cells: the tab row's login is "x" after trimming, so it is not a formula at all.
    assert_eq!(
        logins,
        [
            "'=cmd|' /C calc'!A0",
            "'@SUM(1+1)",
            "'+1",
            "x",
            "'-x@example.com"
        ],
        "{body}"
    );
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "no cell a spreadsheet would evaluate: {cell:?} in {body}"
            );
        }
    }
    // JSON lines are data, not a spreadsheet: unchanged.
    let jsonl = results(&app, &operator, id, "jsonl").await;
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["login"], "=cmd|' /C calc'!A0");
}

#[tokio::test]
async fn an_oversized_record_fails_with_its_line_and_the_upload_goes_on() {
    let redis = TestRedis::start();
    let (app, sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let operator = api_key(&app, Role::Operator, None).await;
    let big = "x".repeat(5 * 1024 * 1024);
    // A 5 MB quoted CSV cell spanning lines, then a good row.
    let csv = format!(
        "login,email,firstName,lastName\n\
         big1@example.com,big1@example.com,A,A\n\
         big2@example.com,big2@example.com,\"{big}\nmore\",B\n\
         big3@example.com,big3@example.com,C,C\n"
    );
    let (s, job) = app
        .upload_job(&operator, "kind=create", "text/csv", csv)
        .await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(
        (
            job["total"].as_u64(),
            job["invalid"].as_u64(),
            job["valid"].as_u64()
        ),
        (Some(3), Some(1), Some(2)),
        "{job}"
    );
    let id = job["id"].as_str().unwrap().to_string();
    let job = app.wait_for_job(&operator, &id, 10).await;
    assert_eq!(job["done"], 2, "{job}");
    let body = results(&app, &operator, &id, "jsonl").await;
    let rows: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[1]["line"], 3);
    let error = rows[1]["error"].as_str().unwrap();
    assert!(
        error.starts_with("line 3 is longer than the limit of 65536 bytes"),
        "{error}"
    );
    assert_eq!(rows[2]["line"], 5, "the row after the two-line record");
    assert_eq!(
        sim.user_status("big3@example.com").as_deref(),
        Some("STAGED")
    );

    // The same for a JSON line.
    let line = format!("{{\"login\":\"j@example.com\",\"note\":\"{big}\"}}");
    let jsonl =
        format!("{{\"login\":\"big1@example.com\"}}\n{line}\n{{\"login\":\"big3@example.com\"}}\n");
    let (s, job) = app
        .upload_job(&operator, "kind=suspend", "application/x-ndjson", jsonl)
        .await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(
        (job["invalid"].as_u64(), job["valid"].as_u64()),
        (Some(1), Some(2))
    );
    let body = results(&app, &operator, job["id"].as_str().unwrap(), "jsonl").await;
    assert!(body.contains("line 2 is longer than the limit"), "{body}");
    assert!(
        body.len() < 10_000,
        "nothing of the oversized row is kept: {} bytes",
        body.len()
    );
    // Nothing oversized reached the queue, and the service still answers.
    let mut conn = redis.conn().await;
    let longest: usize = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(format!("{}:jobs:queue", app.prefix))
        .query_async::<Option<usize>>(&mut conn)
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(longest < 1024 * 1024, "queue holds {longest} bytes");
    assert_eq!(app.get_json("/healthz", None).await.0, 200);
}

#[tokio::test]
async fn a_file_of_many_invalid_rows_is_recorded_in_a_few_round_trips() {
    let redis = TestRedis::start();
    let (app, _sim) =
        spawn_app_with_okta(&redis.url(), &random_prefix(), SimConfig::default(), "").await;
    let operator = api_key(&app, Role::Operator, None).await;
    let n = 20_000;
    let body = "not json\n".repeat(n);
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (s, job) = app
        .upload_job(&operator, "kind=suspend", "application/x-ndjson", body)
        .await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["invalid"].as_u64(), Some(n as u64));
    // One Redis answers with its text; a cluster with one text per master (summed below).
    let stats: redis::Value = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let stats: String = match stats {
        redis::Value::Map(nodes) => nodes
            .into_iter()
            .map(|(_, text)| redis::from_redis_value::<String>(text).unwrap())
            .collect::<Vec<_>>()
            .join("\n"),
        text => redis::from_redis_value(text).unwrap(),
    };
    let calls = |cmd: &str| -> u64 {
        stats
            .lines()
            .filter(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .filter_map(|l| l.split("calls=").nth(1))
            .filter_map(|v| v.split(',').next())
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    };
    // One ZADD per batch of 500, not one script call per row.
    assert!(calls("zadd") < 100, "{stats}");
    assert!(calls("evalsha") + calls("eval") < 100, "{stats}");
    let body = results(&app, &operator, job["id"].as_str().unwrap(), "jsonl").await;
    let lines: Vec<u64> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(lines, (1..=n as u64).collect::<Vec<_>>());
}

/// Group rules of the tenant-escape tests: `tenant-<t>` and `tenant-<t>-<team>` belong to `<t>`;
/// `tenant-acme-admins` carries the admin role.
const GROUP_RULES: &str = "[tenants]\nrules = [{ kind = \"group\", pattern = \"^tenant-(?P<tenant>[a-z0-9]+)(-[a-z]+)?$\" }]\n[inline]\nroles = { \"tenant-acme-admins\" = [\"admin\"] }\n";

fn okta_config(sim: &okta_sim::OktaSim, token: &str) -> String {
    format!(
        "[okta]\norg_url = \"{}\"\napi_token = \"{token}\"\nrate_window_ms = 1000\n",
        sim.url()
    )
}

#[tokio::test]
async fn a_client_admin_can_touch_only_its_own_tenants_groups() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let no_workers = "[jobs]\nworkers = false\nclaim_idle_ms = 500\n";
    // This app receives the simulator's events (projection); uploads and workers are separate
    // apps on the same Redis, so the test decides when rows run and with which config.
    let (app, sim) = spawn_app_with_okta(
        &redis.url(),
        &prefix,
        SimConfig::default(),
        &merge_toml(GROUP_RULES, no_workers),
    )
    .await;
    let staff = sim.create_group("tenant-acme-staff");
    let admins = sim.create_group("tenant-acme-admins");
    let globex = sim.create_group("tenant-globex");
    let shared = sim.create_group("shared-newsletter");
    let temp = sim.create_group("tenant-acme-temp");
    let allow = format!("[tenants.groups]\nacme = [\"{shared}\"]\n");
    let config = |token: &str, extra: &str| {
        merge_toml(
            &merge_toml(&okta_config(&sim, token), GROUP_RULES),
            &merge_toml(extra, "[projection]\nenabled = false\n"),
        )
    };
    let uploader = spawn_app_on(
        &redis.url(),
        &prefix,
        &config("sim-token", &format!("{allow}{no_workers}")),
    )
    .await;
    let mut worker = spawn_app_on(
        &redis.url(),
        &prefix,
        &config(
            "sim-token",
            &format!("{allow}[jobs]\nclaim_idle_ms = 500\n"),
        ),
    )
    .await;
    let operator = api_key(&app, Role::Operator, None).await;
    let support = api_key(&app, Role::Support, None).await;
    let acme = api_key(&app, Role::ClientAdmin, Some("acme")).await;

    // The operator (unrestricted) creates four users and puts them into acme's staff group; the
    // membership event names the group, and the group rule makes them acme's.
    let (_, job) = uploader
        .upload_job(
            &operator,
            "kind=create&activate=true&password_hook=true",
            "text/csv",
            users_csv("g", 4),
        )
        .await;
    uploader
        .wait_for_job(&operator, job["id"].as_str().unwrap(), 10)
        .await;
    let logins = (0..4).fold(String::from("login\n"), |s, i| {
        s + &format!("g{i}@example.com\n")
    });
    let (s, job) = uploader
        .upload_job(
            &operator,
            &format!("kind=add-to-group&group_id={staff}"),
            "text/csv",
            logins.clone(),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let job = uploader
        .wait_for_job(&operator, job["id"].as_str().unwrap(), 10)
        .await;
    assert_eq!(job["done"], 4, "{job}");
    for i in 0..4 {
        app.wait_for_user(&support, &format!("g{i}@example.com"), |u| {
            u["tenant"] == "acme"
        })
        .await;
    }

    // Creation: another tenant's group, a role group and an unknown group read alike.
    let refused = |group: &str, kind: &str| {
        let (uploader, acme, logins) = (&uploader, &acme, logins.clone());
        let query = format!("kind={kind}&group_id={group}");
        async move { uploader.upload_job(acme, &query, "text/csv", logins).await }
    };
    for (group, kind) in [
        (globex.as_str(), "add-to-group"),
        (globex.as_str(), "remove-from-group"),
        (admins.as_str(), "add-to-group"),
        ("00gNoSuchGroup0000001", "add-to-group"),
    ] {
        let (s, body) = refused(group, kind).await;
        assert_eq!(s, 404, "{group} {kind}: {body}");
        assert_eq!(body["message"], format!("no group `{group}`"), "{body}");
    }
    let (_, list) = uploader.get_json("/api/v1/jobs", Some(&acme)).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "a refused upload creates no job"
    );

    // A row's own group_id is checked too: foreign and role groups fail their rows only.
    let rows = format!(
        "login,group_id\ng0@example.com,{globex}\ng1@example.com,{staff}\ng2@example.com,{admins}\ng3@example.com,{shared}\n"
    );
    let (s, job) = uploader
        .upload_job(&acme, "kind=add-to-group", "text/csv", rows)
        .await;
    assert_eq!(s, 202, "{job}");
    assert_eq!(
        (job["invalid"].as_u64(), job["valid"].as_u64()),
        (Some(2), Some(2)),
        "{job}"
    );
    let id = job["id"].as_str().unwrap().to_string();
    let job = uploader.wait_for_job(&acme, &id, 10).await;
    assert_eq!(job["done"], 2, "{job}");
    let body = results(&uploader, &acme, &id, "jsonl").await;
    assert!(
        body.contains(&format!("line 2 no group `{globex}`")),
        "{body}"
    );
    assert!(
        body.contains(&format!("line 4 no group `{admins}`")),
        "{body}"
    );
    assert!(sim.group_members(&globex).is_empty());
    assert!(sim.group_members(&admins).is_empty());
    assert_eq!(
        sim.group_members(&shared).len(),
        1,
        "the allow-listed group works"
    );

    // Its own groups work, by rule and by allow-list, for removal as well.
    let (s, job) = uploader
        .upload_job(
            &acme,
            &format!("kind=remove-from-group&group_id={shared}"),
            "text/csv",
            "login\ng3@example.com\n".into(),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let job = uploader
        .wait_for_job(&acme, job["id"].as_str().unwrap(), 10)
        .await;
    assert_eq!(job["done"], 1, "{job}");
    assert!(sim.group_members(&shared).is_empty());

    // Checked again when rows run: a group renamed into another tenant, and a group taken off
    // the allow-list, between creation and run.
    worker.stop().await;
    let (s, renamed) = uploader
        .upload_job(
            &acme,
            &format!("kind=add-to-group&group_id={temp}"),
            "text/csv",
            "login\ng0@example.com\n".into(),
        )
        .await;
    assert_eq!(s, 202, "{renamed}");
    let (s, delisted) = uploader
        .upload_job(
            &acme,
            &format!("kind=add-to-group&group_id={shared}"),
            "text/csv",
            "login\ng1@example.com\n".into(),
        )
        .await;
    assert_eq!(s, 202, "{delisted}");
    sim.rename_group(&temp, "tenant-globex-temp");
    let _worker = spawn_app_on(
        &redis.url(),
        &prefix,
        &config("sim-token", "[jobs]\nclaim_idle_ms = 500\n"),
    )
    .await;
    for (job, group) in [(&renamed, &temp), (&delisted, &shared)] {
        let id = job["id"].as_str().unwrap();
        let job = uploader.wait_for_job(&acme, id, 10).await;
        assert_eq!(
            (job["done"].as_u64(), job["failed"].as_u64()),
            (Some(0), Some(1)),
            "{job}"
        );
        let body = results(&uploader, &acme, id, "jsonl").await;
        assert!(body.contains(&format!("no group `{group}`")), "{body}");
        assert!(sim.group_members(group).is_empty(), "{group}");
    }

    // The lookup fails closed: with Okta refusing the adapter, no group is anybody's.
    let broken = spawn_app_on(&redis.url(), &prefix, &config("wrong-token", no_workers)).await;
    let (s, body) = broken
        .upload_job(
            &acme,
            &format!("kind=add-to-group&group_id={staff}"),
            "text/csv",
            "login\ng0@example.com\n".into(),
        )
        .await;
    assert_eq!(s, 503, "{body}");
    // Operators are not restricted by tenant groups.
    let (s, job) = broken
        .upload_job(
            &operator,
            &format!("kind=add-to-group&group_id={globex}"),
            "text/csv",
            "login\ng0@example.com\n".into(),
        )
        .await;
    assert_eq!(s, 202, "{job}");
}

/// Starts an upload whose body sends `first` and then never ends; returns the request task.
fn stalled_upload(app: &TestApp, key: &str, first: &str) -> tokio::task::JoinHandle<()> {
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(first.to_string())])
        .chain(futures::stream::pending());
    let req = app
        .client
        .post(app.url("/api/v1/jobs?kind=suspend"))
        .bearer_auth(key)
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(chunks));
    tokio::spawn(async move {
        let _ = req.send().await;
    })
}

/// Polls a job until `check` holds (or `secs` pass); returns its last state.
async fn poll_job(
    app: &TestApp,
    key: &str,
    id: &str,
    secs: u64,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, job) = app.get_json(&format!("/api/v1/jobs/{id}"), Some(key)).await;
        if check(&job) || Instant::now() >= deadline {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first job of the list in state `validating`, once there is one.
async fn validating_job(app: &TestApp, key: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = app.get_json("/api/v1/jobs", Some(key)).await;
        if let Some(job) = list
            .as_array()
            .and_then(|l| l.iter().find(|j| j["state"] == "validating"))
        {
            return job["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no upload started: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_upload_cut_off_by_the_client_or_a_shutdown_cancels_its_job_with_a_reason() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let extra = "[http]\nshutdown_grace_secs = 1\n";
    let (mut app, _sim) =
        spawn_app_with_okta(&redis.url(), &prefix, SimConfig::default(), extra).await;
    let operator = api_key(&app, Role::Operator, None).await;
    let viewer = spawn_app_on(&redis.url(), &prefix, "[jobs]\nworkers = false\n").await;
    let cancelled = |j: &Value| j["state"] == "cancelled";

    // The client goes away mid-file.
    let upload = stalled_upload(&app, &operator, "login\na@example.com\n");
    let id = validating_job(&app, &operator).await;
    upload.abort();
    let job = poll_job(&viewer, &operator, &id, 5, cancelled).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(
        job["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{job}"
    );

    // The server stops while a file is being read: the request is dropped after the grace.
    let _upload = stalled_upload(&app, &operator, "login\nb@example.com\n");
    let id = validating_job(&app, &operator).await;
    app.stop().await;
    let job = poll_job(&viewer, &operator, &id, 5, cancelled).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(job["reason"].as_str().unwrap().contains("cut off"), "{job}");
}

#[tokio::test]
async fn the_maintenance_sweep_cancels_a_job_a_crash_left_validating() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let app = spawn_app_on(
        &redis.url(),
        &prefix,
        "[jobs]\nworkers = false\nstale_upload_secs = 1\n",
    )
    .await;
    let operator = api_key(&app, Role::Operator, None).await;
    // What a process that died while reading a file leaves behind: a `validating` job.
    let store =
        okta_adapter::jobs::store::JobStore::new(okta_adapter::store::Keys::new(prefix.clone()));
    let mut conn = app.state.redis.clone();
    let id = store
        .create(
            &mut conn,
            okta_adapter::jobs::rows::JobKind::Suspend,
            &Default::default(),
            None,
            "key:crashed",
        )
        .await
        .unwrap();
    let (_, job) = app
        .get_json(&format!("/api/v1/jobs/{id}"), Some(&operator))
        .await;
    assert_eq!(job["state"], "validating");
    let job = poll_job(&app, &operator, &id, 10, |j| j["state"] == "cancelled").await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(job["reason"].as_str().unwrap().contains("cut off"), "{job}");
    assert!(job["finished"].is_string(), "nothing is left to run: {job}");
}

/// On a cluster the upload-end script touches only `job:{id}`; `jobs:validating` (another slot)
/// is updated after it. A crash between the two — simulated here by listing the finished job
/// again, and an id whose hash never got written — must be settled by the sweep without
/// touching the job's state.
#[tokio::test]
async fn the_sweep_unlists_a_finished_job_and_a_hashless_id_a_crash_left_listed() {
    use redis::AsyncCommands;
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let (app, _sim) = spawn_app_with_okta(
        &redis.url(),
        &prefix,
        SimConfig::default(),
        "[jobs]\nworkers = false\nstale_upload_secs = 1\n",
    )
    .await;
    let operator = api_key(&app, Role::Operator, None).await;
    let (s, job) = app
        .upload_job(
            &operator,
            "kind=suspend",
            "text/csv",
            "login\nu1@example.com\n".into(),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let (_, job) = app
        .get_json(&format!("/api/v1/jobs/{id}"), Some(&operator))
        .await;
    assert_eq!(job["state"], "queued", "{job}");
    let keys = okta_adapter::store::Keys::new(prefix.clone());
    let mut conn = app.conn().await;
    let listed: Vec<String> = conn.zrange(keys.jobs_validating(), 0, -1).await.unwrap();
    assert!(
        listed.is_empty(),
        "un-listed when the upload ended: {listed:?}"
    );
    // The crash: still listed (with an old score), plus an id listed before its hash existed.
    let _: () = conn.zadd(keys.jobs_validating(), &id, 1).await.unwrap();
    let _: () = conn
        .zadd(keys.jobs_validating(), "0000000000000000", 1)
        .await
        .unwrap();
    let settled = eventually(10, || {
        let mut conn = conn.clone();
        let key = keys.jobs_validating();
        async move {
            let n: u64 = conn.zcard(key).await.unwrap();
            n == 0
        }
    })
    .await;
    assert!(settled, "the sweep un-lists both");
    let (_, job) = app
        .get_json(&format!("/api/v1/jobs/{id}"), Some(&operator))
        .await;
    assert_eq!(
        job["state"], "queued",
        "the finished upload stays queued: {job}"
    );
    assert!(job["reason"].is_null(), "{job}");
    let (status, _) = app
        .get_json("/api/v1/jobs/0000000000000000", Some(&operator))
        .await;
    assert_eq!(status, 404, "no job appears for the hashless id");
}
