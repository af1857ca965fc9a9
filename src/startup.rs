//! Building and running the application: `Application::build` → `run_until_stopped`.
//!
//! Wiring and shutdown order only: the shared state is [`crate::http::state`], the consumer
//! runtime [`crate::consumers`], the upkeep [`crate::maintenance`]. On shutdown the server stops
//! accepting and drains, then every background task is cancelled and awaited before the
//! consumer runtime is dropped.
//!
//! The caller owns the listener and the shutdown future, so tests start a real server on port 0
//! and stop it when they want.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::TcpAcceptor;
use poem::Server;
use tokio_util::sync::CancellationToken;

use crate::config::roles::ProcessRole;
use crate::config::Settings;
use crate::consumers::ConsumerRuntime;
use crate::domain::tenant::TenantResolver;
use crate::http;
use crate::http::state::AppState;
use crate::inline::credentials::Cleanup;
use crate::jobs::worker::JobWorker;
use crate::maintenance::maintenance_loop;
use crate::projection::consumer::ProjectionConsumer;
use crate::reporting::consumer::AggregationConsumer;
use crate::store::RedisUnreachable;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Redis(#[from] RedisUnreachable),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolOpenError),
    /// `hooks.durability` asks for what this Redis cannot give.
    #[error("{0}")]
    Durability(String),
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
        let redis = crate::store::connect_or_explain(&settings.redis).await?;
        let state = AppState::new(settings, redis);
        state
            .ensure_consumer_groups()
            .await
            .map_err(|source| RedisUnreachable::new(&state.settings.redis.url, source))?;
        check_durability(&state).await?;
        // Before any scheduler runs: the report's send record moved to the `{report}` hash tag
        // (the old names are still read, so a failure here only logs).
        let mut conn = state.redis.clone();
        if let Err(e) = crate::reporting::migrate::migrate_report_keys(&mut conn, &state.keys).await
        {
            tracing::warn!(error = %e, "report send records not migrated yet (old names are still read); the next start retries");
        }
        // The spool takes event hook deliveries: only a process that serves hooks has one.
        if state.settings.spool.enabled
            && state
                .settings
                .process
                .roles
                .runs(crate::config::roles::ProcessRole::Hooks)
        {
            let spool = crate::spool::Spool::open(&state.settings.spool)?;
            let _ = state.spool.set(spool);
        }
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
        let background = ConsumerRuntime::start()?;
        let maintenance = tokio::spawn(maintenance_loop(self.state.clone(), cancel.clone()));
        let roles = self.state.settings.process.roles.clone();
        tracing::info!(%roles, "process roles");
        let cleanup = roles
            .runs(ProcessRole::Consumers)
            .then(|| tokio::spawn(credential_cleanup(self.state.clone(), cancel.clone())));
        let state = self.state.clone();
        let writer_cancel = cancel.clone();
        let decisions = roles.runs(ProcessRole::Hooks).then(|| {
            tokio::spawn(async move {
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
            })
        });
        let workers = self.state.settings.jobs.workers && roles.runs(ProcessRole::Workers);
        let jobs = match (&self.state.okta, workers) {
            (Some(okta), true) => {
                let worker =
                    JobWorker::new(self.state.keys.clone(), okta.clone(), &self.state.settings);
                Some(tokio::spawn(
                    worker.run(self.state.settings.redis.clone(), cancel.clone()),
                ))
            }
            _ => None,
        };
        let tenants = match (&self.state.okta, self.state.settings.provisioning.workers) {
            (Some(okta), true) if roles.runs(ProcessRole::Workers) => {
                let worker = crate::tenants::worker::TenantWorker::new(
                    self.state.keys.clone(),
                    okta.clone(),
                    &self.state.settings,
                );
                Some(tokio::spawn(
                    worker.run(self.state.settings.redis.clone(), cancel.clone()),
                ))
            }
            _ => None,
        };
        let projection = (self.state.settings.projection.enabled
            && roles.runs(ProcessRole::Consumers))
        .then(|| {
            let consumer = ProjectionConsumer::new(
                self.state.keys.clone(),
                self.state.settings.projection.clone(),
                TenantResolver::from_settings(&self.state.settings.tenants.rules),
            );
            background
                .handle()
                .spawn(consumer.run(self.state.settings.redis.clone(), cancel.clone()))
        });
        let reporting = self.spawn_reporting(&cancel, &background.handle());
        // Continuous backfill polls one watermark: run it with the scheduler role (ingest is
        // idempotent, so two pollers would only waste the small logs bucket).
        let backfill = match (&self.state.okta, self.state.settings.backfill.enabled) {
            (Some(okta), true) if roles.runs(ProcessRole::Scheduler) => {
                let backfill = crate::backfill::Backfill::new(
                    okta.clone(),
                    self.state.keys.clone(),
                    self.state.settings.backfill.clone(),
                )
                .with_report_timezone(self.state.settings.report_timezone());
                Some(tokio::spawn(backfill.run(
                    self.state.clone(),
                    |s: &AppState| &s.ingestor,
                    self.state.redis.clone(),
                    cancel.clone(),
                )))
            }
            (None, true) if roles.runs(ProcessRole::Scheduler) => {
                tracing::warn!("backfill.enabled but Okta is not configured (okta.org_url, credentials): no System Log backfill");
                None
            }
            _ => None,
        };
        let spool_drain = self.state.spool.get().map(|spool| {
            tokio::spawn(spool.clone().run_drain(
                self.state.clone(),
                |s: &AppState| &s.ingestor,
                self.state.redis.clone(),
                cancel.clone(),
            ))
        });
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
        for task in [projection, jobs, tenants, spool_drain, backfill]
            .into_iter()
            .flatten()
        {
            let _ = task.await;
        }
        for task in [cleanup, decisions].into_iter().flatten() {
            let _ = task.await;
        }
        for task in reporting {
            let _ = task.await;
        }
        drop(background); // its tasks have all ended
        tracing::info!("okta-adapter stopped");
        result
    }
}

