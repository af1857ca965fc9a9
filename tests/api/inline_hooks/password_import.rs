//! The password import hook: legacy hash formats, cost limits and load shedding, the atomic
//! wrong-password throttle, the import command, and the clean-up after Okta's confirmation.

use super::*;

// ---- password import ----

#[tokio::test]
async fn each_legacy_hash_format_verifies_the_right_password_and_refuses_a_wrong_one() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let salt = b"0123456789abcdef";
    let pw = RIGHT.as_bytes();
    let formats = [
        ("bcrypt@acme.com", bcrypt::hash(pw, 4).unwrap()),
        (
            "bcrypt-2y@acme.com",
            bcrypt::hash(pw, 4).unwrap().replacen("$2b$", "$2y$", 1),
        ),
        (
            "pbkdf2-256@acme.com",
            pbkdf2_string(Sha::Sha256, 2000, salt, pw),
        ),
        (
            "pbkdf2-512@acme.com",
            pbkdf2_string(Sha::Sha512, 2000, salt, pw),
        ),
        ("argon2id@acme.com", argon2id_string(1024, 1, 1, salt, pw)),
        ("sha256@acme.com", salted_sha_string(Sha::Sha256, salt, pw)),
        ("sha512@acme.com", salted_sha_string(Sha::Sha512, salt, pw)),
    ];
    store(&app, &formats).await;
    for (login, _) in &formats {
        let (status, body) =
            post_inline(&app, "password-import", &password_request(login, RIGHT)).await;
        assert_eq!((status, credential(&body)), (200, "VERIFIED"), "{login}");
        let (_, body) = post_inline(&app, "password-import", &password_request(login, WRONG)).await;
        assert_eq!(credential(&body), "UNVERIFIED", "{login}");
        // Logins are case-insensitive, as Okta's are.
        let upper = login.to_uppercase();
        let (_, body) =
            post_inline(&app, "password-import", &password_request(&upper, RIGHT)).await;
        assert_eq!(credential(&body), "VERIFIED", "{upper}");
    }
    // A VERIFIED answer alone does not delete the legacy hash (Okta may ask again).
    assert!(legacy_hash(&app, "bcrypt@acme.com").await.is_some());
    let m = app.metrics().await;
    assert!(m.contains(
        "okta_adapter_inline_hook_requests_total{hook=\"password-import\",outcome=\"verified\"}"
    ));
    assert!(m.contains(
        "okta_adapter_password_verifications_total{scheme=\"argon2id\",result=\"mismatch\"}"
    ));
}

#[tokio::test]
async fn repeated_wrong_passwords_throttle_the_login_until_the_window_ends() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        "[inline.password_import]\nmax_failures = 3\nfailure_window_secs = 2\n",
    )
    .await;
    store(
        &app,
        &[
            ("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap()),
            ("bob@acme.com", bcrypt::hash(RIGHT, 4).unwrap()),
        ],
    )
    .await;
    for _ in 0..3 {
        let (_, b) = post_inline(
            &app,
            "password-import",
            &password_request("jane@acme.com", WRONG),
        )
        .await;
        assert_eq!(credential(&b), "UNVERIFIED");
    }
    // Now even the right password is refused without hashing …
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "UNVERIFIED");
    // … while another login is unaffected.
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("bob@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");
    assert!(
        eventually(5, || async {
            outcomes_for(&app, "jane@acme.com").await.len() == 4
        })
        .await,
        "four decisions recorded"
    );
    assert_eq!(
        outcomes_for(&app, "jane@acme.com").await,
        ["unverified", "unverified", "unverified", "throttled"]
    );
    // After the window the right password works again, and the counter is cleared.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");
}

