//! Tenants in Redis: the desired document, applies with their per-step results, the Okta ids
//! each step produced, installation configs, and the `config` stream.
//!
//! An apply is queued on `<prefix>:tenants:queue` (consumer group `tenant-workers`) and marked
//! on the tenant (`busy`) so two applies of one tenant never run at once. Each step's result is
//! written (with the Okta id it produced) before the next step starts ([`RedisSink`]); a crash
//! leaves the queue entry pending, another worker claims it, and the apply resumes: finished
//! steps are skipped, the step in flight is found by name in Okta instead of created again.

use std::collections::{BTreeMap, HashMap};

use crate::store::RedisConn;
use chrono::{SecondsFormat, Utc};
use redis::{AsyncCommands, RedisResult};
use serde_json::{json, Value};

use super::doc::TenantDoc;
use super::engine::{Action, Ids, Step, StepSink};
use crate::store::Keys;

/// Consumer group of the apply workers.
pub const TENANT_WORKERS: &str = "tenant-workers";

pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// How long a `queued` apply without a queue entry counts as still being queued (its `queue`
/// call between the MULTI and the XADD) rather than left so by a crash; after it, the next
/// apply of the tenant takes over.
pub const UNQUEUED_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Sets `busy` to ARGV[1] only if it still is the stale ARGV[2].
const TAKE_OVER: &str = r#"
if redis.call('HGET', KEYS[1], 'busy') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'busy', ARGV[1])
  return 1
end
return 0
"#;

/// Writes apply ARGV[1]'s record (KEYS[2]) and the tenant's fields (KEYS[1]) only while the
/// tenant is still busy with it: a `queue` call that stalled after taking `busy` and was taken
/// over meanwhile must not overwrite the newer apply's desired document. Both keys are on the
/// tenant's slot. ARGV: id, tenant, mode, doc JSON, created, by. Returns 1, or 0 when superseded.
const RECORD_QUEUED: &str = r#"
if redis.call('HGET', KEYS[1], 'busy') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'tenant', ARGV[2], 'mode', ARGV[3], 'state', 'queued',
  'doc', ARGV[4], 'created', ARGV[5], 'by', ARGV[6])
if ARGV[3] == 'apply' then
  redis.call('HSET', KEYS[1], 'apply', ARGV[1], 'updated', ARGV[5], 'doc', ARGV[4],
    'state', 'applying')
else
  redis.call('HSET', KEYS[1], 'apply', ARGV[1], 'updated', ARGV[5], 'state', 'deleting')
end
return 1
"#;

/// A new apply id: sortable by time, unique.
pub fn new_apply_id() -> String {
    format!(
        "{}-{:08x}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        rand::random::<u32>()
    )
}

/// `apply` (create/update) or `delete` (tear down).
pub const MODE_APPLY: &str = "apply";
pub const MODE_DELETE: &str = "delete";

#[derive(Clone)]
pub struct TenantStore {
    keys: Keys,
}

/// An apply as stored.
#[derive(Debug, Clone, Default)]
pub struct ApplyRecord {
    pub id: String,
    pub tenant: String,
    pub mode: String,
    /// `queued`, `running`, `succeeded`, `failed`.
    pub state: String,
    pub doc: Option<TenantDoc>,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub by: String,
    pub error: Option<String>,
    pub steps: Vec<Step>,
}

impl ApplyRecord {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "tenant": self.tenant, "mode": self.mode, "state": self.state,
            "created": self.created, "started": self.started, "finished": self.finished,
            "requested_by": self.by, "error": self.error, "steps": self.steps,
        })
    }

    pub fn finished(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed")
    }
}