impl Application {
    /// The report tasks: hook-health flushes with the `hooks` role (the handler counts); the
    /// aggregation consumer (`consumers` role) and the scheduled sender (`scheduler` role) when
    /// `report.enabled`.
    fn spawn_reporting(
        &self,
        cancel: &CancellationToken,
        background: &tokio::runtime::Handle,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let state = &self.state;
        let keys = state.keys.clone();
        let tz = state.settings.report_timezone();
        let roles = &state.settings.process.roles;
        let mut tasks = Vec::new();
        if roles.runs(ProcessRole::Hooks) {
            tasks.push(tokio::spawn(crate::reporting::run_hook_stats_flush(
                state.hook_stats.clone(),
                keys.clone(),
                tz,
                state.redis.clone(),
                cancel.clone(),
            )));
        }
        let enabled = state.settings.report.enabled;
        if enabled && roles.runs(ProcessRole::Consumers) {
            let consumer = AggregationConsumer::new(keys, state.settings.report.clone(), tz);
            tasks
                .push(background.spawn(consumer.run(state.settings.redis.clone(), cancel.clone())));
        }
        if enabled && roles.runs(ProcessRole::Scheduler) {
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

/// Reads Redis's persistence and replication and decides what a 204 waits for
/// (`hooks.durability`); a setting Redis cannot honour stops the start with the reason.
async fn check_durability(state: &AppState) -> Result<(), StartupError> {
    use crate::fanout::durability::{plan, RedisPersistence};
    let mut conn = state.redis.clone();
    let redis = RedisPersistence::probe(&mut conn)
        .await
        .map_err(|source| RedisUnreachable::new(&state.settings.redis.url, source))?;
    let setting = state.settings.hooks.durability;
    // Leaves room inside redis.response_timeout_ms for the script itself.
    let timeout_ms = (state.settings.redis.response_timeout_ms * 2 / 3).max(1);
    let (step, warnings) = plan(setting, &redis, timeout_ms).map_err(StartupError::Durability)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(durability = %setting, redis = %redis.describe(), "what a 204 to Okta waits for");
    state.ingestor.set_wait_step(step);
    Ok(())
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
