//! What every inline hook shares: the deadline and Redis outages, the decision stream and
//! metrics, and secrets that never leak.

use super::*;

// ---- deadline and Redis outages ----

#[tokio::test]
async fn a_stalled_redis_hits_the_deadline_and_gets_the_safe_answer_in_time() {
    let redis = TestRedis::start();
    // (A deadline this short needs hash limits that fit it, or the settings are refused.)
    let app = spawn_app_with(
        &redis,
        "[inline]\ndeadline_ms = 300\n[inline.password_import]\nmax_pbkdf2_iterations = 600000\nmax_argon2_kib_passes = 131072\n",
    )
    .await;
    store(&app, &[("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap())]).await;
    let mut admin = redis.conn().await;
    // Redis stops answering clients (but keeps the connection): the worst case for a hook.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let t = Instant::now();
    let (status, body) = post_inline(
        &app,
        "password-import",
        &password_request("jane@acme.com", RIGHT),
    )
    .await;
    let took = t.elapsed();
    assert_eq!((status, credential(&body)), (200, "UNVERIFIED"));
    assert!(
        took >= Duration::from_millis(240),
        "{took:?}: it did wait for Redis"
    );
    assert!(
        took < Duration::from_millis(700),
        "{took:?}: answered at the deadline"
    );
    // The token hook's projection lookup stalls the same way: the original token (204), in time.
    let t = Instant::now();
    let (status, _) = post_inline(&app, "token", &okta_request("token")).await;
    assert_eq!(status, 204);
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let m = app.metrics().await;
    assert!(
        m.contains("okta_adapter_inline_hook_deadline_hits_total{hook=\"password-import\"}"),
        "{m}"
    );
    // The decision was recorded once Redis answered again.
    assert!(
        eventually(5, || async {
            app.entries(&decisions_stream(&app))
                .await
                .iter()
                .any(|e| e["outcome"] == "deadline" && e["deadline_hit"] == "1")
        })
        .await
    );
}

#[tokio::test]
async fn with_redis_down_every_hook_answers_its_safe_default_fast() {
    let mut redis = TestRedis::start();
    let app = spawn_app_with(&redis, &format!("{TENANTS}\ndeadline_ms = 800\n")).await;
    store(&app, &[("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap())]).await;
    redis.server.stop();
    for hook in HOOKS {
        let req = if hook == "password-import" {
            password_request("jane@acme.com", RIGHT)
        } else {
            okta_request(hook)
        };
        let t = Instant::now();
        let (status, body) = post_inline(&app, hook, &req).await;
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1300), "{hook} took {took:?}");
        match hook {
            "password-import" => assert_eq!(credential(&body), "UNVERIFIED"),
            "token" | "saml" => assert_eq!(status, 204, "{hook}: original token/assertion"),
            // The projection lookup fails: Okta's default (create), not a guess.
            "user-import" => assert_eq!(status, 204),
            // Registration needs no Redis; telephony falls back either way.
            "registration" => assert_eq!(status, 200),
            "telephony" => assert!(body["error"].is_object()),
            _ => unreachable!(),
        }
    }
    redis.server.restart().unwrap();
    store(&app, &[("jane@acme.com", bcrypt::hash(RIGHT, 4).unwrap())]).await;
    let recovered = eventually(5, || async {
        let (_, b) = post_inline(
            &app,
            "password-import",
            &password_request("jane@acme.com", RIGHT),
        )
        .await;
        credential(&b) == "VERIFIED"
    })
    .await;
    assert!(recovered, "answers come back once Redis does");
}

// ---- the decision stream, metrics, OpenAPI ----

#[tokio::test]
async fn each_decision_is_recorded_with_type_user_outcome_and_latency() {
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, TENANTS).await;
    for hook in HOOKS {
        post_inline(&app, hook, &okta_request(hook)).await;
    }
    let stream = decisions_stream(&app);
    assert!(eventually(5, || async { app.entries(&stream).await.len() == 6 }).await);
    let entries = app.entries(&stream).await;
    let by_type: HashMap<String, HashMap<String, String>> = entries
        .into_iter()
        .map(|e| (e["type"].clone(), e))
        .collect();
    let expect = [
        (
            "password-import",
            "isaac.brock@example.com",
            "unknown_login",
            "3o9jBzq1SmOGmmsDsqyyeQ",
        ),
        (
            "registration",
            "rosario.jones@example.com",
            "allow_with_profile",
            "04Dmt8BcT_aEgM",
        ),
        (
            "user-import",
            "sally.admin@clouditude.net",
            "create",
            "JUGOUiYZTaKPmH6db0nDag",
        ),
        (
            "token",
            "00uq8tMo3zV0OfJON0g3",
            "unknown_user",
            "3OWo4oo-QQ-rBWfRyTmQYw",
        ),
        (
            "saml",
            "00uq8tMo3zV0OfJON0g3",
            "unknown_user",
            "XMFoHCM1S4Wi_SGWzL8T9A",
        ),
        (
            "telephony",
            "00uyxxSknGtK8022w0g3",
            "fallback",
            "uS5871kJThSsU8qlA1LTcg",
        ),
    ];
    for (hook, user, outcome, event_id) in expect {
        let e = &by_type[hook];
        assert_eq!(
            (
                e["user"].as_str(),
                e["outcome"].as_str(),
                e["event_id"].as_str()
            ),
            (user, outcome, event_id),
            "{hook}"
        );
        let ms: f64 = e["latency_ms"].parse().unwrap();
        assert!((0.0..1000.0).contains(&ms), "{hook}: {ms}");
        assert_eq!(e["deadline_hit"], "0");
        assert_eq!(e["v"], "1");
        let mut fields: Vec<&str> = e.keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "at",
                "deadline_hit",
                "event_id",
                "latency_ms",
                "outcome",
                "type",
                "user",
                "v"
            ]
        );
    }
    // The OTP of the telephony sample is nowhere in the stream.
    assert!(!format!("{:?}", app.entries(&stream).await).contains("11111"));
    let m = app.metrics().await;
    for needle in [
        "okta_adapter_inline_hook_requests_total{hook=\"telephony\",outcome=\"fallback\"}",
        "okta_adapter_inline_hook_duration_seconds_bucket{hook=\"token\",le=\"0.005\"}",
        "okta_adapter_inline_hook_duration_seconds_count{hook=\"saml\"}",
    ] {
        assert!(m.contains(needle), "missing {needle}");
    }
    let spec: Value = app.get_json("/openapi.json", None).await.1;
    for hook in HOOKS {
        let op = &spec["paths"][format!("/hooks/okta/inline/{hook}")]["post"];
        assert_eq!(op["tags"][0], "OktaHooks", "{hook}");
        assert!(op["responses"]["200"].is_object() && op["responses"]["401"].is_object());
    }
}

// ---- secrets never leak ----

/// Every log line of this test binary, from the moment the first test asks for it.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        #[derive(Clone)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Buffer(buf.clone());
        // TRACE for every crate (poem, hyper, redis, ours): the strictest capture there is.
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        buf
    })
    .clone()
}

