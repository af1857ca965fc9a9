//! Configuration: `config/default.toml` (embedded) → an optional file → `OKTA_ADAPTER__*` env vars.
//!
//! Everything is parsed into typed settings once, at start, and `validate()` turns every
//! problem into one line that names the key. Secrets are `SecretString`, so `Debug` never
//! prints them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// The defaults, compiled in so the binary runs without any file next to it.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variables that override keys: `OKTA_ADAPTER__HTTP__LISTEN` → `http.listen`.
pub const ENV_PREFIX: &str = "OKTA_ADAPTER__";

/// The environment variable that names an optional config file.
pub const ENV_CONFIG_FILE: &str = "OKTA_ADAPTER_CONFIG";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub log: LogSettings,
    pub redis: RedisSettings,
    pub hooks: HookSettings,
    pub firehose: FirehoseSettings,
    #[serde(default)]
    pub routes: Vec<RouteSettings>,
    pub tenants: TenantSettings,
    pub inline: InlineSettings,
    pub projection: ProjectionSettings,
    pub okta: OktaSettings,
    pub jobs: JobSettings,
    pub report: ReportSettings,
    pub smtp: SmtpSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Where the server listens; parsed in `validate`.
    pub listen: String,
    /// Bodies above this get 413 before anything is parsed or written.
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// A connection with no request in flight is closed when a request head (request line and
    /// headers) has not fully arrived this long after the connection opened or last wrote
    /// (`http::slow_client`). Bounds clients that trickle headers and idle keep-alives.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// A secret because a URL may carry a password.
    pub url: SecretString,
    pub prefix: String,
    pub response_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub maintenance_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSettings {
    pub auth_header: String,
    /// Accepts a list or, for convenience in env vars, a single string.
    #[serde(deserialize_with = "one_or_many_secrets")]
    pub secrets: Vec<SecretString>,
    /// Empty = entries are not signed.
    pub signing_key: SecretString,
    pub dedup_window_secs: u64,
    pub max_events_per_write: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirehoseSettings {
    pub maxlen: u64,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    pub name: String,
    pub event_types: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default = "default_route_maxlen")]
    pub maxlen: u64,
    #[serde(default)]
    pub groups: Vec<String>,
}

fn default_route_maxlen() -> u64 {
    100_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    #[serde(default)]
    pub rules: Vec<TenantRuleSettings>,
    /// Tenant → Okta group ids its client admins may use in group jobs, besides the groups the
    /// `group` rules assign to it.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionSettings {
    /// Run the projection consumer in this process.
    pub enabled: bool,
    /// Consumer group on the firehose.
    pub group: String,
    /// Consumer name; empty = host name and process id.
    pub consumer: String,
    /// Entries read (and applied in one pipeline) per round.
    pub batch: usize,
    /// How long one blocking read waits for new entries.
    pub block_ms: u64,
    /// Entries pending longer than this (their consumer died) are taken over.
    pub claim_idle_ms: u64,
    /// An entry delivered this many times without being applied goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// Recent events kept per user for the timeline.
    pub timeline_len: usize,
    /// Index entries one `GET /api/v1/users` request reads at most (at least its page size);
    /// a filtered page may then be short and carry a `next` cursor to continue from.
    #[serde(default = "default_list_scan_budget")]
    pub list_scan_budget: usize,
}

