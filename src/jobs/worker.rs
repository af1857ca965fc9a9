//! Job workers: the `job-workers` consumer group on the row queue.
//!
//! It runs on the shared [`GroupConsumer`](crate::store::consumer::GroupConsumer). Each round
//! reads up to `jobs.concurrency` rows and runs them concurrently in the bulk lane of
//! the rate scheduler. A row's result is recorded (once, with the counters) before its queue
//! entry is acknowledged; rows left pending by a dead worker are taken over after
//! `jobs.claim_idle_ms`. Exactly-once per row across crashes:
//! - a replayed row that already has a result is only acknowledged;
//! - an attempt marker is set before each Okta call, so a replayed `create` that meets
//!   `E0000001` ("login already exists") knows the user was created by this very row and records
//!   it as done, instead of failing it or creating it twice; a replayed lifecycle row that Okta
//!   refuses because it already happened is checked against the user's status.
//!
//! A client admin's group row is checked again before it runs ([`GroupGuard`]): the config or
//! the group's name may have changed since the job was created.

use std::collections::HashMap;

use crate::store::RedisConn;
use redis::streams::StreamId;
use redis::{AsyncCommands, RedisResult};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::groups::GroupGuard;
use super::rows::{JobKind, JobOptions, JobRow, JobState, RowOutcome};
use super::store::{JobStore, RowResult, WORKER_GROUP};
use super::tenant_fields::TenantFields;
use crate::config::{RedisSettings, Settings};
use crate::okta::client::{Credentials, OktaClient, OktaError};
use crate::okta::rate::Lane;
use crate::projection::read::Reader;
use crate::store::consumer::{Batch, BatchHandler, GroupConsumer};
use crate::store::Keys;

pub struct JobWorker {
    store: JobStore,
    okta: OktaClient,
    reader: Reader,
    groups: GroupGuard,
    /// What a client admin's create or update row may not set.
    tenant_fields: TenantFields,
    /// `jobs.tenant_profile_attribute`, which a client admin's create sets to its tenant.
    create_attribute: String,
    /// This worker in the `job-workers` group on the row queue.
    group: GroupConsumer,
}

/// A job's settings as a worker needs them.
#[derive(Debug, Clone)]
struct JobMeta {
    kind: JobKind,
    options: JobOptions,
    /// `None` for a state this version never writes (the row then runs).
    state: Option<JobState>,
    tenant: String,
}

fn field(entry: &StreamId, name: &str) -> Option<String> {
    entry
        .map
        .get(name)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
}

