//! What a 204 survives (issue 16, `docs/delivery.md`): `kill -9` of `redis-server` under ingest
//! load, per persistence setting, then every acknowledged uuid is looked up after the restart.
//! The spool is off here: this measures Redis's own durability.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use okta_adapter::startup::Application;
use redis::AsyncCommands;

use crate::helpers::*;

/// A redis-server with the given persistence arguments, killable with SIGKILL and restartable on
/// the same port and data folder.
struct FaultRedis {
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<&'static str>,
    child: Option<Child>,
}

impl FaultRedis {
    fn start(args: &[&'static str]) -> Self {
        let mut r = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            args: args.to_vec(),
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while !okta_adapter::dev::ping(self.port) {
            assert!(start.elapsed() < Duration::from_secs(10), "redis up");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultRedis {
    fn drop(&mut self) {
        self.kill_9();
    }
}

struct Outcome {
    acked: usize,
    lost: usize,
    /// Events acknowledged in the last second before the kill.
    acked_last_second: usize,
}

/// Four posters send 20-event deliveries for `load`; Redis is killed with SIGKILL after
/// `kill_after`, restarted, and every acknowledged uuid is looked up.
async fn kill_redis_under_load(args: &[&'static str], durability: &str) -> Outcome {
    let mut redis = FaultRedis::start(args);
    let app = spawn_app_on(
        &redis.url(),
        &random_prefix(),
        &format!("[hooks]\ndurability = \"{durability}\"\n[spool]\nenabled = false\n[projection]\nenabled = false\n"),
    )
    .await;
    let acked: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut posters = Vec::new();
    for p in 0..4 {
        let (client, url, acked, stop) = (
            app.client.clone(),
            app.url("/hooks/okta/events"),
            acked.clone(),
            stop.clone(),
        );
        posters.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch = lifecycle_batch(&format!("p{p}-{i:06}"), 20);
                i += 1;
                let ok = client
                    .post(&url)
                    .header("authorization", SECRET)
                    .body(batch.to_string())
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 204);
                if ok {
                    let now = Instant::now();
                    let mut a = acked.lock().unwrap();
                    for e in batch["data"]["events"].as_array().unwrap() {
                        a.push((now, e["uuid"].as_str().unwrap().to_owned()));
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    redis.kill_9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in posters {
        p.await.unwrap();
    }
    redis.spawn();
    // The whole firehose in one reply (10 000+ entries): more than redis-rs's default 500 ms
    // response timeout allows on a loaded 2-core machine.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap();
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(app.firehose()).await.unwrap();
    let stored: HashSet<String> = reply
        .ids
        .iter()
        .map(|id| id.get::<String>("uuid").unwrap())
        .collect();
    let acked = acked.lock().unwrap();
    let lost = acked.iter().filter(|(_, u)| !stored.contains(u)).count();
    let acked_last_second = acked
        .iter()
        .filter(|(t, _)| *t + Duration::from_secs(1) >= killed_at)
        .count();
    eprintln!(
        "durability {durability} with redis {args:?}: {} acknowledged, {lost} lost, {acked_last_second} acknowledged in the last second",
        acked.len()
    );
    Outcome {
        acked: acked.len(),
        lost,
        acked_last_second,
    }
}

#[tokio::test]
async fn kill_9_of_redis_under_load_loses_what_the_durability_table_says() {
    // No persistence: a 204 meant "in memory"; the restarted Redis is empty.
    let none = kill_redis_under_load(&["--appendonly", "no"], "memory").await;
    assert!(none.acked > 0);
    assert_eq!(
        none.lost, none.acked,
        "without persistence every acknowledged event is lost"
    );

    // AOF with everysec: at most about the last second is lost.
    let everysec = kill_redis_under_load(
        &["--appendonly", "yes", "--appendfsync", "everysec"],
        "memory",
    )
    .await;
    assert!(everysec.acked > 0);
    assert!(
        everysec.lost <= everysec.acked_last_second,
        "everysec loses at most ~1 s: lost {} > {} acknowledged in the last second",
        everysec.lost,
        everysec.acked_last_second
    );

    // AOF with always and hooks.durability = "aof": nothing acknowledged is lost.
    let always =
        kill_redis_under_load(&["--appendonly", "yes", "--appendfsync", "always"], "aof").await;
    assert!(always.acked > 0);
    assert_eq!(
        always.lost, 0,
        "appendfsync always loses nothing acknowledged"
    );
}

#[tokio::test]
async fn a_durability_setting_redis_cannot_honour_stops_the_start_with_the_reason() {
    let redis = FaultRedis::start(&["--appendonly", "no"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = test_settings(
        &redis.url(),
        &random_prefix(),
        "[hooks]\ndurability = \"aof\"\n",
    );
    let err = Application::build_with_listener(settings, listener)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no append-only file"), "{err}");

    // everysec: only Redis >= 7.2 can make it durable per write (WAITAOF).
    let redis = FaultRedis::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = test_settings(
        &redis.url(),
        &random_prefix(),
        "[hooks]\ndurability = \"aof\"\n",
    );
    let built = Application::build_with_listener(settings, listener).await;
    if info.contains("redis_version:7.0") || info.contains("redis_version:6.") {
        let err = built.err().expect("refused before 7.2");
        assert!(err.to_string().contains("Redis >= 7.2"), "{err}");
    } else {
        assert!(built.is_ok(), "WAITAOF makes everysec durable per write");
    }

    // replicas:1 without a replica starts (one may connect later) but a delivery is not
    // acknowledged: WAIT sees no replica, so it is 503 (spool off here) and /readyz says why.
    let app = spawn_app_on(
        &redis.url(),
        &random_prefix(),
        "[hooks]\ndurability = \"replicas:1\"\n[spool]\nenabled = false\n[redis]\nresponse_timeout_ms = 600\n",
    )
    .await;
    let resp = app.post_events(&lifecycle_batch("norep", 2)).await;
    assert_eq!(resp.status(), 503);
    let (_, ready) = app.get_json("/readyz", None).await;
    assert_eq!(ready["durability"]["setting"], "replicas:1", "{ready}");
    assert!(
        ready["durability"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("only 0 replica"),
        "{ready}"
    );
}
