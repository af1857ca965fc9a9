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
}