#[tokio::test]
async fn thirty_concurrent_wrong_passwords_record_no_more_failures_than_the_limit() {
    let redis = TestRedis::start();
    // Two permits and a cheap hash: many attempts are judged at the same time, which is where
    // a read-then-write throttle let through 7 failures against a limit of 5.
    let app = spawn_app_with(
        &redis,
        "[inline.password_import]\nmax_concurrent_hashes = 2\nmax_failures = 5\n",
    )
    .await;
    store(
        &app,
        &[(
            "jane@acme.com",
            salted_sha_string(Sha::Sha256, b"NaCl", RIGHT.as_bytes()),
        )],
    )
    .await;
    let answers = futures::future::join_all((0..30).map(|_| {
        let app = &app;
        async move {
            let (status, body) = post_inline(
                app,
                "password-import",
                &password_request("jane@acme.com", WRONG),
            )
            .await;
            (status, credential(&body).to_string())
        }
    }))
    .await;
    assert!(answers
        .iter()
        .all(|a| *a == (200, "UNVERIFIED".to_string())));
    let mut conn = app.conn().await;
    let failures: u64 = conn
        .get(Keys::new(app.prefix.clone()).credential_failures("jane@acme.com"))
        .await
        .unwrap();
    assert_eq!(failures, 5, "the counter stops at the limit");
    assert!(
        eventually(5, || async {
            outcomes_for(&app, "jane@acme.com").await.len() == 30
        })
        .await
    );
    let outcomes = outcomes_for(&app, "jane@acme.com").await;
    let judged = outcomes.iter().filter(|o| *o == "unverified").count();
    let throttled = outcomes.iter().filter(|o| *o == "throttled").count();
    // Under CPU load an attempt may be shed (it gives its slot back and counts as no failure).
    let shed = outcomes.iter().filter(|o| *o == "shed").count();
    assert_eq!(judged, 5, "only five passwords were checked: {outcomes:?}");
    assert_eq!(judged + throttled + shed, 30, "{outcomes:?}");
    // The right password is refused too now, without hashing.
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "UNVERIFIED");
}

/// A valid bcrypt string of any cost that matches no password: checking it costs the full
/// 2^cost rounds (cost 16: seconds) without computing it in the test first.
fn bcrypt_of_cost(cost: u32) -> String {
    format!("$2b${cost:02}$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy")
}

#[tokio::test]
async fn a_slow_legacy_hash_in_redis_does_not_hold_the_only_permit_against_other_sign_ins() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        "[inline.password_import]\nmax_concurrent_hashes = 1\n",
    )
    .await;
    // A cost-16 hash stored before the limits existed (or by hand): 3 s+ of one core.
    store(
        &app,
        &[
            ("slow@acme.com", bcrypt_of_cost(16)),
            ("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap()),
        ],
    )
    .await;
    let slow = async {
        let t = Instant::now();
        let (_, b) = post_inline(
            &app,
            "password-import",
            &password_request("slow@acme.com", RIGHT),
        )
        .await;
        (credential(&b).to_string(), t.elapsed())
    };
    let others = async {
        // Arrive while the slow sign-in would be hashing.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut answers = Vec::new();
        for _ in 0..3 {
            let (_, b) = post_inline(
                &app,
                "password-import",
                &password_request("jane@acme.com", RIGHT),
            )
            .await;
            answers.push(credential(&b).to_string());
        }
        answers
    };
    let ((slow_answer, slow_took), answers) = tokio::join!(slow, others);
    assert_eq!(answers, ["VERIFIED"; 3], "other sign-ins are not blocked");
    assert_eq!(slow_answer, "UNVERIFIED");
    assert!(
        slow_took < Duration::from_millis(500),
        "refused without hashing, took {slow_took:?}"
    );
    assert!(
        eventually(5, || async {
            outcomes_for(&app, "slow@acme.com").await == ["over_cost"]
        })
        .await,
        "{:?}",
        outcomes_for(&app, "slow@acme.com").await
    );
}

