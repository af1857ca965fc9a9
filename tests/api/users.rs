//! The lookup API: keys, roles, tenant scoping and the audit stream.

use okta_adapter::access::Role;
use okta_adapter::store::Keys;
use serde_json::{json, Value};

use crate::helpers::*;

/// Two tenants with two users each, one user without tenant; returns the app and a support key.
async fn two_tenants(redis: &TestRedis) -> (TestApp, String) {
    let app = spawn_app(redis).await;
    let support = api_key(&app, Role::Support, None).await;
    let mut events = vec![];
    for (i, (id, login, group)) in [
        ("00uA1", "alice@acme.com", "tenant-acme"),
        ("00uA2", "adam@acme.com", "tenant-acme"),
        ("00uG1", "gina@globex.com", "tenant-globex"),
        ("00uG2", "gus@globex.com", "tenant-globex"),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(group_add_event(&format!("g{i}"), (id, login), group));
        events.push(log_event(
            &format!("a{i}"),
            "user.lifecycle.activate",
            (id, login),
        ));
    }
    events.push(log_event(
        "n1",
        "user.lifecycle.suspend",
        ("00uN1", "nobody@else.org"),
    ));
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    for id in ["00uA1", "00uA2", "00uG1", "00uG2"] {
        app.wait_for_user(&support, id, |u| {
            u["tenant"].is_string() && u["status"] == "ACTIVE"
        })
        .await;
    }
    app.wait_for_user(&support, "00uN1", |u| u["status"] == "SUSPENDED")
        .await;
    app.wait_for_listed(&support, "", 5).await;
    app.wait_for_listed(&support, "tenant=acme", 2).await;
    app.wait_for_listed(&support, "tenant=globex", 2).await;
    (app, support)
}

#[tokio::test]
async fn no_key_bad_key_and_revoked_key_get_401_and_wrong_role_403() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    assert_eq!(app.get_json("/api/v1/users/00uX", None).await.0, 401);
    assert_eq!(
        app.get_json("/api/v1/users/00uX", Some("oka_000000000000_nope"))
            .await
            .0,
        401
    );
    assert_eq!(
        app.get_json("/api/v1/users/00uX", Some("garbage")).await.0,
        401
    );
    let support = api_key(&app, Role::Support, None).await;
    // A valid id with a wrong secret.
    let forged = format!("{}{}", &support[..support.len() - 4], "0000");
    assert_eq!(
        app.get_json("/api/v1/users/00uX", Some(&forged)).await.0,
        401
    );
    let operator = api_key(&app, Role::Operator, None).await;
    let (status, body) = app.get_json("/api/v1/users/00uX", Some(&operator)).await;
    assert_eq!(status, 403);
    assert!(body["message"].as_str().unwrap().contains("operator"));
    assert_eq!(
        app.get_json("/api/v1/users/00uX", Some(&support)).await.0,
        404
    );

    // Revocation through the operator API.
    let id = support.split('_').nth(1).unwrap();
    let resp = app
        .client
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        app.get_json("/api/v1/users/00uX", Some(&support)).await.0,
        401
    );
}

