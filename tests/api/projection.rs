//! User projections against real Redis: status rules, order and duplicate independence,
//! crash recovery, poison entries.

use std::collections::HashMap;

use okta_adapter::access::Role;
use okta_adapter::domain::tenant::TenantResolver;
use okta_adapter::projection::read::{assemble_record, timeline_of};
use okta_adapter::projection::update::{update_for_entry, ProjectionUpdate};
use okta_adapter::projection::write::rebuild;
use okta_adapter::projection::write::Applier;
use okta_adapter::store::Keys;
use proptest::prelude::*;
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::helpers::*;

fn t(minute: u32) -> String {
    format!("2026-10-01T09:{minute:02}:00.000Z")
}

#[tokio::test]
async fn each_okta_event_type_moves_the_status_as_okta_does() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let key = api_key(&app, Role::Support, None).await;
    let cases: &[(&[&str], &str)] = &[
        (&["user.lifecycle.create"], "STAGED"),
        (
            &["user.lifecycle.create", "user.lifecycle.activate"],
            "ACTIVE",
        ),
        (
            &["user.lifecycle.activate", "user.lifecycle.suspend"],
            "SUSPENDED",
        ),
        (
            &["user.lifecycle.suspend", "user.lifecycle.unsuspend"],
            "ACTIVE",
        ),
        (
            &["user.lifecycle.activate", "user.lifecycle.deactivate"],
            "DEPROVISIONED",
        ),
        (
            &["user.lifecycle.deactivate", "user.lifecycle.reactivate"],
            "PROVISIONED",
        ),
        (
            &[
                "user.lifecycle.deactivate",
                "user.lifecycle.delete.initiated",
            ],
            "DELETED",
        ),
        (
            &["user.lifecycle.activate", "user.account.lock"],
            "LOCKED_OUT",
        ),
        (&["user.account.lock", "user.account.unlock"], "ACTIVE"),
        (
            &["user.account.lock", "user.account.unlock_by_admin"],
            "ACTIVE",
        ),
        (
            &["user.lifecycle.activate", "user.account.reset_password"],
            "RECOVERY",
        ),
        (
            &[
                "user.account.reset_password",
                "user.account.update_password",
            ],
            "ACTIVE",
        ),
        (
            &["user.lifecycle.suspend", "user.account.update_password"],
            "SUSPENDED",
        ),
        (
            &["user.account.expire_password", "user.import.password"],
            "ACTIVE",
        ),
    ];
    let mut events = vec![];
    for (i, (types, _)) in cases.iter().enumerate() {
        let user = (format!("00ucase{i}"), format!("case{i}@example.com"));
        for (j, ty) in types.iter().enumerate() {
            events.push(event_at(
                &format!("c{i}-{j}"),
                ty,
                (&user.0, &user.1),
                &t(j as u32),
                "SUCCESS",
            ));
        }
    }
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    for (i, (types, expected)) in cases.iter().enumerate() {
        let user = app
            .wait_for_user(&key, &format!("00ucase{i}"), |u| u["status"] == *expected)
            .await;
        let why = user["why"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["field"] == "status")
            .unwrap();
        assert!(
            types.contains(&why["why"]["event_type"].as_str().unwrap()),
            "{types:?}: {why}"
        );
        assert_eq!(user["can_sign_in"], *expected == "ACTIVE", "{types:?}");
    }
}