#[tokio::test]
async fn the_plaintext_password_reaches_no_log_metric_stream_key_or_error() {
    let logs = captured_logs();
    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[inline.password_import]\nmax_failures = 2\n").await;
    let secret = "Zq9-unique-PLAINTEXT-hunter2";
    store(
        &app,
        &[("leaky@acme.com", bcrypt::hash(secret, 4).unwrap())],
    )
    .await;
    // Right, wrong (with the secret inside the wrong one), throttled, unknown login.
    let wrong = format!("{secret}-typo");
    for (login, pw) in [
        ("leaky@acme.com", secret),
        ("leaky@acme.com", wrong.as_str()),
        ("leaky@acme.com", wrong.as_str()),
        ("leaky@acme.com", secret),
        ("nobody@acme.com", secret),
    ] {
        let (status, body) =
            post_inline(&app, "password-import", &password_request(login, pw)).await;
        assert_eq!(status, 200);
        assert!(!body.to_string().contains(secret));
    }
    // A malformed body that contains the password: the 400 message must not quote it.
    let broken = format!(
        "{{\"eventType\":\"com.okta.user.credential.password.import\",\"data\":{{\"context\":{{\"credential\":{{\"username\":\"leaky@acme.com\",\"password\":\"{secret}\"}}}}}} trailing"
    );
    let resp = post_inline_raw(&app, "password-import", broken, Some(SECRET)).await;
    assert_eq!(resp.status(), 400);
    assert!(!resp.text().await.unwrap().contains(secret));
    // A wrong type for `data` that holds the password.
    let odd = json!({"data": [secret]}).to_string();
    let resp = post_inline_raw(&app, "password-import", odd, Some(SECRET)).await;
    assert!(!resp.text().await.unwrap().contains(secret));

    // Wait until all five decisions are recorded, so every write path has run.
    let stream = decisions_stream(&app);
    assert!(eventually(5, || async { app.entries(&stream).await.len() == 5 }).await);
    let outcomes: Vec<String> = app
        .entries(&stream)
        .await
        .into_iter()
        .map(|e| e["outcome"].clone())
        .collect();
    assert_eq!(
        outcomes,
        [
            "verified",
            "unverified",
            "unverified",
            "throttled",
            "unknown_login"
        ]
    );

    // Every value of every key under the prefix.
    let mut conn = app.conn().await;
    let keys: Vec<String> = conn.keys(format!("{}:*", app.prefix)).await.unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let dump: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&dump).contains(secret),
            "the password is stored in {key}"
        );
    }
    assert!(!app.metrics().await.contains(secret));
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        text.contains("inline hook request rejected"),
        "the capture works: it holds the adapter's own log of the malformed requests"
    );
    assert!(!text.contains(secret), "the password is in the logs");
}
