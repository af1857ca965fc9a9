//! `spawn_app()` and friends: a real adapter on a free port, its own `redis-server`, and a
//! random key prefix, so tests never see each other's data.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use okta_adapter::config::Settings;
use okta_adapter::dev::RedisServer;
use okta_adapter::http::state::AppState;
use okta_adapter::startup::Application;
use redis::AsyncCommands;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const SECRET: &str = "test-secret-1";
pub const SECOND_SECRET: &str = "test-secret-2";

pub struct TestRedis {
    pub server: RedisServer,
    _dir: tempfile::TempDir,
    /// With `OKTA_ADAPTER_TEST_REDIS_CLUSTER=1` (see `cluster.rs`): the cluster `url()` names.
    pub cluster: Option<crate::cluster::TestCluster>,
}

impl TestRedis {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// With persistence (AOF, fsync always): a restart keeps what was acknowledged.
    pub fn start_persistent() -> Self {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = RedisServer::start(dir.path(), persistent).expect("redis-server starts");
        let cluster = crate::cluster::cluster_mode().then(|| crate::cluster::TestCluster::start(3));
        Self {
            server,
            _dir: dir,
            cluster,
        }
    }

    pub fn url(&self) -> String {
        match &self.cluster {
            Some(cluster) => cluster.url(),
            None => self.server.url(),
        }
    }

    pub async fn conn(&self) -> okta_adapter::store::RedisConn {
        crate::cluster::test_conn(&self.url()).await
    }
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub prefix: String,
    pub state: Arc<AppState>,
    pub redis_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    pub handle: Option<JoinHandle<std::io::Result<()>>>,
}

/// A random prefix per app, so two apps can share a Redis without seeing each other.
pub fn random_prefix() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

/// Settings for a test: the defaults, a fast maintenance loop, two secrets, then `extra` TOML
/// (sections may repeat the ones set here; later keys win).
pub fn test_settings(redis_url: &str, prefix: &str, extra: &str) -> Settings {
    let base = format!(
        r#"
[redis]
url = "{redis_url}"
prefix = "{prefix}"
response_timeout_ms = 2000
connect_timeout_ms = 1000
maintenance_interval_secs = 1
[hooks]
secrets = ["{SECRET}", "{SECOND_SECRET}"]
[log]
level = "warn"
[projection]
block_ms = 100
claim_idle_ms = 500
[report]
enabled = false
block_ms = 100
claim_idle_ms = 500
[spool]
dir = "{spool_dir}"
drain_interval_ms = 100
"#,
        // One spool directory per prefix: an app restarted on the same prefix finds its files.
        spool_dir = std::env::temp_dir()
            .join(format!("okta-adapter-spool-{prefix}"))
            .display()
    );
    let base = if crate::cluster::cluster_mode() {
        merge_toml(&base, "[redis]\ncluster = true\n")
    } else {
        base
    };
    let merged = merge_toml(&base, extra);
    Settings::from_toml_overrides(&merged).expect("test settings are valid")
}

