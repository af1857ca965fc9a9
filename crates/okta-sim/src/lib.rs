//! An Okta Management API simulator, for okta-adapter's tests, benchmarks and local demo
//! (`okta-adapter dev`, or the `okta-sim` binary). It is its own crate so it stays out of the
//! product's public API and of its production build (the adapter's `demo` feature). Okta itself cannot be reached from CI, so this server behaves as
//! Okta documents it (HOOKS-SPEC §4):
//!
//! - the Users API subset the adapter uses, with Okta's status rules (activation only from
//!   `STAGED`/`DEPROVISIONED`, suspend only `ACTIVE`, …: `E0000038` otherwise), `E0000001` on a
//!   duplicate login, `E0000007` for an unknown user, and the two-step delete;
//! - a Groups API subset: groups with a `profile.name` (`POST /api/v1/groups`, `GET`/`PUT`/
//!   `DELETE /api/v1/groups/{id}`, `GET /api/v1/groups?q=…|search=…`, members under
//!   `/api/v1/groups/{id}/users`), `E0000007` for an unknown group, and membership events whose
//!   `UserGroup` target carries the group's name as `displayName` and `alternateId`, as Okta's
//!   `group.user_membership.add` does (tenant rules match on it);
//! - MFA factors per user (list, delete one, reset all), `APP_GROUP` groups whose membership
//!   the API may not change, and app assignments with `scope` `USER` or `GROUP` (`factors.rs`);
//! - `SSWS` token auth (`E0000011`);
//! - per-bucket per-window limits with `X-Rate-Limit-Limit/Remaining/Reset` on every answer and
//!   429 `E0000047` beyond; an optional concurrency limit (429 with `X-Rate-Limit-Limit: 0`);
//! - injected latency and 5xx faults; a window length to run "600/minute" in a second;
//! - System Log events for every change, posted to an event hook URL (in order), so the loop
//!   action → Okta → event hook → projection runs locally;
//! - `GET /sim/stats` (what it saw: requests and the busiest window per bucket, 429s) and
//!   `POST /sim/users/{id}/lock` (a lockout, as after failed sign-ins) for tests, and
//!   `POST /sim/users/{id}/factors/{factorType}` (the user enrolls a factor, provider `OKTA`).

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{SecondsFormat, Utc};
use poem::http::{Method, StatusCode};
use poem::listener::TcpAcceptor;
use poem::web::Query;
use poem::{handler, Body, EndpointExt, Request, Response, Route, Server};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc;

mod apps;
mod factors;
mod groups;
mod logs;
pub mod oidc;
mod users;
// Tenant provisioning: OIDC apps (with client secrets and group assignments) and group rules.
mod oidc_apps;
mod rules;

/// The simulator's state, locked for one request.
type Guard<'a> = std::sync::MutexGuard<'a, SimState>;

/// Per-window limits of the simulated buckets.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The `SSWS` token clients must send.
    pub token: String,
    /// GET/POST `/api/v1/users`.
    pub users_create_list_limit: u32,
    /// GET `/api/v1/users/{idOrLogin}`.
    pub users_get_limit: u32,
    /// Writes to `/api/v1/users/{id}…`.
    pub users_by_id_limit: u32,
    /// `/api/v1/groups…`.
    pub groups_limit: u32,
    /// Everything else under `/api/v1`.
    pub other_limit: u32,
    /// `/api/v1/apps…` (Okta's apps bucket is small on many orgs).
    pub apps_limit: u32,
    /// Length of a rate-limit window (Okta: a minute).
    pub window: Duration,
    /// Added to every answer.
    pub latency: Duration,
    /// Share of requests answered with a 500 (0.0–1.0).
    pub fault_rate: f64,
    /// Requests in flight at most (0 = no limit).
    pub concurrency_limit: usize,
    /// Where to post System Log events: (event hook URL, auth header value).
    pub event_hook: Option<(String, String)>,
    /// An OAuth 2.0 service app allowed to use `private_key_jwt`: (client id, public key PEM).
    pub oauth_app: Option<(String, String)>,
    /// An OIDC web app people sign in to (`oidc`): the console's, in tests and `dev`.
    pub oidc_app: Option<oidc::OidcApp>,
    /// `GET /api/v1/logs` (Okta's System Log bucket is small).
    pub logs_limit: u32,
    /// Share of event hook deliveries "lost" (never posted; 0.0–1.0), spread evenly: what
    /// System Log backfill must win back. Each leaves an `event_hook.delivery` FAILURE event.
    pub event_hook_drop_rate: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            token: "sim-token".into(),
            users_create_list_limit: 600,
            users_get_limit: 2000,
            users_by_id_limit: 600,
            groups_limit: 500,
            other_limit: 1200,
            apps_limit: 100,
            window: Duration::from_secs(60),
            latency: Duration::ZERO,
            fault_rate: 0.0,
            concurrency_limit: 0,
            event_hook: None,
            oauth_app: None,
            oidc_app: None,
            logs_limit: 60,
            event_hook_drop_rate: 0.0,
        }
    }
}