#[tokio::test]
async fn a_record_carries_sign_ins_factors_groups_apps_and_why() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let key = api_key(&app, Role::Support, None).await;
    let jane = ("00uJane", "Jane.Doe@acme.com");
    let mut sign_in_fail = event_at("s1", "user.session.start", jane, &t(3), "FAILURE");
    sign_in_fail["actor"] = json!({"id": jane.0, "type": "User", "alternateId": jane.1});
    sign_in_fail["target"] = json!([]);
    let mut sign_in_ok = sign_in_fail.clone();
    sign_in_ok["uuid"] = json!("s2");
    sign_in_ok["published"] = json!(t(5));
    sign_in_ok["outcome"]["result"] = json!("SUCCESS");
    let mut later_fail = sign_in_fail.clone();
    later_fail["uuid"] = json!("s3");
    later_fail["published"] = json!(t(6));
    let mut factor = event_at("f1", "user.mfa.factor.activate", jane, &t(2), "SUCCESS");
    factor["target"].as_array_mut().unwrap().push(
        json!({"id": "mbl1", "type": "AuthenticatorEnrollment", "displayName": "Okta Verify"}),
    );
    let mut app_add = event_at(
        "a1",
        "application.user_membership.add",
        jane,
        &t(1),
        "SUCCESS",
    );
    app_add["target"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "0oaSurvey", "type": "AppInstance", "displayName": "Survey Platform"}));
    let events = vec![
        event_at("c1", "user.lifecycle.create", jane, &t(0), "SUCCESS"),
        // Same millisecond as the create, as one Okta API call emits them.
        event_at("c2", "user.lifecycle.activate", jane, &t(0), "SUCCESS"),
        group_add_event("g1", jane, "tenant-acme"),
        app_add,
        factor,
        sign_in_fail,
        sign_in_ok,
        later_fail,
    ];
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    let user = app
        .wait_for_user(&key, "jane.doe@ACME.com", |u| {
            u["recent_failed_sign_ins"] == 1
        })
        .await;
    assert_eq!(user["id"], "00uJane");
    assert_eq!(user["status"], "ACTIVE");
    assert_eq!(user["tenant"], "acme");
    assert_eq!(user["login"], "Jane.Doe@acme.com");
    assert_eq!(user["last_sign_in"], t(5));
    assert_eq!(user["last_failed_sign_in"], t(6));
    assert_eq!(user["groups"][0]["name"], "tenant-acme");
    assert_eq!(user["apps"][0]["name"], "Survey Platform");
    assert_eq!(user["factors"][0]["name"], "Okta Verify");
    assert_eq!(
        user["factors"][0]["why"]["event_type"],
        "user.mfa.factor.activate"
    );
    assert_eq!(user["freshness"], t(6));

    let (status, timeline) = app
        .get_json("/api/v1/users/00uJane/timeline?limit=3", Some(&key))
        .await;
    assert_eq!(status, 200);
    let uuids: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids, ["s3", "s2", "s1"], "newest first");
}

/// Posts the same events to two adapters (separate prefixes, one Redis): in order once, and
/// shuffled with duplicates; the records must be identical.
#[tokio::test]
async fn out_of_order_and_duplicate_deliveries_give_the_same_record() {
    let redis = TestRedis::start();
    let in_order = spawn_app(&redis).await;
    let shuffled = spawn_app(&redis).await;
    let jane = ("00uJane", "jane@acme.com");
    let events = vec![
        event_at("e1", "user.lifecycle.create", jane, &t(0), "SUCCESS"),
        event_at("e2", "user.lifecycle.activate", jane, &t(1), "SUCCESS"),
        group_add_event("e3", jane, "tenant-acme"),
        event_at("e4", "user.lifecycle.suspend", jane, &t(3), "SUCCESS"),
        event_at("e5", "user.account.update_password", jane, &t(4), "SUCCESS"),
        event_at("e6", "user.lifecycle.unsuspend", jane, &t(5), "SUCCESS"),
        event_at("e7", "user.account.lock", jane, &t(6), "SUCCESS"),
    ];
    for e in &events {
        assert_eq!(
            in_order
                .post_events(&delivery(vec![e.clone()]))
                .await
                .status(),
            204
        );
    }
    for i in [6, 3, 0, 5, 2, 6, 1, 4, 0, 3] {
        assert_eq!(
            shuffled
                .post_events(&delivery(vec![events[i].clone()]))
                .await
                .status(),
            204
        );
    }
    let k1 = api_key(&in_order, Role::Support, None).await;
    let k2 = api_key(&shuffled, Role::Support, None).await;
    in_order
        .wait_for_user(&k1, "00uJane", |u| {
            u["status"] == "LOCKED_OUT" && u["tenant"] == "acme"
        })
        .await;
    shuffled
        .wait_for_user(&k2, "00uJane", |u| {
            u["status"] == "LOCKED_OUT" && u["tenant"] == "acme" && u["freshness"] == t(6)
        })
        .await;
    // Under load one entry's apply may fail and wait to be reclaimed, after the status already
    // shows the last event: compare once each timeline holds all seven.
    async fn timeline(app: &TestApp, key: String) -> Value {
        app.get_json("/api/v1/users/00uJane/timeline", Some(&key))
            .await
            .1["events"]
            .clone()
    }
    for (app, key) in [(&in_order, &k1), (&shuffled, &k2)] {
        assert!(
            eventually(10, || async {
                timeline(app, key.clone()).await.as_array().map(Vec::len) == Some(7)
            })
            .await,
            "each event once: {}",
            timeline(app, key.clone()).await
        );
    }
    let a = in_order
        .get_json("/api/v1/users/00uJane", Some(&k1))
        .await
        .1;
    let b = shuffled
        .get_json("/api/v1/users/00uJane", Some(&k2))
        .await
        .1;
    // The user records, as before (`projection_freshness` beside them is the deployment's
    // newest applied event, which depends on the order the consumer applied them).
    assert_eq!(a["user"], b["user"], "the same record whatever the order");
    assert_eq!(timeline(&in_order, k1).await, timeline(&shuffled, k2).await);
}

