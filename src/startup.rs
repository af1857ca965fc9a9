//! Building and running the application: `Application::build` → `run_until_stopped`.
//!
//! The caller owns the listener and the shutdown future, so tests start a real server on port 0
//! and stop it when they want.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use poem::listener::TcpAcceptor;
use poem::Server;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::access::KeyStore;
use crate::config::Settings;
use crate::domain::tenant::TenantResolver;
use crate::fanout::Ingestor;
use crate::http::auth::HookAuth;
use crate::http::inline_hooks::InlineAuth;
use crate::http::jwt::JwtVerifier;
use crate::inline::credentials::Cleanup;
use crate::inline::InlineState;
use crate::jobs::groups::GroupGuard;
use crate::jobs::store::JobStore;
use crate::jobs::worker::JobWorker;
use crate::okta::client::OktaClient;
use crate::projection::consumer::ProjectionConsumer;
use crate::reporting::consumer::AggregationConsumer;
use crate::reporting::deliver::Transport;
use crate::reporting::hook_stats::HookStats;
use crate::reporting::Reporter;
use crate::store::{ensure_group, GroupStatus, Keys};
use crate::{http, telemetry};

/// Everything a request handler needs, shared.
pub struct AppState {
    pub settings: Settings,
    /// Multiplexed connection with a response timeout (never used for blocking reads).
    pub redis: ConnectionManager,
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
}

impl AppState {
    pub fn new(settings: Settings, redis: ConnectionManager) -> Arc<Self> {
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
            redis,
            settings,
        })
    }

    /// Every (stream, group) pair the config asks for.
    pub fn consumer_groups(&self) -> Vec<(String, String)> {
        let keys = self.ingestor.keys();
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
        std::iter::once(self.ingestor.keys().firehose())
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

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "cannot reach Redis at {url} (redis.url): {source}. Start one (`redis-server`), point \
         OKTA_ADAPTER__REDIS__URL at yours, or run `okta-adapter dev`, which starts a private one"
    )]
    Redis {
        url: String,
        source: redis::RedisError,
    },
    #[error("cannot listen on {addr} (http.listen): {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

pub struct Application {
    state: Arc<AppState>,
    acceptor: TcpAcceptor,
    local_addr: SocketAddr,
}