fn default_list_scan_budget() -> usize {
    1_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OktaSettings {
    /// Base URL of the Okta org (or of any Okta-compatible server, e.g. the simulator).
    pub org_url: String,
    /// `SSWS` API token (with `auth = "ssws"`).
    pub api_token: SecretString,
    /// `ssws` (API token) or `private_key_jwt` (OAuth 2.0 service app).
    pub auth: String,
    /// OAuth service app client id (`private_key_jwt`).
    pub client_id: String,
    /// The service app's private key, PEM (`private_key_jwt`); or use `private_key_file`.
    pub private_key: SecretString,
    /// Path of a PEM file with the private key (`private_key_jwt`).
    pub private_key_file: String,
    /// `kid` of the key registered on the service app (optional).
    pub key_id: String,
    /// Scopes requested for the access token.
    pub scopes: Vec<String>,
    /// Share of each rate-limit bucket left to other integrations (0.0–0.9).
    pub headroom: f64,
    /// Share of the budget only interactive actions may use when bulk work is running.
    pub interactive_reserve: f64,
    /// Length of Okta's rate-limit window; 60000 in production (tests shrink it).
    pub rate_window_ms: u64,
    /// Limit assumed for a bucket before Okta's `X-Rate-Limit-Limit` says otherwise.
    pub default_limit: u32,
    /// Requests in flight to Okta from this process, at most (Okta's org concurrency limit is
    /// 75 for all clients together; stay well below it).
    pub max_concurrency: usize,
    /// Attempts for a request that fails with 5xx, 429 or a network error.
    pub max_attempts: u32,
    /// Timeout of one Okta request.
    pub timeout_ms: u64,
}

impl OktaSettings {
    /// The `private_key_jwt` key: inline PEM, else the file's content.
    pub fn private_key_pem(&self) -> Result<String, String> {
        let inline = self.private_key.expose_secret();
        if !inline.is_empty() {
            return Ok(inline.to_owned());
        }
        if self.private_key_file.is_empty() {
            return Err("no key: set one of them".into());
        }
        std::fs::read_to_string(&self.private_key_file)
            .map_err(|e| format!("cannot read {}: {e}", self.private_key_file))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// Run bulk job workers in this process.
    pub workers: bool,
    /// Rows in flight per process.
    pub concurrency: usize,
    /// Rows of a job list per page of results (JSON lines / CSV export streams in pages).
    pub export_page: usize,
    /// Pending rows of a dead worker are taken over after this long, in ms.
    pub claim_idle_ms: u64,
    /// Profile attribute set to the tenant on users a client admin creates; empty = client
    /// admins may not run create jobs (the tenant could not be enforced).
    pub tenant_profile_attribute: String,
    /// Longest record (JSON line or CSV record) of an upload, in bytes; a longer one fails.
    pub max_record_bytes: usize,
    /// A job still `validating` whose upload showed no progress for this long was cut off
    /// (crash); the maintenance sweep cancels it.
    pub stale_upload_secs: u64,
}

/// The monthly report: aggregation consumer, schedule and delivery (see `docs/reports.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Run the aggregation consumer and the scheduled sender in this process.
    pub enabled: bool,
    /// 6-field cron (seconds first), evaluated in UTC: when the previous month is sent.
    pub schedule: String,
    /// IANA zone whose calendar months the report counts (e.g. `Europe/Berlin`).
    pub timezone: String,
    /// Who gets the email; empty = the report is compiled but not sent.
    pub recipients: Vec<String>,
    /// The `From:` mailbox.
    pub from: String,
    /// Where previews, charts and the file-transport outbox are written.
    pub output_dir: String,
    /// Consumer group on the firehose, the inline decision stream and the job-rows stream.
    pub group: String,
    /// Consumer name; empty = host name and process id.
    pub consumer: String,
    /// Entries read (and counted in one script call) per round.
    pub batch: usize,
    /// How long one blocking read waits for new entries.
    pub block_ms: u64,
    /// Entries pending longer than this (their consumer died) are taken over.
    pub claim_idle_ms: u64,
    /// How often a replica checks for a due but unsent month (catch-up and SMTP retries).
    pub check_interval_secs: u64,
    /// First retry delay after an SMTP failure; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// How long one replica may hold the right to send a month before another may take over.
    pub lease_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// `smtp://user:pass@host:587?tls=required`, `smtps://…`, or empty for the file transport.
    /// A secret because it carries the SMTP password.
    pub url: SecretString,
    /// Timeout for one SMTP conversation.
    pub timeout_secs: u64,
}

/// One tenant rule as written in config; `domain::tenant` compiles it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TenantRuleSettings {
    Group { pattern: String },
    App { map: BTreeMap<String, String> },
    EmailDomain { map: BTreeMap<String, String> },
    Attribute { attribute: String },
}

