//! Event hook ingest, end to end: Okta → HTTP → Redis Streams.

use std::time::Duration;

use okta_adapter::fanout::entry_signature;
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn the_verification_challenge_is_echoed_after_auth() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let get = |secret: Option<&'static str>, challenge: Option<&'static str>| {
        let mut req = app.client.get(app.url("/hooks/okta/events"));
        if let Some(s) = secret {
            req = req.header("Authorization", s);
        }
        if let Some(c) = challenge {
            req = req.header("X-Okta-Verification-Challenge", c);
        }
        req.send()
    };

    let ok = get(Some(SECRET), Some("Jns3uXEgLmj3")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        ok.json::<Value>().await.unwrap(),
        json!({"verification": "Jns3uXEgLmj3"})
    );

    assert_eq!(get(None, Some("x")).await.unwrap().status(), 401);
    assert_eq!(get(Some("wrong"), Some("x")).await.unwrap().status(), 401);
    let missing = get(Some(SECRET), None).await.unwrap();
    assert_eq!(missing.status(), 400);
    assert!(missing
        .text()
        .await
        .unwrap()
        .contains("x-okta-verification-challenge"));
}

#[tokio::test]
async fn a_wrong_or_missing_secret_gets_401_and_writes_nothing() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let body = lifecycle_batch("auth", 3).to_string();
    for secret in [
        None,
        Some("wrong"),
        Some("test-secret-1x"),
        Some("Bearer test-secret-1"),
        Some(""),
    ] {
        let resp = app.post_events_raw(body.clone(), secret).await;
        assert_eq!(resp.status(), 401, "secret {secret:?}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"], "unauthorized");
    }
    // Only the streams made empty for their consumer groups exist; no event, no dedup key.
    assert!(app.entries(&app.firehose()).await.is_empty());
    assert!(app.entries(&app.route("lifecycle")).await.is_empty());
    assert_eq!(
        app.key_count().await,
        3,
        "only the empty firehose, lifecycle route and credential-imports streams made for their groups"
    );
}

#[tokio::test]
async fn both_configured_secrets_are_accepted_for_rotation() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let a = app
        .post_events_raw(lifecycle_batch("a", 1).to_string(), Some(SECRET))
        .await;
    let b = app
        .post_events_raw(lifecycle_batch("b", 1).to_string(), Some(SECOND_SECRET))
        .await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (204, 204));
    assert_eq!(app.uuids(&app.firehose()).await, vec!["a-00000", "b-00000"]);
}

#[tokio::test]
async fn a_custom_auth_header_is_honoured_case_insensitively() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[hooks]\nauth_header = \"X-Okta-Secret\"\n").await;
    let send = |name: &'static str| {
        app.client
            .post(app.url("/hooks/okta/events"))
            .header(name, SECRET)
            .body(lifecycle_batch("h", 1).to_string())
            .send()
    };
    assert_eq!(send("authorization").await.unwrap().status(), 401);
    assert_eq!(send("x-okta-secret").await.unwrap().status(), 204);
}

#[tokio::test]
async fn malformed_json_and_non_event_hook_bodies_get_400_and_write_nothing() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let cases: Vec<(String, &str)> = vec![
        ("{\"data\": {\"events\": [".into(), "not valid JSON"),
        ("".into(), "not valid JSON"),
        ("[]".into(), "not an Okta event hook"),
        (
            json!({"hello": "world"}).to_string(),
            "data.events is missing",
        ),
        (
            json!({"data": {"events": []}}).to_string(),
            "data.events is empty",
        ),
        (
            fixture("inline-token-request.json"),
            "expected `com.okta.event_hook`",
        ),
        (
            delivery(vec![
                json!({"published": "2026-01-01T00:00:00Z", "eventType": "user.lifecycle.create"}),
            ])
            .to_string(),
            "data.events[0]: `uuid` is missing",
        ),
        (
            // One good event and one bad one: the whole delivery is refused, nothing written.
            delivery(vec![
                log_event("good-1", "user.lifecycle.create", ("00u1", "a@b.c")),
                json!({"uuid": "bad", "eventType": "x", "published": "not a time"}),
            ])
            .to_string(),
            "data.events[1]: `published` is not an RFC 3339 time",
        ),
    ];
    for (body, expected) in cases {
        let resp = app.post_events_raw(body.clone(), Some(SECRET)).await;
        assert_eq!(resp.status(), 400, "body {body:.60}");
        let err: Value = resp.json().await.expect("errors are JSON");
        assert_eq!(err["error"], "bad_request");
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "`{msg}` should mention `{expected}`"
        );
    }
    assert!(app.entries(&app.firehose()).await.is_empty());
    assert_eq!(
        app.key_count().await,
        3,
        "no dedup key, no tenant index: only the three group-holding streams"
    );
}