/// Deep-merges two TOML documents (tables merge, everything else is replaced by `extra`).
pub fn merge_toml(base: &str, extra: &str) -> String {
    fn merge(a: &mut toml::Value, b: toml::Value) {
        match (a, b) {
            (toml::Value::Table(a), toml::Value::Table(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(existing) => merge(existing, v),
                        None => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (a, b) => *a = b,
        }
    }
    let mut a: toml::Value = toml::from_str(base).unwrap();
    let b: toml::Value = toml::from_str(extra).expect("extra TOML parses");
    merge(&mut a, b);
    toml::to_string(&a).unwrap()
}

pub async fn spawn_app(redis: &TestRedis) -> TestApp {
    spawn_app_with(redis, "").await
}

pub async fn spawn_app_with(redis: &TestRedis, extra: &str) -> TestApp {
    spawn_app_on(&redis.url(), &random_prefix(), extra).await
}

pub async fn spawn_app_on(redis_url: &str, prefix: &str, extra: &str) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_app_on_listener(listener, redis_url, prefix, extra).await
}

pub async fn spawn_app_on_listener(
    listener: tokio::net::TcpListener,
    redis_url: &str,
    prefix: &str,
    extra: &str,
) -> TestApp {
    let settings = test_settings(redis_url, prefix, extra);
    let app = Application::build_with_listener(settings, listener)
        .await
        .expect("app builds");
    let addr = app.local_addr();
    let state = app.state();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        prefix: prefix.to_string(),
        state,
        redis_url: redis_url.to_string(),
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post_events_raw(
        &self,
        body: impl Into<reqwest::Body>,
        secret: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/hooks/okta/events"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = secret {
            req = req.header("authorization", s);
        }
        req.send().await.expect("request completes")
    }

    pub async fn post_events(&self, delivery: &Value) -> reqwest::Response {
        self.post_events_raw(delivery.to_string(), Some(SECRET))
            .await
    }

    /// Starts graceful shutdown and waits for the server task to end.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    pub fn firehose(&self) -> String {
        format!("{}:{{events}}:firehose", self.prefix)
    }

    pub fn route(&self, name: &str) -> String {
        format!("{}:{{events}}:route:{name}", self.prefix)
    }

    pub async fn conn(&self) -> okta_adapter::store::RedisConn {
        crate::cluster::test_conn(&self.redis_url).await
    }

    /// Every entry of `stream`, as field → value maps, oldest first.
    pub async fn entries(&self, stream: &str) -> Vec<HashMap<String, String>> {
        let mut conn = self.conn().await;
        let reply: redis::streams::StreamRangeReply = conn.xrange_all(stream).await.unwrap();
        reply
            .ids
            .into_iter()
            .map(|id| {
                id.map
                    .into_iter()
                    .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                    .collect()
            })
            .collect()
    }

    pub async fn uuids(&self, stream: &str) -> Vec<String> {
        self.entries(stream)
            .await
            .into_iter()
            .map(|e| e["uuid"].clone())
            .collect()
    }

    /// Keys under the prefix, less the one every start writes (`{report}:migrated`, the
    /// report-key migration's marker): what requests have written.
    pub async fn key_count(&self) -> usize {
        let mut conn = self.conn().await;
        let keys: Vec<String> = conn.keys(format!("{}:*", self.prefix)).await.unwrap();
        let marker = format!("{}:{{report}}:migrated", self.prefix);
        keys.iter().filter(|k| **k != marker).count()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A realistic LogEvent about `user` (Okta id, login) of `event_type`.
pub fn log_event(uuid: &str, event_type: &str, user: (&str, &str)) -> Value {
    json!({
        "uuid": uuid,
        "published": "2026-10-01T09:00:00.000Z",
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": "test event",
        "actor": {"id": "00uadmin", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin"},
        "client": {"ipAddress": "203.0.113.9", "zone": "null", "device": "Computer"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": [{"id": user.0, "type": "User", "alternateId": user.1, "displayName": "Some User"}],
        "transaction": {"type": "WEB", "id": "tx1", "detail": {}},
        "debugContext": {"debugData": {"requestId": "req1"}},
        "insertionTimestamp": null
    })
}

/// A user joining an Okta group (the group rule derives tenants from such events).
pub fn group_add_event(uuid: &str, user: (&str, &str), group_name: &str) -> Value {
    let mut e = log_event(uuid, "group.user_membership.add", user);
    e["target"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "00gX", "type": "UserGroup", "alternateId": "unknown", "displayName": group_name}));
    e
}

/// Wraps events in Okta's delivery envelope.
pub fn delivery(events: Vec<Value>) -> Value {
    json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://example.okta.com/api/v1/eventHooks/who1",
        "eventId": format!("{:x}", rand::random::<u64>()),
        "eventTime": "2026-10-01T09:00:01.000Z",
        "contentType": "application/json",
        "data": {"events": events}
    })
}

/// `n` distinct lifecycle events.
pub fn lifecycle_batch(tag: &str, n: usize) -> Value {
    delivery(
        (0..n)
            .map(|i| {
                log_event(
                    &format!("{tag}-{i:05}"),
                    "user.lifecycle.activate",
                    (&format!("00u{tag}{i}"), &format!("user{i}@example.com")),
                )
            })
            .collect(),
    )
}

pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{}/hooks/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Polls `check` until it is true or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// Creates an API key straight in the app's Redis and returns its bearer token.
pub async fn api_key(
    app: &TestApp,
    role: okta_adapter::access::Role,
    tenant: Option<&str>,
) -> String {
    let mut conn = app.state.redis.clone();
    let (token, _) = app
        .state
        .key_store
        .create(&mut conn, role, tenant)
        .await
        .expect("valid role/tenant")
        .expect("redis");
    token
}

impl TestApp {
    /// GET with a bearer key; returns status and JSON body (Null when there is none).
    pub async fn get_json(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let resp = self.client.get(self.url("/metrics")).send().await.unwrap();
        resp.text().await.unwrap()
    }