#[tokio::test]
async fn sign_ins_shed_for_load_do_not_count_as_wrong_passwords() {
    let redis = TestRedis::start();
    // One permit, a 400 ms deadline, a bcrypt-12 hash (~205 ms by the reference): one fits, a
    // second behind it cannot, so it is shed before hashing.
    let app = spawn_app_with(
        &redis,
        "[inline]\ndeadline_ms = 400\n[inline.password_import]\nmax_concurrent_hashes = 1\nmax_failures = 5\nmax_pbkdf2_iterations = 600000\nmax_argon2_kib_passes = 131072\n",
    )
    .await;
    store(&app, &[("jane@acme.com", bcrypt_of_cost(12))]).await;
    let answers = futures::future::join_all((0..4).map(|_| {
        let app = &app;
        async move {
            let (_, b) = post_inline(
                app,
                "password-import",
                &password_request("jane@acme.com", WRONG),
            )
            .await;
            credential(&b).to_string()
        }
    }))
    .await;
    assert!(answers.iter().all(|a| a == "UNVERIFIED"));
    assert!(
        eventually(5, || async {
            outcomes_for(&app, "jane@acme.com").await.len() == 4
        })
        .await
    );
    let outcomes = outcomes_for(&app, "jane@acme.com").await;
    let shed = outcomes.iter().filter(|o| *o == "shed").count();
    assert!(shed >= 3, "{outcomes:?}");
    // Only a judged password counts (at most the one that ran; none if it was cut off by the
    // deadline): the shed attempts were given back.
    let failures = eventually(5, || async {
        let mut conn = app.conn().await;
        let n: Option<u64> = conn
            .get(Keys::new(app.prefix.clone()).credential_failures("jane@acme.com"))
            .await
            .unwrap();
        n.unwrap_or(0) <= 1
    })
    .await;
    assert!(failures, "shed attempts counted as failures");
}

