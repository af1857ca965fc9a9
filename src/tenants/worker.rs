//! Apply workers: the `tenant-workers` consumer group on `<prefix>:tenants:queue`.
//!
//! On the shared [`GroupConsumer`]: an apply's queue entry is acknowledged only once the apply
//! has ended (succeeded or failed with a reason). A worker that dies leaves it pending; after
//! `jobs.claim_idle_ms` another worker (or the restarted process) claims it and the apply
//! resumes from its recorded steps. Every Okta call goes through the shared rate scheduler in
//! the bulk lane, in the bucket of its endpoint (`groups`, `apps`), whose limits are learned
//! from Okta's `X-Rate-Limit-*` headers.

use std::collections::BTreeMap;

use crate::store::RedisConn;
use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;

use super::doc::TenantDoc;
use super::engine::{Engine, EngineError};
use super::store::{RedisSink, TenantStore, MODE_DELETE, TENANT_WORKERS};
use crate::config::{RedisSettings, Settings};
use crate::okta::client::OktaClient;
use crate::okta::rate::Lane;
use crate::store::consumer::{entry_fields, Batch, BatchHandler, GroupConsumer};
use crate::store::Keys;

pub struct TenantWorker {
    store: TenantStore,
    okta: OktaClient,
    settings: Settings,
    group: GroupConsumer,
}

impl TenantWorker {
    pub fn new(keys: Keys, okta: OktaClient, settings: &Settings) -> Self {
        Self {
            store: TenantStore::new(keys.clone()),
            okta,
            settings: settings.clone(),
            group: GroupConsumer {
                label: "tenants",
                streams: vec![keys.tenant_queue()],
                group: TENANT_WORKERS.to_owned(),
                consumer: format!(
                    "tenants-{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ),
                batch: 4,
                block_ms: 1000,
                claim_idle_ms: settings.jobs.claim_idle_ms,
                export_lag: false,
            },
        }
    }

    pub async fn run(self, redis: RedisSettings, cancel: CancellationToken) {
        self.group.run(&self, &redis, &cancel).await
    }

    /// Runs one apply to its end (or returns a Redis error, leaving it pending).
    pub async fn run_apply(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
        id: &str,
    ) -> RedisResult<()> {
        let Some(apply) = self.store.apply(conn, tenant, id).await? else {
            return Ok(()); // gone (tenant deleted): nothing to do
        };
        if apply.finished() {
            return Ok(());
        }
        let doc = apply.doc.clone().unwrap_or(TenantDoc {
            tenant: None,
            display_name: String::new(),
            installations: BTreeMap::new(),
        });
        if apply.started.is_none() {
            let started = super::store::now();
            self.store
                .set_state(
                    conn,
                    tenant,
                    id,
                    &[("state", "running"), ("started", &started)],
                )
                .await?;
        }
        let known = self.store.ids(conn, tenant).await?;
        let mut sink = RedisSink {
            conn: conn.clone(),
            keys: self.store.keys().clone(),
            tenant: tenant.to_owned(),
            apply: id.to_owned(),
            done: apply
                .steps
                .iter()
                .filter(|s| s.error.is_none())
                .map(|s| (s.key.clone(), s.clone()))
                .collect(),
        };
        let engine = Engine {
            okta: &self.okta,
            lane: Lane::Bulk,
            dry_run: false,
            profile_attribute: &self.settings.provisioning.profile_attribute,
        };
        let outcome = if apply.mode == MODE_DELETE {
            engine
                .teardown(tenant, &doc, &known, &mut sink)
                .await
                .map(|_| BTreeMap::new())
        } else {
            engine
                .converge(tenant, &doc, &known, &mut sink)
                .await
                .map(|(_, ids)| {
                    doc.installations
                        .iter()
                        .map(|(name, inst)| {
                            let config = super::installation_config(
                                &self.settings,
                                tenant,
                                name,
                                inst,
                                &ids,
                            );
                            (name.clone(), config)
                        })
                        .collect()
                })
        };
        match outcome {
            Ok(configs) => {
                self.store
                    .publish_configs(
                        conn,
                        tenant,
                        &configs,
                        self.settings.signing_key(),
                        self.settings.provisioning.config_stream_maxlen,
                    )
                    .await?;
                self.store
                    .finish(conn, tenant, id, &apply.mode, None)
                    .await?;
                metrics::counter!("okta_adapter_tenant_applies_total", "outcome" => "succeeded")
                    .increment(1);
            }
            Err(EngineError::Record { key, reason }) => {
                // Redis failed: leave the entry pending; the apply resumes when it is claimed.
                tracing::warn!(%tenant, apply = %id, step = %key, %reason, "apply step not recorded");
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "apply step not recorded",
                    reason,
                )));
            }
            Err(e @ EngineError::Okta { .. }) => {
                let message = e.to_string();
                // The failed step's result, so the per-step view says where and why.
                if let EngineError::Okta { key, .. } = &e {
                    let step = serde_json::json!({"index": 999, "key": key, "resource": "", "action": "unchanged", "error": message});
                    let _: () = conn
                        .hset(
                            self.store.keys().tenant_apply(tenant, id),
                            format!("failed:{key}"),
                            step.to_string(),
                        )
                        .await?;
                }
                tracing::warn!(%tenant, apply = %id, error = %message, "tenant apply failed");
                self.store
                    .finish(conn, tenant, id, &apply.mode, Some(&message))
                    .await?;
                metrics::counter!("okta_adapter_tenant_applies_total", "outcome" => "failed")
                    .increment(1);
            }
        }
        Ok(())
    }
}

impl BatchHandler for TenantWorker {
    async fn handle(&self, conn: &mut RedisConn, batch: Batch) -> RedisResult<()> {
        for entry in &batch.entries {
            let f = entry_fields(entry);
            if let (Some(tenant), Some(apply)) = (f.get("tenant"), f.get("apply")) {
                self.run_apply(conn, tenant, apply).await?;
            }
            let _: () = conn
                .xack(&batch.stream, TENANT_WORKERS, &[&entry.id])
                .await?;
            let _: () = conn.xdel(&batch.stream, &[&entry.id]).await?;
        }
        Ok(())
    }
}
