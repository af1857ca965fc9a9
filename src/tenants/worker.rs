//! Apply workers: the `tenant-workers` consumer group on `<prefix>:tenants:queue`.
//!
//! On the shared [`GroupConsumer`]: an apply's queue entry is acknowledged only once the apply
//! has ended (succeeded or failed with a reason). A worker that dies leaves it pending; after
//! `jobs.claim_idle_ms` another worker (or the restarted process) claims it and the apply
//! resumes from its recorded steps. Every Okta call goes through the shared rate scheduler in
//! the bulk lane, in the bucket of its endpoint (`groups`, `apps`), whose limits are learned
//! from Okta's `X-Rate-Limit-*` headers.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};

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
    /// Stops refilling finished slots (set by [`Self::run`]).
    cancel: CancellationToken,
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
                batch: settings.provisioning.concurrency.max(1),
                block_ms: 1000,
                claim_idle_ms: settings.jobs.claim_idle_ms,
                export_lag: false,
            },
            cancel: CancellationToken::new(),
        }
    }

    pub async fn run(mut self, redis: RedisSettings, cancel: CancellationToken) {
        self.cancel = cancel.clone();
        let group = self.group.clone();
        group.run(&self, &redis, &cancel).await
    }

    /// Runs one apply to its end (or returns a Redis error, leaving it pending).
    pub async fn run_apply(&self, conn: &mut RedisConn, tenant: &str, id: &str) -> RedisResult<()> {
        let Some(apply) = self.store.apply(conn, tenant, id).await? else {
            return Ok(()); // gone (tenant deleted): nothing to do
        };
        if apply.finished() {
            return Ok(());
        }
        // Only the apply holding the tenant runs. Another one's queue entry is written after
        // its record (another cluster slot); if that `queue` call stalled past the grace and
        // the tenant was taken over meanwhile, it must not run next to the holder, nor free
        // the tenant from under it when it ends.
        let busy: Option<String> = conn.hget(self.store.keys().tenant(tenant), "busy").await?;
        if busy.as_deref() != Some(id) {
            tracing::warn!(%tenant, apply = %id, holder = ?busy, "apply superseded: the tenant was taken over before its queue entry was written");
            let finished = super::store::now();
            self.store
                .set_state(
                    conn,
                    tenant,
                    id,
                    &[
                        ("state", "failed"),
                        ("finished", &finished),
                        (
                            "error",
                            "superseded: another apply took the tenant over before this one was queued; not run",
                        ),
                    ],
                )
                .await?;
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
    /// Applies of different tenants run concurrently (one tenant never has two in flight), so
    /// while one waits for the `groups` bucket another uses the `apps` bucket. Each finished
    /// apply's slot is refilled at once from the queue (no gap between batches), and every
    /// entry in flight is re-claimed by this consumer every `claim_idle_ms / 3`, so an apply
    /// that runs for minutes at Okta's real limits is never taken over by another worker
    /// while this one still runs it.
    async fn handle(&self, conn: &mut RedisConn, batch: Batch) -> RedisResult<()> {
        let stream = batch.stream.clone();
        let in_flight: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(
            batch.entries.iter().map(|e| e.id.clone()).collect(),
        ));
        let heartbeat = {
            let (mut conn, ids, stream) = (conn.clone(), in_flight.clone(), stream.clone());
            let (group, consumer) = (self.group.group.clone(), self.group.consumer.clone());
            let every = Duration::from_millis((self.group.claim_idle_ms / 3).max(50));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let ids: Vec<String> = ids.lock().unwrap().iter().cloned().collect();
                    if ids.is_empty() {
                        continue;
                    }
                    let _: RedisResult<redis::Value> = redis::cmd("XCLAIM")
                        .arg(&stream)
                        .arg(&group)
                        .arg(&consumer)
                        .arg(0)
                        .arg(&ids)
                        .arg("JUSTID")
                        .query_async(&mut conn)
                        .await;
                }
            })
        };
        let base = conn.clone();
        let run = |entry: StreamId| {
            let mut conn = base.clone();
            async move {
                let f = entry_fields(&entry);
                if let (Some(tenant), Some(apply)) = (f.get("tenant"), f.get("apply")) {
                    self.run_apply(&mut conn, tenant, apply).await?;
                }
                Ok::<_, redis::RedisError>(entry.id)
            }
        };
        let mut running: FuturesUnordered<_> = batch.entries.into_iter().map(run).collect();
        let mut first_err = None;
        let mut refill = !batch.reclaimed;
        while let Some(result) = running.next().await {
            let id = match result {
                Ok(id) => id,
                Err(e) => {
                    first_err = first_err.or(Some(e));
                    refill = false;
                    continue;
                }
            };
            let _: () = conn.xack(&stream, TENANT_WORKERS, &[&id]).await?;
            let _: () = conn.xdel(&stream, &[&id]).await?;
            in_flight.lock().unwrap().remove(&id);
            if refill && !self.cancel.is_cancelled() {
                let opts = StreamReadOptions::default()
                    .group(&self.group.group, &self.group.consumer)
                    .count(1);
                let reply: StreamReadReply = conn.xread_options(&[&stream], &[">"], &opts).await?;
                for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                    in_flight.lock().unwrap().insert(entry.id.clone());
                    running.push(run(entry));
                }
            }
        }
        heartbeat.abort();
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
