//! Failover on a Redis Cluster with replicas (issue 17): 3 masters + 3 replicas, the adapter
//! with `hooks.durability = "replicas:1"` (every 204 waits for `WAIT 1` on the ingest master).
//! The master holding the ingest slot is killed with `kill -9`; its replica is promoted; ingest
//! and lookups resume (the cluster connection refreshes its slot map, scripts are re-loaded on
//! `NOSCRIPT` on the new master) and every event the adapter acknowledged is still there, once.
//!
//! Runs on every `cargo test` (it starts its own 6-node cluster, independent of
//! `OKTA_ADAPTER_TEST_REDIS_CLUSTER`); each wait is bounded.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use okta_adapter::access::Role;
use okta_adapter::store::RedisConn;
use redis::AsyncCommands;
use serde_json::Value;

use crate::cluster::TestCluster;
use crate::helpers::*;

/// Posts `delivery` until the adapter acknowledges it (204), like Okta retrying, for at most
/// `limit`. The uuids when it was acknowledged, and how many answers were refusals.
async fn deliver_until_acknowledged(
    app: &TestApp,
    delivery: &Value,
    limit: Duration,
) -> (Option<Vec<String>>, usize) {
    let started = Instant::now();
    let mut refused = 0;
    while started.elapsed() < limit {
        let answer = app
            .client
            .post(app.url("/hooks/okta/events"))
            .header("authorization", SECRET)
            .json(delivery)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if answer.as_ref().is_ok_and(|r| r.status().as_u16() == 204) {
            let uuids = delivery["data"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["uuid"].as_str().unwrap().to_owned())
                .collect();
            return (Some(uuids), refused);
        }
        refused += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (None, refused)
}

async fn firehose_counts(conn: &mut RedisConn, firehose: &str) -> HashMap<String, usize> {
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(firehose).await.unwrap();
    let mut seen = HashMap::new();
    for entry in &reply.ids {
        let uuid: String = entry.get("uuid").unwrap();
        *seen.entry(uuid).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_ingest_master_fails_over_and_nothing_acknowledged_with_wait_is_lost() {
    let test_started = Instant::now();
    let mut cluster = TestCluster::start_with_replicas(3, 1);
    let prefix = random_prefix();
    let nodes = cluster
        .urls()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // No spool: a 204 here means the events reached the ingest master *and* its replica.
    let extra = format!(
        "[redis]\ncluster = true\ncluster_nodes = [{nodes}]\n\
         [hooks]\ndurability = \"replicas:1\"\n[spool]\nenabled = false\n"
    );
    let app = spawn_app_on(&cluster.url(), &prefix, &extra).await;
    let support = api_key(&app, Role::Support, None).await;
    let firehose = app.firehose();
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut conn = RedisConn::Cluster(client.get_async_connection().await.unwrap());

    // Before: 20 deliveries of 5 events, all acknowledged at once; users are looked up.
    let mut acknowledged: HashSet<String> = HashSet::new();
    for n in 0..20 {
        let (uuids, refused) = deliver_until_acknowledged(
            &app,
            &lifecycle_batch(&format!("a{n:02}x"), 5),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            refused, 0,
            "a healthy cluster with a synced replica acknowledges at once"
        );
        acknowledged.extend(uuids.expect("acknowledged"));
    }
    app.wait_for_user(&support, "00ua19x4", |u| u["status"] == "ACTIVE")
        .await;

    // kill -9 the master of the ingest slot, right after its last acknowledged write.
    let master = cluster.master_of(&firehose);
    let replica = cluster.replica_of(master);
    cluster.kill_9(master);
    let killed_at = Instant::now();

    // Deliveries go on (retried like Okta) while the replica is promoted. Until a replica of
    // the new master is back, `WAIT 1` cannot be satisfied: those deliveries are refused
    // (503, Okta retries), never acknowledged without a copy.
    let during = tokio::spawn({
        let app_url = app.url("");
        async move {
            let client = reqwest::Client::new();
            let mut answers = Vec::new();
            for n in 0..10 {
                let delivery = lifecycle_batch(&format!("d{n:02}x"), 5);
                let r = client
                    .post(format!("{app_url}/hooks/okta/events"))
                    .header("authorization", SECRET)
                    .json(&delivery)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                answers.push((delivery, r));
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            answers
        }
    });
    assert!(
        cluster.wait_for_role(replica, "role:master", Duration::from_secs(30)),
        "replica {replica} of the killed master {master} was not promoted"
    );
    let promoted_in = killed_at.elapsed();
    // The killed node comes back (a restarted pod) and rejoins as the new master's replica.
    cluster.restart(master);
    assert!(
        cluster.wait_for_role(master, "master_link_status:up", Duration::from_secs(30)),
        "the restarted node did not become a synced replica"
    );
    let answers = during.await.unwrap();
    for (delivery, status) in &answers {
        if *status == 204 {
            acknowledged.extend(
                delivery["data"]["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["uuid"].as_str().unwrap().to_owned()),
            );
        }
    }
    let refused_during = answers.iter().filter(|(_, s)| *s != 204).count();

    // After: ingest resumes on the promoted master (scripts re-loaded on NOSCRIPT, slot map
    // refreshed), bounded in time.
    let resumed = Instant::now();
    for n in 0..20 {
        let (uuids, _) = deliver_until_acknowledged(
            &app,
            &lifecycle_batch(&format!("b{n:02}x"), 5),
            Duration::from_secs(30),
        )
        .await;
        acknowledged.extend(uuids.expect("ingest resumed after the failover"));
    }
    let resumed_in = resumed.elapsed();
    // Lookups resume: a user written after the failover is projected and read; one from
    // before is still there.
    app.wait_for_user(&support, "00ub19x4", |u| u["status"] == "ACTIVE")
        .await;
    app.wait_for_user(&support, "00ua00x0", |u| u["status"] == "ACTIVE")
        .await;

    // Nothing acknowledged is lost, nothing is doubled.
    let seen = firehose_counts(&mut conn, &firehose).await;
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|u| !seen.contains_key(*u))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost: {lost:?}",
        lost.len()
    );
    let doubled: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(doubled.is_empty(), "doubled: {doubled:?}");
    assert!(acknowledged.len() >= 200);
    eprintln!(
        "failover: promoted in {:.1} s; {} of {} deliveries during it refused (retried), {} \
         acknowledged events all present; 20 deliveries after it in {:.1} s; test {:.1} s",
        promoted_in.as_secs_f64(),
        refused_during,
        answers.len(),
        acknowledged.len(),
        resumed_in.as_secs_f64(),
        test_started.elapsed().as_secs_f64()
    );
}