#[derive(Debug, Clone)]
struct SimUser {
    id: String,
    status: &'static str,
    profile: Value,
    has_credentials: bool,
    created: String,
    last_updated: String,
}

impl SimUser {
    fn login(&self) -> &str {
        self.profile["login"].as_str().unwrap_or("")
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "created": self.created,
            "lastUpdated": self.last_updated,
            "statusChanged": self.last_updated,
            "profile": self.profile,
            "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
            "_links": {}
        })
    }
}

#[derive(Debug, Clone)]
struct SimGroup {
    id: String,
    name: String,
    description: String,
    created: String,
    last_updated: String,
    last_membership_updated: String,
    members: HashSet<String>,
}

impl SimGroup {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "created": self.created,
            "lastUpdated": self.last_updated,
            "lastMembershipUpdated": self.last_membership_updated,
            "objectClass": ["okta:user_group"],
            "type": "OKTA_GROUP",
            "profile": {"name": self.name, "description": self.description},
            "_links": {}
        })
    }

    /// The `UserGroup` target of a System Log event about this group.
    fn target(&self) -> Value {
        json!({"id": self.id, "type": "UserGroup", "alternateId": self.name, "displayName": self.name})
    }
}

#[derive(Debug, Default)]
struct Window {
    start: Option<SystemTime>,
    count: u32,
}

#[derive(Debug, Default)]
struct SimState {
    users: HashMap<String, SimUser>,
    by_login: HashMap<String, String>,
    groups: HashMap<String, SimGroup>,
    apps: HashMap<String, HashSet<String>>,
    windows: HashMap<&'static str, Window>,
    requests: HashMap<&'static str, u64>,
    busiest_window: HashMap<&'static str, u32>,
    rejected_429: u64,
    faults: u64,
    /// Activation emails Okta would have sent (activate with sendEmail=true).
    activation_emails: u64,
    /// Access tokens issued to the OAuth service app, and those still valid.
    tokens_issued: u64,
    access_tokens: HashSet<String>,
    /// OIDC authorization codes not yet exchanged, and ID tokens issued.
    oidc_codes: HashMap<String, oidc::PendingCode>,
    id_tokens_issued: u64,
    /// Helpdesk (`factors.rs`): user id → enrolled factors.
    factors: HashMap<String, Vec<factors::SimFactor>>,
    /// Ids of `APP_GROUP` groups (members mastered by a directory).
    app_groups: HashSet<String>,
    /// (app, user) → the group a `GROUP`-scoped assignment came from.
    app_user_groups: HashMap<(String, String), String>,
    /// OIDC apps and group rules (`oidc`, `rules`).
    tenancy: oidc_apps::TenancyState,
    /// Group rules (`rules.rs`), by id.
    group_rules: HashMap<String, rules::SimRule>,
    /// Accepted non-GET `/api/v1` requests per bucket (tests count Okta writes).
    writes: HashMap<&'static str, u64>,
}