#[tokio::test]
async fn an_oversized_body_gets_413_whether_declared_or_streamed() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[http]\nmax_body_bytes = 10000\n").await;
    let big = lifecycle_batch("big", 40).to_string();
    assert!(big.len() > 10_000);

    let declared = app.post_events_raw(big.clone(), Some(SECRET)).await;
    assert_eq!(declared.status(), 413);
    assert_eq!(
        declared.json::<Value>().await.unwrap()["error"],
        "payload_too_large"
    );

    // Chunked: no Content-Length, the limit is enforced while reading.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = big
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let streamed = app
        .post_events_raw(
            reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
            Some(SECRET),
        )
        .await;
    assert_eq!(streamed.status(), 413);

    let small = app
        .post_events_raw(lifecycle_batch("small", 2).to_string(), Some(SECRET))
        .await;
    assert_eq!(small.status(), 204, "a body under the limit still works");
    assert_eq!(app.entries(&app.firehose()).await.len(), 2);
}

#[tokio::test]
async fn the_same_batch_delivered_twice_lands_once_in_every_stream() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let batch = lifecycle_batch("dup", 5);
    for _ in 0..2 {
        assert_eq!(app.post_events(&batch).await.status(), 204);
    }
    // A batch that repeats a uuid inside itself also writes it once.
    let inner = delivery(vec![
        log_event("same", "user.lifecycle.suspend", ("00u1", "a@b.c")),
        log_event("same", "user.lifecycle.suspend", ("00u1", "a@b.c")),
    ]);
    assert_eq!(app.post_events(&inner).await.status(), 204);

    let firehose = app.uuids(&app.firehose()).await;
    assert_eq!(firehose.len(), 6, "{firehose:?}");
    assert_eq!(app.uuids(&app.route("lifecycle")).await.len(), 6);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("okta_adapter_events_duplicate_total{type=\"user.lifecycle.activate\"}")
    );
}

#[tokio::test]
async fn a_failed_stream_write_leaves_the_event_unseen_so_the_retry_stores_it() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let mut conn = app.conn().await;
    // The route stream's key holds a string: every XADD to it fails (WRONGTYPE).
    let _: () = conn
        .set(app.route("lifecycle"), "not a stream")
        .await
        .unwrap();
    let batch = lifecycle_batch("wrongtype", 1);
    assert_eq!(app.post_events(&batch).await.status(), 503);

    // Repaired; Okta's retry must store the event in the route, not skip it as a duplicate.
    let _: () = conn.del(app.route("lifecycle")).await.unwrap();
    assert_eq!(app.post_events(&batch).await.status(), 204);
    assert_eq!(app.uuids(&app.route("lifecycle")).await.len(), 1);
    // The firehose write of the failed attempt stays (a duplicate there, never a loss).
    assert_eq!(app.uuids(&app.firehose()).await.len(), 2);
}

