//! Replay into a route or a new consumer group, and dead-letter list / redrive / delete
//! (issue 16).

use okta_adapter::access::Role;
use redis::AsyncCommands;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn replay_counts_first_then_copies_matching_entries_with_their_uuids_into_a_new_group() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[projection]\nenabled = false\n").await;
    let mut events = Vec::new();
    for i in 0..6 {
        let user = if i % 2 == 0 { "00uA" } else { "00uB" };
        events.push(log_event(
            &format!("rp-{i}"),
            "user.lifecycle.suspend",
            (user, "x@example.com"),
        ));
    }
    events.push(log_event(
        "rp-other",
        "user.session.start",
        ("00uA", "x@example.com"),
    ));
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    let operator = api_key(&app, Role::Operator, None).await;
    let ask = json!({"user": "00uA", "event_type": "user.lifecycle.suspend", "group": "portal-rebuild", "dry_run": true});
    let (status, dry) = app
        .post_json("/api/v1/replay", &operator, Some(ask.clone()))
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (dry["matched"].as_u64(), dry["written"].as_u64()),
        (Some(3), Some(0))
    );
    let stream = format!("{}:{{events}}:replay:portal-rebuild", app.prefix);
    let mut conn = app.conn().await;
    let exists: bool = conn.exists(&stream).await.unwrap();
    assert!(!exists, "a dry run writes nothing");

    let mut real = ask;
    real["dry_run"] = json!(false);
    let (status, done) = app.post_json("/api/v1/replay", &operator, Some(real)).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["written"], 3);
    let entries = app.entries(&stream).await;
    let uuids: Vec<&str> = entries.iter().map(|e| e["uuid"].as_str()).collect();
    assert_eq!(
        uuids,
        ["rp-0", "rp-2", "rp-4"],
        "replayed entries keep their uuid"
    );
    assert!(entries
        .iter()
        .all(|e| e.contains_key("replayed_from") && e["type"] == "user.lifecycle.suspend"));
    let groups: redis::streams::StreamInfoGroupsReply = conn.xinfo_groups(&stream).await.unwrap();
    assert_eq!(groups.groups[0].name, "portal-rebuild");
    assert_eq!(
        groups.groups[0].lag,
        Some(3),
        "the new group reads every replayed entry"
    );

    // Into an existing route.
    let (status, r) = app
        .post_json(
            "/api/v1/replay",
            &operator,
            Some(json!({"route": "lifecycle", "user": "00uB"})),
        )
        .await;
    assert_eq!((status, r["written"].as_u64()), (200, Some(3)), "{r}");

    // Bad requests and other roles change nothing.
    for bad in [
        json!({"route": "lifecycle", "group": "g"}),
        json!({}),
        json!({"route": "no-such-route"}),
        json!({"group": "bad name!"}),
        json!({"group": "g", "from": "yesterday"}),
    ] {
        let (status, body) = app
            .post_json("/api/v1/replay", &operator, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad} → {body}");
    }
    let support = api_key(&app, Role::Support, None).await;
    let (status, _) = app
        .post_json("/api/v1/replay", &support, Some(json!({"group": "g"})))
        .await;
    assert_eq!(status, 403);
    assert_eq!(app.entries(&stream).await.len(), 3);
}