struct Sim {
    /// Its own base URL: the audience of client assertions.
    url: String,
    config: SimConfig,
    state: Mutex<SimState>,
    in_flight: AtomicUsize,
    events: Option<mpsc::UnboundedSender<Value>>,
    /// Every event generated, for `GET /api/v1/logs`.
    log: Arc<logs::SystemLog>,
}

/// A running simulator.
pub struct OktaSim {
    pub addr: SocketAddr,
    sim: Arc<Sim>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OktaSim {
    /// Starts on `listener` (bind port 0 for tests).
    pub async fn start(
        config: SimConfig,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let log = Arc::new(logs::SystemLog::default());
        let events = config.event_hook.clone().map(|(url, secret)| {
            let (tx, rx) = mpsc::unbounded_channel();
            let drop_rate = config.event_hook_drop_rate;
            tokio::spawn(deliver_events(url, secret, rx, log.clone(), drop_rate));
            tx
        });
        let sim = Arc::new(Sim {
            url: format!("http://{addr}"),
            config,
            state: Mutex::new(SimState::default()),
            in_flight: AtomicUsize::new(0),
            events,
            log,
        });
        let app = Route::new().at("/*path", serve.data(sim.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    app,
                    async {
                        let _ = rx.await;
                    },
                    Some(Duration::from_secs(1)),
                )
                .await;
        });
        Ok(Self {
            addr,
            sim,
            stop: Some(tx),
        })
    }

    /// Uuids of the events in deliveries the simulator dropped (`event_hook_drop_rate`).
    pub fn dropped_events(&self) -> Vec<String> {
        self.sim.log.dropped_events()
    }

    /// Deliveries dropped so far.
    pub fn dropped_deliveries(&self) -> u64 {
        self.sim.log.dropped_deliveries()
    }

    /// Events in the System Log (generated ones plus delivery failures).
    pub fn log_len(&self) -> usize {
        self.sim.log.len()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Status of a user, if it exists.
    pub fn user_status(&self, id_or_login: &str) -> Option<String> {
        let st = self.sim.state.lock().unwrap();
        find(&st, id_or_login).map(|u| u.status.to_string())
    }

    /// Number of users, by login (for duplicate checks in tests).
    pub fn users_with_login(&self, login: &str) -> usize {
        let st = self.sim.state.lock().unwrap();
        st.users
            .values()
            .filter(|u| u.login().eq_ignore_ascii_case(login))
            .count()
    }

    pub fn stats(&self) -> Value {
        stats_json(&self.sim.state.lock().unwrap())
    }

    /// Creates a group (as `POST /api/v1/groups` would) and returns its id.
    pub fn create_group(&self, name: &str) -> String {
        let mut st = self.sim.state.lock().unwrap();
        new_group(&mut st, name, "").id
    }

    /// Renames a group (as an admin editing its profile would).
    pub fn rename_group(&self, id: &str, name: &str) {
        let mut st = self.sim.state.lock().unwrap();
        if let Some(g) = st.groups.get_mut(id) {
            g.name = name.to_owned();
            g.last_updated = now();
        }
    }

    /// Ids of a group's members (empty for an unknown group).
    pub fn group_members(&self, id: &str) -> Vec<String> {
        let st = self.sim.state.lock().unwrap();
        let mut members: Vec<String> = st
            .groups
            .get(id)
            .map(|g| g.members.iter().cloned().collect())
            .unwrap_or_default();
        members.sort();
        members
    }
}

impl Drop for OktaSim {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn stats_json(st: &SimState) -> Value {
    json!({
        "requests": st.requests,
        "busiest_window": st.busiest_window,
        "rejected_429": st.rejected_429,
        "faults": st.faults,
        "activation_emails": st.activation_emails,
        "tokens_issued": st.tokens_issued,
        "users": st.users.len(),
        "writes": st.writes,
        "apps": st.tenancy.apps.len(),
        "groups": st.groups.len(),
        "rules": st.group_rules.len(),
    })
}

fn find<'a>(st: &'a SimState, id_or_login: &str) -> Option<&'a SimUser> {
    st.users.get(id_or_login).or_else(|| {
        st.by_login
            .get(&id_or_login.to_lowercase())
            .and_then(|id| st.users.get(id))
    })
}

