//! Configuration: `config/default.toml` (embedded) → an optional file → `OKTA_ADAPTER__*` env vars.
//!
//! Config is the ground floor: it imports nothing from the adapter above it, and what it must
//! know of the rest (the built-in route's name, the tenant id rule) lives here or in
//! `domain::tenant_id`, which imports nothing.
//!
//! - [`values`] — values parsed while they are read (listen address, time zone, mailboxes,
//!   cron schedule, SMTP URL, hook header, tenant group patterns): code that uses them holds the
//!   typed value.
//! - `load` — the layering, and errors as one line per problem that leads with the key.
//! - `validate` — the rules types cannot express: ranges and rules that span several keys.
//!
//! Secrets are `SecretString` (and the parsed SMTP URL hides its password), so `Debug` never
//! prints them.

pub mod console;
mod delivery;
mod load;
pub mod roles;
pub mod secret_files;
pub mod self_service;
mod validate;
pub mod values;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use lettre::message::Mailbox;
use poem::http::HeaderName;
use regex::Regex;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

pub use delivery::{BackfillSettings, Durability, SpoolSettings};
pub use load::ConfigError;
pub use self_service::SelfServiceSettings;
pub use values::{CronSchedule, SmtpUrl};

/// The defaults, compiled in so the binary runs without any file next to it.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The built-in route that carries credential imports to the clean-up consumer (`fanout` adds
/// it); a configured route may not take its name.
pub const CREDENTIAL_IMPORTS_ROUTE: &str = "credential-imports";

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
    /// The web console (`src/console/`).
    pub console: console::ConsoleSettings,
    /// End users resetting their own MFA (`src/selfservice/`).
    #[serde(default)]
    pub self_service: SelfServiceSettings,
    /// Tenant provisioning (`/api/v1/tenants`); every key has a default.
    #[serde(default)]
    pub provisioning: ProvisioningSettings,
    /// Local disk spool while Redis is unavailable (`docs/delivery.md`).
    pub spool: SpoolSettings,
    /// System Log backfill (`docs/delivery.md`).
    pub backfill: BackfillSettings,
    /// Which roles this process runs (`serve --roles` overrides it).
    #[serde(default)]
    pub process: ProcessSettings,
}

/// `[provisioning]`: tenants as declared resources (groups, rule, one OIDC app per installation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvisioningSettings {
    /// Okta profile attribute the tenant's group rule matches (`user.<attribute>=="<tenant>"`).
    pub profile_attribute: String,
    /// Product kinds an installation may have.
    pub kinds: Vec<String>,
    /// The authorization server products sign in with (`default`, or a custom server id).
    pub authorization_server: String,
    /// Issuer products are told; empty = `<okta.org_url>/oauth2/<authorization_server>`.
    pub issuer: String,
    /// Scopes products request.
    pub scopes: Vec<String>,
    /// Longest the `config` stream grows (MAXLEN ~).
    pub config_stream_maxlen: usize,
    /// Run the tenant apply worker in this process (needs Okta configured).
    pub workers: bool,
    /// Applies (of different tenants) one worker runs at once.
    pub concurrency: usize,
}

impl Default for ProvisioningSettings {
    fn default() -> Self {
        Self {
            profile_attribute: "tenant".into(),
            kinds: vec!["efs".into(), "portals".into(), "dv".into()],
            authorization_server: "default".into(),
            issuer: String::new(),
            scopes: ["openid", "profile", "email", "groups"]
                .map(String::from)
                .to_vec(),
            config_stream_maxlen: 100_000,
            workers: true,
            concurrency: 8,
        }
    }
}

/// `[process]`: the parts of the adapter this process runs (see [`roles`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSettings {
    pub roles: roles::Roles,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Where the server listens.
    #[serde(deserialize_with = "values::listen_addr")]
    pub listen: SocketAddr,
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
    /// Redis Cluster: `url` is one seed node, `cluster_nodes` more (docs/deploy.md).
    #[serde(default)]
    pub cluster: bool,
    /// More seed nodes of the cluster (URLs; secrets, as they may carry a password).
    #[serde(default, deserialize_with = "one_or_many_secrets")]
    pub cluster_nodes: Vec<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSettings {
    /// The header Okta puts the secret in; lowercase.
    #[serde(deserialize_with = "values::header_name")]
    pub auth_header: HeaderName,
    /// Accepts a list or, for convenience in env vars, a single string.
    #[serde(deserialize_with = "one_or_many_secrets")]
    pub secrets: Vec<SecretString>,
    /// Empty = entries are not signed.
    pub signing_key: SecretString,
    pub dedup_window_secs: u64,
    pub max_events_per_write: usize,
    /// What a 204 waits for: Redis memory, its AOF, or N replicas (`docs/delivery.md`).
    #[serde(default)]
    pub durability: Durability,
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
    pub schedule: CronSchedule,
    /// IANA zone whose calendar months the report counts (e.g. `Europe/Berlin`).
    #[serde(deserialize_with = "values::time_zone")]
    pub timezone: chrono_tz::Tz,
    /// Who gets the email; empty = the report is compiled but not sent.
    #[serde(deserialize_with = "values::recipients")]
    pub recipients: Vec<Mailbox>,
    /// The `From:` mailbox.
    #[serde(deserialize_with = "values::from_mailbox")]
    pub from: Mailbox,
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
    /// Parsed at load; it carries the SMTP password, which neither errors nor `Debug` show.
    pub url: SmtpUrl,
    /// Timeout for one SMTP conversation.
    pub timeout_secs: u64,
}

/// One tenant rule as written in config; `domain::tenant` compiles it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TenantRuleSettings {
    Group {
        #[serde(deserialize_with = "values::group_pattern")]
        pattern: Regex,
    },
    App {
        map: BTreeMap<String, String>,
    },
    EmailDomain {
        map: BTreeMap<String, String>,
    },
    Attribute {
        attribute: String,
    },
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

impl Settings {
    /// The business time zone.
    pub fn report_timezone(&self) -> chrono_tz::Tz {
        self.report.timezone
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.http.listen
    }

    /// The signing key, when one is configured.
    pub fn signing_key(&self) -> Option<&[u8]> {
        let key = self.hooks.signing_key.expose_secret();
        (!key.is_empty()).then_some(key.as_bytes())
    }
}

#[cfg(test)]
mod tests;
