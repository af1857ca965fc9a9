//! Several replicas on one Redis (or, with `OKTA_ADAPTER_TEST_REDIS_CLUSTER=1`, one 3-master
//! cluster): real `serve` processes behind round-robin in the test client, running ingest load,
//! a bulk job against the Okta simulator with a small rate budget, and a report schedule that
//! fires every second on every replica, with a real (in-process) SMTP server; one replica is
//! killed with `kill -9` in the middle. Nothing a replica acknowledged may be lost or doubled,
//! the survivors' consumers and job workers take over what the dead one had pending, the job's
//! busiest rate window stays within the budget, and exactly one report email goes out.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::Value;

use crate::helpers::*;
use crate::processes::*;

/// Sends `delivery` like Okta behind a load balancer: to `first`, and on a failed answer (a
/// dead replica, a 503) once more to the next live replica — Okta's one retry. `Some(replica)`
/// when a replica acknowledged it.
async fn deliver(
    client: &reqwest::Client,
    urls: &[String],
    alive: &[bool],
    first: usize,
    delivery: &Value,
) -> Option<usize> {
    let mut tried = 0;
    let mut i = first;
    while tried < 2 {
        if alive[i % urls.len()] {
            tried += 1;
            let answer = client
                .post(format!("{}/hooks/okta/events", urls[i % urls.len()]))
                .header("authorization", SECRET)
                .json(delivery)
                .timeout(Duration::from_secs(3))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Some(i % urls.len());
            }
        }
        i += 1;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_with_one_killed_mid_load_lose_and_double_nothing_acknowledged() {
    let test_started = Instant::now();
    let redis = TestRedis::start();
    let prefix = random_prefix();
    // The whole "org" allows 20 user creates per 1 s window; the replicas share that budget.
    let sim = okta_sim::OktaSim::start(
        okta_sim::SimConfig {
            users_create_list_limit: 20,
            window: Duration::from_millis(1000),
            latency: Duration::from_millis(5),
            ..okta_sim::SimConfig::default()
        },
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let smtp = TestSmtp::start().await;
    let out = tempfile::tempdir().unwrap();
    // This installation has been scheduling reports for years, so the due (previous) month is
    // mailed even though this test recorded no event in it.
    let mut conn = redis.conn().await;
    let _: () = conn
        .set(format!("{prefix}:report:scheduled-since"), 946_684_800)
        .await
        .unwrap();
    let (sim_url, out_dir, smtp_url) = (sim.url(), out.path().display().to_string(), smtp.url());
    let env = [
        ("OKTA_ADAPTER__OKTA__ORG_URL", sim_url.as_str()),
        ("OKTA_ADAPTER__OKTA__API_TOKEN", "sim-token"),
        ("OKTA_ADAPTER__OKTA__RATE_WINDOW_MS", "1000"),
        ("OKTA_ADAPTER__OKTA__DEFAULT_LIMIT", "20"),
        ("OKTA_ADAPTER__JOBS__CLAIM_IDLE_MS", "500"),
        ("OKTA_ADAPTER__REPORT__ENABLED", "true"),
        // Every second, on every replica: the send lease must make it one email.
        ("OKTA_ADAPTER__REPORT__SCHEDULE", "* * * * * *"),
        ("OKTA_ADAPTER__REPORT__CHECK_INTERVAL_SECS", "1"),
        (
            "OKTA_ADAPTER__REPORT__RECIPIENTS",
            "[\"owner@example.com\"]",
        ),
        (
            "OKTA_ADAPTER__REPORT__FROM",
            "IAM reports <reports@example.com>",
        ),
        ("OKTA_ADAPTER__REPORT__OUTPUT_DIR", out_dir.as_str()),
        ("OKTA_ADAPTER__REPORT__LEASE_SECS", "5"),
        ("OKTA_ADAPTER__SMTP__URL", smtp_url.as_str()),
        ("OKTA_ADAPTER__SMTP__TIMEOUT_SECS", "2"),
    ];
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(ServeProcess::start(&redis.url(), &prefix, "all", &env).await);
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url("")).collect();
    let mut alive = vec![true; 3];
    let client = reqwest::Client::new();
    let operator = create_key(&redis.url(), &prefix, "operator");
    let support = create_key(&redis.url(), &prefix, "support");

    // A bulk job of 90 creates, uploaded through replica 0, worked by every replica's workers.
    let upload = client
        .post(format!("{}/api/v1/jobs?kind=create", urls[0]))
        .bearer_auth(&operator)
        .header("content-type", "text/csv")
        .body(users_csv("bulk", 90))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 202);
    let job_id = upload.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job_started = Instant::now();

    // A manual send of the due month at the same moment on every replica, on top of the
    // schedule firing on each of them.
    let month =
        okta_adapter::reporting::ReportMonth::of(chrono::Utc::now(), chrono_tz::UTC).previous();
    let sends = futures::future::join_all(urls.iter().map(|u| {
        client
            .post(format!("{u}/api/v1/reports/{month}/send"))
            .bearer_auth(&operator)
            .send()
    }))
    .await;
    for s in sends {
        let s = s.unwrap().status().as_u16();
        assert!(matches!(s, 200 | 409), "report send answered {s}");
    }

    // 150 deliveries of 10 events (distinct users), round-robin; every 7th delivery is sent
    // again to another replica (Okta's at-least-once). Replica 1 dies after a third of them,
    // while the job runs.
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut by_replica = [0usize; 3];
    let mut job_pending_at_kill = None;
    for n in 0..150 {
        if n == 50 {
            replicas[1].kill_9();
            alive[1] = false;
            let job: Value = client
                .get(format!("{}/api/v1/jobs/{job_id}", urls[0]))
                .bearer_auth(&operator)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            job_pending_at_kill = job["pending"].as_u64();
        }
        let delivery = lifecycle_batch(&format!("r{n:03}"), 10);
        let uuids: Vec<String> = delivery["data"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["uuid"].as_str().unwrap().to_owned())
            .collect();
        if let Some(r) = deliver(&client, &urls, &alive, n, &delivery).await {
            by_replica[r] += 1;
            acknowledged.extend(uuids.iter().cloned());
        }
        if n % 7 == 0 {
            deliver(&client, &urls, &alive, n + 1, &delivery).await;
        }
    }
    assert_eq!(
        acknowledged.len(),
        1500,
        "every delivery was acknowledged by some replica"
    );
    assert!(
        by_replica.iter().all(|&n| n > 0),
        "round-robin reached every replica: {by_replica:?}"
    );

    // Each acknowledged event exactly once in the firehose and in the lifecycle route.
    for stream in [
        format!("{prefix}:{{events}}:firehose"),
        format!("{prefix}:{{events}}:route:lifecycle"),
    ] {
        let reply: redis::streams::StreamRangeReply = conn.xrange_all(&stream).await.unwrap();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for entry in &reply.ids {
            let uuid: String = entry.get("uuid").unwrap();
            *seen.entry(uuid).or_default() += 1;
        }
        let doubled: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
        assert!(doubled.is_empty(), "{stream}: doubled {doubled:?}");
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|u| !seen.contains_key(*u))
            .collect();
        assert!(
            missing.is_empty(),
            "{stream}: lost {} acknowledged",
            missing.len()
        );
    }

    // The projection consumers of the survivors take over what the dead one had pending:
    // every user ends up projected and nothing stays pending.
    let api = &replicas[0];
    for n in (0..150).step_by(13) {
        let user = format!("00ur{n:03}9");
        let mut found = false;
        for _ in 0..200 {
            let r = api
                .client
                .get(api.url(&format!("/api/v1/users/{user}")))
                .bearer_auth(&support)
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(found, "{user} was never projected");
    }
    let firehose = format!("{prefix}:{{events}}:firehose");
    let drained = eventually(20, || {
        let mut conn = conn.clone();
        let firehose = firehose.clone();
        async move {
            let pending: redis::streams::StreamPendingReply =
                conn.xpending(&firehose, "projections").await.unwrap();
            pending.count() == 0
        }
    })
    .await;
    assert!(drained, "entries of the killed replica stayed pending");
    let consumers: redis::streams::StreamInfoConsumersReply = conn
        .xinfo_consumers(&firehose, "projections")
        .await
        .unwrap();
    assert!(
        consumers.consumers.len() >= 2,
        "the consumer group spread over the replicas: {} consumers",
        consumers.consumers.len()
    );

    // The job: every row exactly once (the rows the dead replica had in flight were claimed by
    // the survivors), every user created once, and the shared budget held.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (job, finished) = loop {
        let job: Value = client
            .get(format!("{}/api/v1/jobs/{job_id}", urls[0]))
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["pending"] == 0 && job["state"] == "done" {
            break (job, true);
        }
        if Instant::now() > deadline {
            break (job, false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(finished, "the job did not finish: {job}");
    let job_secs = job_started.elapsed().as_secs_f64();
    assert_eq!(
        (job["done"].as_u64(), job["failed"].as_u64()),
        (Some(90), Some(0)),
        "{job}"
    );
    for i in 0..90 {
        assert_eq!(
            sim.users_with_login(&format!("bulk{i}@example.com")),
            1,
            "user {i}"
        );
    }
    let results = client
        .get(format!(
            "{}/api/v1/jobs/{job_id}/results?format=jsonl",
            urls[2]
        ))
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
        (2..92).collect::<Vec<u64>>(),
        "each row exactly once"
    );
    let stats = sim.stats();
    let busiest = stats["busiest_window"]["users-create-list"]
        .as_u64()
        .unwrap();
    assert_eq!(stats["rejected_429"], 0, "{stats}");
    assert!(
        busiest <= 20,
        "busiest 1 s window: {busiest} creates: {stats}"
    );

    // Exactly one report email, however many replicas and triggers fired.
    assert!(
        eventually(15, || async { !smtp.received().is_empty() }).await,
        "the due month was mailed"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.received().len(), 1, "exactly one report email");
    let sent: Option<String> = conn
        .get(format!("{prefix}:{{report}}:sent:{month}"))
        .await
        .unwrap();
    assert!(sent.is_some_and(|s| s.contains("message_id")));
    eprintln!(
        "replicas: deliveries acknowledged per replica {by_replica:?}; job of 90 creates done in \
         {job_secs:.1} s ({} pending when replica 1 was killed), busiest 1 s window {busiest}/20; \
         1 report email; test {:.1} s",
        job_pending_at_kill.unwrap_or(0),
        test_started.elapsed().as_secs_f64()
    );
}