#[tokio::test]
async fn an_import_refuses_hashes_too_slow_for_the_deadline_with_their_line_numbers() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("legacy.jsonl");
    std::fs::write(
        &file,
        format!(
            "# exported from the old portal\n{}\n{}\n{}\n",
            json!({"login": "ok@acme.com", "hash": bcrypt::hash(RIGHT, 4).unwrap()}),
            json!({"login": "slow@acme.com", "hash": bcrypt_of_cost(13)}),
            json!({"login": "huge@acme.com",
                   "hash": "$argon2id$v=19$m=1048576,t=1,p=1$c29tZXNhbHQ$MDEyMzQ1Njc4OWFiY2RlZg"}),
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
        .args(["credentials", "import"])
        .arg(&file)
        .env("OKTA_ADAPTER__REDIS__URL", &app.redis_url)
        .env("OKTA_ADAPTER__REDIS__PREFIX", &app.prefix)
        .env("OKTA_ADAPTER__HOOKS__SECRETS", "unused")
        .env_remove("OKTA_ADAPTER_CONFIG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "refused rows make the exit code non-zero"
    );
    assert!(
        stderr.contains("line 3 (slow@acme.com): bcrypt cost 13 exceeds the limit 12 (inline.password_import.max_bcrypt_cost)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "line 4 (huge@acme.com): argon2 m×t = 1048576×1 KiB·passes exceeds the limit 262144"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("N9qo8uLOickgx2ZMRZoMy"),
        "hashes are never echoed"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 legacy credential(s) stored"));
    assert!(legacy_hash(&app, "slow@acme.com").await.is_none());
    assert!(legacy_hash(&app, "huge@acme.com").await.is_none());
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("ok@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");

    // A deployment with a shorter deadline refuses limits that could not fit it, at start.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
        .args(["credentials", "import", "--dry-run"])
        .arg(&file)
        .env("OKTA_ADAPTER__INLINE__DEADLINE_MS", "300")
        .env("OKTA_ADAPTER__HOOKS__SECRETS", "unused")
        .env_remove("OKTA_ADAPTER_CONFIG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "inline.password_import.max_pbkdf2_iterations: a hash at this limit takes about 320 ms"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_legacy_hash_is_deleted_only_after_okta_reports_a_successful_import() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    store(
        &app,
        &[
            (
                "jane.doe@acme.com",
                salted_sha_string(Sha::Sha256, b"s", RIGHT.as_bytes()),
            ),
            (
                "marker@acme.com",
                salted_sha_string(Sha::Sha256, b"s", RIGHT.as_bytes()),
            ),
        ],
    )
    .await;
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane.doe@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");

    let import_event = |uuid: &str, login: &str, result: &str| {
        let mut e = log_event(uuid, "user.import.password", ("00ujane", login));
        e["outcome"]["result"] = json!(result);
        e
    };
    // A FAILURE for Jane, then a SUCCESS for a marker user: the consumer reads in order, so once
    // the marker's hash is gone, Jane's FAILURE has been applied too — and must have kept hers.
    let first = delivery(vec![
        import_event("imp-fail", "jane.doe@acme.com", "FAILURE"),
        log_event(
            "other",
            "user.session.start",
            ("00ujane", "jane.doe@acme.com"),
        ),
        import_event("imp-marker", "marker@acme.com", "SUCCESS"),
    ]);
    assert_eq!(app.post_events(&first).await.status(), 204);
    assert!(
        eventually(10, || async {
            legacy_hash(&app, "marker@acme.com").await.is_none()
        })
        .await,
        "the clean-up consumer deletes the hash after a SUCCESS event"
    );
    assert!(
        legacy_hash(&app, "jane.doe@acme.com").await.is_some(),
        "a FAILURE event leaves the hash in place"
    );
    // Okta's own event fixture for the success (its target is jane.doe@acme.com).
    let success = fixture("events/user.import.password.json");
    assert_eq!(
        app.post_events_raw(success, Some(SECRET)).await.status(),
        204
    );
    assert!(
        eventually(10, || async {
            legacy_hash(&app, "jane.doe@acme.com").await.is_none()
        })
        .await,
        "deleted after the SUCCESS event"
    );
    // The entries were acknowledged: nothing pending in the group.
    let mut conn = app.conn().await;
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(
            Keys::new(app.prefix.clone()).credential_imports(),
            "credential-cleanup",
        )
        .await
        .unwrap();
    assert_eq!(pending.count(), 0);
    // And the user now just gets UNVERIFIED from the hook (Okta holds the password).
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("jane.doe@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "UNVERIFIED");
}

#[tokio::test]
async fn the_credentials_import_command_loads_csv_and_json_lines_and_names_bad_rows() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let dir = tempfile::tempdir().unwrap();
    let pbkdf2 = pbkdf2_string(Sha::Sha256, 1000, b"saltsalt", RIGHT.as_bytes());
    let csv = dir.path().join("legacy.csv");
    std::fs::write(
        &csv,
        format!("login,hash,extra\nAnn@Acme.com,\"{pbkdf2}\",x\nbroken@acme.com,$md5$abc$def,y\n"),
    )
    .unwrap();
    let jsonl = dir.path().join("legacy.jsonl");
    std::fs::write(
        &jsonl,
        format!(
            "# users from the old portal\n{}\n",
            json!({"login": "ben@acme.com", "hash": bcrypt::hash(RIGHT, 4).unwrap()})
        ),
    )
    .unwrap();
    let run = |file: std::path::PathBuf| {
        let url = app.redis_url.clone();
        let prefix = app.prefix.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-adapter"))
                .args(["credentials", "import"])
                .arg(file)
                .env("OKTA_ADAPTER__REDIS__URL", url)
                .env("OKTA_ADAPTER__REDIS__PREFIX", prefix)
                .env("OKTA_ADAPTER__HOOKS__SECRETS", "unused")
                .env_remove("OKTA_ADAPTER_CONFIG")
                .output()
                .await
                .unwrap()
        }
    };
    let out = run(csv).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a skipped row makes the exit code non-zero"
    );
    assert!(
        stderr.contains("line 3 (broken@acme.com): unsupported hash scheme `md5`"),
        "{stderr}"
    );
    assert!(!stderr.contains("$md5$abc"), "hashes are never echoed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 legacy credential(s) stored"));
    let out = run(jsonl).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for login in ["ann@acme.com", "ben@acme.com"] {
        let (_, b) = post_inline(&app, "password-import", &password_request(login, RIGHT)).await;
        assert_eq!(credential(&b), "VERIFIED", "{login}");
    }
    assert!(legacy_hash(&app, "broken@acme.com").await.is_none());
}

