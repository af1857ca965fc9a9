//! The local spool (issue 16): deliveries answered 204 while Redis is down reach the streams
//! exactly once after it returns, also across `kill -9` of the adapter; torn tails are dropped;
//! a full spool answers 503.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};

use redis::AsyncCommands;
use serde_json::Value;

use crate::helpers::*;

/// Posts `n` deliveries of `per` events each, tagged `tag`; returns the uuids of the answered-204
/// ones and the statuses seen.
async fn post_batches(
    client: &reqwest::Client,
    url: &str,
    tag: &str,
    n: usize,
    per: usize,
) -> (Vec<String>, HashMap<u16, usize>) {
    let mut acked = Vec::new();
    let mut statuses = HashMap::new();
    for i in 0..n {
        let batch = lifecycle_batch(&format!("{tag}{i:04}"), per);
        let uuids: Vec<String> = batch["data"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["uuid"].as_str().unwrap().to_string())
            .collect();
        let status = match client
            .post(url)
            .header("authorization", SECRET)
            .body(batch.to_string())
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        *statuses.entry(status).or_default() += 1;
        if status == 204 {
            acked.extend(uuids);
        }
    }
    (acked, statuses)
}

/// Firehose uuids; panics on a duplicate.
async fn unique_firehose(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
    stream: &str,
) -> Vec<String> {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(stream).await.unwrap();
    let uuids: Vec<String> = reply
        .ids
        .iter()
        .map(|id| id.get::<String>("uuid").unwrap())
        .collect();
    let unique: HashSet<&String> = uuids.iter().collect();
    assert_eq!(
        unique.len(),
        uuids.len(),
        "a uuid appears twice in {stream}"
    );
    uuids
}

/// The value of an unlabelled metric in Prometheus text (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn assert_same_set(acked: &[String], stored: &[String]) {
    let acked: HashSet<&String> = acked.iter().collect();
    let stored: HashSet<&String> = stored.iter().collect();
    let lost: Vec<_> = acked.difference(&stored).take(5).collect();
    assert!(lost.is_empty(), "acknowledged but missing: {lost:?}");
    let extra: Vec<_> = stored.difference(&acked).take(5).collect();
    assert!(extra.is_empty(), "stored but never acknowledged: {extra:?}");
}

#[tokio::test]
async fn deliveries_answered_204_while_redis_is_down_reach_the_streams_exactly_once() {
    let mut redis = TestRedis::start_persistent();
    let app = spawn_app(&redis).await;
    let url = app.url("/hooks/okta/events");
    let (mut acked, before) = post_batches(&app.client, &url, "before", 10, 5).await;
    assert_eq!(before.get(&204), Some(&10));

    redis.server.stop();
    let (during, statuses) = post_batches(&app.client, &url, "during", 20, 5).await;
    assert_eq!(
        statuses.get(&204),
        Some(&20),
        "spooled deliveries get 204: {statuses:?}"
    );
    acked.extend(during);
    let (status, ready) = app.get_json("/readyz", None).await;
    assert_eq!(status, 200, "ready while spooling: {ready}");
    assert_eq!(ready["spool"]["state"], "spooling", "{ready}");
    assert_eq!(ready["spool"]["pending_batches"], 20, "{ready}");
    // The recorder is global to the test binary (other tests spool too): at least.
    assert!(metric(&app.metrics().await, "okta_adapter_spool_batches_total") >= 20.0);

    redis.server.restart().unwrap();
    let (after, _) = post_batches(&app.client, &url, "after", 10, 5).await;
    acked.extend(after);
    let spool = app.state.spool.get().unwrap().clone();
    assert!(
        eventually(20, || async { spool.status().pending_batches == 0 }).await,
        "spool drained: {:?}",
        spool.status()
    );
    let mut conn = app.conn().await;
    let stored = unique_firehose(&mut conn, &app.firehose()).await;
    assert_eq!(acked.len(), 200);
    assert_same_set(&acked, &stored);
    // The lifecycle route got them too, once each.
    let route = unique_firehose(&mut conn, &app.route("lifecycle")).await;
    assert_same_set(&acked, &route);
    assert_eq!(
        std::fs::metadata(spool.active_path()).unwrap().len(),
        0,
        "a drained spool file is truncated"
    );
    let (_, ready) = app.get_json("/readyz", None).await;
    assert_eq!(ready["spool"]["state"], "empty", "{ready}");
}