#[tokio::test]
async fn a_failure_mid_batch_keeps_the_events_before_it_marked_and_the_rest_unseen() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        r#"
[[routes]]
name = "lifecycle"
event_types = ["user.lifecycle.*"]
[[routes]]
name = "deactivations"
event_types = ["user.lifecycle.deactivate"]
"#,
    )
    .await;
    let mut conn = app.conn().await;
    let _: () = conn
        .set(app.route("deactivations"), "not a stream")
        .await
        .unwrap();
    let user = ("00u1", "a@b.c");
    let batch = delivery(vec![
        log_event("mid-a", "user.lifecycle.suspend", user),
        log_event("mid-b", "user.lifecycle.deactivate", user),
        log_event("mid-c", "user.lifecycle.suspend", user),
    ]);
    assert_eq!(app.post_events(&batch).await.status(), 503);
    assert_eq!(app.uuids(&app.firehose()).await, ["mid-a", "mid-b"]);

    let _: () = conn.del(app.route("deactivations")).await.unwrap();
    assert_eq!(app.post_events(&batch).await.status(), 204);
    // mid-a was complete and marked: not written again. mid-b failed half-way, so it is
    // written again whole (its first firehose entry is a duplicate, never a loss); mid-c is new.
    assert_eq!(
        app.uuids(&app.firehose()).await,
        ["mid-a", "mid-b", "mid-b", "mid-c"]
    );
    assert_eq!(
        app.uuids(&app.route("lifecycle")).await,
        ["mid-a", "mid-b", "mid-b", "mid-c"]
    );
    assert_eq!(app.uuids(&app.route("deactivations")).await, ["mid-b"]);
}

#[tokio::test]
async fn an_event_is_a_duplicate_only_within_the_dedup_window() {
    let redis = TestRedis::start();
    // Maintenance (which trims the set) runs every 60 s: the expiry seen here is the script's
    // own window check, not the trim.
    let app = spawn_app_with(
        &redis,
        "[hooks]\ndedup_window_secs = 1\n[redis]\nmaintenance_interval_secs = 60\n",
    )
    .await;
    let batch = lifecycle_batch("window", 2);
    assert_eq!(app.post_events(&batch).await.status(), 204);
    assert_eq!(app.post_events(&batch).await.status(), 204);
    assert_eq!(
        app.uuids(&app.firehose()).await.len(),
        2,
        "within the window"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(app.post_events(&batch).await.status(), 204);
    assert_eq!(
        app.uuids(&app.firehose()).await.len(),
        4,
        "after the window the same uuids are new again"
    );
    assert_eq!(app.uuids(&app.route("lifecycle")).await.len(), 4);
}

#[tokio::test]
async fn trimming_the_dedup_set_removes_only_uuids_older_than_the_window() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[redis]\nmaintenance_interval_secs = 60\n").await;
    assert_eq!(
        app.post_events(&lifecycle_batch("trim", 3)).await.status(),
        204
    );
    let key = app.state.ingestor.keys().dedup();
    let mut conn = app.conn().await;
    // 25,000 uuids accepted in 1970 (far outside the 7-day window) next to the 3 fresh ones:
    // removing them takes three chunks of one trim round.
    let old: Vec<(i64, String)> = (0..25_000)
        .map(|i| (1_000 + i, format!("old-{i}")))
        .collect();
    let _: () = conn.zadd_multiple(&key, &old).await.unwrap();
    let mut manager = app.state.redis.clone();
    let ingestor = &app.state.ingestor;
    assert_eq!(
        ingestor.trim_dedup(&mut manager, None).await.unwrap(),
        25_000
    );
    let left: Vec<String> = conn.zrange(&key, 0, -1).await.unwrap();
    assert_eq!(left, ["trim-00000", "trim-00001", "trim-00002"]);
    assert_eq!(ingestor.trim_dedup(&mut manager, None).await.unwrap(), 0);
    // Seen from 8 days later, the fresh ones have expired too.
    let later = chrono::Utc::now() + chrono::Duration::days(8);
    assert_eq!(
        ingestor
            .trim_dedup(&mut manager, Some(later))
            .await
            .unwrap(),
        3
    );
    assert_eq!(conn.zcard::<_, u64>(&key).await.unwrap(), 0);
}

#[tokio::test]
async fn a_batch_of_500_events_is_stored_in_order_across_script_slices() {
    let redis = TestRedis::start();
    // Slices of 128 events: 500 events take four script calls.
    let app = spawn_app_with(&redis, "[hooks]\nmax_events_per_write = 128\n").await;
    let batch = lifecycle_batch("big", 500);
    assert_eq!(app.post_events(&batch).await.status(), 204);
    let expected: Vec<String> = (0..500).map(|i| format!("big-{i:05}")).collect();
    assert_eq!(app.uuids(&app.firehose()).await, expected);
    assert_eq!(app.uuids(&app.route("lifecycle")).await, expected);
    // Re-delivery after the fact: nothing new.
    assert_eq!(app.post_events(&batch).await.status(), 204);
    assert_eq!(app.entries(&app.firehose()).await.len(), 500);
}