impl Application {
    /// Binds `http.listen` and connects to Redis.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let addr = settings.listen_addr();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        Self::build_with_listener(settings, listener).await
    }

    /// Connects to Redis and creates consumer groups; serves on `listener`.
    pub async fn build_with_listener(
        settings: Settings,
        listener: tokio::net::TcpListener,
    ) -> Result<Self, StartupError> {
        let url = redacted_url(settings.redis.url.expose_secret());
        let redis_err = |source| StartupError::Redis {
            url: url.clone(),
            source,
        };
        let redis = crate::store::connect(&settings.redis)
            .await
            .map_err(redis_err)?;
        let state = AppState::new(settings, redis);
        state.ensure_consumer_groups().await.map_err(redis_err)?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: state.settings.http.listen.to_string(),
                source,
            })?;
        let acceptor =
            TcpAcceptor::from_tokio(listener).map_err(|source| StartupError::Listen {
                addr: local_addr.to_string(),
                source,
            })?;
        Ok(Self {
            state,
            acceptor,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains in-flight requests for
    /// up to `http.shutdown_grace_secs`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let cancel = CancellationToken::new();
        let background = ConsumerRuntime(Some(consumer_runtime()?));
        let maintenance = tokio::spawn(maintenance_loop(self.state.clone(), cancel.clone()));
        let cleanup = tokio::spawn(credential_cleanup(self.state.clone(), cancel.clone()));
        let state = self.state.clone();
        let writer_cancel = cancel.clone();
        let decisions = tokio::spawn(async move {
            let inline = &state.inline;
            inline
                .recorder
                .run_writer(
                    state.redis.clone(),
                    inline.keys.clone(),
                    inline.decisions_maxlen,
                    writer_cancel,
                )
                .await;
        });
        let jobs = match (&self.state.okta, self.state.settings.jobs.workers) {
            (Some(okta), true) => {
                let worker = JobWorker::new(
                    self.state.ingestor.keys().clone(),
                    okta.clone(),
                    self.state.settings.jobs.clone(),
                )
                .with_groups(GroupGuard::from_settings(&self.state.settings));
                Some(tokio::spawn(
                    worker.run(self.state.settings.redis.clone(), cancel.clone()),
                ))
            }
            _ => None,
        };
        let projection = self.state.settings.projection.enabled.then(|| {
            let consumer = ProjectionConsumer::new(
                self.state.ingestor.keys().clone(),
                self.state.settings.projection.clone(),
                TenantResolver::from_settings(&self.state.settings.tenants.rules),
            );
            background
                .handle()
                .spawn(consumer.run(self.state.settings.redis.clone(), cancel.clone()))
        });
        let reporting = self.spawn_reporting(&cancel, &background.handle());
        let grace = Duration::from_secs(self.state.settings.http.shutdown_grace_secs);
        tracing::info!(addr = %self.local_addr, "okta-adapter listening");
        let acceptor = crate::http::slow_client::HeaderTimeoutAcceptor::new(
            self.acceptor,
            Duration::from_millis(self.state.settings.http.header_read_timeout_ms),
        );
        let result = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(http::router(self.state.clone()), shutdown, Some(grace))
            .await;
        cancel.cancel();
        let _ = maintenance.await;
        for task in [projection, jobs].into_iter().flatten() {
            let _ = task.await;
        }
        let _ = cleanup.await;
        let _ = decisions.await;
        for task in reporting {
            let _ = task.await;
        }
        drop(background); // its tasks have all ended
        tracing::info!("okta-adapter stopped");
        result
    }
}

impl Application {
    /// The report tasks: hook-health flushes always (the handler counts either way); the
    /// aggregation consumer and the scheduled sender when `report.enabled`.
    fn spawn_reporting(
        &self,
        cancel: &CancellationToken,
        background: &tokio::runtime::Handle,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let state = &self.state;
        let keys = state.ingestor.keys().clone();
        let tz = state.settings.report_timezone();
        let mut tasks = vec![tokio::spawn(crate::reporting::run_hook_stats_flush(
            state.hook_stats.clone(),
            keys.clone(),
            tz,
            state.redis.clone(),
            cancel.clone(),
        ))];
        if state.settings.report.enabled {
            let consumer = AggregationConsumer::new(keys, state.settings.report.clone(), tz);
            tasks
                .push(background.spawn(consumer.run(state.settings.redis.clone(), cancel.clone())));
            tasks.push(tokio::spawn(crate::reporting::run_scheduler(
                state.settings.clone(),
                state.reporter.clone(),
                state.redis.clone(),
                cancel.clone(),
            )));
        }
        tasks
    }
}

/// Nice value of the consumer runtime's thread (0 = normal, 19 = lowest priority), unless the
/// process already runs at a higher one (then the consumers keep the process's).
pub const CONSUMER_NICE: i32 = 10;

/// Owns the consumer runtime and shuts it down without blocking when dropped: dropping a
/// `Runtime` inside async code panics, and `run_until_stopped` may be dropped mid-way (e.g. by a
/// `select!` or `abort()` around it).
struct ConsumerRuntime(Option<tokio::runtime::Runtime>);

impl ConsumerRuntime {
    fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("present until dropped")
            .handle()
            .clone()
    }
}

impl Drop for ConsumerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The runtime of the firehose consumers (projections, report aggregation): one thread at nice
/// [`CONSUMER_NICE`]. When the cores are saturated, Linux then runs hook requests first (a nice-10
/// thread gets ~10 % of a core against a nice-0 one) and the consumers catch up when there is
/// room: they only fall behind, and lose nothing while their backlog fits in `firehose.maxlen`.
/// Sharing the request runtime, their parsing and Lua round trips made event hook p99 rise to
/// tens of milliseconds at half the maximum ingest rate on two cores.
fn consumer_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("okta-adapter-consumers")
        .on_thread_start(lower_thread_priority)
        .enable_all()
        .build()
}

