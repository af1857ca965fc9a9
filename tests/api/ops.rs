//! Operations endpoints and start-up behaviour.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn healthz_readyz_metrics_docs_and_openapi_answer() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let get = |p: &str| app.client.get(app.url(p)).send();

    let health: Value = get("/healthz").await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");

    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let groups: Vec<(String, String)> = ready["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().into(),
                g["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("projections".into(), "present".into()),
            ("products".into(), "present".into()),
            ("credential-cleanup".into(), "present".into())
        ]
    );

    app.post_events(&lifecycle_batch("m", 3)).await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for needle in [
        "okta_adapter_events_received_total{type=\"user.lifecycle.activate\"}",
        "okta_adapter_events_accepted_total{type=\"user.lifecycle.activate\"}",
        "okta_adapter_http_request_duration_seconds_bucket{operation=\"receive_event_hook\",status=\"204\"",
    ] {
        assert!(metrics.contains(needle), "missing {needle}");
    }
    // Stream lengths are refreshed by the maintenance loop.
    let stream_gauge = format!(
        "okta_adapter_stream_length{{stream=\"{}\"}}",
        app.firehose()
    );
    let refreshed = eventually(5, || async {
        get("/metrics")
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains(&stream_gauge)
    })
    .await;
    assert!(refreshed, "missing {stream_gauge}");

    let spec: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(spec["paths"]["/hooks/okta/events"]["post"].is_object());
    assert!(spec["paths"]["/hooks/okta/events"]["get"].is_object());
    let docs = get("/docs").await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json_errors() {
    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_found");
    let resp = app
        .client
        .delete(app.url("/hooks/okta/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp.json::<Value>().await.unwrap()["message"].is_string());
}

#[tokio::test]
async fn start_up_without_redis_fails_with_a_message_that_says_what_to_do() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = test_settings(&format!("redis://:hunter2@127.0.0.1:{port}"), "p", "");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = okta_adapter::startup::Application::build_with_listener(settings, listener)
        .await
        .err()
        .expect("no Redis, no start");
    let msg = err.to_string();
    assert!(msg.contains("cannot reach Redis"), "{msg}");
    assert!(msg.contains("okta-adapter dev"), "{msg}");
    assert!(
        !msg.contains("hunter2"),
        "the password must not leak: {msg}"
    );
}

/// Issue 12 item 9: a client that trickles its request head (or sends nothing) is disconnected
/// after `http.header_read_timeout_ms`; a slow handler or a kept-alive client that sends its
/// next request in time is not.
#[tokio::test]
async fn a_client_trickling_headers_is_disconnected_after_the_header_read_timeout() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let redis = TestRedis::start();
    let app = spawn_app_with(&redis, "[http]\nheader_read_timeout_ms = 600\n").await;
    // Reads until the server closes; returns how long that took (None: still open at `max`).
    async fn closed_within(s: &mut tokio::net::TcpStream, max: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at((started + max).into(), s.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => {}
            }
        }
    }

    // Trickles a byte every 100 ms: activity, but never a whole head.
    let mut trickle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let writer = async {
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), writer)
        .await
        .ok();
    let _ = closed_within(&mut trickle, Duration::from_secs(3)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "trickling client held on for {took:?}"
    );
    let mut buf = [0u8; 16];
    assert!(
        matches!(trickle.read(&mut buf).await, Ok(0) | Err(_)),
        "the connection is closed"
    );

    // A silent client, too.
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(3))
        .await
        .expect("a silent client is disconnected");
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );

    // A well-behaved keep-alive client is served, twice, with a pause below the limit.
    let mut good = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    for _ in 0..2 {
        good.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\"ok\"") {
            let mut buf = [0u8; 1024];
            let n = good.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the answer");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Once the head is in, the request is the handler's: a body slower than the header
    // timeout is still read and answered.
    let operator = api_key(&app, okta_adapter::access::Role::Operator, None).await;
    let body = br#"{"role":"support"}"#;
    let mut slow_body = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow_body
        .write_all(
            format!(
                "POST /api/v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {operator}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    for b in body {
        slow_body.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(70)).await;
    }
    let mut got = [0u8; 64];
    let n = slow_body.read(&mut got).await.unwrap();
    assert!(
        String::from_utf8_lossy(&got[..n]).starts_with("HTTP/1.1 201"),
        "{}",
        String::from_utf8_lossy(&got[..n])
    );

    // A body that stops coming is not waited for: a client (here with the hook secret; without
    // it the answer is an immediate 401) sends a head and a few bytes of a large body to the
    // event hook, then nothing.
    let mut stalled = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "POST /hooks/okta/events HTTP/1.1\r\nHost: x\r\nAuthorization: {SECRET}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"data\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let took = closed_within(&mut stalled, Duration::from_secs(5))
        .await
        .expect("a stalled body is answered and the connection let go");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(2500),
        "let go after {took:?}"
    );
}

/// Issue 12 item 8 (and 14): the published schema says what the service does.
#[tokio::test]
async fn the_published_schema_matches_the_answers() {
    use okta_adapter::access::Role;

    let redis = TestRedis::start();
    let app = spawn_app(&redis).await;
    let doc: Value = app.get_json("/openapi.json", None).await.1;
    let schemas = &doc["components"]["schemas"];
    // Fields answered as null are nullable.
    for field in [
        "display_name",
        "last_sign_in",
        "last_failed_sign_in",
        "tenant",
        "status_reason",
    ] {
        assert_eq!(
            schemas["UserRecord"]["properties"][field]["nullable"], true,
            "UserRecord.{field}"
        );
    }
    assert_eq!(
        schemas["ApiKeyInfo"]["properties"]["tenant"]["nullable"],
        true
    );
    // Enums are declared where only some strings are accepted.
    let params = |path: &str, method: &str| doc["paths"][path][method]["parameters"].clone();
    let param = |path: &str, method: &str, name: &str| {
        params(path, method)
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
    };
    let status = param("/api/v1/users", "get", "status");
    let status_enum = schemas[status["schema"]["$ref"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()]["enum"]
        .clone();
    assert!(
        status_enum
            .as_array()
            .unwrap()
            .contains(&"SUSPENDED".into()),
        "{status}"
    );
    let action = param("/api/v1/users/{id}/actions/{action}", "post", "action");
    let action_ref = action["schema"]["$ref"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    assert!(schemas[action_ref]["enum"]
        .as_array()
        .unwrap()
        .contains(&"reset_password".into()));
    // X-Audit-Reason is a declared header wherever it is read.
    for (path, method) in [
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/{id}/timeline", "get"),
        ("/api/v1/users", "get"),
        ("/api/v1/users/{id}/actions/{action}", "post"),
    ] {
        assert_eq!(
            param(path, method, "X-Audit-Reason")["in"],
            "header",
            "{path}"
        );
    }

    // 405 names the allowed methods.
    let resp = app
        .client
        .delete(app.url("/api/v1/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
    let resp = app
        .client
        .put(app.url("/api/v1/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST");

    // A JSON body without Content-Type is read as the one documented type, not a 415.
    let operator = api_key(&app, Role::Operator, None).await;
    let resp = app
        .client
        .post(app.url("/api/v1/keys"))
        .bearer_auth(&operator)
        .body(r#"{"role":"support"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // A tenant must be a JSON string, not a number turned into one.
    let (s, _) = app
        .post_json(
            "/api/v1/keys",
            &operator,
            Some(serde_json::json!({"role": "client-admin", "tenant": 12011})),
        )
        .await;
    assert_eq!(s, 400);
}