fn entry_for(e: &Value, user: &str, tenant: &str) -> HashMap<String, String> {
    [
        ("uuid", e["uuid"].as_str().unwrap()),
        ("type", e["eventType"].as_str().unwrap()),
        ("published", e["published"].as_str().unwrap()),
        ("user", user),
        ("actor", "00uadmin"),
        ("outcome", e["outcome"]["result"].as_str().unwrap()),
        ("tenant", tenant),
        ("event", &e.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

const TYPES: &[&str] = &[
    "user.lifecycle.create",
    "user.lifecycle.activate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.lifecycle.deactivate",
    "user.account.lock",
    "user.account.unlock",
    "user.account.reset_password",
    "user.account.update_password",
    "group.user_membership.add",
    "group.user_membership.remove",
    "user.session.start",
];

fn resolver() -> TenantResolver {
    TenantResolver::from_settings(&test_settings("redis://x", "p", "").tenants.rules)
}

fn arbitrary_update(i: usize, ty: &str, minute: u32, outcome: bool) -> ProjectionUpdate {
    let user = ("00uProp", "prop@example.com");
    let mut e = if ty.starts_with("group.") {
        let mut g = group_add_event(&format!("p{i}"), user, "tenant-x");
        g["eventType"] = json!(ty);
        g
    } else {
        log_event(&format!("p{i}"), ty, user)
    };
    e["published"] = json!(format!("2026-10-01T09:{:02}:00.000Z", minute % 60));
    e["outcome"]["result"] = json!(if outcome { "SUCCESS" } else { "FAILURE" });
    update_for_entry(&entry_for(&e, "00uProp", ""), &resolver())
        .unwrap()
        .unwrap()
}

async fn project(
    conn: &mut okta_adapter::store::RedisConn,
    prefix: &str,
    updates: &[ProjectionUpdate],
) -> HashMap<String, String> {
    const KEEP: usize = 5;
    let keys = Keys::new(prefix);
    let applier = Applier::new(keys.clone(), KEEP);
    // Applied one at a time and in small batches, like separate deliveries.
    for chunk in updates.chunks(3) {
        let r = applier.apply(conn, chunk).await.unwrap();
        assert!(r.iter().all(|r| r.is_ok()));
    }
    let hash: HashMap<String, String> = conn.hgetall(keys.user("00uProp")).await.unwrap();
    // The timeline holds the newest KEEP distinct events, whatever the order.
    let mut newest: Vec<(&str, &str)> = updates
        .iter()
        .map(|u| (u.stamp.as_str(), u.uuid.as_str()))
        .collect();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    newest.dedup();
    newest.truncate(KEEP);
    let timeline = timeline_of("00uProp", &hash, KEEP);
    assert_eq!(
        timeline.iter().map(|t| t.uuid.as_str()).collect::<Vec<_>>(),
        newest.iter().map(|(_, uuid)| *uuid).collect::<Vec<_>>()
    );
    hash
}

#[tokio::test]
async fn two_events_with_the_same_stamp_give_the_same_projection_in_either_order() {
    let redis = TestRedis::start();
    let mut conn = crate::cluster::test_conn(&redis.url()).await;
    // Same millisecond and (forced here) the same uuid hash: the stamps collide.
    let mut a = arbitrary_update(1, "user.lifecycle.suspend", 3, true);
    let mut b = arbitrary_update(2, "group.user_membership.add", 3, true);
    b.stamp = a.stamp.clone();
    a.fields.push(("n".into(), "Name A".into()));
    b.fields.push(("n".into(), "Name B".into()));
    let mut hashes = vec![];
    for order in [[a.clone(), b.clone()], [b, a]] {
        let keys = Keys::new(random_prefix());
        let applier = Applier::new(keys.clone(), 5);
        for u in &order {
            let r = applier
                .apply(&mut conn, std::slice::from_ref(u))
                .await
                .unwrap();
            assert!(r[0].is_ok());
        }
        let h: HashMap<String, String> = conn.hgetall(keys.user("00uProp")).await.unwrap();
        hashes.push(h);
    }
    assert_eq!(hashes[0], hashes[1]);
    // One of the two colliding events is the timeline entry; the other's registers still apply,
    // and the status still comes from the suspend (its type is in the register's name).
    assert_eq!(timeline_of("00uProp", &hashes[0], 5).len(), 1);
    assert!(hashes[0].keys().any(|k| k.starts_with("g:")));
    let record = assemble_record("00uProp", &hashes[0]).unwrap();
    assert_eq!(record.status, "SUSPENDED");
}

#[test]
fn property_any_order_any_number_of_times_gives_the_same_projection() {
    let redis = TestRedis::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conn = rt.block_on(crate::cluster::test_conn(&redis.url()));
    let strategy = (
        proptest::collection::vec((0..TYPES.len(), 0u32..8, any::<bool>()), 1..14),
        any::<u64>(),
        proptest::collection::vec(0usize..100, 0..6),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |(events, seed, dups)| {
            let updates: Vec<ProjectionUpdate> = events
                .iter()
                .enumerate()
                .map(|(i, &(ty, minute, ok))| arbitrary_update(i, TYPES[ty], minute, ok))
                .collect();
            // A permutation of the same events, with some delivered again.
            let mut other = updates.clone();
            let mut rng = seed;
            for i in (1..other.len()).rev() {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                other.swap(i, (rng >> 33) as usize % (i + 1));
            }
            for d in &dups {
                let again = updates[d % updates.len()].clone();
                other.insert(d % (other.len() + 1), again);
            }
            let mut conn = conn.clone();
            let (a, b) = rt.block_on(async {
                let a = project(&mut conn, &random_prefix(), &updates).await;
                let b = project(&mut conn, &random_prefix(), &other).await;
                (a, b)
            });
            prop_assert_eq!(a, b);
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn a_consumer_killed_mid_batch_loses_and_doubles_nothing() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    // Events land in the firehose while no projection consumer runs.
    let ingest_only = spawn_app_on(&redis.url(), &prefix, "[projection]\nenabled = false\n").await;
    let mut events = vec![];
    for u in 0..40 {
        let user = (format!("00uK{u}"), format!("k{u}@example.com"));
        events.push(event_at(
            &format!("k{u}-a"),
            "user.lifecycle.activate",
            (&user.0, &user.1),
            &t(0),
            "SUCCESS",
        ));
        events.push(event_at(
            &format!("k{u}-s"),
            "user.lifecycle.suspend",
            (&user.0, &user.1),
            &t(1),
            "SUCCESS",
        ));
    }
    assert_eq!(
        ingest_only.post_events(&delivery(events)).await.status(),
        204
    );

    // A consumer reads a batch, applies part of it, and dies before acknowledging anything.
    let mut conn = ingest_only.state.redis.clone();
    let keys = Keys::new(prefix.clone());
    let _: () = conn
        .xgroup_create_mkstream(keys.firehose(), "projections", "0")
        .await
        .unwrap();
    let read: redis::streams::StreamReadReply = conn
        .xread_options(
            &[keys.firehose()],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group("projections", "doomed")
                .count(50),
        )
        .await
        .unwrap();
    let batch = &read.keys[0].ids;
    assert_eq!(batch.len(), 50);
    let half: Vec<ProjectionUpdate> = batch[..25]
        .iter()
        .map(|e| {
            let fields = e
                .map
                .iter()
                .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap()))
                .collect();
            update_for_entry(&fields, &resolver()).unwrap().unwrap()
        })
        .collect();
    Applier::new(keys.clone(), 50)
        .apply(&mut conn, &half)
        .await
        .unwrap();
    // It died between the apply scripts and the index pipeline: the hashes are written, the
    // login index entries are not (the first half holds users 0..=12).
    let _: () = redis::cmd("DEL")
        .arg(keys.login_index())
        .query_async(&mut conn)
        .await
        .unwrap();

    // A new process starts; it takes over the dead consumer's entries once they are idle.
    let app = spawn_app_on(&redis.url(), &prefix, "").await;
    let key = api_key(&app, Role::Support, None).await;
    for u in 0..40 {
        app.wait_for_user(&key, &format!("00uK{u}"), |v| v["status"] == "SUSPENDED")
            .await;
    }
    // The reclaimed entries changed nothing in the hashes, yet their index entries are back.
    for u in [0, 5, 12] {
        let found = eventually(5, || async {
            app.get_json(&format!("/api/v1/users/k{u}@example.com"), Some(&key))
                .await
                .0
                == 200
        })
        .await;
        assert!(found, "user {u} is found by login again");
    }
    for u in [0, 12, 39] {
        let (_, tl) = app
            .get_json(&format!("/api/v1/users/00uK{u}/timeline"), Some(&key))
            .await;
        assert_eq!(
            tl["events"].as_array().unwrap().len(),
            2,
            "user {u}: each event exactly once"
        );
    }
    let pending_empty = eventually(5, || {
        let mut c = conn.clone();
        let k = keys.firehose();
        async move {
            let p: redis::streams::StreamPendingReply =
                c.xpending(&k, "projections").await.unwrap();
            p.count() == 0
        }
    })
    .await;
    assert!(pending_empty, "every entry acknowledged");
}

#[tokio::test]
async fn poison_entries_go_to_the_dead_letter_stream_and_do_not_block() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        "[projection]\nmax_deliveries = 2\nclaim_idle_ms = 200\n",
    )
    .await;
    let key = api_key(&app, Role::Support, None).await;
    let keys = Keys::new(app.prefix.clone());
    let mut conn = app.conn().await;
    // 1. Not a LogEvent at all (written by something other than the adapter).
    let _: String = conn
        .xadd(
            keys.firehose(),
            "*",
            &[
                ("v", "1"),
                ("uuid", "junk"),
                ("type", "user.lifecycle.create"),
                ("published", "2026-10-01T00:00:00Z"),
                ("user", "00uJunk"),
                ("event", "{not json"),
            ],
        )
        .await
        .unwrap();
    // 2. A valid event whose user key was clobbered: applying fails every time.
    let _: () = conn
        .set(keys.user("00uClobbered"), "not a hash")
        .await
        .unwrap();
    let bad = delivery(vec![log_event(
        "clob-1",
        "user.lifecycle.activate",
        ("00uClobbered", "c@x.org"),
    )]);
    assert_eq!(app.post_events(&bad).await.status(), 204);
    // 3. Good events after them are still applied.
    let good = delivery(vec![log_event(
        "ok-1",
        "user.lifecycle.activate",
        ("00uFine", "f@x.org"),
    )]);
    assert_eq!(app.post_events(&good).await.status(), 204);
    app.wait_for_user(&key, "00uFine", |u| u["status"] == "ACTIVE")
        .await;

    let dead = eventually(10, || async {
        let reasons: Vec<String> = app
            .entries(&keys.dead_letter())
            .await
            .into_iter()
            .map(|e| format!("{}: {}", e["uuid"], e["reason"]))
            .collect();
        reasons.len() == 2
    })
    .await;
    let entries = app.entries(&keys.dead_letter()).await;
    assert!(dead, "dead letters: {entries:?}");
    assert_eq!(entries[0]["uuid"], "junk");
    assert!(
        entries[0]["reason"].contains("not a LogEvent"),
        "{}",
        entries[0]["reason"]
    );
    assert_eq!(entries[1]["uuid"], "clob-1");
    assert!(
        entries[1]["reason"].contains("deliveries"),
        "{}",
        entries[1]["reason"]
    );
    let pending: redis::streams::StreamPendingReply =
        conn.xpending(keys.firehose(), "projections").await.unwrap();
    assert_eq!(pending.count(), 0);
}

#[tokio::test]
async fn rebuild_recreates_every_projection_from_the_firehose() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let key = api_key(&app, Role::Support, None).await;
    let jane = ("00uJane", "jane@acme.com");
    let events = vec![
        event_at("r1", "user.lifecycle.activate", jane, &t(0), "SUCCESS"),
        group_add_event("r2", jane, "tenant-acme"),
        event_at("r3", "user.lifecycle.suspend", jane, &t(2), "SUCCESS"),
    ];
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    let before = app
        .wait_for_user(&key, "00uJane", |u| {
            u["status"] == "SUSPENDED" && u["tenant"] == "acme"
        })
        .await;
    let mut conn = app.state.redis.clone();
    let keys = Keys::new(app.prefix.clone());
    let _: () = conn.del(keys.user("00uJane")).await.unwrap();
    assert_eq!(
        app.get_json("/api/v1/users/00uJane", Some(&key)).await.0,
        404
    );
    let applied = rebuild(&mut conn, &keys, 50, &resolver(), |_| {})
        .await
        .unwrap();
    assert_eq!(applied, 3);
    let (status, after) = app
        .get_json("/api/v1/users/jane@acme.com", Some(&key))
        .await;
    assert_eq!(status, 200);
    assert_eq!(after["user"], before);
}