#[tokio::test]
async fn a_full_spool_answers_503_and_a_bad_delivery_is_never_spooled() {
    let mut redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        "[http]\nmax_body_bytes = 8192\n[spool]\nmax_bytes = 9000\n",
    )
    .await;
    redis.server.stop();
    let url = app.url("/hooks/okta/events");
    // ~6 KB per delivery of 10 events: one fits, two do not.
    let (_, first) = post_batches(&app.client, &url, "fill", 1, 10).await;
    assert_eq!(first.get(&204), Some(&1), "{first:?}");
    let (_, second) = post_batches(&app.client, &url, "over", 1, 10).await;
    assert_eq!(
        second.get(&503),
        Some(&1),
        "a full spool answers 503: {second:?}"
    );
    // The recorder is global to the test binary (other tests spool too): at least.
    assert!(metric(&app.metrics().await, "okta_adapter_spool_full_total") >= 1.0);
    let (status, ready) = app.get_json("/readyz", None).await;
    assert_eq!(status, 503, "a full spool cannot accept: {ready}");
    assert_eq!(ready["spool"]["state"], "full");
    // Malformed bodies are refused before the spool is considered.
    let resp = app.post_events_raw("{broken", Some(SECRET)).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(app.state.spool.get().unwrap().status().pending_batches, 1);
}

#[tokio::test]
async fn a_spool_file_left_with_a_torn_tail_is_cut_and_its_complete_records_drained() {
    use okta_adapter::spool::record::encode;
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let dir = std::env::temp_dir().join(format!("okta-adapter-spool-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let first = lifecycle_batch("torn-a", 3).to_string();
    let second = lifecycle_batch("torn-b", 2).to_string();
    let third = lifecycle_batch("torn-c", 2).to_string();
    let mut file = encode(1_700_000_000_000, first.as_bytes());
    file.extend(encode(1_700_000_000_001, second.as_bytes()));
    let torn = encode(1_700_000_000_002, third.as_bytes());
    file.extend(&torn[..torn.len() / 2]); // the crash came mid-write
    let path = dir.join("0000000000001-1-00000000.spool");
    std::fs::write(&path, &file).unwrap();

    let app = spawn_app_on(&redis.url(), &prefix, "").await;
    assert!(
        eventually(10, || async { app.uuids(&app.firehose()).await.len() == 5 }).await,
        "the two complete records are drained"
    );
    let uuids = app.uuids(&app.firehose()).await;
    assert!(uuids
        .iter()
        .all(|u| u.starts_with("torn-a") || u.starts_with("torn-b")));
    let entries = app.entries(&app.firehose()).await;
    assert_eq!(
        entries[0]["received"], "2023-11-14T22:13:20.000Z",
        "a drained entry keeps the time it was accepted"
    );
    assert!(
        eventually(5, || async { !path.exists() }).await,
        "a drained file of an earlier process is removed"
    );
    assert!(
        metric(
            &app.metrics().await,
            "okta_adapter_spool_torn_records_total"
        ) >= 1.0
    );
}

/// The real binary, on a given spool directory and prefix; stderr into `log`.
fn spawn_adapter(
    redis_url: &str,
    port: u16,
    prefix: &str,
    dir: &std::path::Path,
    log: &std::path::Path,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
        .arg("serve")
        .env("OKTA_ADAPTER__REDIS__URL", redis_url)
        .env("OKTA_ADAPTER__REDIS__PREFIX", prefix)
        .env("OKTA_ADAPTER__REDIS__RESPONSE_TIMEOUT_MS", "500")
        .env("OKTA_ADAPTER__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("OKTA_ADAPTER__HOOKS__SECRETS", format!("[\"{SECRET}\"]"))
        .env("OKTA_ADAPTER__SPOOL__DIR", dir)
        .env("OKTA_ADAPTER__SPOOL__DRAIN_INTERVAL_MS", "100")
        // Slow enough that a kill lands in the middle of a drain.
        .env("OKTA_ADAPTER__SPOOL__DRAIN_PAUSE_MS", "25")
        .env("OKTA_ADAPTER__REPORT__ENABLED", "false")
        .env("OKTA_ADAPTER__LOG__LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .unwrap()
}

fn kill_9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

async fn wait_up(client: &reqwest::Client, port: u16) {
    let up = eventually(20, || async {
        client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
    })
    .await;
    assert!(up, "adapter did not come up");
}

#[tokio::test]
async fn kill_9_of_the_adapter_while_spooling_and_while_draining_loses_and_duplicates_nothing() {
    let mut redis = TestRedis::start_persistent();
    let prefix = random_prefix();
    let firehose = format!("{prefix}:{{events}}:firehose");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("adapter.log");
    let spool_dir = dir.path().join("spool");
    let client = reqwest::Client::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/okta/events");

    let mut adapter = spawn_adapter(&redis.url(), port, &prefix, &spool_dir, &log);
    wait_up(&client, port).await;
    let (mut acked, _) = post_batches(&client, &url, "up", 5, 10).await;
    assert_eq!(acked.len(), 50);

    // Redis dies; deliveries keep coming and are spooled; the adapter is killed mid-stream.
    redis.server.stop();
    let poster = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { post_batches(&client, &url, "down", 400, 10).await })
    };
    let spooled = eventually(30, || async {
        spool_file_len(&spool_dir) > 40 * 10 * 1_000
    })
    .await;
    assert!(spooled, "deliveries are being spooled");
    kill_9(&mut adapter);
    let (during, statuses) = poster.await.unwrap();
    assert!(
        during.len() >= 400,
        "at least 40 deliveries answered 204: {statuses:?}"
    );
    assert!(
        statuses.contains_key(&0),
        "the kill cut deliveries off: {statuses:?}"
    );
    acked.extend(during);
    // And as if the kill had come mid-write: a torn record at the end of the file.
    let file = spool_files(&spool_dir).pop().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    std::io::Write::write_all(&mut f, &[200, 1, 0, 0, 1, 2, 3, 4, 5]).unwrap();
    drop(f);

    // Redis is back; a new adapter drains the file and is killed in the middle of that.
    redis.server.restart().unwrap();
    let mut conn = redis.conn().await;
    let mut adapter = spawn_adapter(&redis.url(), port, &prefix, &spool_dir, &log);
    let target = acked.len();
    let mid = eventually(30, || {
        let mut conn = conn.clone();
        let firehose = firehose.clone();
        async move {
            let n: usize = conn.xlen(&firehose).await.unwrap_or(0);
            n > 50 + 100
        }
    })
    .await;
    assert!(mid, "the drain started");
    kill_9(&mut adapter);
    let at_kill: usize = conn.xlen(&firehose).await.unwrap();
    assert!(
        at_kill < target,
        "killed while draining ({at_kill} of {target})"
    );

    // A third adapter finishes the drain: every acknowledged event exactly once.
    let mut adapter = spawn_adapter(&redis.url(), port, &prefix, &spool_dir, &log);
    wait_up(&client, port).await;
    let done = eventually(60, || {
        let mut conn = conn.clone();
        let firehose = firehose.clone();
        async move { conn.xlen::<_, usize>(&firehose).await.unwrap_or(0) >= target }
    })
    .await;
    assert!(done, "drain finished");
    let ready: Value = client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored = unique_firehose(&mut conn, &firehose).await;
    assert_same_set(&acked, &stored);
    kill_9(&mut adapter);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("torn record"),
        "the torn tail is logged:\n{logs}"
    );
    assert!(logs.contains("spooling them to disk"), "{logs}");
    assert!(ready["spool"].is_object(), "{ready}");
}