fn new_group(st: &mut SimState, name: &str, description: &str) -> SimGroup {
    let group = SimGroup {
        id: format!("00g{}", rand_id(17)),
        name: name.to_owned(),
        description: description.to_owned(),
        created: now(),
        last_updated: now(),
        last_membership_updated: now(),
        members: HashSet::new(),
    };
    st.groups.insert(group.id.clone(), group.clone());
    group
}

/// `search=` expressions over groups: `profile.name eq|sw "…"`, `type eq "…"`, `id eq "…"`,
/// joined by `and`/`or` (evaluated left to right, as far as this subset needs).
fn group_matches_search(group: &SimGroup, search: &str) -> bool {
    let clause = |c: &str| {
        let mut parts = c.trim().splitn(3, ' ');
        let (Some(attr), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let value = value.trim().trim_matches('"');
        let actual = match attr {
            "profile.name" => group.name.as_str(),
            "profile.description" => group.description.as_str(),
            "type" => "OKTA_GROUP",
            "id" => group.id.as_str(),
            _ => return false,
        };
        match op {
            "eq" => actual == value,
            "sw" => actual.to_lowercase().starts_with(&value.to_lowercase()),
            _ => false,
        }
    };
    search
        .split(" or ")
        .any(|alt| alt.split(" and ").all(clause))
}

fn group_not_found(what: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {what} (UserGroup)"),
        &[],
    )
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn okta_error(status: StatusCode, code: &str, summary: &str, causes: &[&str]) -> Response {
    let body = json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": format!("oae{}", rand_id(19)),
        "errorCauses": causes.iter().map(|c| json!({"errorSummary": c})).collect::<Vec<_>>(),
    });
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}

fn rand_id(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn bucket(method: &Method, segments: &[&str]) -> &'static str {
    match (method.as_str(), segments) {
        ("GET" | "POST", ["api", "v1", "users"]) => "users-create-list",
        ("GET", ["api", "v1", "users", _]) => "users-get",
        (_, ["api", "v1", "users", ..]) => "users-by-id",
        (_, ["api", "v1", "groups", ..]) => "groups",
        (_, ["api", "v1", "apps", ..]) => "apps",
        ("GET", ["api", "v1", "logs"]) => "logs",
        _ => "other",
    }
}

fn limit_of(config: &SimConfig, bucket: &str) -> u32 {
    match bucket {
        "users-create-list" => config.users_create_list_limit,
        "users-get" => config.users_get_limit,
        "users-by-id" => config.users_by_id_limit,
        "groups" => config.groups_limit,
        "apps" => config.apps_limit,
        "logs" => config.logs_limit,
        _ => config.other_limit,
    }
}