#[tokio::test]
async fn a_slice_of_4500_events_is_marked_in_chunks_lua_can_unpack() {
    let redis = TestRedis::start();
    // One script call for 4,500 events: 9,000 ZADD arguments, more than Lua's unpack() takes
    // at once (~8,000), so the script must mark them in chunks.
    let app = spawn_app_with(&redis, "[hooks]\nmax_events_per_write = 5000\n").await;
    let batch = lifecycle_batch("huge", 4500);
    assert_eq!(app.post_events(&batch).await.status(), 204);
    let mut conn = app.conn().await;
    let marked: u64 = conn.zcard(app.state.ingestor.keys().dedup()).await.unwrap();
    assert_eq!(marked, 4500);
    assert_eq!(app.post_events(&batch).await.status(), 204);
    assert_eq!(app.entries(&app.firehose()).await.len(), 4500);
}

#[tokio::test]
async fn a_stream_entry_has_exactly_the_contract_fields() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        r#"
[hooks]
signing_key = "entry-signing-key"
[tenants]
rules = [{ kind = "email_domain", map = { "acme.com" = "acme" } }]
"#,
    )
    .await;
    let raw_event = r#"{"uuid":"9f1c2e34-0000-11ef-9a2b-0242ac120002","published":"2026-10-03T12:34:56.789Z","eventType":"user.lifecycle.suspend","version":0,"severity":"INFO","actor":{"id":"00uAdmin1","type":"User","alternateId":"admin@acme.com"},"outcome":{"result":"SUCCESS","reason":null},"target":[{"id":"00uJane1","type":"User","alternateId":"jane@ACME.com"}],  "unknownField":{"kept":[1,2.50,"x"]}}"#;
    let body =
        format!(r#"{{"eventType":"com.okta.event_hook","data":{{"events":[{raw_event}]}}}}"#);
    let before = chrono::Utc::now();
    assert_eq!(app.post_events_raw(body, Some(SECRET)).await.status(), 204);

    let entries = app.entries(&app.firehose()).await;
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    let mut names: Vec<&str> = e.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "actor",
            "event",
            "outcome",
            "published",
            "received",
            "sig",
            "tenant",
            "type",
            "user",
            "uuid",
            "v"
        ]
    );
    assert_eq!(e["v"], "1");
    assert_eq!(e["uuid"], "9f1c2e34-0000-11ef-9a2b-0242ac120002");
    assert_eq!(e["type"], "user.lifecycle.suspend");
    assert_eq!(e["published"], "2026-10-03T12:34:56.789Z");
    let received = chrono::DateTime::parse_from_rfc3339(&e["received"]).expect("RFC 3339");
    assert!(received >= before - chrono::Duration::seconds(1));
    assert_eq!(e["tenant"], "acme");
    assert_eq!(e["user"], "00uJane1");
    assert_eq!(e["actor"], "00uAdmin1");
    assert_eq!(e["outcome"], "SUCCESS");
    assert_eq!(
        e["event"], raw_event,
        "the event JSON is stored byte for byte"
    );
    assert_eq!(
        e["sig"],
        hex::encode(entry_signature(b"entry-signing-key", &e["uuid"], raw_event))
    );
    // Route entries are the same entry.
    assert_eq!(app.entries(&app.route("lifecycle")).await, entries);
}

#[tokio::test]
async fn without_a_signing_key_entries_carry_no_sig_and_empty_fields_stay_empty() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let event = json!({"uuid": "u-min", "published": "2026-10-03T12:00:00Z", "eventType": "system.import.start"});
    assert_eq!(app.post_events(&delivery(vec![event])).await.status(), 204);
    let e = &app.entries(&app.firehose()).await[0];
    assert!(!e.contains_key("sig"));
    for field in ["tenant", "user", "actor", "outcome"] {
        assert_eq!(e[field], "", "{field}");
    }
    assert!(
        app.entries(&app.route("lifecycle")).await.is_empty(),
        "not a lifecycle event"
    );
}

