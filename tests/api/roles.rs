//! Process roles with real processes: one binary split into a hook-ingress process and an
//! API + consumers process on one Redis, each answering only for its roles.

use serde_json::Value;

use crate::helpers::*;
use crate::processes::*;

#[tokio::test]
async fn a_hooks_process_and_an_api_consumers_process_split_the_work_on_one_redis() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let hooks = ServeProcess::start(&redis.url(), &prefix, "hooks", &[]).await;
    let api = ServeProcess::start(&redis.url(), &prefix, "api,consumers", &[]).await;
    let support = create_key(&redis.url(), &prefix, "support");

    // Okta delivers to the hook ingress: accepted (the secret came from a mounted file).
    let delivery = lifecycle_batch("roles", 3);
    let resp = hooks
        .client
        .post(hooks.url("/hooks/okta/events"))
        .header("authorization", SECRET)
        .json(&delivery)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());

    // The hook process does not serve the API, and says why.
    let resp = hooks
        .client
        .get(hooks.url("/api/v1/users/00uroles0"))
        .bearer_auth(&support)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("does not run the `api` role"),
        "{body}"
    );

    // The API process does not take hooks (a misrouted Okta delivery is refused, not stored).
    let resp = api
        .client
        .post(api.url("/hooks/okta/events"))
        .header("authorization", SECRET)
        .json(&lifecycle_batch("misrouted", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // The consumers of the second process projected what the first one ingested.
    let mut found = Value::Null;
    for _ in 0..200 {
        let resp = api
            .client
            .get(api.url("/api/v1/users/00uroles2"))
            .bearer_auth(&support)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            found = resp.json().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(found["user"]["id"], "00uroles2", "{found}");
}

#[tokio::test]
async fn readyz_covers_only_the_roles_the_process_runs() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let api = ServeProcess::start(&redis.url(), &prefix, "api", &[]).await;
    let consumers = ServeProcess::start(&redis.url(), &prefix, "consumers", &[]).await;

    let ready: Value = api
        .client
        .get(api.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["roles"], serde_json::json!(["api"]));
    assert_eq!(ready["groups"], serde_json::json!([]), "{ready}");

    let ready: Value = consumers
        .client
        .get(consumers.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["roles"], serde_json::json!(["consumers"]));
    let groups = ready["groups"].as_array().unwrap();
    assert!(
        groups.iter().any(|g| g["group"] == "projections"),
        "{ready}"
    );
    // Operations endpoints answer whatever the roles.
    let metrics = consumers
        .client
        .get(consumers.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
}

#[test]
fn an_unknown_role_is_refused_at_start_naming_the_known_ones() {
    let out = adapter_command()
        .args(["serve", "--roles", "hooks,cron"])
        .env("OKTA_ADAPTER__HOOKS__SECRETS", "s")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown role `cron`"), "{err}");
    assert!(
        err.contains("hooks,api,console,consumers,workers,scheduler"),
        "{err}"
    );
}

#[tokio::test]
async fn healthcheck_succeeds_against_a_running_process_and_fails_without_one() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let app = ServeProcess::start(&redis.url(), &prefix, "hooks", &[]).await;
    let ok = adapter_command()
        .arg("healthcheck")
        .env(
            "OKTA_ADAPTER__HTTP__LISTEN",
            format!("0.0.0.0:{}", app.addr.port()),
        )
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let closed = free_port();
    let down = adapter_command()
        .args(["healthcheck", "--timeout-secs", "1"])
        .env("OKTA_ADAPTER__HTTP__LISTEN", format!("127.0.0.1:{closed}"))
        .output()
        .unwrap();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains(&format!("127.0.0.1:{closed}/healthz")));
}