fn spool_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|x| x == "spool"));
    files.sort();
    files
}

fn spool_file_len(dir: &std::path::Path) -> u64 {
    spool_files(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Benchmark (ignored; run alone): `cargo test --test api bench_spool -- --ignored --nocapture`.
/// Deliveries/s into Redis, then into the spool with Redis down, then the drain rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_spool_ingest_and_drain() {
    let mut redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[projection]\nenabled = false\n").await;
    let url = app.url("/hooks/okta/events");
    let body = |tag: String| lifecycle_batch(&tag, 50).to_string();
    async fn load(
        url: &str,
        secs: u64,
        tag: &str,
        body: impl Fn(String) -> String + Sync,
    ) -> usize {
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let body = &body;
        let tasks = (0..8).map(|t| {
            let client = client.clone();
            async move {
                let mut ok = 0;
                let mut i = 0;
                while std::time::Instant::now() < deadline {
                    let r = client
                        .post(url)
                        .header("authorization", SECRET)
                        .body(body(format!("{tag}{t}-{i}")))
                        .send()
                        .await;
                    i += 1;
                    if r.is_ok_and(|r| r.status() == 204) {
                        ok += 1;
                    }
                }
                ok
            }
        });
        futures::future::join_all(tasks).await.into_iter().sum()
    }
    let secs = 3;
    let normal = load(&url, secs, "n", body).await;
    redis.server.stop();
    let spooled = load(&url, secs, "s", body).await;
    let spool = app.state.spool.get().unwrap().clone();
    redis.server.restart().unwrap();
    let started = std::time::Instant::now();
    assert!(eventually(120, || async { spool.status().pending_batches == 0 }).await);
    let drain = started.elapsed().as_secs_f64();
    let (n, s) = (normal as f64 / secs as f64, spooled as f64 / secs as f64);
    eprintln!(
        "normal ingest: {n:.0} deliveries/s ({:.0} events/s); while spooling: {s:.0} deliveries/s ({:.0}%); drain: {spooled} deliveries in {drain:.2} s = {:.0} deliveries/s",
        n * 50.0,
        100.0 * s / n,
        spooled as f64 / drain
    );
}