/// `projections rebuild` drops every projection key first. On a Redis Cluster they are spread
/// over every master (`u:{<id>}`), and `SCAN` walks one node: the rebuild scans each master.
/// Stale keys of 60 users no event knows (spread over the slots) must all be gone after it.
#[tokio::test]
async fn rebuild_drops_stale_projection_keys_on_every_node() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let key = api_key(&app, Role::Support, None).await;
    let jane = ("00uJane", "jane@acme.com");
    let events = vec![event_at(
        "s1",
        "user.lifecycle.activate",
        jane,
        &t(0),
        "SUCCESS",
    )];
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    app.wait_for_user(&key, "00uJane", |u| u["status"] == "ACTIVE")
        .await;
    let mut conn = app.conn().await;
    let keys = Keys::new(app.prefix.clone());
    let stale: Vec<String> = (0..60)
        .map(|i| keys.user(&format!("00uGhost{i}")))
        .collect();
    let slots: std::collections::HashSet<u16> = stale
        .iter()
        .map(|k| okta_adapter::store::conn::key_slot(k))
        .collect();
    assert!(slots.len() > 50, "spread over the slots");
    for k in &stale {
        let _: () = conn.hset(k, "s", "x").await.unwrap();
    }
    let _: () = conn
        .zadd(keys.users_index(), "ghost@x.org\u{0}00uGhost0", 0)
        .await
        .unwrap();
    let pattern = format!("{}:u:*", app.prefix);
    let before: Vec<String> = okta_adapter::store::scan_match(&mut conn, &pattern, None)
        .await
        .unwrap();
    assert_eq!(before.len(), 61, "scan_match sees every node's keys");

    let mut state_conn = app.state.redis.clone();
    let applied = rebuild(&mut state_conn, &keys, 50, &resolver(), |_| {})
        .await
        .unwrap();
    assert_eq!(applied, 1);
    let after: Vec<String> = okta_adapter::store::scan_match(&mut conn, &pattern, None)
        .await
        .unwrap();
    assert_eq!(after, vec![keys.user("00uJane")], "every stale key dropped");
    let listed: Vec<String> = conn.zrange(keys.users_index(), 0, -1).await.unwrap();
    assert_eq!(listed, vec!["jane@acme.com\u{0}00uJane".to_string()]);
}