/// Sets the calling thread's nice value to [`CONSUMER_NICE`] (Linux keeps it per thread), unless
/// it is already at least that. Failure is logged, not fatal: the consumers then just run at the
/// process's priority.
fn lower_thread_priority() {
    use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};
    if current_nice().is_some_and(|nice| nice >= CONSUMER_NICE) {
        return;
    }
    // thread-priority maps 0..=99 linearly onto nice 19..=-20 for normal threads: 22 is nice 10
    // (a unit test reads the value back).
    let value = ThreadPriorityValue::try_from(22u8).expect("22 is within 0..=99");
    if let Err(e) = set_current_thread_priority(ThreadPriority::Crossplatform(value)) {
        tracing::warn!(error = ?e, "could not lower the consumer thread's priority");
    }
}

/// The calling thread's nice value (field 19 of /proc/thread-self/stat); `None` where there is
/// no such file.
fn current_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    after_name.split_whitespace().nth(16)?.parse().ok()
}

/// Until cancelled, every `redis.maintenance_interval_secs`: trims expired uuids from the dedup
/// set, cancels job uploads a crash cut off, re-creates lost consumer groups and refreshes
/// gauges.
async fn maintenance_loop(state: Arc<AppState>, cancel: CancellationToken) {
    let every = Duration::from_secs(state.settings.redis.maintenance_interval_secs);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        // First and on its own: a failing group check must not let the set grow without bound.
        let mut conn = state.redis.clone();
        match state.ingestor.trim_dedup(&mut conn, None).await {
            Ok(n) => metrics::counter!("okta_adapter_dedup_expired_total").increment(n),
            Err(e) => {
                metrics::counter!("okta_adapter_redis_errors_total", "op" => "dedup_trim")
                    .increment(1);
                tracing::warn!(error = %e, "de-duplication set trim failed");
            }
        }
        // Jobs whose upload a crash cut off would otherwise stay `validating` forever.
        let stale = Duration::from_secs(state.settings.jobs.stale_upload_secs);
        let jobs = JobStore::new(state.ingestor.keys().clone());
        if let Err(e) = jobs.settle_stale_uploads(&mut conn, stale).await {
            tracing::warn!(error = %e, "stale job upload sweep failed");
        }
        if let Err(e) = state.ensure_consumer_groups().await {
            metrics::counter!("okta_adapter_redis_errors_total", "op" => "maintenance")
                .increment(1);
            tracing::warn!(error = %e, "consumer group check failed");
            continue;
        }
        if let Err(e) = http::ops::record_stream_lengths(&state).await {
            tracing::warn!(error = %e, "stream length refresh failed");
        }
        state.metrics.run_upkeep();
    }
}

/// Deletes legacy password hashes once Okta reports their import (see `inline::credentials`).
async fn credential_cleanup(state: Arc<AppState>, cancel: CancellationToken) {
    let import = &state.settings.inline.password_import;
    let cleanup = Cleanup::new(
        state.inline.keys.clone(),
        import.cleanup_group.clone(),
        // Unique per process, so replicas never share a pending list.
        format!(
            "adapter-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ),
        Duration::from_secs(import.cleanup_claim_idle_secs),
    );
    cleanup.run(state.settings.redis.clone(), cancel).await;
}

/// The URL without its password, for messages.
pub fn redacted_url(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        None => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn consumer_threads_run_at_the_consumer_nice_value() {
        let before = current_nice().expect("Linux has /proc/thread-self/stat");
        let runtime = consumer_runtime().unwrap();
        let nice = runtime.block_on(async {
            tokio::spawn(async { current_nice().unwrap() })
                .await
                .unwrap()
        });
        assert_eq!(nice, CONSUMER_NICE.max(before));
        assert_eq!(
            current_nice(),
            Some(before),
            "the calling thread keeps its priority"
        );
    }
}