#[handler]
async fn serve(req: &Request, body: Body, sim: poem::web::Data<&Arc<Sim>>) -> Response {
    let sim = sim.0.clone();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.first() == Some(&"sim") {
        return sim_control(&sim, req.method(), &segments);
    }
    if segments == ["oauth2", "v1", "token"] && req.method() == Method::POST {
        let form = body.into_string().await.unwrap_or_default();
        if form_urlencoded::parse(form.as_bytes())
            .any(|(k, v)| k == "grant_type" && v == "authorization_code")
        {
            let fields = form_urlencoded::parse(form.as_bytes())
                .into_owned()
                .collect();
            let authorization = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            return oidc::token(&sim, authorization, &fields);
        }
        return token_endpoint(&sim, &form);
    }
    // The org authorization server's OpenID Connect endpoints (`oidc`).
    match (req.method().as_str(), segments.as_slice()) {
        ("GET", [".well-known", "openid-configuration"]) => return oidc::discovery(&sim),
        ("GET", ["oauth2", "v1", "keys"]) => return oidc::keys(),
        ("GET", ["oauth2", "v1", "authorize"]) => {
            let query: HashMap<String, String> =
                form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            return oidc::authorize(&sim, &query);
        }
        _ => {}
    }
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authorised = presented == format!("SSWS {}", sim.config.token)
        || presented
            .strip_prefix("Bearer ")
            .is_some_and(|t| sim.state.lock().unwrap().access_tokens.contains(t));
    if !authorised {
        return okta_error(
            StatusCode::UNAUTHORIZED,
            "E0000011",
            "Invalid token provided",
            &[],
        );
    }
    let in_flight = sim.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&sim.in_flight);
    let bucket = bucket(req.method(), &segments);
    let limit = limit_of(&sim.config, bucket);
    // Rate limit: a window starts at the first request after the previous one ended (Okta's
    // windows are not aligned to wall-clock minutes).
    let (remaining, reset, rejected) = {
        let mut st = sim.state.lock().unwrap();
        *st.requests.entry(bucket).or_default() += 1;
        let now = SystemTime::now();
        let w = st.windows.entry(bucket).or_default();
        if w.start.is_none_or(|s| now >= s + sim.config.window) {
            w.start = Some(now);
            w.count = 0;
        }
        let end = w.start.unwrap() + sim.config.window;
        let reset = end
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .div_ceil(1000) as u64;
        let rejected = w.count >= limit;
        if !rejected {
            w.count += 1;
        }

        let count = w.count;
        let remaining = limit - count;
        if !rejected && req.method() != Method::GET {
            *st.writes.entry(bucket).or_default() += 1;
        }
        if rejected {
            st.rejected_429 += 1;
        } else {
            let busiest = st.busiest_window.entry(bucket).or_default();
            *busiest = (*busiest).max(count);
        }
        (remaining, reset, rejected)
    };
    let with_headers = |mut resp: Response, limit: u32, remaining: u32| {
        let h = resp.headers_mut();
        h.insert("x-rate-limit-limit", limit.into());
        h.insert("x-rate-limit-remaining", remaining.into());
        h.insert("x-rate-limit-reset", reset.into());
        resp
    };
    if rejected {
        let resp = okta_error(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
            &[],
        );
        return with_headers(resp, limit, 0);
    }
    if sim.config.concurrency_limit > 0 && in_flight > sim.config.concurrency_limit {
        let resp = okta_error(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
            &[],
        );
        sim.state.lock().unwrap().rejected_429 += 1;
        return with_headers(resp, 0, 0);
    }
    if !sim.config.latency.is_zero() {
        tokio::time::sleep(sim.config.latency).await;
    }
    if sim.config.fault_rate > 0.0 && rand::rng().random_bool(sim.config.fault_rate.min(1.0)) {
        sim.state.lock().unwrap().faults += 1;
        let resp = okta_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "E0000009",
            "Internal Server Error",
            &[],
        );
        return with_headers(resp, limit, remaining);
    }
    let body: Value = match body.into_bytes().await {
        Ok(b) if b.is_empty() => Value::Null,
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(v) => v,
            Err(_) => {
                return with_headers(
                    okta_error(
                        StatusCode::BAD_REQUEST,
                        "E0000003",
                        "The request body was not well-formed.",
                        &[],
                    ),
                    limit,
                    remaining,
                )
            }
        },
        Err(_) => Value::Null,
    };
    let query: HashMap<String, String> =
        Query::<HashMap<String, String>>::from_request_without_body(req)
            .await
            .map(|q| q.0)
            .unwrap_or_default();
    let resp = route_api(&sim, req.method(), &segments, &query, &body);
    with_headers(resp, limit, remaining)
}