#[tokio::test]
async fn routes_select_by_event_type_and_tenant_and_tenants_are_remembered() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        r#"
[[routes]]
name = "lifecycle"
event_types = ["user.lifecycle.*"]
groups = ["products"]
[[routes]]
name = "acme-security"
event_types = ["user.account.lock", "user.lifecycle.suspend"]
tenants = ["acme"]
[[routes]]
name = "groups"
event_types = ["group.user_membership.*"]
[tenants]
rules = [{ kind = "group", pattern = "^tenant-(?P<tenant>[a-z0-9-]+)$" }]
"#,
    )
    .await;
    let jane = ("00uJane", "jane@example.com");
    let bob = ("00uBob", "bob@example.com");
    let events = vec![
        // Jane's tenant is only learned from this membership event ...
        group_add_event("g1", jane, "tenant-acme"),
        group_add_event("g2", bob, "tenant-globex"),
        // ... and carried by her later events, which then match the tenant-filtered route.
        log_event("s1", "user.lifecycle.suspend", jane),
        log_event("s2", "user.lifecycle.suspend", bob),
        log_event("l1", "user.account.lock", jane),
        log_event("x1", "user.session.start", jane),
        log_event(
            "d1",
            "user.lifecycle.delete.initiated",
            ("00uNobody", "n@x.org"),
        ),
    ];
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);

    assert_eq!(
        app.uuids(&app.firehose()).await,
        ["g1", "g2", "s1", "s2", "l1", "x1", "d1"]
    );
    assert_eq!(app.uuids(&app.route("lifecycle")).await, ["s1", "s2", "d1"]);
    assert_eq!(app.uuids(&app.route("acme-security")).await, ["s1", "l1"]);
    assert_eq!(app.uuids(&app.route("groups")).await, ["g1", "g2"]);
    let tenants: Vec<(String, String)> = app
        .entries(&app.firehose())
        .await
        .into_iter()
        .map(|e| (e["uuid"].clone(), e["tenant"].clone()))
        .collect();
    let t = |u: &str| tenants.iter().find(|(id, _)| id == u).unwrap().1.clone();
    assert_eq!(
        (t("g1"), t("s1"), t("x1")),
        ("acme".into(), "acme".into(), "acme".into())
    );
    assert_eq!((t("g2"), t("s2")), ("globex".into(), "globex".into()));
    assert_eq!(t("d1"), "");

    // Remembered across deliveries too.
    let later = delivery(vec![log_event("l2", "user.account.lock", jane)]);
    assert_eq!(app.post_events(&later).await.status(), 204);
    assert_eq!(
        app.uuids(&app.route("acme-security")).await,
        ["s1", "l1", "l2"]
    );
}

#[tokio::test]
async fn every_okta_sample_and_lifecycle_fixture_is_accepted() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let mut expected = vec![];
    let okta_sample = fixture("event-hook-user-session-start.json");
    expected.push((
        "user.session.start".to_string(),
        "00uz9fj5aT69fHVro1d6".to_string(),
    ));
    assert_eq!(
        app.post_events_raw(okta_sample, Some(SECRET))
            .await
            .status(),
        204
    );

    let dir = format!("{}/hooks/events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 25, "a fixture per user-lifecycle type");
    for path in files {
        let body = std::fs::read_to_string(&path).unwrap();
        let parsed: Value = serde_json::from_str(&body).unwrap();
        let event = &parsed["data"]["events"][0];
        let resp = app.post_events_raw(body.clone(), Some(SECRET)).await;
        assert_eq!(resp.status(), 204, "{}", path.display());
        let user = match event["eventType"].as_str().unwrap() {
            // Sign-in events carry the user as the actor; the rest as a User target.
            "user.session.start" | "user.session.end" | "user.authentication.sso" => {
                event["actor"]["id"].clone()
            }
            _ => event["target"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["type"] == "User")
                .unwrap()["id"]
                .clone(),
        };
        expected.push((
            event["eventType"].as_str().unwrap().to_string(),
            user.as_str().unwrap().to_string(),
        ));
    }
    let got: Vec<(String, String)> = app
        .entries(&app.firehose())
        .await
        .into_iter()
        .map(|e| (e["type"].clone(), e["user"].clone()))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_consumer_group_deleted_behind_the_services_back_is_recreated() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let stream = app.route("lifecycle");
    let mut conn = app.conn().await;
    let groups = |mut c: okta_adapter::store::RedisConn, s: String| async move {
        let info: redis::streams::StreamInfoGroupsReply =
            c.xinfo_groups(&s).await.unwrap_or_default();
        info.groups.into_iter().map(|g| g.name).collect::<Vec<_>>()
    };
    assert_eq!(groups(conn.clone(), stream.clone()).await, ["products"]);
    let _: () = conn.xgroup_destroy(&stream, "products").await.unwrap();
    assert!(groups(conn.clone(), stream.clone()).await.is_empty());
    // The maintenance loop (1 s in tests) puts it back without any request.
    assert!(
        eventually(5, || groups(conn.clone(), stream.clone()).map_ok_products()).await,
        "group was not re-created"
    );
}