impl TenantStore {
    pub fn new(keys: Keys) -> Self {
        Self { keys }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Queues apply `id` of `doc` (or a teardown); `false` when one is already in flight.
    pub async fn queue(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
        id: &str,
        mode: &str,
        doc: &TenantDoc,
        by: &str,
    ) -> RedisResult<bool> {
        let mut taken: bool = conn.hset_nx(self.keys.tenant(tenant), "busy", id).await?;
        if !taken {
            // Busy with an apply that can no longer end (its record or queue entry is gone,
            // e.g. Redis restarted without persistence): take over, atomically.
            let holder: Option<String> = conn.hget(self.keys.tenant(tenant), "busy").await?;
            if let Some(holder) = holder {
                if self.is_orphaned(conn, tenant, &holder).await? {
                    taken = redis::Script::new(TAKE_OVER)
                        .key(self.keys.tenant(tenant))
                        .arg(id)
                        .arg(&holder)
                        .invoke_async(conn)
                        .await?;
                    if taken {
                        tracing::warn!(%tenant, stale = %holder, "took over a tenant whose apply could no longer end");
                    }
                }
            }
        }
        if !taken {
            return Ok(false);
        }
        if !self.record_queued(conn, tenant, id, mode, doc, by).await? {
            tracing::warn!(%tenant, apply = %id, "apply superseded while it was being queued (taken over); not queued");
            return Ok(false);
        }
        // The listing and the queue are on other cluster slots than the tenant's `{tenant}`
        // keys, so they follow the MULTI, queue last: a crash before the XADD leaves the tenant
        // busy with an apply that has no queue entry, which the next `queue` takes over
        // (`is_orphaned`) once it is older than `UNQUEUED_GRACE` — not before, as this call
        // may still be on its way to the XADD.
        let _: () = conn.zadd(self.keys.tenants(), tenant, 0).await?;
        let _: String = redis::cmd("XADD")
            .arg(self.keys.tenant_queue())
            .arg("*")
            .arg(&[("tenant", tenant), ("apply", id)])
            .query_async(conn)
            .await?;
        Ok(true)
    }

    /// Writes apply `id`'s record and the tenant's fields (desired doc, state, last apply) —
    /// only while the tenant is still busy with `id` ([`RECORD_QUEUED`]); `false` when another
    /// apply took the tenant over in the meantime (then nothing is written).
    pub async fn record_queued(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
        id: &str,
        mode: &str,
        doc: &TenantDoc,
        by: &str,
    ) -> RedisResult<bool> {
        let doc_json = serde_json::to_string(doc).unwrap_or_default();
        let recorded: i64 = redis::Script::new(RECORD_QUEUED)
            .key(self.keys.tenant(tenant))
            .key(self.keys.tenant_apply(tenant, id))
            .arg(id)
            .arg(tenant)
            .arg(mode)
            .arg(&doc_json)
            .arg(now())
            .arg(by)
            .invoke_async(conn)
            .await?;
        Ok(recorded == 1)
    }

    /// Whether apply `id` can no longer end: no record, already ended, or no queue entry —
    /// except a `queued` record younger than [`UNQUEUED_GRACE`]: its `queue` call may still be
    /// between its MULTI and the queue entry (another cluster slot), and taking it over would
    /// queue two applies of one tenant.
    async fn is_orphaned(&self, conn: &mut RedisConn, tenant: &str, id: &str) -> RedisResult<bool> {
        let (state, created): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.tenant_apply(tenant, id))
            .arg("state")
            .arg("created")
            .query_async(conn)
            .await?;
        match state.as_deref() {
            None | Some("succeeded") | Some("failed") => return Ok(true),
            _ => {}
        }
        let young = created
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(&c).ok())
            .is_some_and(|c| {
                Utc::now().signed_duration_since(c)
                    < chrono::Duration::from_std(UNQUEUED_GRACE).unwrap_or_default()
            });
        if state.as_deref() == Some("queued") && young {
            return Ok(false);
        }
        let queued: redis::streams::StreamRangeReply =
            conn.xrange_all(self.keys.tenant_queue()).await?;
        Ok(!queued.ids.iter().any(|e| {
            e.map
                .get("apply")
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .as_deref()
                == Some(id)
        }))
    }

    pub async fn apply(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
        id: &str,
    ) -> RedisResult<Option<ApplyRecord>> {
        let h: HashMap<String, String> = conn.hgetall(self.keys.tenant_apply(tenant, id)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        let mut steps: Vec<Step> = h
            .iter()
            .filter(|(k, _)| k.starts_with("s:"))
            .filter_map(|(_, v)| serde_json::from_str(v).ok())
            .collect();
        steps.sort_by_key(|s| s.index);
        let get = |k: &str| h.get(k).cloned();
        Ok(Some(ApplyRecord {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            mode: get("mode").unwrap_or_default(),
            state: get("state").unwrap_or_default(),
            doc: get("doc").and_then(|d| serde_json::from_str(&d).ok()),
            created: get("created").unwrap_or_default(),
            started: get("started"),
            finished: get("finished"),
            by: get("by").unwrap_or_default(),
            error: get("error"),
            steps,
        }))
    }

    /// The tenant hash (desired doc, state, last apply, `config:<i>`); empty when unknown.
    pub async fn tenant(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
    ) -> RedisResult<HashMap<String, String>> {
        conn.hgetall(self.keys.tenant(tenant)).await
    }

    pub async fn ids(&self, conn: &mut RedisConn, tenant: &str) -> RedisResult<Ids> {
        conn.hgetall(self.keys.tenant_ids(tenant)).await
    }

    pub async fn list(&self, conn: &mut RedisConn) -> RedisResult<Vec<String>> {
        conn.zrange(self.keys.tenants(), 0, -1).await
    }

    pub async fn set_state(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
        id: &str,
        fields: &[(&str, &str)],
    ) -> RedisResult<()> {
        conn.hset_multiple(self.keys.tenant_apply(tenant, id), fields)
            .await
    }

    /// Ends an apply: its state, the tenant's state, and the tenant is free again.
    pub async fn finish(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
        id: &str,
        mode: &str,
        error: Option<&str>,
    ) -> RedisResult<()> {
        let finished = now();
        let state = if error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        let mut fields = vec![("state", state), ("finished", finished.as_str())];
        if let Some(e) = error {
            fields.push(("error", e));
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(self.keys.tenant_apply(tenant, id), &fields)
            .ignore();
        match (mode, error) {
            (MODE_DELETE, None) => {
                // Un-listed first (another cluster slot), then the tenant's keys in one MULTI:
                // a crash between leaves an unlisted tenant whose apply is redelivered to a
                // worker and finishes again.
                let _: () = conn.zrem(self.keys.tenants(), tenant).await?;
                pipe.del(self.keys.tenant(tenant))
                    .ignore()
                    .del(self.keys.tenant_ids(tenant))
                    .ignore();
            }
            (_, e) => {
                let tenant_state = if e.is_some() { "failed" } else { "applied" };
                pipe.hset_multiple(
                    self.keys.tenant(tenant),
                    &[("state", tenant_state), ("updated", finished.as_str())],
                )
                .ignore()
                .hdel(self.keys.tenant(tenant), "busy")
                .ignore();
            }
        }
        pipe.query_async(conn).await
    }

    /// Stores each installation's config and publishes the ones that changed (and the removed
    /// ones) on the config stream. Returns how many entries were published.
    pub async fn publish_configs(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
        configs: &BTreeMap<String, Value>,
        signing_key: Option<&[u8]>,
        maxlen: usize,
    ) -> RedisResult<usize> {
        let stored = self.tenant(conn, tenant).await?;
        let mut published = 0;
        for (installation, config) in configs {
            let previous = stored
                .get(&format!("config:{installation}"))
                .and_then(|c| serde_json::from_str::<Value>(c).ok());
            let change = match &previous {
                None => "created",
                Some(p) if p == config => continue,
                Some(_) => "updated",
            };
            self.publish(
                conn,
                tenant,
                installation,
                change,
                Some(config),
                signing_key,
                maxlen,
            )
            .await?;
            published += 1;
        }
        for field in stored.keys() {
            if let Some(installation) = field.strip_prefix("config:") {
                if !configs.contains_key(installation) {
                    self.publish(
                        conn,
                        tenant,
                        installation,
                        "deleted",
                        None,
                        signing_key,
                        maxlen,
                    )
                    .await?;
                    published += 1;
                }
            }
        }
        Ok(published)
    }

    /// One config stream entry (and the stored config follows it).
    #[allow(clippy::too_many_arguments)]
    pub async fn publish(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
        installation: &str,
        change: &str,
        config: Option<&Value>,
        signing_key: Option<&[u8]>,
        maxlen: usize,
    ) -> RedisResult<()> {
        let text = config
            .map(Value::to_string)
            .unwrap_or_else(|| "null".into());
        let kind = config
            .and_then(|c| c["kind"].as_str())
            .unwrap_or("")
            .to_owned();
        let sig = signing_key
            .map(|k| {
                hex::encode(crate::fanout::entry_signature(
                    k,
                    &format!("{tenant}/{installation}"),
                    &text,
                ))
            })
            .unwrap_or_default();
        let at = now();
        let mut fields = vec![
            ("v", "1"),
            ("tenant", tenant),
            ("installation", installation),
            ("kind", kind.as_str()),
            ("change", change),
            ("config", text.as_str()),
            ("at", at.as_str()),
        ];
        if !sig.is_empty() {
            fields.push(("sig", sig.as_str()));
        }
        // Published first, then stored (the stream and the tenant hash are on different cluster
        // slots): a crash between publishes the same config again on the next apply (products
        // see it twice), never a stored config that was not published.
        let _: String = redis::cmd("XADD")
            .arg(self.keys.config_stream())
            .arg("MAXLEN")
            .arg("~")
            .arg(maxlen)
            .arg("*")
            .arg(&fields)
            .query_async(conn)
            .await?;
        match config {
            Some(_) => {
                conn.hset(
                    self.keys.tenant(tenant),
                    format!("config:{installation}"),
                    &text,
                )
                .await
            }
            None => {
                conn.hdel(self.keys.tenant(tenant), format!("config:{installation}"))
                    .await
            }
        }
    }
}

/// Records steps of one apply in Redis; hands new client secrets to a waiting request over
/// pub/sub (delivered or lost, never stored).
pub struct RedisSink {
    pub conn: RedisConn,
    pub keys: Keys,
    pub tenant: String,
    pub apply: String,
    /// Steps finished by an earlier run of this apply.
    pub done: HashMap<String, Step>,
}

impl StepSink for RedisSink {
    fn done(&self, key: &str) -> Option<Step> {
        self.done.get(key).cloned()
    }

    async fn record(&mut self, step: &Step) -> Result<(), String> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(
                self.keys.tenant_apply(&self.tenant, &self.apply),
                format!("s:{}", step.key),
                serde_json::to_string(step).unwrap_or_default(),
            )
            .ignore();
        let ids = self.keys.tenant_ids(&self.tenant);
        if let Some(base) = step.key.strip_suffix(":delete") {
            pipe.hdel(&ids, base).ignore();
        } else if let (Some(id), false) = (&step.okta_id, step.key.ends_with(":assign")) {
            if step.action != Action::Delete {
                pipe.hset(&ids, &step.key, id).ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn secret(&mut self, installation: &str, secret: &str) -> String {
        let message = json!({"installation": installation, "client_secret": secret}).to_string();
        let receivers: RedisResult<u64> = self
            .conn
            .publish(self.keys.tenant_secret_channel(&self.apply), message)
            .await;
        match receivers {
            Ok(n) if n > 0 => "client secret handed to the waiting request".into(),
            // A cluster counts only the subscribers of the node that ran PUBLISH, while the
            // message reaches every node's: zero says nothing there.
            Ok(_) if matches!(self.conn, RedisConn::Cluster(_)) => {
                "client secret published to the waiting request, if any (a cluster cannot tell): if none was shown, rotate it".into()
            }
            _ => "client secret not delivered (nobody waited for it): rotate it to get one".into(),
        }
    }
}