/// `POST /oauth2/v1/token`: client credentials with a `private_key_jwt` assertion.
fn token_endpoint(sim: &Sim, form: &str) -> Response {
    let fields: HashMap<String, String> = form_urlencoded::parse(form.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let refuse = |error: &str, description: &str| {
        json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": error, "error_description": description}),
        )
    };
    let Some((client_id, public_pem)) = &sim.config.oauth_app else {
        return refuse("invalid_client", "no OAuth service app is configured");
    };
    if fields.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return refuse("unsupported_grant_type", "only client_credentials");
    }
    let Some(assertion) = fields.get("client_assertion") else {
        return refuse("invalid_client", "client_assertion is required");
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()) else {
        return refuse("invalid_client", "the app's public key is unusable");
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[format!("{}/oauth2/v1/token", sim.url)]);
    validation.set_issuer(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        Ok(data) if data.claims["sub"] == json!(client_id) => {
            let token = rand_id(40);
            let mut st = sim.state.lock().unwrap();
            st.tokens_issued += 1;
            st.access_tokens.insert(token.clone());
            json_response(
                StatusCode::OK,
                &json!({"token_type": "Bearer", "expires_in": 3600, "access_token": token,
                        "scope": fields.get("scope").cloned().unwrap_or_default()}),
            )
        }
        Ok(_) => refuse("invalid_client", "sub must be the client id"),
        Err(e) => refuse(
            "invalid_client",
            &format!("The client_assertion is invalid: {e}"),
        ),
    }
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

use poem::FromRequest;

fn sim_control(sim: &Sim, method: &Method, segments: &[&str]) -> Response {
    match (method.as_str(), segments) {
        ("GET", ["sim", "stats"]) => {
            json_response(StatusCode::OK, &stats_json(&sim.state.lock().unwrap()))
        }
        ("POST", ["sim", "users", id, "lock"]) => {
            let mut st = sim.state.lock().unwrap();
            let Some(id) = find(&st, id).map(|u| u.id.clone()) else {
                return okta_error(StatusCode::NOT_FOUND, "E0000007", "Not found", &[]);
            };
            let user = st.users.get_mut(&id).unwrap();
            user.status = "LOCKED_OUT";
            let u = user.clone();
            drop(st);
            emit(sim, "user.account.lock", &u, None);
            json_response(StatusCode::OK, &u.to_json())
        }
        ("POST", ["sim", "users", id, "factors", factor_type]) => {
            factors::enroll_by_control(sim, id, factor_type)
        }
        ("DELETE", ["sim", "apps", id]) => {
            let removed = sim.state.lock().unwrap().tenancy.apps.remove(*id);
            match removed {
                Some(_) => Response::builder().status(StatusCode::NO_CONTENT).finish(),
                None => okta_error(StatusCode::NOT_FOUND, "E0000007", "Not found", &[]),
            }
        }
        _ => okta_error(
            StatusCode::NOT_FOUND,
            "E0000022",
            "The endpoint does not support the provided HTTP method",
            &[],
        ),
    }
}

fn not_found(what: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {what} (User)"),
        &[],
    )
}

fn not_allowed() -> Response {
    okta_error(
        StatusCode::FORBIDDEN,
        "E0000038",
        "This operation is not allowed in the user's current status.",
        &[],
    )
}

fn route_api(
    sim: &Sim,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
    body: &Value,
) -> Response {
    if let Some(resp) = rules::route(sim, method, segments, query, body)
        .or_else(|| oidc_apps::route(sim, method, segments, query, body))
    {
        return resp;
    }
    let st = sim.state.lock().unwrap();
    match (method.as_str(), segments) {
        ("POST", ["api", "v1", "users"]) => users::create_user(sim, st, query, body),
        ("GET", ["api", "v1", "users", id]) => users::get_user(st, id),
        ("POST", ["api", "v1", "users", id]) => users::update_user(sim, st, id, body),
        ("POST", ["api", "v1", "users", id, "lifecycle", op]) => {
            users::lifecycle(sim, st, id, op, query)
        }
        ("DELETE", ["api", "v1", "users", id, "sessions"]) => users::clear_sessions(sim, st, id),
        ("DELETE", ["api", "v1", "users", id]) => users::delete_user(sim, st, id),
        ("POST", ["api", "v1", "groups"]) => groups::create_group(st, body),
        ("GET", ["api", "v1", "groups"]) => groups::list_groups(st, query),
        ("GET", ["api", "v1", "groups", gid]) => groups::get_group(st, gid),
        ("PUT", ["api", "v1", "groups", gid]) => groups::update_group(st, gid, body),
        ("DELETE", ["api", "v1", "groups", gid]) => groups::delete_group(st, gid),
        ("GET", ["api", "v1", "groups", gid, "users"]) => groups::list_group_members(st, gid),
        (m @ ("PUT" | "DELETE"), ["api", "v1", "groups", gid, "users", uid]) => {
            groups::group_membership(sim, st, m, gid, uid)
        }
        ("POST", ["api", "v1", "apps", aid, "users"]) => apps::assign_app(sim, st, aid, body),
        ("GET", ["api", "v1", "logs"]) => {
            drop(st);
            sim.log.list(&sim.url, query)
        }
        ("DELETE", ["api", "v1", "apps", aid, "users", uid]) => {
            apps::unassign_app(sim, st, aid, uid)
        }
        ("GET", ["api", "v1", "users", uid, "factors"]) => factors::list_factors(st, uid),
        ("DELETE", ["api", "v1", "users", uid, "factors", fid]) => {
            factors::delete_factor(sim, st, uid, fid)
        }
        ("GET", ["api", "v1", "apps", aid, "users", uid]) => factors::get_app_user(st, aid, uid),
        _ => okta_error(
            StatusCode::NOT_FOUND,
            "E0000022",
            "The endpoint does not support the provided HTTP method",
            &[],
        ),
    }
}