impl JobWorker {
    /// A worker deciding client admins' rows by `settings` (tenant rules, `tenants.groups`,
    /// `jobs.tenant_profile_attribute`): every process that runs rows, the CLI's `import` too,
    /// checks them the same way.
    pub fn new(keys: Keys, okta: OktaClient, settings: &Settings) -> Self {
        Self {
            store: JobStore::new(keys.clone()),
            reader: Reader::new(keys.clone()),
            okta,
            groups: GroupGuard::from_settings(settings),
            tenant_fields: TenantFields::from_settings(settings),
            create_attribute: settings.jobs.tenant_profile_attribute.clone(),
            group: GroupConsumer {
                label: "jobs",
                streams: vec![keys.job_queue()],
                group: WORKER_GROUP.to_owned(),
                consumer: format!(
                    "worker-{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ),
                batch: settings.jobs.concurrency,
                block_ms: 1000,
                claim_idle_ms: settings.jobs.claim_idle_ms,
                export_lag: false,
            },
        }
    }

    /// Runs until cancelled (the shared runner's recovery rules).
    pub async fn run(self, redis: RedisSettings, cancel: CancellationToken) {
        self.group.run(&self, &redis, &cancel).await
    }

    async fn run_entries(
        &self,
        conn: &mut RedisConn,
        entries: Vec<StreamId>,
    ) -> RedisResult<usize> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut metas: HashMap<String, Option<JobMeta>> = HashMap::new();
        for e in &entries {
            if let Some(job) = field(e, "job") {
                if let std::collections::hash_map::Entry::Vacant(slot) = metas.entry(job) {
                    let f = self.store.fields(conn, slot.key()).await?;
                    slot.insert(job_meta(&f));
                }
            }
        }
        let runs = entries.iter().map(|e| {
            let job = field(e, "job").unwrap_or_default();
            let meta = metas.get(&job).cloned().flatten();
            let mut conn = conn.clone();
            async move {
                let row: Option<JobRow> =
                    field(e, "row").and_then(|r| serde_json::from_str(&r).ok());
                match (meta, row) {
                    (Some(meta), Some(row)) => self.run_row(&mut conn, &job, &meta, &row).await,
                    // A row of a job that no longer exists, or garbage: nothing to do.
                    _ => Ok(()),
                }
                .map(|()| e.id.clone())
            }
        });
        let results = futures::future::join_all(runs).await;
        let mut acked = Vec::new();
        let mut first_err = None;
        for r in results {
            match r {
                Ok(id) => acked.push(id),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        if !acked.is_empty() {
            let _: () = conn
                .xack(self.store.keys().job_queue(), WORKER_GROUP, &acked)
                .await?;
            // Finished rows need not stay in the queue.
            let _: () = conn.xdel(self.store.keys().job_queue(), &acked).await?;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(acked.len()),
        }
    }

    async fn run_row(
        &self,
        conn: &mut RedisConn,
        job: &str,
        meta: &JobMeta,
        row: &JobRow,
    ) -> RedisResult<()> {
        if self.store.has_result(conn, job, row.line).await? {
            return Ok(()); // replay of a row finished before a crash
        }
        let result = if meta.state == Some(JobState::Cancelled) {
            RowResult {
                line: row.line,
                login: row.login.clone().or_else(|| {
                    row.profile
                        .get("login")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }),
                okta_id: row.id.clone(),
                outcome: RowOutcome::Failed,
                error: Some("cancelled".into()),
            }
        } else {
            let replay = !self.mark_attempt(conn, job, row.line).await?;
            self.execute(conn, meta, row, replay).await
        };
        let counter = result.outcome.as_str();
        if self.store.record(conn, job, &result, counter).await? {
            metrics::counter!("okta_adapter_job_rows_total", "kind" => meta.kind.as_str(), "outcome" => counter).increment(1);
            if let Err(e) = self
                .store
                .publish_row(conn, job, meta.kind.as_str(), &meta.tenant, &result)
                .await
            {
                tracing::warn!(error = %e, "job row not published for reports");
            }
        }
        Ok(())
    }

    /// Sets the attempt marker; `false` when it was already set (this row ran before).
    async fn mark_attempt(&self, conn: &mut RedisConn, job: &str, line: u64) -> RedisResult<bool> {
        conn.hset_nx(self.store.keys().job_attempts(job), line, 1)
            .await
    }

    /// The Okta id of a row's user (projection first, then Okta), scoped to the job's tenant.
    async fn resolve_user(
        &self,
        conn: &mut RedisConn,
        meta: &JobMeta,
        row: &JobRow,
    ) -> Result<String, String> {
        let key = row
            .id
            .clone()
            .or_else(|| row.login.clone())
            .unwrap_or_default();
        let projected = self
            .reader
            .find(conn, &key, 1)
            .await
            .map_err(|e| format!("lookup failed: {e}"))?;
        if !meta.tenant.is_empty() {
            // A client-admin job may only touch users the projection places in its tenant.
            return match projected {
                Some((u, _)) if u.tenant.as_deref() == Some(meta.tenant.as_str()) => Ok(u.id),
                _ => Err(format!("no user `{key}` in your tenant")),
            };
        }
        if let Some((u, _)) = projected {
            return Ok(u.id);
        }
        if let Some(id) = &row.id {
            return Ok(id.clone());
        }
        match self.okta.get_user(Lane::Bulk, &key).await {
            Ok(u) => u["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| "Okta returned no id".into()),
            Err(e) if e.code() == Some("E0000007") => Err(format!("no user `{key}` in Okta")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Finds the row's user (within the job's tenant) and runs the job's action on it.
    async fn resolve_and_run(
        &self,
        conn: &mut RedisConn,
        meta: &JobMeta,
        row: &JobRow,
        replay: bool,
    ) -> Result<String, String> {
        let id = self.resolve_user(conn, meta, row).await?;
        self.lifecycle(meta, row, &id, replay).await.map(|()| id)
    }

    async fn execute(
        &self,
        conn: &mut RedisConn,
        meta: &JobMeta,
        row: &JobRow,
        replay: bool,
    ) -> RowResult {
        let login = row.login.clone().or_else(|| {
            row.profile
                .get("login")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        // A client admin's profile row is checked again as it runs: the configuration may have
        // changed since the upload (see `TenantFields`).
        let outcome = match meta.kind {
            JobKind::Create | JobKind::Update if !meta.tenant.is_empty() => {
                let allowed =
                    (meta.kind == JobKind::Create).then_some(self.create_attribute.as_str());
                match self
                    .tenant_fields
                    .check(&meta.tenant, &row.profile, allowed)
                {
                    Err(refused) => Err(refused),
                    Ok(()) if meta.kind == JobKind::Create => self.create(meta, row, replay).await,
                    Ok(()) => self.resolve_and_run(conn, meta, row, replay).await,
                }
            }
            JobKind::Create => self.create(meta, row, replay).await,
            JobKind::AddToGroup | JobKind::RemoveFromGroup if !meta.tenant.is_empty() => {
                let group = row.group_id.as_deref().unwrap_or_default();
                match self
                    .groups
                    .check(&self.okta, Lane::Bulk, &meta.tenant, group)
                    .await
                {
                    Err(refusal) => Err(refusal.message(group)),
                    Ok(()) => self.resolve_and_run(conn, meta, row, replay).await,
                }
            }
            _ => self.resolve_and_run(conn, meta, row, replay).await,
        };
        match outcome {
            Ok(id) => RowResult {
                line: row.line,
                login,
                okta_id: Some(id),
                outcome: RowOutcome::Done,
                error: None,
            },
            Err(error) => RowResult {
                line: row.line,
                login,
                okta_id: row.id.clone(),
                outcome: RowOutcome::Failed,
                error: Some(error),
            },
        }
    }

    async fn create(&self, meta: &JobMeta, row: &JobRow, replay: bool) -> Result<String, String> {
        let profile = Value::Object(row.profile.clone());
        let credentials = match (&row.password_hash, meta.options.password_hook) {
            (Some(hash), _) => Credentials::Hash(hash.clone()),
            (None, true) => Credentials::ImportHook,
            (None, false) => Credentials::None,
        };
        match self
            .okta
            .create_user(Lane::Bulk, &profile, &credentials, meta.options.activate)
            .await
        {
            Ok(user) => user["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| "Okta returned no id".into()),
            Err(OktaError::Api { code, causes, .. })
                if code == "E0000001" && causes.iter().any(|c| c.contains("already exists")) =>
            {
                let login = row
                    .profile
                    .get("login")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !replay {
                    return Err(format!("login `{login}` already exists in Okta"));
                }
                // This row's earlier attempt reached Okta before the crash: it is our user.
                match self.okta.get_user(Lane::Bulk, login).await {
                    Ok(user) => user["id"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| "Okta returned no id".into()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn lifecycle(
        &self,
        meta: &JobMeta,
        row: &JobRow,
        id: &str,
        replay: bool,
    ) -> Result<(), String> {
        let lane = Lane::Bulk;
        let o = &self.okta;
        let (result, already) = match meta.kind {
            JobKind::Create => unreachable!("handled by create"),
            JobKind::Update => (
                o.update_profile(lane, id, &Value::Object(row.profile.clone()))
                    .await
                    .map(|_| ()),
                &[][..],
            ),
            JobKind::Activate => (
                o.lifecycle(
                    lane,
                    id,
                    "activate",
                    Some(meta.options.send_email && !meta.options.password_hook),
                )
                .await
                .map(|_| ()),
                &["ACTIVE", "PROVISIONED"][..],
            ),
            JobKind::Deactivate => (
                o.lifecycle(lane, id, "deactivate", Some(false))
                    .await
                    .map(|_| ()),
                &["DEPROVISIONED"][..],
            ),
            JobKind::Suspend => (
                o.lifecycle(lane, id, "suspend", None).await.map(|_| ()),
                &["SUSPENDED"][..],
            ),
            JobKind::Unsuspend => (
                o.lifecycle(lane, id, "unsuspend", None).await.map(|_| ()),
                &["ACTIVE"][..],
            ),
            JobKind::Delete => {
                // Okta deactivates on the first DELETE of an active user and deletes on the second.
                let first = o.delete_user(lane, id).await;
                let second = match first {
                    Ok(()) => o.delete_user(lane, id).await,
                    Err(e) => Err(e),
                };
                match second {
                    Err(e) if e.code() == Some("E0000007") => (Ok(()), &[][..]),
                    other => (other, &[][..]),
                }
            }
            JobKind::AddToGroup | JobKind::RemoveFromGroup => {
                let group = row.group_id.clone().unwrap_or_default();
                let r = if meta.kind == JobKind::AddToGroup {
                    o.add_to_group(lane, &group, id).await
                } else {
                    o.remove_from_group(lane, &group, id).await
                };
                (r, &[][..])
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if replay && e.code() == Some("E0000038") && !already.is_empty() => {
                // Refused because it already happened in this row's earlier attempt?
                match o.get_user(lane, id).await {
                    Ok(u) if already.contains(&u["status"].as_str().unwrap_or("")) => Ok(()),
                    _ => Err(e.to_string()),
                }
            }
            Err(e) if replay && meta.kind == JobKind::Delete && e.code() == Some("E0000007") => {
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

impl BatchHandler for JobWorker {
    async fn handle(&self, conn: &mut RedisConn, batch: Batch) -> RedisResult<()> {
        self.run_entries(conn, batch.entries).await.map(|_| ())
    }
}

fn job_meta(f: &HashMap<String, String>) -> Option<JobMeta> {
    Some(JobMeta {
        kind: JobKind::parse(f.get("kind")?)?,
        options: f
            .get("options")
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default(),
        state: f.get("state").and_then(|s| JobState::parse(s)),
        tenant: f.get("tenant").cloned().unwrap_or_default(),
    })
}