/// `[inline]`: inline hook decisions (see `config/default.toml` for what each key means).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineSettings {
    pub deadline_ms: u64,
    pub max_body_bytes: usize,
    pub decisions_maxlen: u64,
    pub tenant_attribute: String,
    #[serde(default)]
    pub tenants: Vec<InlineTenantSettings>,
    /// Group display name → roles.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    pub oauth: InlineOAuthSettings,
    pub password_import: PasswordImportSettings,
    pub token: TokenHookSettings,
    pub saml: SamlHookSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineTenantSettings {
    pub id: String,
    #[serde(default)]
    pub email_domains: Vec<String>,
    #[serde(default)]
    pub apps: Vec<String>,
    /// Set at self-service registration (besides the tenant attribute).
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineOAuthSettings {
    pub enabled: bool,
    pub issuer: String,
    pub audience: String,
    pub client_id: String,
    pub required_scope: String,
    pub jwks_url: String,
    pub jwks_refresh_min_secs: u64,
    pub jwks_timeout_ms: u64,
    pub leeway_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordImportSettings {
    /// 0 = the number of cores.
    pub max_concurrent_hashes: usize,
    pub max_failures: u64,
    pub failure_window_secs: u64,
    /// Hash limits (see `inline::password::HashLimits`).
    pub max_bcrypt_cost: u32,
    pub max_pbkdf2_iterations: u32,
    pub max_argon2_kib_passes: u64,
    pub cleanup_group: String,
    pub cleanup_claim_idle_secs: u64,
}

impl PasswordImportSettings {
    /// Concurrent verifications: the configured number, or one per core but one (at least one).
    ///
    /// Hashing saturates whatever cores it gets. With every core hashing, the async workers that
    /// answer the other hooks and fire the deadlines get CPU only in turns, and answers overshoot
    /// the deadline (measured: 1.76 s answers at a 1.5 s deadline on 2 cores). One core is kept
    /// for them.
    pub fn hash_permits(&self) -> usize {
        if self.max_concurrent_hashes > 0 {
            self.max_concurrent_hashes
        } else {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cores.saturating_sub(1).max(1)
        }
    }
}

/// Which token a claim goes into.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Identity,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenHookSettings {
    pub tenant_claim: String,
    pub roles_claim: String,
    pub tokens: Vec<TokenKind>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlHookSettings {
    pub tenant_attribute: String,
    pub roles_attribute: String,
    pub name_format: String,
}

/// Claims Okta does not let a token hook add or change (HOOKS-SPEC §3.6.2, REF-token).
pub const RESERVED_TOKEN_CLAIMS: &[&str] = &[
    "acr",
    "active",
    "aid",
    "amr",
    "app_id",
    "app_type",
    "as_uri",
    "at_hash",
    "aud",
    "auth_time",
    "authorization_details",
    "c_hash",
    "cid",
    "client_id",
    "client_ip",
    "client_req_id",
    "client_type",
    "client_user_agent",
    "cnf",
    "device_compliance",
    "device_id",
    "device_known",
    "device_managed",
    "device_name",
    "device_trust",
    "did",
    "dst",
    "exp",
    "group",
    "groups",
    "hotk",
    "iat",
    "idp",
    "idp_iss",
    "iss",
    "jti",
    "mac_key",
    "may_act",
    "nonce",
    "oid",
    "okta_emailVerified",
    "okta_lastUpdated",
    "orig",
    "permissions",
    "purpose",
    "pwd_exp_days",
    "pwd_exp_time",
    "rid",
    "role",
    "rpt",
    "rsi",
    "scope",
    "scopes",
    "scp",
    "sid",
    "sub",
    "term",
    "token_type",
    "uid",
    "user_ip",
    "username",
    "ver",
];

impl InlineSettings {
    fn validate(&self, problems: &mut Vec<String>) {
        if self.deadline_ms == 0 || self.deadline_ms >= 3000 {
            problems.push(format!(
                "inline.deadline_ms: {} must be between 1 and 2999 (Okta waits 3000 ms)",
                self.deadline_ms
            ));
        }
        if self.max_body_bytes == 0 {
            problems.push("inline.max_body_bytes: must be greater than 0".into());
        }
        let mut ids = std::collections::HashSet::new();
        let mut domains = std::collections::HashMap::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if let Err(e) = crate::domain::tenant::TenantId::parse(&t.id) {
                problems.push(format!("inline.tenants[{i}].id: {e}"));
            }
            if !ids.insert(t.id.as_str()) {
                problems.push(format!("inline.tenants[{i}].id: `{}` is used twice", t.id));
            }
            for d in &t.email_domains {
                let d = d.to_ascii_lowercase();
                if d.is_empty() || d.contains('@') {
                    problems.push(format!(
                        "inline.tenants[{i}].email_domains: `{d}` is not a domain like example.com"
                    ));
                }
                if let Some(other) = domains.insert(d.clone(), t.id.clone()) {
                    problems.push(format!(
                        "inline.tenants[{i}].email_domains: `{d}` also belongs to tenant `{other}`"
                    ));
                }
            }
        }
        let o = &self.oauth;
        if o.enabled {
            for (key, value) in [
                ("issuer", &o.issuer),
                ("audience", &o.audience),
                ("client_id", &o.client_id),
                ("jwks_url", &o.jwks_url),
            ] {
                if value.is_empty() {
                    problems.push(format!(
                        "inline.oauth.{key}: must be set when inline.oauth.enabled = true"
                    ));
                }
            }
            let http_url = o.jwks_url.starts_with("https://") || o.jwks_url.starts_with("http://");
            if !o.jwks_url.is_empty() && !http_url {
                problems.push(format!(
                    "inline.oauth.jwks_url: `{}` is not an http(s) URL",
                    o.jwks_url
                ));
            }
            if o.jwks_timeout_ms == 0 {
                problems.push("inline.oauth.jwks_timeout_ms: must be > 0".into());
            }
        }
        let p = &self.password_import;
        if p.max_failures == 0 || p.failure_window_secs == 0 {
            problems.push(
                "inline.password_import.max_failures / failure_window_secs: must be > 0".into(),
            );
        }
        problems.extend(
            crate::inline::password::HashLimits::from_settings(p)
                .problems(std::time::Duration::from_millis(self.deadline_ms)),
        );
        if p.cleanup_group.is_empty() {
            problems.push("inline.password_import.cleanup_group: must not be empty".into());
        }
        if p.cleanup_claim_idle_secs == 0 {
            problems.push("inline.password_import.cleanup_claim_idle_secs: must be > 0".into());
        }
        for (key, claim) in [
            ("tenant_claim", &self.token.tenant_claim),
            ("roles_claim", &self.token.roles_claim),
        ] {
            if RESERVED_TOKEN_CLAIMS.contains(&claim.as_str()) {
                problems.push(format!(
                    "inline.token.{key}: `{claim}` is a claim Okta reserves; a token hook may not set it"
                ));
            }
        }
        if !self.token.tenant_claim.is_empty() && self.token.tenant_claim == self.token.roles_claim
        {
            problems.push("inline.token.roles_claim: must differ from tenant_claim".into());
        }
        if !self.saml.tenant_attribute.is_empty()
            && self.saml.tenant_attribute == self.saml.roles_attribute
        {
            problems.push("inline.saml.roles_attribute: must differ from tenant_attribute".into());
        }
    }
}

fn one_or_many_secrets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) if s.is_empty() => Vec::new(),
        OneOrMany::One(s) => vec![SecretString::from(s)],
        OneOrMany::Many(v) => v.into_iter().map(SecretString::from).collect(),
    })
}