/// `?key=true|false`, or `default`.
fn flag(query: &HashMap<String, String>, key: &str, default: bool) -> bool {
    query.get(key).map(|v| v == "true").unwrap_or(default)
}

/// Queues a System Log event about `user` for the event hook.
fn emit(sim: &Sim, event_type: &str, user: &SimUser, extra_target: Option<Value>) {
    emit_targets(sim, event_type, user, extra_target.into_iter().collect());
}

/// Queues a System Log event about `user` with more targets after the `User` one.
fn emit_targets(sim: &Sim, event_type: &str, user: &SimUser, extra_targets: Vec<Value>) {
    let mut targets = vec![json!({
        "id": user.id, "type": "User", "alternateId": user.login(),
        "displayName": format!("{} {}", user.profile["firstName"].as_str().unwrap_or(""), user.profile["lastName"].as_str().unwrap_or("")).trim().to_string(),
        "detailEntry": null
    })];
    targets.extend(extra_targets);
    let event = json!({
        "uuid": format!("{:032x}", rand::rng().random::<u128>()),
        "published": now(),
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": event_type,
        "actor": {"id": "00usimadmin0000000001", "type": "User", "alternateId": "api-admin@sim.okta", "displayName": "API Admin"},
        "client": {"ipAddress": "127.0.0.1", "zone": "null", "device": "Unknown"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": targets,
        "transaction": {"type": "WEB", "id": rand_id(20), "detail": {}},
        "debugContext": {"debugData": {"requestId": rand_id(20)}},
    });
    sim.log.record(event.clone());
    if let Some(tx) = &sim.events {
        let _ = tx.send(event);
    }
}

/// Posts queued events, in order, in batches of whatever has accumulated (as Okta batches).
async fn deliver_events(
    url: String,
    secret: String,
    mut rx: mpsc::UnboundedReceiver<Value>,
    log: Arc<logs::SystemLog>,
    drop_rate: f64,
) {
    let client = reqwest::Client::new();
    while let Some(first) = rx.recv().await {
        let mut events = vec![first];
        while let Ok(more) = rx.try_recv() {
            events.push(more);
            if events.len() >= 200 {
                break;
            }
        }
        if log.drop_delivery(drop_rate, &events) {
            continue;
        }
        let delivery = json!({
            "eventType": "com.okta.event_hook",
            "eventTypeVersion": "1.0",
            "cloudEventsVersion": "0.1",
            "source": "https://sim.okta/api/v1/eventHooks/whosim",
            "eventId": format!("{:032x}", rand::rng().random::<u128>()),
            "eventTime": now(),
            "contentType": "application/json",
            "data": {"events": events},
        });
        // Okta retries once on failure; so do we.
        for _ in 0..2 {
            let sent = client
                .post(&url)
                .header("authorization", &secret)
                .json(&delivery)
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