#[tokio::test]
async fn more_sign_ins_than_the_cores_can_hash_in_time_are_shed_and_none_answers_late() {
    let redis = TestRedis::start();
    let app = spawn_app_with(
        &redis,
        "[inline]\ndeadline_ms = 700\n[inline.password_import]\nmax_concurrent_hashes = 1\n",
    )
    .await;
    // ~250 ms per hash in a debug build (the release build is ~10x faster; the benchmark uses it).
    let slow = pbkdf2_string(Sha::Sha256, 40_000, b"saltsalt", RIGHT.as_bytes());
    let logins: Vec<String> = (0..16).map(|i| format!("user{i}@acme.com")).collect();
    let rows: Vec<(&str, String)> = logins.iter().map(|l| (l.as_str(), slow.clone())).collect();
    store(&app, &rows).await;
    // One sign-in teaches the pool what a hash costs.
    let (_, b) = post_inline(
        &app,
        "password-import",
        &password_request("user0@acme.com", RIGHT),
    )
    .await;
    assert_eq!(credential(&b), "VERIFIED");

    let started = Instant::now();
    let answers = futures::future::join_all(logins.iter().map(|login| {
        let app = &app;
        async move {
            let t = Instant::now();
            let (status, body) =
                post_inline(app, "password-import", &password_request(login, RIGHT)).await;
            (status, credential(&body).to_string(), t.elapsed())
        }
    }))
    .await;
    let verified = answers.iter().filter(|a| a.1 == "VERIFIED").count();
    let slowest = answers.iter().map(|a| a.2).max().unwrap();
    assert!(answers.iter().all(|a| a.0 == 200));
    assert!(verified >= 1, "the pool still verifies what fits");
    assert!(verified < 16, "not everything fits in 700 ms on one permit");
    assert!(
        slowest < Duration::from_millis(700 + 300),
        "an answer took {slowest:?}, past the deadline"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let m = app.metrics().await;
    assert!(
        m.contains(
            "okta_adapter_inline_hook_requests_total{hook=\"password-import\",outcome=\"shed\"}"
        ),
        "{m}"
    );
}

#[tokio::test]
async fn an_import_confirmation_left_pending_by_a_dead_replica_is_taken_over() {
    let redis = TestRedis::start();
    let prefix = random_prefix();
    let keys = Keys::new(prefix.clone());
    let mut conn = redis.conn().await;
    // Another replica read Okta's SUCCESS event and died before deleting and acknowledging.
    let _: () = conn
        .xgroup_create_mkstream(keys.credential_imports(), "credential-cleanup", "0")
        .await
        .unwrap();
    let event = log_event(
        "imp-dead",
        "user.import.password",
        ("00ujane", "jane@acme.com"),
    );
    let _: String = conn
        .xadd(
            keys.credential_imports(),
            "*",
            &[
                ("v", "1".to_string()),
                ("uuid", "imp-dead".to_string()),
                ("type", "user.import.password".to_string()),
                ("published", "2026-10-01T09:00:00.000Z".to_string()),
                ("received", "2026-10-01T09:00:01.000Z".to_string()),
                ("tenant", String::new()),
                ("user", "00ujane".to_string()),
                ("actor", "00uadmin".to_string()),
                ("outcome", "SUCCESS".to_string()),
                ("event", event.to_string()),
            ],
        )
        .await
        .unwrap();
    let taken: redis::streams::StreamReadReply = conn
        .xread_options(
            &[keys.credential_imports()],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group("credential-cleanup", "dead-replica"),
        )
        .await
        .unwrap();
    assert_eq!(
        taken.keys[0].ids.len(),
        1,
        "the dead replica holds the entry"
    );
    let _: () = conn
        .set(
            keys.legacy_credential("jane@acme.com"),
            salted_sha_string(Sha::Sha256, b"s", RIGHT.as_bytes()),
        )
        .await
        .unwrap();

    let app = spawn_app_on(
        &redis.url(),
        &prefix,
        "[inline.password_import]\ncleanup_claim_idle_secs = 1\n",
    )
    .await;
    assert!(
        eventually(10, || async {
            legacy_hash(&app, "jane@acme.com").await.is_none()
        })
        .await,
        "the running replica took the entry over and deleted the hash"
    );
    let pending: redis::streams::StreamPendingReply = conn
        .xpending(keys.credential_imports(), "credential-cleanup")
        .await
        .unwrap();
    assert_eq!(pending.count(), 0, "and acknowledged it");
}