/// Small adapter so the closure above reads as a sentence.
trait ProductsPresent {
    fn map_ok_products(self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;
}
impl<F> ProductsPresent for F
where
    F: std::future::Future<Output = Vec<String>> + Send + 'static,
{
    fn map_ok_products(self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> {
        Box::pin(async move { self.await == ["products"] })
    }
}

#[tokio::test]
async fn redis_down_mid_test_gives_503_and_nothing_is_lost_or_doubled_after_recovery() {
    let mut redis = TestRedis::start_persistent();
    // Without the spool (with it, the delivery is answered 204: tests/api/spool.rs).
    let app = spawn_app_with(&redis, "[spool]\nenabled = false\n").await;
    let before = lifecycle_batch("before", 20);
    let during = lifecycle_batch("during", 20);
    assert_eq!(app.post_events(&before).await.status(), 204);

    redis.server.stop();
    let started = std::time::Instant::now();
    let resp = app.post_events(&during).await;
    assert_eq!(resp.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "503 must beat Okta's 3 s timeout"
    );
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unavailable");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    redis.server.restart().unwrap();
    // Okta's retry of the failed delivery, and a stray re-delivery of the earlier one.
    let retried = eventually(5, || async {
        app.post_events(&during).await.status() == 204
    })
    .await;
    assert!(retried, "the adapter did not recover after Redis came back");
    assert_eq!(app.post_events(&before).await.status(), 204);

    let mut expected: Vec<String> = (0..20).map(|i| format!("before-{i:05}")).collect();
    expected.extend((0..20).map(|i| format!("during-{i:05}")));
    assert_eq!(app.uuids(&app.firehose()).await, expected);
    assert_eq!(app.uuids(&app.route("lifecycle")).await, expected);
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_redis_restart_without_persistence_does_not_wedge_anything() {
    let mut redis = TestRedis::start();
    // Without the spool, so the first 204 after the restart means "in Redis" (not "spooled").
    let app = spawn_app_with(&redis, "[spool]\nenabled = false\n").await;
    assert_eq!(
        app.post_events(&lifecycle_batch("one", 2)).await.status(),
        204
    );
    redis.server.restart().unwrap(); // all data and groups are gone
    let ok = eventually(5, || async {
        app.post_events(&lifecycle_batch("two", 2)).await.status() == 204
    })
    .await;
    assert!(ok);
    assert_eq!(app.uuids(&app.firehose()).await, ["two-00000", "two-00001"]);
    let ready = eventually(5, || async {
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    assert!(ready, "groups re-created after the restart");
    let mut conn = app.conn().await;
    let info: redis::streams::StreamInfoGroupsReply =
        conn.xinfo_groups(app.route("lifecycle")).await.unwrap();
    assert_eq!(info.groups.len(), 1);
    // The group was re-created from 0: the entries written before it came back are delivered.
    let read: redis::streams::StreamReadReply = conn
        .xread_options(
            &[app.route("lifecycle")],
            &[">"],
            &redis::streams::StreamReadOptions::default().group("products", "c1"),
        )
        .await
        .unwrap();
    assert_eq!(read.keys[0].ids.len(), 2);
}

#[tokio::test]
async fn shutdown_waits_for_an_in_flight_delivery() {
    let redis = TestRedis::start();
    let mut app = spawn_app(&redis).await;
    let body = lifecycle_batch("slow", 30).to_string().into_bytes();
    let (first, rest) = body.split_at(body.len() / 2);
    let (first, rest) = (
        bytes::Bytes::copy_from_slice(first),
        bytes::Bytes::copy_from_slice(rest),
    );
    // The body arrives in two halves, 500 ms apart; shutdown is requested in between, once the
    // first half has been handed to the connection (a fixed sleep raced with a loaded machine:
    // a request whose head had not arrived yet is not in flight, and the test saw a reset).
    let first_sent = std::sync::Arc::new(tokio::sync::Notify::new());
    let signal = first_sent.clone();
    let stream = futures::stream::unfold(0, move |step| {
        let (first, rest, signal) = (first.clone(), rest.clone(), signal.clone());
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(first), 1)),
                1 => {
                    signal.notify_one();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Some((Ok(rest), 2))
                }
                _ => None,
            }
        }
    });
    let client = app.client.clone();
    let url = app.url("/hooks/okta/events");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .header("authorization", SECRET)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::time::timeout(Duration::from_secs(10), first_sent.notified())
        .await
        .expect("the first half of the body was never sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;
    assert_eq!(in_flight.await.unwrap(), 204);
    assert_eq!(app.entries(&app.firehose()).await.len(), 30);
}

/// Issue 12 item 9: the ingest script tests a route's tenant filter `|a|b|` with a substring
/// search for `|tenant|`; a tenant id containing `|` (here from a permissive group pattern)
/// would have matched it. Such a value now names no tenant, and the filter matches whole ids.
#[tokio::test]
async fn a_tenant_with_a_bar_is_never_produced_and_route_filters_match_whole_ids() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        r#"
[[routes]]
name = "ab"
event_types = ["group.user_membership.add", "user.lifecycle.suspend"]
tenants = ["a", "b"]
[tenants]
rules = [{ kind = "group", pattern = "^tenant-(?P<tenant>.+)$" }]
"#,
    )
    .await;
    let events = vec![
        group_add_event("g1", ("00u1", "one@x.org"), "tenant-a|b"),
        group_add_event("g2", ("00u2", "two@x.org"), "tenant-ab"),
        group_add_event("g3", ("00u3", "three@x.org"), "tenant-b"),
        group_add_event("g4", ("00u4", "four@x.org"), "tenant-"),
        log_event("s1", "user.lifecycle.suspend", ("00u1", "one@x.org")),
        log_event("s3", "user.lifecycle.suspend", ("00u3", "three@x.org")),
    ];
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    assert_eq!(app.uuids(&app.route("ab")).await, ["g3", "s3"]);
    let tenants: Vec<String> = app
        .entries(&app.firehose())
        .await
        .into_iter()
        .map(|e| e["tenant"].clone())
        .collect();
    assert_eq!(tenants, ["", "ab", "b", "", "", "b"]);
}

/// Issue 12 item 6: each distinct `eventType` used to become a Prometheus label for the life of
/// the process; unknown types are now counted as `other`.
#[tokio::test]
async fn invented_event_types_are_counted_as_other_and_do_not_grow_metrics() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let before = app.metrics().await.len();
    let events = (0..2000)
        .map(|i| {
            log_event(
                &format!("inv{i}"),
                &format!("invented.type.n{i}"),
                ("00uInv", "inv@x.org"),
            )
        })
        .collect();
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    let after = app.metrics().await;
    assert!(
        !after.contains("invented.type"),
        "an invented type is a label"
    );
    assert!(
        after.contains("okta_adapter_events_received_total{type=\"other\"}"),
        "no `other` label"
    );
    // Other tests in this process may add a few series meanwhile; 2,000 types × 2 counters
    // would add hundreds of KB.
    let growth = after.len().saturating_sub(before);
    assert!(growth < 50_000, "/metrics grew by {growth} bytes");
}