#[tokio::test]
async fn dead_letters_are_listed_with_reasons_redriven_to_the_projection_and_deleted() {
    let redis = TestRedis::start();
    // No projection consumer: the entry reaches the projection only by the redrive.
    let app = spawn_app_with(&redis, "[projection]\nenabled = false\n").await;
    let event = log_event(
        "dl-1",
        "user.lifecycle.suspend",
        ("00uDL", "dl@example.com"),
    );
    assert_eq!(app.post_events(&delivery(vec![event])).await.status(), 204);
    let mut conn = app.conn().await;
    let firehose = app.firehose();
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(&firehose).await.unwrap();
    let source_id = reply.ids[0].id.clone();
    let dlq = format!("{}:dead-letter", app.prefix);
    for (group, reason) in [("projections", "redis timeout"), ("someone-else", "poison")] {
        let _: String = conn
            .xadd(
                &dlq,
                "*",
                &[
                    ("source", firehose.as_str()),
                    ("id", source_id.as_str()),
                    ("group", group),
                    ("reason", reason),
                    ("uuid", "dl-1"),
                    ("type", "user.lifecycle.suspend"),
                    ("event", "{}"),
                ],
            )
            .await
            .unwrap();
    }
    let operator = api_key(&app, Role::Operator, None).await;
    let (status, list) = app.get_json("/api/v1/dead-letter", Some(&operator)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["depth"], 2);
    assert_eq!(list["records"][0]["reason"], "redis timeout");
    let (_, only) = app
        .get_json("/api/v1/dead-letter?reason=poison", Some(&operator))
        .await;
    assert_eq!(only["records"].as_array().unwrap().len(), 1);
    let poison_id = only["records"][0]["id"].as_str().unwrap().to_owned();

    // Redrive all of one reason: applied to the projection, removed from the stream.
    let (status, out) = app
        .post_json(
            "/api/v1/dead-letter/redrive",
            &operator,
            Some(json!({"reason": "redis timeout"})),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out[0]["outcome"], "applied", "{out}");
    let support = api_key(&app, Role::Support, None).await;
    let user = app
        .wait_for_user(&support, "00uDL", |u| u["status"] == "SUSPENDED")
        .await;
    assert_eq!(user["status"], "SUSPENDED");

    // A record of a consumer without redrive stays, with the reason.
    let (_, out) = app
        .post_json(
            "/api/v1/dead-letter/redrive",
            &operator,
            Some(json!({"ids": [poison_id]})),
        )
        .await;
    assert_eq!(out[0]["outcome"], "failed", "{out}");
    let (_, list) = app.get_json("/api/v1/dead-letter", Some(&operator)).await;
    assert_eq!(list["depth"], 1);

    // Delete; deleting again is 404; a bad request changes nothing.
    let del = |id: String| {
        let req = app
            .client
            .delete(app.url(&format!("/api/v1/dead-letter/{id}")))
            .bearer_auth(&operator);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(del(poison_id.clone()).await, 200);
    assert_eq!(del(poison_id).await, 404);
    let (status, _) = app
        .post_json("/api/v1/dead-letter/redrive", &operator, Some(json!({})))
        .await;
    assert_eq!(status, 400);
    let (status, _) = app.get_json("/api/v1/dead-letter", Some(&support)).await;
    assert_eq!(status, 403);
    assert!(app
        .metrics()
        .await
        .contains("okta_adapter_dead_letter_depth"));
}

#[tokio::test]
async fn the_replay_and_dead_letter_commands_do_what_the_api_does() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[projection]\nenabled = false\n").await;
    let events = (0..4)
        .map(|i| {
            log_event(
                &format!("cli-{i}"),
                "user.lifecycle.suspend",
                ("00uC", "c@example.com"),
            )
        })
        .collect();
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    let run = |args: &'static [&'static str]| {
        let (url, prefix) = (redis.url(), app.prefix.clone());
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
                .args(args)
                .env("OKTA_ADAPTER__REDIS__URL", url)
                .env("OKTA_ADAPTER__REDIS__PREFIX", prefix)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
        }
    };
    let dry = run(&[
        "replay",
        "--group",
        "rebuild",
        "--user",
        "00uC",
        "--dry-run",
    ])
    .await;
    assert_eq!(
        (dry["matched"].as_u64(), dry["written"].as_u64()),
        (Some(4), Some(0))
    );
    let done = run(&["replay", "--group", "rebuild", "--user", "00uC"]).await;
    assert_eq!(done["written"], 4);
    let stream = format!("{}:{{events}}:replay:rebuild", app.prefix);
    assert_eq!(
        app.uuids(&stream).await,
        ["cli-0", "cli-1", "cli-2", "cli-3"]
    );
    let list = run(&["dead-letter", "list"]).await;
    assert_eq!(list["depth"], 0);
}
