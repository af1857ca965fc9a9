//! Several replicas on one Redis (or, with `OKTA_ADAPTER_TEST_REDIS_CLUSTER=1`, one 3-master
//! cluster): real `serve` processes behind round-robin in the test client, one of them killed
//! with `kill -9` in the middle of the load. Nothing a replica acknowledged may be lost or
//! doubled, and the survivors' consumers take over what the dead one had pending.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

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
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let env = [("OKTA_ADAPTER__REPORT__ENABLED", "false")];
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(ServeProcess::start(&redis.url(), &prefix, "all", &env).await);
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url("")).collect();
    let mut alive = vec![true; 3];
    let client = reqwest::Client::new();

    // 150 deliveries of 10 events (distinct users), round-robin; every 7th delivery is sent
    // again to another replica (Okta's at-least-once). Replica 1 dies after a third of them.
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut by_replica = [0usize; 3];
    for n in 0..150 {
        if n == 50 {
            replicas[1].kill_9();
            alive[1] = false;
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
    let mut conn = redis.conn().await;
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
    let support = create_key(&redis.url(), &prefix, "support");
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
}
