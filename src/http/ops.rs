//! Operations endpoints: liveness, readiness, Prometheus metrics.

use std::sync::Arc;

use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use redis::AsyncCommands;

use super::state::AppState;
use super::tags::ApiTags;
use crate::config::roles::ProcessRole;
use crate::store::{ensure_group, GroupStatus};

pub struct OpsApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Object)]
pub struct GroupCheck {
    pub stream: String,
    pub group: String,
    /// `present`, `recreated` (it was missing — e.g. Redis restarted without persistence) or
    /// `error`.
    pub status: String,
}

#[derive(Debug, Object)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// `ok` or the reason Redis is not usable.
    pub redis: String,
    /// The consumer groups checked: only by a process with the `hooks` or `consumers` role.
    pub groups: Vec<GroupCheck>,
    /// The roles this process runs (`process.roles`); readiness covers only these.
    pub roles: Vec<String>,
    /// The local spool, when `spool.enabled`: deliveries waiting on disk for Redis.
    pub spool: Option<SpoolDetail>,
    /// `hooks.durability` and what Redis offers for it (when Redis answers).
    pub durability: Option<DurabilityDetail>,
}

#[derive(Debug, Object)]
pub struct DurabilityDetail {
    /// `memory`, `aof` or `replicas:N`.
    pub setting: String,
    /// Redis version, role, AOF and fsync policy, connected replicas.
    pub redis: String,
    /// Warnings: what a Redis crash would lose with this setting (empty = nothing acknowledged).
    pub warnings: Vec<String>,
}

async fn durability_detail(state: &AppState) -> Option<DurabilityDetail> {
    use crate::fanout::durability::{plan, RedisPersistence};
    let mut conn = state.redis.clone();
    let redis = RedisPersistence::probe(&mut conn).await.ok()?;
    let setting = state.settings.hooks.durability;
    let warnings = match plan(setting, &redis, 0) {
        Ok((_, w)) => w,
        Err(e) => vec![e],
    };
    Some(DurabilityDetail {
        setting: setting.to_string(),
        redis: redis.describe(),
        warnings,
    })
}

#[derive(Debug, Object)]
pub struct SpoolDetail {
    /// `empty`, `spooling` (deliveries wait for Redis) or `full` (new ones get 503).
    pub state: String,
    pub pending_batches: u64,
    pub pending_bytes: u64,
    pub oldest_age_secs: u64,
    pub max_bytes: u64,
}

fn spool_detail(state: &AppState) -> Option<SpoolDetail> {
    let st = state.spool.get()?.status();
    let full = st.pending_bytes + state.settings.http.max_body_bytes as u64 > st.max_bytes;
    Some(SpoolDetail {
        state: if full {
            "full"
        } else if st.pending_batches > 0 {
            "spooling"
        } else {
            "empty"
        }
        .into(),
        pending_batches: st.pending_batches,
        pending_bytes: st.pending_bytes,
        oldest_age_secs: st.oldest_age_secs,
        max_bytes: st.max_bytes,
    })
}

#[derive(Debug, ApiResponse)]
pub enum ReadyResponse {
    /// Redis answers and every configured consumer group exists.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// Not ready; the body says why.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[OpenApi]
impl OpsApi {
    /// Liveness: the process is up.
    #[oai(
        path = "/healthz",
        method = "get",
        operation_id = "healthz",
        tag = "ApiTags::Operations"
    )]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness of the roles this process runs: Redis reachable, and with the `hooks` or
    /// `consumers` role the consumer groups present (missing ones are re-created).
    #[oai(
        path = "/readyz",
        method = "get",
        operation_id = "readyz",
        tag = "ApiTags::Operations"
    )]
    async fn readyz(&self) -> ReadyResponse {
        let process_roles = &self.state.settings.process.roles;
        let roles: Vec<String> = process_roles.iter().map(|r| r.name().into()).collect();
        let mut conn = self.state.redis.clone();
        let ping: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        if let Err(e) = ping {
            let spool = spool_detail(&self.state);
            // With room in the spool, deliveries are still accepted (and fsync'd): stay ready.
            if spool.as_ref().is_some_and(|s| s.state != "full") {
                tracing::warn!(error = %e, "readyz: Redis unreachable; ready because event hook deliveries go to the local spool");
                return ReadyResponse::Ready(Json(Readiness {
                    status: "ready".into(),
                    redis: format!("unreachable (deliveries are spooled to disk): {e}"),
                    groups: vec![],
                    spool,
                    durability: None,
                    roles,
                }));
            }
            return ReadyResponse::NotReady(Json(Readiness {
                status: "not_ready".into(),
                redis: format!("unreachable: {e}"),
                groups: vec![],
                spool,
                durability: None,
                roles,
            }));
        }
        let mut groups = Vec::new();
        let mut ok = true;
        let checks_groups =
            process_roles.runs(ProcessRole::Hooks) || process_roles.runs(ProcessRole::Consumers);
        let wanted = if checks_groups {
            self.state.consumer_groups()
        } else {
            Vec::new()
        };
        for (stream, group) in wanted {
            let status = match ensure_group(&mut conn, &stream, &group).await {
                Ok(GroupStatus::Present) => "present",
                Ok(GroupStatus::Created) => "recreated",
                Err(e) => {
                    tracing::warn!(error = %e, %stream, %group, "consumer group check failed");
                    ok = false;
                    "error"
                }
            };
            groups.push(GroupCheck {
                stream,
                group,
                status: status.into(),
            });
        }
        let body = Readiness {
            status: if ok { "ready" } else { "not_ready" }.into(),
            redis: "ok".into(),
            groups,
            spool: spool_detail(&self.state),
            durability: durability_detail(&self.state).await,
            roles,
        };
        if ok {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }

    /// Prometheus metrics (text exposition format).
    #[oai(
        path = "/metrics",
        method = "get",
        operation_id = "metrics",
        tag = "ApiTags::Operations"
    )]
    async fn metrics(&self) -> PlainText<String> {
        PlainText(self.state.metrics.render())
    }
}

/// Refreshes stream-length gauges; used by the maintenance loop.
pub async fn record_stream_lengths(state: &AppState) -> redis::RedisResult<()> {
    let mut conn = state.redis.clone();
    for stream in state.streams() {
        let len: u64 = conn.xlen(&stream).await?;
        metrics::gauge!("okta_adapter_stream_length", "stream" => stream).set(len as f64);
    }
    Ok(())
}