    /// Waits until `GET /api/v1/users?<query>` (support key) lists exactly `n` users. The list
    /// indexes are written right after a user's record, in a second round trip (they are on
    /// other cluster slots), so a user can be readable a moment before it is listed — longer on
    /// a cluster, where that round trip is split over the masters.
    pub async fn wait_for_listed(&self, key: &str, query: &str, n: usize) {
        let mut last = Value::Null;
        for _ in 0..200 {
            let (status, body) = self
                .get_json(&format!("/api/v1/users?limit=500&{query}"), Some(key))
                .await;
            if status == 200 && body["users"].as_array().is_some_and(|u| u.len() == n) {
                return;
            }
            last = body;
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("`{query}` never listed {n} users; last answer: {last}");
    }

    /// Waits until the projection of `user` satisfies `check` (via a support key).
    pub async fn wait_for_user(
        &self,
        key: &str,
        user: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            let (status, body) = self
                .get_json(&format!("/api/v1/users/{user}"), Some(key))
                .await;
            if status == 200 && check(&body["user"]) {
                return body["user"].clone();
            }
            last = body;
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("projection of {user} never matched; last answer: {last}");
    }
}

/// A LogEvent with its own `published` time and outcome.
pub fn event_at(
    uuid: &str,
    event_type: &str,
    user: (&str, &str),
    published: &str,
    outcome: &str,
) -> Value {
    let mut e = log_event(uuid, event_type, user);
    e["published"] = json!(published);
    e["outcome"]["result"] = json!(outcome);
    e
}

/// The Okta simulator posting its System Log events to the app, and the app pointed at it.
/// `extra` may override any key, including `[okta]` ones.
pub async fn spawn_app_with_okta(
    redis_url: &str,
    prefix: &str,
    mut sim: okta_sim::SimConfig,
    extra: &str,
) -> (TestApp, okta_sim::OktaSim) {
    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app_listener.local_addr().unwrap();
    sim.event_hook = Some((
        format!("http://{app_addr}/hooks/okta/events"),
        SECRET.to_string(),
    ));
    let token = sim.token.clone();
    let sim = okta_sim::OktaSim::start(
        sim,
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let okta = format!(
        "[okta]\norg_url = \"{}\"\napi_token = \"{token}\"\nrate_window_ms = 1000\n[jobs]\nclaim_idle_ms = 500\n",
        sim.url()
    );
    let extra = merge_toml(&okta, extra);
    let app = spawn_app_on_listener(app_listener, redis_url, prefix, &extra).await;
    (app, sim)
}

impl TestApp {
    /// POST with a bearer key and optional JSON body; returns status and JSON (Null if none).
    pub async fn post_json(&self, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.post(self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Uploads a job file; returns status and the job JSON.
    pub async fn upload_job(
        &self,
        key: &str,
        query: &str,
        content_type: &str,
        body: String,
    ) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(&format!("/api/v1/jobs?{query}")))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Waits until the job has no pending rows and is no longer running; returns its status.
    pub async fn wait_for_job(&self, key: &str, id: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let (_, job) = self
                .get_json(&format!("/api/v1/jobs/{id}"), Some(key))
                .await;
            if job["pending"] == 0
                && job["state"] != "running"
                && job["state"] != "queued"
                && job["state"] != "validating"
            {
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} did not finish: {job}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// A CSV of `n` users to create, logins `<tag>N@example.com`.
pub fn users_csv(tag: &str, n: usize) -> String {
    let mut s = String::from("login,email,firstName,lastName\n");
    for i in 0..n {
        s.push_str(&format!(
            "{tag}{i}@example.com,{tag}{i}@example.com,First{i},Last{i}\n"
        ));
    }
    s
}
/// A real SMTP server in-process (a small tokio sink: EHLO, MAIL, RCPT, DATA, QUIT — what lettre
/// speaks without TLS). mailin-embedded cannot be built here without a TLS provider that needs a
/// C toolchain build, so this speaks the protocol itself. Every accepted message is kept raw.
pub struct TestSmtp {
    pub port: u16,
    pub messages: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    /// Decoded `AUTH PLAIN` credentials, `user:password`, one per login.
    pub logins: Arc<std::sync::Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl TestSmtp {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// On a given port (0 = any), e.g. one a test configured while no server was listening.
    pub async fn start_on(port: u16) -> Self {
        Self::start_with(port, std::time::Duration::ZERO).await
    }

    /// A server that takes `delay` to accept each message (so two senders would overlap).
    pub async fn start_slow(delay: std::time::Duration) -> Self {
        Self::start_with(0, delay).await
    }

    async fn start_with(port: u16, delay: std::time::Duration) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(std::sync::Mutex::new(Vec::new()));
        let logins = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (store, seen) = (messages.clone(), logins.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(smtp_session(sock, store.clone(), seen.clone(), delay));
            }
        });
        Self {
            port,
            messages,
            logins,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<Vec<u8>> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn smtp_session(
    sock: tokio::net::TcpStream,
    store: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    logins: Arc<std::sync::Mutex<Vec<String>>>,
    delay: std::time::Duration,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let _ = w.write_all(b"220 test-smtp ready\r\n").await;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if cmd.starts_with("EHLO") {
            b"250-test-smtp\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
        } else if cmd.starts_with("AUTH PLAIN ") {
            use base64::Engine;
            let raw = line.trim_end()["AUTH PLAIN ".len()..].to_string();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).to_string())
                .collect();
            logins.lock().unwrap().push(parts[1..].join(":"));
            b"235 authenticated\r\n"
        } else if cmd.starts_with("HELO")
            || cmd.starts_with("MAIL")
            || cmd.starts_with("RCPT")
            || cmd.starts_with("RSET")
            || cmd.starts_with("NOOP")
        {
            b"250 OK\r\n"
        } else if cmd.starts_with("DATA") {
            let _ = w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if r.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                if l == b".\r\n" || l == b".\n" {
                    break;
                }
                // Dot-stuffing: a leading ".." stands for ".".
                let l = if l.starts_with(b"..") {
                    &l[1..]
                } else {
                    &l[..]
                };
                data.extend_from_slice(l);
            }
            tokio::time::sleep(delay).await;
            store.lock().unwrap().push(data);
            b"250 OK queued\r\n"
        } else if cmd.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 not implemented\r\n"
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
    }
}