#[tokio::test]
async fn a_client_admin_never_sees_another_tenants_user_list_count_or_timeline() {
    let redis = TestRedis::start();
    let (app, support) = two_tenants(&redis).await;
    let acme = api_key(&app, Role::ClientAdmin, Some("acme")).await;

    // Own tenant: by id, login (any case) and timeline.
    let (s, body) = app
        .get_json("/api/v1/users/ALICE@acme.com", Some(&acme))
        .await;
    assert_eq!((s, body["user"]["id"].clone()), (200, json!("00uA1")));
    // Every answer carries the projection's freshness: the newest event applied (all of
    // these events were published at the same time).
    const NEWEST: &str = "2026-10-01T09:00:00.000Z";
    assert_eq!(body["projection_freshness"], NEWEST, "{body}");
    let (s, timeline) = app
        .get_json("/api/v1/users/00uA2/timeline", Some(&acme))
        .await;
    assert_eq!(s, 200);
    assert_eq!(timeline["projection_freshness"], NEWEST, "{timeline}");
    let (_, by_id) = app.get_json("/api/v1/users/00uA2", Some(&acme)).await;
    assert_eq!(by_id["projection_freshness"], NEWEST, "{by_id}");

    // Another tenant's user, and a user without tenant, look exactly like no user at all.
    for other in ["00uG1", "gina@globex.com", "00uN1"] {
        let (s, body) = app
            .get_json(&format!("/api/v1/users/{other}"), Some(&acme))
            .await;
        let (s2, body2) = app
            .get_json(&format!("/api/v1/users/{other}-missing"), Some(&acme))
            .await;
        assert_eq!((s, s2), (404, 404), "{other}");
        assert_eq!(body["error"], body2["error"]);
        assert_eq!(body["message"], format!("no user `{other}`"));
        let (s, _) = app
            .get_json(&format!("/api/v1/users/{other}/timeline"), Some(&acme))
            .await;
        assert_eq!(s, 404, "timeline of {other}");
    }

    // Lists: only acme, whatever is asked; another tenant explicitly is refused.
    let (s, list) = app.get_json("/api/v1/users", Some(&acme)).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["00uA2", "00uA1"], "login order: adam, alice");
    assert_eq!(
        list["total_indexed"], 2,
        "the count is the tenant's, not everyone's"
    );
    assert_eq!(
        app.get_json("/api/v1/users?tenant=globex", Some(&acme))
            .await
            .0,
        403
    );
    assert_eq!(
        app.get_json("/api/v1/users?tenant=acme&login_prefix=g", Some(&acme))
            .await
            .1["users"],
        json!([])
    );

    // Support sees everyone.
    let (_, all) = app
        .get_json("/api/v1/users?limit=500", Some(&support))
        .await;
    assert_eq!(all["users"].as_array().unwrap().len(), 5);
    assert_eq!(all["total_indexed"], 5);
    let (_, globex) = app
        .get_json("/api/v1/users?tenant=globex", Some(&support))
        .await;
    assert_eq!(globex["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn lists_filter_by_status_and_prefix_and_page_with_a_cursor() {
    let redis = TestRedis::start();
    let (app, support) = two_tenants(&redis).await;
    let (_, suspended) = app
        .get_json("/api/v1/users?status=SUSPENDED", Some(&support))
        .await;
    let ids: Vec<&str> = suspended["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["00uN1"]);
    let (s, bad) = app
        .get_json("/api/v1/users?status=SLEEPING", Some(&support))
        .await;
    assert_eq!(s, 400);
    assert!(
        bad["message"].as_str().unwrap().contains("UserStatus"),
        "{bad}"
    );
    // The schema declares the statuses; an empty one is not "no filter".
    assert_eq!(
        app.get_json("/api/v1/users?status=", Some(&support))
            .await
            .0,
        400
    );

    let (_, g) = app
        .get_json("/api/v1/users?login_prefix=G", Some(&support))
        .await;
    assert_eq!(g["users"].as_array().unwrap().len(), 2);

    let mut seen = vec![];
    let mut path = "/api/v1/users?limit=2".to_string();
    loop {
        let (s, page) = app.get_json(&path, Some(&support)).await;
        assert_eq!(s, 200);
        seen.extend(
            page["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["login"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/users?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "adam@acme.com",
            "alice@acme.com",
            "gina@globex.com",
            "gus@globex.com",
            "nobody@else.org"
        ]
    );
    assert_eq!(
        app.get_json("/api/v1/users?after=zz", Some(&support))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn support_reads_are_audited_with_the_reason_and_client_admin_reads_are_not() {
    let redis = TestRedis::start();
    let (app, support) = two_tenants(&redis).await;
    let acme = api_key(&app, Role::ClientAdmin, Some("acme")).await;
    let audit = Keys::new(app.prefix.clone()).audit();
    let before = app.entries(&audit).await.len();

    let resp = app
        .client
        .get(app.url("/api/v1/users/gina@globex.com"))
        .bearer_auth(&support)
        .header("x-audit-reason", "ticket SUP-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.get_json("/api/v1/users/00uA1", Some(&acme)).await;

    let entries = app.entries(&audit).await;
    assert_eq!(entries.len(), before + 1);
    let e = entries.last().unwrap();
    assert_eq!(e["action"], "read-user");
    assert_eq!(e["subject"], "00uG1");
    assert_eq!(e["role"], "support");
    assert_eq!(e["reason"], "ticket SUP-1234");
    assert_eq!(e["key"], support.split('_').nth(1).unwrap());
    assert!(chrono::DateTime::parse_from_rfc3339(&e["at"]).is_ok());
}

#[tokio::test]
async fn operators_manage_keys_over_http_and_keys_are_stored_only_as_hashes() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let operator = api_key(&app, Role::Operator, None).await;
    let create = |body: Value| {
        app.client
            .post(app.url("/api/v1/keys"))
            .bearer_auth(&operator)
            .json(&body)
            .send()
    };
    let resp = create(json!({"role": "client-admin", "tenant": "acme"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("oka_"));
    assert_eq!(
        create(json!({"role": "client-admin"}))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        create(json!({"role": "support", "tenant": "acme"}))
            .await
            .unwrap()
            .status(),
        400
    );

    let (s, list) = app.get_json("/api/v1/keys", Some(&operator)).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(token.split('_').nth(2).unwrap()));
    let secret = token.split('_').nth(2).unwrap();
    let mut conn = app.conn().await;
    let keys: Vec<String> =
        redis::AsyncCommands::keys(&mut conn, format!("{}:apikey*", app.prefix))
            .await
            .unwrap();
    for k in keys {
        let dump: Vec<String> = redis::cmd("DUMP")
            .arg(&k)
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await
            .unwrap()
            .map(|b| vec![String::from_utf8_lossy(&b).to_string()])
            .unwrap_or_default();
        assert!(!dump.concat().contains(secret), "secret stored in {k}");
    }
    let (s, _) = app.get_json("/api/v1/keys", Some(&token)).await;
    assert_eq!(s, 403, "a client-admin key cannot manage keys");
}

/// Issue 12 item 2: `""` used to become "no tenant", which the user list read as "every tenant".
#[tokio::test]
async fn client_admin_keys_without_a_valid_tenant_are_refused_and_legacy_ones_get_401() {
    let redis = TestRedis::start();
    let (app, support) = two_tenants(&redis).await;
    let operator = api_key(&app, Role::Operator, None).await;
    for tenant in ["", "   ", "a|b", "Acme", "-x", &"a".repeat(64)] {
        let (s, body) = app
            .post_json(
                "/api/v1/keys",
                &operator,
                Some(json!({"role": "client-admin", "tenant": tenant})),
            )
            .await;
        assert_eq!(s, 400, "tenant {tenant:?}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("tenant"),
            "{body}"
        );
    }
    let (_, list) = app.get_json("/api/v1/keys", Some(&operator)).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "nothing stored: {list}");

    // A key stored before tenant ids were checked: a client-admin with `tenant = ""`.
    let (id, secret) = ("0123456789ab", "legacysecret");
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()));
    let mut conn = app.conn().await;
    let keys = Keys::new(app.prefix.clone());
    for tenant in ["", "a|b"] {
        let _: () = redis::AsyncCommands::hset_multiple(
            &mut conn,
            keys.api_key(id),
            &[
                ("digest", digest.as_str()),
                ("role", "client-admin"),
                ("tenant", tenant),
                ("created", "2026-01-01T00:00:00Z"),
                ("revoked", "0"),
            ],
        )
        .await
        .unwrap();
        let legacy = format!("oka_{id}_{secret}");
        for path in ["/api/v1/users", "/api/v1/users/00uA1", "/api/v1/jobs"] {
            let (s, body) = app.get_json(path, Some(&legacy)).await;
            assert_eq!(s, 401, "{path} with tenant {tenant:?}: {body}");
        }
    }

    // A tenant filter is a tenant id too: `tenant=` is not "no filter".
    for bad in ["", "a%7Cb"] {
        let (s, body) = app
            .get_json(&format!("/api/v1/users?tenant={bad}"), Some(&support))
            .await;
        assert_eq!(s, 400, "tenant={bad}: {body}");
    }
    let (s, body) = app
        .get_json("/api/v1/users?tenant=acme", Some(&support))
        .await;
    assert_eq!(s, 200);
    assert_eq!(body["users"].as_array().unwrap().len(), 2);
}

/// Issue 12 item 9: a rare status filter used to read up to ~10,000 user hashes in one request;
/// now one request reads at most `projection.list_scan_budget` entries and hands out a cursor.
#[tokio::test]
async fn a_rare_status_filter_reads_a_bounded_number_of_entries_and_continues_with_a_cursor() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[projection]\nlist_scan_budget = 10\n").await;
    let support = api_key(&app, Role::Support, None).await;
    let mut events: Vec<Value> = (0..25)
        .map(|i| {
            log_event(
                &format!("a{i}"),
                "user.lifecycle.activate",
                (&format!("00uA{i:02}"), &format!("a{i:02}@x.org")),
            )
        })
        .collect();
    events.push(log_event(
        "s1",
        "user.lifecycle.suspend",
        ("00uZ", "zed@x.org"),
    ));
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    app.wait_for_user(&support, "00uZ", |u| u["status"] == "SUSPENDED")
        .await;
    app.wait_for_user(&support, "00uA24", |u| u["status"] == "ACTIVE")
        .await;
    app.wait_for_listed(&support, "", 26).await;

    let mut found = vec![];
    let mut requests = 0;
    let mut path = "/api/v1/users?status=SUSPENDED&limit=5".to_string();
    loop {
        let (s, page) = app.get_json(&path, Some(&support)).await;
        assert_eq!(s, 200, "{page}");
        requests += 1;
        assert!(page["scanned"].as_u64().unwrap() <= 10, "{page}");
        found.extend(
            page["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => {
                path = format!("/api/v1/users?status=SUSPENDED&limit=5&after={next}");
            }
            None => break,
        }
        assert!(requests < 10, "the cursor does not advance");
    }
    assert_eq!(found, ["00uZ"]);
    assert_eq!(requests, 3, "26 entries read 10 at a time");
    // Unfiltered pages are as before: full pages.
    let (_, page) = app.get_json("/api/v1/users?limit=20", Some(&support)).await;
    assert_eq!(page["users"].as_array().unwrap().len(), 20);
}

/// Issue 12 item 14: a user known only from a sign-in has no status event yet; the record says
/// `UNKNOWN` and why, instead of `status: null`.
#[tokio::test]
async fn a_user_without_a_status_event_is_unknown_with_a_reason() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let support = api_key(&app, Role::Support, None).await;
    let events = vec![log_event(
        "ss1",
        "user.session.start",
        ("00uS", "sess@x.org"),
    )];
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    let user = app
        .wait_for_user(&support, "00uS", |u| !u["status"].is_null())
        .await;
    assert_eq!(user["status"], "UNKNOWN", "{user}");
    assert!(
        user["status_reason"]
            .as_str()
            .unwrap()
            .contains("no lifecycle"),
        "{user}"
    );
    assert_eq!(user["can_sign_in"], false);
    // A known status has no reason.
    let events = vec![log_event(
        "ss2",
        "user.lifecycle.activate",
        ("00uS", "sess@x.org"),
    )];
    assert_eq!(app.post_events(&delivery(events)).await.status(), 204);
    let user = app
        .wait_for_user(&support, "00uS", |u| u["status"] == "ACTIVE")
        .await;
    assert!(user["status_reason"].is_null(), "{user}");
}