/// What went wrong while loading configuration: one message per problem, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(msg: impl Into<String>) -> Self {
        Self {
            problems: vec![msg.into()],
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` (or the file named by `OKTA_ADAPTER_CONFIG`), then env vars.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, None)
    }

    /// Like [`Settings::load`], with `overrides` (TOML) between the defaults and the file; `dev`
    /// mode uses it for a demo secret that any real setting still replaces.
    pub fn load_with(file: Option<&Path>, overrides: Option<&str>) -> Result<Self, ConfigError> {
        let env_file = std::env::var_os(ENV_CONFIG_FILE).map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(env_file);
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(toml) = overrides {
            figment = figment.merge(Toml::string(toml));
        }
        if let Some(path) = &file {
            if !path.exists() {
                return Err(ConfigError::one(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        Self::from_figment(figment.merge(Env::prefixed(ENV_PREFIX).split("__")))
    }

    /// Loads defaults overlaid with a TOML string (tests and tools use this).
    pub fn from_toml_overrides(toml: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(toml)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = figment.extract().map_err(|e| ConfigError {
            problems: e.into_iter().map(|e| describe_figment_error(&e)).collect(),
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks everything that types alone cannot; every problem is reported, not just the first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.http.listen.parse::<SocketAddr>().is_err() {
            problems.push(format!(
                "http.listen: `{}` is not an address like 127.0.0.1:8080",
                self.http.listen
            ));
        }
        if self.http.max_body_bytes == 0 {
            problems.push("http.max_body_bytes: must be greater than 0".into());
        }
        if self.http.header_read_timeout_ms == 0 {
            problems.push("http.header_read_timeout_ms: must be greater than 0".into());
        }
        if let Err(e) = redis::parse_redis_url(self.redis.url.expose_secret())
            .ok_or("not a redis:// or rediss:// URL")
        {
            problems.push(format!("redis.url: {e}"));
        }
        if self.redis.prefix.is_empty() || self.redis.prefix.contains(['{', '}', ' ']) {
            problems.push("redis.prefix: must be non-empty, without spaces or braces".into());
        }
        if self.redis.response_timeout_ms == 0 || self.redis.connect_timeout_ms == 0 {
            problems.push("redis.response_timeout_ms / connect_timeout_ms: must be > 0".into());
        }
        if self.redis.maintenance_interval_secs == 0 {
            problems.push("redis.maintenance_interval_secs: must be > 0".into());
        }
        if self.hooks.auth_header.is_empty()
            || poem::http::HeaderName::from_bytes(self.hooks.auth_header.as_bytes()).is_err()
        {
            problems.push(format!(
                "hooks.auth_header: `{}` is not a valid HTTP header name",
                self.hooks.auth_header
            ));
        }
        if self.hooks.secrets.is_empty() {
            problems.push(
                "hooks.secrets: empty — set at least one, e.g. OKTA_ADAPTER__HOOKS__SECRETS='[\"a-long-random-value\"]'"
                    .into(),
            );
        }
        if self
            .hooks
            .secrets
            .iter()
            .any(|s| s.expose_secret().is_empty())
        {
            problems.push("hooks.secrets: contains an empty secret".into());
        }
        if self.hooks.dedup_window_secs == 0 {
            problems.push("hooks.dedup_window_secs: must be > 0".into());
        }
        // The ingest script unpacks per-slice lists into one Redis call (Lua's limit is ~8000).
        if !(1..=5000).contains(&self.hooks.max_events_per_write) {
            problems.push("hooks.max_events_per_write: must be between 1 and 5000".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let valid_name = !route.name.is_empty()
                && route
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid_name {
                problems.push(format!(
                    "routes[{i}].name: `{}` must be non-empty and use only letters, digits, - _ .",
                    route.name
                ));
            }
            if route.name == crate::fanout::CREDENTIAL_IMPORTS_ROUTE {
                problems.push(format!(
                    "routes[{i}].name: `{}` is the name of a built-in route",
                    route.name
                ));
            }
            if !names.insert(route.name.clone()) {
                problems.push(format!("routes[{i}].name: `{}` is used twice", route.name));
            }
            if route.event_types.is_empty() {
                problems.push(format!(
                    "routes[{i}].event_types: must list at least one pattern"
                ));
            }
        }
        for (i, rule) in self.tenants.rules.iter().enumerate() {
            match rule {
                TenantRuleSettings::Group { pattern } => {
                    if let Err(e) = regex::Regex::new(pattern) {
                        problems.push(format!("tenants.rules[{i}].pattern: invalid regex: {e}"));
                    }
                }
                // A map value is a tenant as written: a typo must stop the start, not silently
                // name no tenant for every matching event.
                TenantRuleSettings::App { map } | TenantRuleSettings::EmailDomain { map } => {
                    for (k, t) in map {
                        if let Err(e) = crate::domain::tenant::TenantId::parse(t) {
                            problems.push(format!("tenants.rules[{i}].map.{k}: {e}"));
                        }
                    }
                }
                TenantRuleSettings::Attribute { .. } => {}
            }
        }
        for (t, groups) in &self.tenants.groups {
            if let Err(e) = crate::domain::tenant::TenantId::parse(t) {
                problems.push(format!("tenants.groups.{t}: {e}"));
            }
            if groups.iter().any(|g| g.trim().is_empty()) {
                problems.push(format!("tenants.groups.{t}: a group id is empty"));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            for t in &route.tenants {
                if let Err(e) = crate::domain::tenant::TenantId::parse(t) {
                    problems.push(format!("routes[{i}].tenants: {e}"));
                }
            }
        }
        self.inline.validate(&mut problems);
        let p = &self.projection;
        if p.list_scan_budget == 0 {
            problems.push("projection.list_scan_budget: must be greater than 0".into());
        }
        if p.group.is_empty() || p.batch == 0 || p.block_ms == 0 || p.max_deliveries == 0 {
            problems.push(
                "projection: group must be set and batch, block_ms, max_deliveries > 0".into(),
            );
        }
        let o = &self.okta;
        let url_ok = o.org_url.is_empty()
            || o.org_url.starts_with("https://")
            || o.org_url.starts_with("http://");
        if o.auth == "private_key_jwt" {
            if o.client_id.is_empty() {
                problems.push("okta.client_id: required with auth = \"private_key_jwt\"".into());
            }
            if let Err(e) = o.private_key_pem().and_then(|pem| {
                jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())
            }) {
                problems.push(format!("okta.private_key / okta.private_key_file: {e}"));
            }
        } else if o.auth != "ssws" {
            problems.push(format!(
                "okta.auth: `{}` is not ssws or private_key_jwt",
                o.auth
            ));
        }
        if !url_ok {
            problems.push(format!(
                "okta.org_url: `{}` is not an http(s) URL",
                o.org_url
            ));
        }
        if !(0.0..=0.9).contains(&o.headroom) || !(0.0..=0.5).contains(&o.interactive_reserve) {
            problems
                .push("okta.headroom must be 0.0–0.9 and okta.interactive_reserve 0.0–0.5".into());
        }
        if o.rate_window_ms == 0
            || o.default_limit == 0
            || o.max_concurrency == 0
            || o.max_attempts == 0
        {
            problems.push(
                "okta.rate_window_ms, default_limit, max_concurrency, max_attempts: must be > 0"
                    .into(),
            );
        }
        if self.jobs.concurrency == 0 || self.jobs.export_page == 0 {
            problems.push("jobs.concurrency and jobs.export_page: must be > 0".into());
        }
        if self.jobs.max_record_bytes == 0 || self.jobs.stale_upload_secs == 0 {
            problems.push("jobs.max_record_bytes and jobs.stale_upload_secs: must be > 0".into());
        }
        self.validate_report(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    fn validate_report(&self, problems: &mut Vec<String>) {
        let r = &self.report;
        if let Err(e) = crate::reporting::schedule::parse_cron(&r.schedule) {
            problems.push(format!("report.schedule: {e}"));
        }
        if r.timezone.parse::<chrono_tz::Tz>().is_err() {
            problems.push(format!(
                "report.timezone: `{}` is not an IANA time zone like Europe/Berlin or UTC",
                r.timezone
            ));
        }
        for (i, to) in r.recipients.iter().enumerate() {
            if to.parse::<lettre::message::Mailbox>().is_err() {
                problems.push(format!(
                    "report.recipients[{i}]: `{to}` is not an email address"
                ));
            }
        }
        if r.from.parse::<lettre::message::Mailbox>().is_err() {
            problems.push(format!(
                "report.from: `{}` is not a mailbox like \"IAM reports <iam@example.com>\"",
                r.from
            ));
        }
        if r.group.is_empty() || r.batch == 0 || r.block_ms == 0 {
            problems.push("report: group must be set and batch, block_ms > 0".into());
        }
        if r.check_interval_secs == 0 || r.lease_secs == 0 || r.retry_initial_ms == 0 {
            problems.push(
                "report.check_interval_secs / lease_secs / retry_initial_ms: must be > 0".into(),
            );
        }
        if r.retry_max_ms < r.retry_initial_ms {
            problems.push("report.retry_max_ms: must be >= report.retry_initial_ms".into());
        }
        let url = self.smtp.url.expose_secret();
        if !url.is_empty() {
            if let Err(e) = crate::reporting::deliver::check_smtp_url(url) {
                // The message never contains the URL: it may hold the password.
                problems.push(format!("smtp.url: {e}"));
            }
        }
        if self.smtp.timeout_secs == 0 {
            problems.push("smtp.timeout_secs: must be > 0".into());
        }
    }

    /// The business time zone (checked by `validate`).
    pub fn report_timezone(&self) -> chrono_tz::Tz {
        self.report
            .timezone
            .parse()
            .expect("report.timezone is checked by validate()")
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.http
            .listen
            .parse()
            .expect("http.listen is checked by validate()")
    }

    /// The signing key, when one is configured.
    pub fn signing_key(&self) -> Option<&[u8]> {
        let key = self.hooks.signing_key.expose_secret();
        (!key.is_empty()).then_some(key.as_bytes())
    }
}

/// Turns figment's error into one line that leads with the dotted key.
fn describe_figment_error(e: &figment::Error) -> String {
    use figment::error::Kind;
    let key = e.path.join(".");
    let what = match &e.kind {
        Kind::UnknownField(field, _) => {
            return format!(
                "{}: unknown key (check the spelling against config/default.toml)",
                full_key(&e.path, field)
            );
        }
        Kind::MissingField(field) => return format!("{}: missing", full_key(&e.path, field)),
        other => other.to_string(),
    };
    let source = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    if key.is_empty() {
        format!("{what}{source}")
    } else {
        format!("{key}: {what}{source}")
    }
}

/// figment's path sometimes already ends with the offending field, sometimes not.
fn full_key(path: &[String], field: &str) -> String {
    match path.last() {
        Some(last) if last == field => path.join("."),
        Some(_) => format!("{}.{field}", path.join(".")),
        None => field.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secret(extra: &str) -> String {
        format!("[hooks]\nsecrets = [\"s1\"]\n{extra}")
    }

    #[test]
    fn defaults_with_a_secret_are_valid() {
        let s = Settings::from_toml_overrides(&with_secret("")).unwrap();
        assert_eq!(s.http.listen, "127.0.0.1:8080");
        assert_eq!(s.redis.prefix, "okta-adapter");
        assert_eq!(s.hooks.auth_header, "authorization");
        assert_eq!(s.routes.len(), 1);
        assert!(s.signing_key().is_none());
    }

    #[test]
    fn defaults_alone_are_refused_because_no_secret_is_set() {
        let err = Settings::from_toml_overrides("").unwrap_err();
        assert!(err.to_string().contains("hooks.secrets"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = Settings::from_toml_overrides("[http]\nlistn = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("http.listn: unknown key"), "{err}");
    }

    #[test]
    fn a_bad_redis_url_and_listen_address_are_both_reported() {
        let err = Settings::from_toml_overrides(&with_secret(
            "[redis]\nurl = \"http://nope\"\n[http]\nlisten = \"nowhere\"\n",
        ))
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.to_string().contains("redis.url"));
        assert!(err.to_string().contains("http.listen"));
    }

    #[test]
    fn a_single_secret_string_is_accepted_as_a_list() {
        let s = Settings::from_toml_overrides("[hooks]\nsecrets = \"only-one\"\n").unwrap();
        assert_eq!(s.hooks.secrets.len(), 1);
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let s = Settings::from_toml_overrides(
            "[hooks]\nsecrets = [\"hunter2-secret\"]\nsigning_key = \"sign-me-key\"\n[redis]\nurl = \"redis://:pw-in-url@localhost\"\n",
        )
        .unwrap();
        let dbg = format!("{s:?}");
        for secret in ["hunter2-secret", "sign-me-key", "pw-in-url"] {
            assert!(!dbg.contains(secret), "{secret} leaked in {dbg}");
        }
    }

    #[test]
    fn reserved_token_claims_and_a_deadline_beyond_okta_s_budget_are_refused() {
        let err = Settings::from_toml_overrides(&with_secret(
            "[inline]\ndeadline_ms = 3000\n[inline.token]\ntenant_claim = \"groups\"\nroles_claim = \"scp\"\n",
        ))
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("inline.deadline_ms"), "{msg}");
        assert!(msg.contains("inline.token.tenant_claim: `groups`"), "{msg}");
        assert!(msg.contains("inline.token.roles_claim: `scp`"), "{msg}");
    }

    #[test]
    fn oauth_needs_its_issuer_audience_client_and_keys() {
        let err = Settings::from_toml_overrides(&with_secret(
            "[inline.oauth]\nenabled = true\nissuer = \"https://x.okta.com/oauth2/default\"\n",
        ))
        .unwrap_err();
        let msg = err.to_string();
        for key in [
            "inline.oauth.audience",
            "inline.oauth.client_id",
            "inline.oauth.jwks_url",
        ] {
            assert!(msg.contains(key), "{key} missing in {msg}");
        }
        assert!(!msg.contains("inline.oauth.issuer"), "{msg}");
    }

    #[test]
    fn an_email_domain_claimed_by_two_tenants_is_refused() {
        let err = Settings::from_toml_overrides(&with_secret(
            "[inline]\ntenants = [{ id = \"a\", email_domains = [\"x.com\"] }, { id = \"b\", email_domains = [\"X.com\"] }]\n",
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("also belongs to tenant `a`"),
            "{err}"
        );
    }

    #[test]
    fn report_settings_are_checked_and_the_smtp_password_never_shows() {
        let err = Settings::from_toml_overrides(&with_secret(
            "[report]\nschedule = \"0 6 1 * *\"\ntimezone = \"Mars/Olympus\"\nrecipients = [\"not-an-address\"]\n[smtp]\nurl = \"ftp://u:smtp-pw-123@host\"\n",
        ))
        .unwrap_err();
        let msg = err.to_string();
        for key in [
            "report.schedule",
            "report.timezone",
            "report.recipients[0]",
            "smtp.url",
        ] {
            assert!(msg.contains(key), "{key} in {msg}");
        }
        assert!(!msg.contains("smtp-pw-123"), "{msg}");
        let s = Settings::from_toml_overrides(&with_secret(
            "[smtp]\nurl = \"smtp://u:smtp-pw-123@mail.example.com:587?tls=required\"\n",
        ))
        .unwrap();
        assert!(!format!("{s:?}").contains("smtp-pw-123"));
        assert_eq!(s.report.schedule, "0 0 6 1 * *");
    }

    #[test]
    fn duplicate_route_names_and_bad_group_regex_are_refused() {
        let err = Settings::from_toml_overrides(&with_secret(
            "[[routes]]\nname = \"a\"\nevent_types = [\"x\"]\n[[routes]]\nname = \"a\"\nevent_types = [\"y\"]\n[tenants]\nrules = [{ kind = \"group\", pattern = \"(\" }]\n",
        ))
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("used twice"), "{msg}");
        assert!(msg.contains("tenants.rules[0].pattern"), "{msg}");
    }

    #[test]
    fn tenant_ids_in_rules_routes_and_inline_tenants_are_checked_at_load() {
        let err = Settings::from_toml_overrides(&with_secret(
            "[[routes]]\nname = \"a\"\nevent_types = [\"x\"]\ntenants = [\"ok\", \"a|b\"]\n\
             [tenants]\nrules = [{ kind = \"app\", map = { \"0oa1\" = \"\" } }, \
             { kind = \"email_domain\", map = { \"acme.com\" = \"Acme Corp\" } }]\n\
             groups = { \"Globex\" = [\"00g1\"], acme = [\" \"] }\n\
             [inline]\ntenants = [{ id = \" \" }]\n",
        ))
        .unwrap_err();
        let msg = err.to_string();
        for key in [
            "routes[0].tenants: `a|b` is not a tenant id",
            "tenants.rules[0].map.0oa1: a tenant id must not be empty",
            "tenants.rules[1].map.acme.com: `Acme Corp` is not a tenant id",
            "inline.tenants[0].id: a tenant id must not be empty",
            "tenants.groups.Globex: `Globex` is not a tenant id",
            "tenants.groups.acme: a group id is empty",
        ] {
            assert!(msg.contains(key), "{key} in {msg}");
        }
    }

    #[test]
    fn the_built_in_route_name_and_huge_script_slices_are_refused() {
        let err = Settings::from_toml_overrides(&with_secret(
            "max_events_per_write = 10000\n[[routes]]\nname = \"credential-imports\"\nevent_types = [\"x\"]\n",
        ))
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("built-in route"), "{msg}");
        assert!(msg.contains("hooks.max_events_per_write"), "{msg}");
    }
}
