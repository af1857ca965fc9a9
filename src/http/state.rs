//! The state every request handler shares: settings, the Redis connection, the stores and
//! clients built once at start, and the consumer groups the configuration asks for.
//!
//! It lives in the HTTP layer because handlers are its main readers: `startup` builds it and
//! hands it to [`super::router`], so every file under `http/` imports it from here and nothing
//! under `http/` imports `startup`.

use std::sync::Arc;

use crate::store::RedisConn;
use metrics_exporter_prometheus::PrometheusHandle;

use super::auth::{self, ApiKey, HookAuth, InlineAuth};
use super::error::HttpError;
use super::jwt::JwtVerifier;
use crate::access::{AuditEntry, KeyStore, Principal, Role};
use crate::config::Settings;
use crate::fanout::Ingestor;
use crate::inline::InlineState;
use crate::okta::client::OktaClient;
use crate::reporting::deliver::Transport;
use crate::reporting::hook_stats::HookStats;
use crate::reporting::Reporter;
use crate::store::{ensure_group, GroupStatus, Keys};
use crate::telemetry;

/// Everything a request handler needs, shared.
pub struct AppState {
    pub settings: Settings,
    /// Multiplexed connection with a response timeout (never used for blocking reads).
    pub redis: RedisConn,
    /// Every Redis key under `redis.prefix`; handlers build their stores from it.
    pub keys: Keys,
    pub ingestor: Ingestor,
    pub hook_auth: HookAuth,
    /// Header secrets (as `hook_auth`) or, with `inline.oauth.enabled`, Okta's bearer tokens.
    pub inline_auth: InlineAuth,
    pub inline: InlineState,
    pub key_store: KeyStore,
    /// `None` when `okta.org_url` / `okta.api_token` are not set.
    pub okta: Option<OktaClient>,
    pub metrics: PrometheusHandle,
    /// Hook health counted in-process by the event hook handler, flushed by the report task.
    pub hook_stats: Arc<HookStats>,
    /// Compiles and sends monthly reports (HTTP, scheduler).
    pub reporter: Arc<Reporter>,
    /// The local spool, set by `startup` when `spool.enabled` (empty otherwise and in tools).
    pub spool: std::sync::OnceLock<Arc<crate::spool::Spool>>,
}

impl AppState {
    pub fn new(settings: Settings, redis: RedisConn) -> Arc<Self> {
        let hook_auth = HookAuth::new(settings.hooks.auth_header.clone(), &settings.hooks.secrets);
        let jwt = settings
            .inline
            .oauth
            .enabled
            .then(|| JwtVerifier::new(&settings.inline.oauth));
        Arc::new(AppState {
            ingestor: Ingestor::new(&settings),
            inline_auth: InlineAuth::new(hook_auth.clone(), jwt),
            inline: InlineState::new(&settings),
            hook_auth,
            key_store: KeyStore::new(Keys::new(settings.redis.prefix.clone())),
            okta: OktaClient::new(
                &settings.okta,
                Keys::new(settings.redis.prefix.clone()),
                redis.clone(),
            ),
            metrics: telemetry::metrics_handle(),
            hook_stats: Arc::new(HookStats::default()),
            reporter: Arc::new(Reporter::new(
                &settings,
                Transport::from_settings(&settings),
            )),
            keys: Keys::new(settings.redis.prefix.clone()),
            spool: std::sync::OnceLock::new(),
            redis,
            settings,
        })
    }

    /// Every (stream, group) pair the config asks for.
    pub fn consumer_groups(&self) -> Vec<(String, String)> {
        let keys = &self.keys;
        let projection = self
            .settings
            .projection
            .enabled
            .then(|| self.settings.projection.group.clone());
        let firehose = self
            .settings
            .firehose
            .groups
            .iter()
            .cloned()
            .chain(projection)
            .map(|g| (keys.firehose(), g));
        let routes = self
            .ingestor
            .routes()
            .iter()
            .flat_map(|r| r.groups.iter().map(|g| (r.stream.clone(), g.clone())));
        // The built-in credential-imports route (and its clean-up group) comes last.
        firehose.chain(routes).collect()
    }

    /// Every stream the adapter writes.
    pub fn streams(&self) -> Vec<String> {
        std::iter::once(self.keys.firehose())
            .chain(self.ingestor.routes().iter().map(|r| r.stream.clone()))
            .chain(std::iter::once(self.inline.keys.inline_decisions()))
            .collect()
    }

    /// Creates missing consumer groups; logs the ones that had to be re-created.
    pub async fn ensure_consumer_groups(&self) -> redis::RedisResult<usize> {
        let mut conn = self.redis.clone();
        let mut created = 0;
        for (stream, group) in self.consumer_groups() {
            if ensure_group(&mut conn, &stream, &group).await? == GroupStatus::Created {
                tracing::info!(%stream, %group, "consumer group created");
                created += 1;
            }
        }
        Ok(created)
    }
}

/// Authentication and audit for handlers (the rules live in [`super::auth`]).
impl AppState {
    /// The caller behind the key, or 401.
    pub async fn principal(&self, key: &ApiKey) -> Result<Principal, HttpError> {
        auth::principal(&self.key_store, &self.redis, key).await
    }

    /// The caller, if their role is one of `roles`; 401/403 otherwise.
    pub async fn require(&self, key: &ApiKey, roles: &[Role]) -> Result<Principal, HttpError> {
        auth::require_role(self.principal(key).await?, roles)
    }

    /// Appends to the audit stream; a failure is logged and counted, never the caller's error.
    pub async fn record_audit(&self, entry: AuditEntry<'_>) {
        auth::record_audit(&self.redis, &self.keys, entry).await
    }
}
