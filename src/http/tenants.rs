//! `/api/v1/tenants`: tenants as declared resources (issue 18), installation configs for
//! products, and the small resource-access API products use instead of an Okta client.
//!
//! Who may do what:
//! - `support`, `operator`: everything (apply, plan, delete, list, configs, secrets);
//! - `client-admin`: read its own tenant (state, plan, configs), rotate its installations'
//!   secrets, manage its users' access; another tenant is answered as missing (404);
//! - `installation`: read its own installation's config and manage access to its own app;
//!   anything else is answered as missing.
//!
//! The rules live in `pub` functions over [`AppState`] ([`plan_steps`], [`queue_apply`],
//! [`delete_confirmed`], [`tenant_record`], [`apply_record`], [`rotate_installation_secret`],
//! [`check_scope`], the role lists): the endpoints below and the console's tenant pages
//! (`console::tenants`) both call them, so a page can never allow what the API refuses.
//!
//! Writes to Okta run as a queued apply (see `tenants::worker`); a plan and drift read Okta
//! with GETs only. Client secrets are shown once (the apply's waiting request, or
//! `rotate-secret`) and stored nowhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use redis::AsyncCommands;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::{AuditEntry, Principal, Role};
use crate::domain::tenant::TenantId;
use crate::okta::client::{OktaClient, OktaError};
use crate::okta::rate::Lane;
use crate::projection::census::tenant_counts;
use crate::tenants::doc::TenantDoc;
use crate::tenants::engine::{Action, Engine, PlanSink, Step};
use crate::tenants::store::{ApplyRecord, TenantStore, MODE_APPLY, MODE_DELETE};

/// Longest a plan (dry run, drift) may wait for Okta's reads.
const PLAN_TIMEOUT: Duration = Duration::from_secs(8);

pub struct TenantsApi {
    pub state: Arc<AppState>,
}

/// 200 with the answer, or 202 when the work was queued and has not finished yet.
#[derive(Debug, ApiResponse)]
pub enum TenantAnswer {
    #[oai(status = 200)]
    Ok(Json<Value>),
    #[oai(status = 202)]
    Accepted(Json<Value>),
}

/// Who may declare, apply and delete tenants (the console's forms use the same list).
pub const WRITERS: &[Role] = &[Role::Support, Role::Operator];
/// Who may read a tenant (a client admin only its own).
pub const READERS: &[Role] = &[Role::Support, Role::Operator, Role::ClientAdmin];
const CONFIG_READERS: &[Role] = &[
    Role::Support,
    Role::Operator,
    Role::ClientAdmin,
    Role::Installation,
];
/// Longest a `PUT …?wait=` waits for its apply.
const MAX_WAIT_SECS: u64 = 60;
/// Users counted per tenant in the list at most.
const MAX_COUNTED_USERS: usize = 100_000;

pub fn parse_tenant(t: &str) -> Result<TenantId, HttpError> {
    TenantId::parse(t).map_err(|e| HttpError::bad_request(format!("tenant: {e}")))
}

fn no_tenant(t: &str) -> HttpError {
    HttpError::not_found(format!("no tenant `{t}`"))
}

/// A client admin sees only its tenant; anything else looks missing.
pub fn check_scope(who: &Principal, tenant: &str) -> Result<(), HttpError> {
    match who.role {
        Role::Support | Role::Operator => Ok(()),
        Role::ClientAdmin | Role::Installation if who.tenant.as_deref() == Some(tenant) => Ok(()),
        _ => Err(no_tenant(tenant)),
    }
}

fn okta_failed(e: &OktaError) -> HttpError {
    match e {
        OktaError::Redis(_) => HttpError::unavailable("storage is unavailable; retry shortly"),
        other => HttpError::bad_gateway(other.to_string()),
    }
}

fn store(state: &AppState) -> TenantStore {
    TenantStore::new(state.keys.clone())
}

fn okta(state: &AppState) -> Result<&OktaClient, HttpError> {
    state.okta.as_ref().ok_or_else(|| {
        HttpError::unavailable("Okta is not configured (okta.org_url, okta.api_token)")
    })
}

/// Checks a tenant document for `tenant` (every problem named, 400).
pub fn check_doc(
    state: &AppState,
    tenant: &TenantId,
    doc: TenantDoc,
) -> Result<TenantDoc, HttpError> {
    doc.check(tenant, &state.settings.provisioning.kinds)
        .map_err(|e| HttpError::bad_request(e.to_string()))?;
    Ok(doc)
}

fn parse_doc(state: &AppState, tenant: &TenantId, body: Value) -> Result<TenantDoc, HttpError> {
    let doc = TenantDoc::from_json(body).map_err(|e| HttpError::bad_request(e.to_string()))?;
    check_doc(state, tenant, doc)
}

/// The stored desired document, or 404.
pub async fn stored_doc(state: &AppState, tenant: &str) -> Result<TenantDoc, HttpError> {
    let mut conn = state.redis.clone();
    let h = store(state)
        .tenant(&mut conn, tenant)
        .await
        .map_err(|e| HttpError::redis("tenant-read", e))?;
    h.get("doc")
        .and_then(|d| serde_json::from_str(d).ok())
        .ok_or_else(|| no_tenant(tenant))
}

/// Every step of the plan of `doc` against what Okta has now (GETs only), unchanged ones
/// included. The one way to a plan: the API's plan, dry run and drift, and the console's.
pub async fn plan_steps(
    state: &AppState,
    tenant: &str,
    doc: &TenantDoc,
) -> Result<Vec<Step>, HttpError> {
    let okta = okta(state)?;
    let mut conn = state.redis.clone();
    let known = store(state)
        .ids(&mut conn, tenant)
        .await
        .map_err(|e| HttpError::redis("tenant-ids", e))?;
    let engine = Engine {
        okta,
        lane: Lane::Interactive,
        dry_run: true,
        profile_attribute: &state.settings.provisioning.profile_attribute,
    };
    // A plan answers a person or a product waiting on it: bounded, so an Okta that does not
    // answer gives a clear 503 instead of a hung request.
    let (steps, _) = tokio::time::timeout(
        PLAN_TIMEOUT,
        engine.converge(tenant, doc, &known, &mut PlanSink),
    )
    .await
    .map_err(|_| {
        HttpError::unavailable(format!(
            "Okta did not answer the plan's reads within {} s; retry later",
            PLAN_TIMEOUT.as_secs()
        ))
    })?
    .map_err(|e| match e {
        crate::tenants::engine::EngineError::Okta { source, .. } => okta_failed(&source),
        other => HttpError::unavailable(other.to_string()),
    })?;
    Ok(steps)
}

/// The plan of `doc` as the API answers it.
async fn plan(state: &AppState, tenant: &str, doc: &TenantDoc) -> Result<Value, HttpError> {
    let steps = plan_steps(state, tenant, doc).await?;
    let changes = steps
        .iter()
        .filter(|s| s.action != Action::Unchanged)
        .count();
    Ok(json!({"tenant": tenant, "changes": changes, "steps": steps}))
}

async fn audit(state: &AppState, who: &Principal, action: &str, subject: &str, detail: &str) {
    state
        .record_audit(AuditEntry {
            who,
            action,
            subject,
            reason: None,
            detail,
        })
        .await;
}

/// Stores `doc` as the tenant's desired state and queues apply `apply_id` (audited as
/// `tenant:apply`); 409 while another apply of the tenant runs. `who` must be a writer.
pub async fn queue_apply(
    state: &AppState,
    who: &Principal,
    tenant: &str,
    apply_id: &str,
    doc: &TenantDoc,
) -> Result<(), HttpError> {
    crate::access::check_role(who, WRITERS).map_err(|e| HttpError::forbidden(e.to_string()))?;
    okta(state)?;
    let mut conn = state.redis.clone();
    let queued = store(state)
        .queue(&mut conn, tenant, apply_id, MODE_APPLY, doc, &who.key_id)
        .await
        .map_err(|e| HttpError::redis("tenant-queue", e))?;
    if !queued {
        return Err(HttpError::conflict(format!(
            "an apply of tenant `{tenant}` is in progress; retry when it has finished"
        )));
    }
    audit(state, who, "tenant:apply", tenant, apply_id).await;
    Ok(())
}

/// [`queue_apply`], then waits up to `wait` for the apply to end, collecting the client secrets
/// of the apps it creates. They are published only to a listener (subscribed here before the
/// apply is queued, so none is missed) and stored nowhere: this answer is the one place they
/// appear. Returns the apply as it stands at the end of the wait.
pub async fn queue_apply_and_wait(
    state: &AppState,
    who: &Principal,
    tenant: &str,
    apply_id: &str,
    doc: &TenantDoc,
    wait: Duration,
) -> Result<(ApplyRecord, BTreeMap<String, String>), HttpError> {
    okta(state)?;
    let client = redis::Client::open(state.settings.redis.url.expose_secret())
        .map_err(|e| HttpError::redis("tenant-subscribe", e))?;
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .map_err(|e| HttpError::redis("tenant-subscribe", e))?;
    pubsub
        .subscribe(state.keys.tenant_secret_channel(apply_id))
        .await
        .map_err(|e| HttpError::redis("tenant-subscribe", e))?;
    queue_apply(state, who, tenant, apply_id, doc).await?;
    let mut conn = state.redis.clone();
    let mut secrets = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut messages = pubsub.on_message();
    loop {
        let next = tokio::time::timeout(Duration::from_millis(100), messages.next()).await;
        if let Ok(None) = next {
            // The subscription closed (Redis restarted, failover): a secret published from now
            // on reaches nobody. Stop waiting rather than spin; the apply's steps say which
            // secrets were not delivered.
            tracing::warn!(
                tenant,
                apply = apply_id,
                "secret subscription closed while waiting for an apply; new client secrets from now on are not delivered"
            );
            break;
        }
        if let Ok(Some(msg)) = next {
            if let Ok(v) =
                serde_json::from_str::<Value>(&msg.get_payload::<String>().unwrap_or_default())
            {
                if let (Some(i), Some(s)) =
                    (v["installation"].as_str(), v["client_secret"].as_str())
                {
                    secrets.insert(i.to_owned(), s.to_owned());
                }
            }
            continue;
        }
        let done = store(state)
            .apply(&mut conn, tenant, apply_id)
            .await
            .map_err(|e| HttpError::redis("tenant-apply", e))?
            .is_some_and(|a| a.finished());
        if done || tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    let apply = store(state)
        .apply(&mut conn, tenant, apply_id)
        .await
        .map_err(|e| HttpError::redis("tenant-apply", e))?
        .ok_or_else(|| HttpError::unavailable("the apply vanished; retry"))?;
    Ok((apply, secrets))
}

/// Queues the teardown of a tenant's Okta resources (never users), only when `confirm` is
/// the tenant's name (400 otherwise, nothing happens). Audited as `tenant:delete`.
pub async fn delete_confirmed(
    state: &AppState,
    who: &Principal,
    tenant: &str,
    confirm: Option<&str>,
) -> Result<ApplyRecord, HttpError> {
    crate::access::check_role(who, WRITERS).map_err(|e| HttpError::forbidden(e.to_string()))?;
    if confirm != Some(tenant) {
        return Err(HttpError::bad_request(format!(
            "deleting tenant `{tenant}` removes its Okta groups, group rule and apps (not its users); repeat with confirm={tenant}"
        )));
    }
    okta(state)?;
    let doc = stored_doc(state, tenant).await?;
    let mut conn = state.redis.clone();
    let id = crate::tenants::store::new_apply_id();
    let queued = store(state)
        .queue(&mut conn, tenant, &id, MODE_DELETE, &doc, &who.key_id)
        .await
        .map_err(|e| HttpError::redis("tenant-queue", e))?;
    if !queued {
        return Err(HttpError::conflict(format!(
            "an apply of tenant `{tenant}` is in progress; retry when it has finished"
        )));
    }
    audit(state, who, "tenant:delete", tenant, &id).await;
    store(state)
        .apply(&mut conn, tenant, &id)
        .await
        .map_err(|e| HttpError::redis("tenant-apply", e))?
        .ok_or_else(|| HttpError::unavailable("the apply vanished; retry"))
}

/// A declared tenant as stored (no Okta read): what `GET /api/v1/tenants/{tenant}` shows
/// besides drift.
#[derive(Debug, Clone)]
pub struct TenantRecord {
    pub tenant: String,
    pub state: Option<String>,
    pub updated: Option<String>,
    pub doc: TenantDoc,
    /// Okta ids by step key (`group:users`, `rule`, `app:<installation>`).
    pub ids: crate::tenants::engine::Ids,
    pub last_apply: Option<ApplyRecord>,
    /// Installation configs (as the config endpoint answers them) by installation.
    pub configs: BTreeMap<String, Value>,
}

/// The tenant `who` asks for, scoped like every tenant read (another tenant reads as missing).
pub async fn tenant_record(
    state: &AppState,
    who: &Principal,
    tenant: &str,
) -> Result<TenantRecord, HttpError> {
    check_scope(who, tenant)?;
    let mut conn = state.redis.clone();
    let store = store(state);
    let h = store
        .tenant(&mut conn, tenant)
        .await
        .map_err(|e| HttpError::redis("tenant-read", e))?;
    let Some(doc) = h
        .get("doc")
        .and_then(|d| serde_json::from_str::<TenantDoc>(d).ok())
    else {
        return Err(no_tenant(tenant));
    };
    let last_apply = match h.get("apply") {
        Some(id) => store
            .apply(&mut conn, tenant, id)
            .await
            .map_err(|e| HttpError::redis("tenant-apply", e))?,
        None => None,
    };
    let configs = h
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix("config:")?.to_owned(),
                serde_json::from_str(v).ok()?,
            ))
        })
        .collect();
    let ids = store
        .ids(&mut conn, tenant)
        .await
        .map_err(|e| HttpError::redis("tenant-ids", e))?;
    Ok(TenantRecord {
        tenant: tenant.to_owned(),
        state: h.get("state").cloned(),
        updated: h.get("updated").cloned(),
        doc,
        ids,
        last_apply,
        configs,
    })
}

/// One apply of a tenant `who` may read.
pub async fn apply_record(
    state: &AppState,
    who: &Principal,
    tenant: &str,
    apply: &str,
) -> Result<ApplyRecord, HttpError> {
    check_scope(who, tenant)?;
    let mut conn = state.redis.clone();
    store(state)
        .apply(&mut conn, tenant, apply)
        .await
        .map_err(|e| HttpError::redis("tenant-apply", e))?
        .ok_or_else(|| HttpError::not_found(format!("no apply `{apply}`")))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Tenants")]
impl TenantsApi {
    /// Declare a tenant: its groups, group rule and one OIDC app per installation.
    ///
    /// The body is the tenant document (see docs/tenants.md). It is checked at once (400 with
    /// every problem, nothing queued), then applied as a job: 202 with the apply (poll
    /// `GET /api/v1/tenants/{tenant}/applies/{apply}`). `dry_run=true` answers the plan instead
    /// and changes nothing. `wait=N` (seconds, at most 60) waits for the apply to end and
    /// returns the client secrets of apps it created (`secrets`): they are shown this once and
    /// stored nowhere. 409 while another apply of the tenant runs.
    #[oai(path = "/tenants/:tenant", method = "put", operation_id = "put_tenant")]
    async fn put_tenant(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        body: Json<Value>,
        dry_run: Query<Option<bool>>,
        wait: Query<Option<u64>>,
    ) -> Result<TenantAnswer, HttpError> {
        let who = self.state.require(&auth, WRITERS).await?;
        let tenant = parse_tenant(&tenant)?;
        let doc = parse_doc(&self.state, &tenant, body.0)?;
        let t = tenant.as_str();
        if dry_run.0 == Some(true) {
            return Ok(TenantAnswer::Ok(Json(plan(&self.state, t, &doc).await?)));
        }
        okta(&self.state)?;
        let wait = wait.0.unwrap_or(0).min(MAX_WAIT_SECS);
        let apply_id = crate::tenants::store::new_apply_id();
        let (apply, secrets) = if wait > 0 {
            queue_apply_and_wait(
                &self.state,
                &who,
                t,
                &apply_id,
                &doc,
                Duration::from_secs(wait),
            )
            .await?
        } else {
            queue_apply(&self.state, &who, t, &apply_id, &doc).await?;
            let mut conn = self.state.redis.clone();
            let apply = store(&self.state)
                .apply(&mut conn, t, &apply_id)
                .await
                .map_err(|e| HttpError::redis("tenant-apply", e))?
                .ok_or_else(|| HttpError::unavailable("the apply vanished; retry"))?;
            (apply, BTreeMap::new())
        };
        let mut answer = apply.to_json();
        if !secrets.is_empty() {
            answer["secrets"] = json!(secrets);
        }
        Ok(if apply.finished() {
            TenantAnswer::Ok(Json(answer))
        } else {
            TenantAnswer::Accepted(Json(answer))
        })
    }

    /// The plan of the stored document against what Okta has now: what an apply would create,
    /// change or delete, step by step. Reads Okta only (no write call).
    #[oai(
        path = "/tenants/:tenant/plan",
        method = "get",
        operation_id = "plan_tenant"
    )]
    async fn plan_tenant(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
    ) -> Result<Json<Value>, HttpError> {
        let who = self.state.require(&auth, READERS).await?;
        let tenant = parse_tenant(&tenant)?;
        check_scope(&who, tenant.as_str())?;
        let doc = stored_doc(&self.state, tenant.as_str()).await?;
        Ok(Json(plan(&self.state, tenant.as_str(), &doc).await?))
    }

    /// A tenant: desired document, what Okta actually has (`drift`: the steps an apply would
    /// take now; empty when in sync), the last apply with its steps, installation configs.
    #[oai(path = "/tenants/:tenant", method = "get", operation_id = "get_tenant")]
    async fn get_tenant(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        drift: Query<Option<bool>>,
    ) -> Result<Json<Value>, HttpError> {
        let who = self.state.require(&auth, READERS).await?;
        let tenant = parse_tenant(&tenant)?;
        let t = tenant.as_str();
        let record = tenant_record(&self.state, &who, t).await?;
        let drift = if drift.0.unwrap_or(true) && self.state.okta.is_some() {
            let steps: Vec<Step> = plan_steps(&self.state, t, &record.doc)
                .await?
                .into_iter()
                .filter(|s| s.action != Action::Unchanged)
                .collect();
            json!(steps)
        } else {
            Value::Null
        };
        let in_sync = drift.as_array().map(Vec::is_empty);
        Ok(Json(json!({
            "tenant": t,
            "state": record.state,
            "updated": record.updated,
            "desired": record.doc,
            "okta_ids": record.ids,
            "drift": drift,
            "in_sync": in_sync,
            "last_apply": record.last_apply.map(|a| a.to_json()),
            "installations": record.configs,
        })))
    }

    /// One apply with its per-step results.
    #[oai(
        path = "/tenants/:tenant/applies/:apply",
        method = "get",
        operation_id = "get_tenant_apply"
    )]
    async fn get_apply(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        apply: Path<String>,
    ) -> Result<Json<Value>, HttpError> {
        let who = self.state.require(&auth, READERS).await?;
        let tenant = parse_tenant(&tenant)?;
        let a = apply_record(&self.state, &who, tenant.as_str(), &apply).await?;
        Ok(Json(a.to_json()))
    }

    /// Tear a tenant's Okta resources down (apps, group rule, groups — never users), as a
    /// queued job. Needs `confirm=<tenant>`; without it nothing happens (400).
    #[oai(
        path = "/tenants/:tenant",
        method = "delete",
        operation_id = "delete_tenant"
    )]
    async fn delete_tenant(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        confirm: Query<Option<String>>,
    ) -> Result<TenantAnswer, HttpError> {
        let who = self.state.require(&auth, WRITERS).await?;
        let tenant = parse_tenant(&tenant)?;
        let apply =
            delete_confirmed(&self.state, &who, tenant.as_str(), confirm.0.as_deref()).await?;
        Ok(TenantAnswer::Accepted(Json(apply.to_json())))
    }

    /// Every tenant with its installations and user counts by status (from projections).
    #[oai(path = "/tenants", method = "get", operation_id = "list_tenants")]
    async fn list_tenants(&self, auth: ApiKey) -> Result<Json<Value>, HttpError> {
        self.state.require(&auth, WRITERS).await?;
        let mut conn = self.state.redis.clone();
        let store = store(&self.state);
        let names = store
            .list(&mut conn)
            .await
            .map_err(|e| HttpError::redis("tenant-list", e))?;
        let mut out = vec![];
        for t in names {
            let h = store
                .tenant(&mut conn, &t)
                .await
                .map_err(|e| HttpError::redis("tenant-read", e))?;
            let doc: Option<TenantDoc> = h.get("doc").and_then(|d| serde_json::from_str(d).ok());
            let installations: BTreeMap<String, Value> = doc
                .iter()
                .flat_map(|d| &d.installations)
                .map(|(name, inst)| {
                    let client_id = h
                        .get(&format!("config:{name}"))
                        .and_then(|c| serde_json::from_str::<Value>(c).ok())
                        .map(|c| c["client_id"].clone())
                        .unwrap_or(Value::Null);
                    (
                        name.clone(),
                        json!({"kind": inst.kind, "client_id": client_id}),
                    )
                })
                .collect();
            // The same count as the console's Tenants page (`projection::census`), with a
            // larger budget: exact total, split by status over at most MAX_COUNTED_USERS.
            let counts = tenant_counts(&mut conn, &self.state.keys, &t, MAX_COUNTED_USERS)
                .await
                .map_err(|e| HttpError::redis("tenant-users", e))?;
            out.push(json!({
                "tenant": t,
                "state": h.get("state"),
                "display_name": doc.as_ref().map(|d| d.display_name.clone()),
                "installations": installations,
                "users_by_status": counts.by_status,
                "users_total": counts.total,
                "users_counted": counts.counted,
            }));
        }
        Ok(Json(json!({ "tenants": out })))
    }

    /// What a product installation needs to sign users in (issuer, authorization server,
    /// `client_id`, redirect URIs, the tenant's group ids, scopes, settings). Never the secret.
    /// Readable by the installation's own key, client admins of the tenant, support, operator.
    #[oai(
        path = "/tenants/:tenant/installations/:installation/config",
        method = "get",
        operation_id = "get_installation_config"
    )]
    async fn get_config(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        installation: Path<String>,
    ) -> Result<Json<Value>, HttpError> {
        let who = self.state.require(&auth, CONFIG_READERS).await?;
        let tenant = parse_tenant(&tenant)?;
        let t = tenant.as_str();
        self.check_installation_scope(&who, t, &installation)
            .await?;
        let mut conn = self.state.redis.clone();
        let config: Option<String> = conn
            .hget(
                self.state.keys.tenant(t),
                format!("config:{}", installation.0),
            )
            .await
            .map_err(|e| HttpError::redis("tenant-config", e))?;
        config
            .and_then(|c| serde_json::from_str(&c).ok())
            .map(Json)
            .ok_or_else(|| {
                HttpError::not_found(format!(
                    "no installation `{}` of tenant `{t}` (or it is not applied yet)",
                    installation.0
                ))
            })
    }

    /// Rotate an installation's client secret: a new secret is made in Okta, the old ones are
    /// deactivated and deleted, and the new one is answered — this once; it is stored nowhere.
    /// A `config` stream entry (`change = secret-rotated`) tells the product.
    #[oai(
        path = "/tenants/:tenant/installations/:installation/rotate-secret",
        method = "post",
        operation_id = "rotate_installation_secret"
    )]
    async fn rotate_secret(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        installation: Path<String>,
    ) -> Result<Json<Value>, HttpError> {
        let who = self.state.require(&auth, READERS).await?;
        let tenant = parse_tenant(&tenant)?;
        rotate_installation_secret(&self.state, &who, tenant.as_str(), &installation)
            .await
            .map(Json)
    }
}

/// Rotates an installation's client secret (see `POST …/rotate-secret`): answers the new
/// secret this once; it is stored nowhere. Scoped like every tenant read; audited.
pub async fn rotate_installation_secret(
    state: &AppState,
    who: &Principal,
    t: &str,
    installation: &str,
) -> Result<Value, HttpError> {
    crate::access::check_role(who, READERS).map_err(|e| HttpError::forbidden(e.to_string()))?;
    check_scope(who, t)?;
    let okta = okta(state)?;
    let mut conn = state.redis.clone();
    let ids = store(state)
        .ids(&mut conn, t)
        .await
        .map_err(|e| HttpError::redis("tenant-ids", e))?;
    let Some(app) = ids.get(&format!("app:{}", installation)) else {
        return Err(HttpError::not_found(format!(
            "no installation `{}` of tenant `{t}`",
            installation
        )));
    };
    let base = format!("/api/v1/apps/{app}/credentials/secrets");
    let call = |method: Method, path: String| async move {
        okta.call(Lane::Interactive, method, &path, None).await
    };
    let existing = call(Method::GET, base.clone())
        .await
        .map_err(|e| okta_failed(&e))?
        .unwrap_or(Value::Null);
    let mut old: Vec<Value> = existing.as_array().cloned().unwrap_or_default();
    old.sort_by(|a, b| a["created"].as_str().cmp(&b["created"].as_str()));
    // Okta keeps at most two secrets: make room first by retiring the oldest.
    if old.len() >= 2 {
        let oldest = old.remove(0);
        retire_secret(okta, &base, &oldest).await?;
    }
    let created = call(Method::POST, base.clone())
        .await
        .map_err(|e| match &e {
            OktaError::Api { status: 400, .. } => HttpError::conflict(format!(
                "Okta refused a new secret: {e} (a public client has none)"
            )),
            other => okta_failed(other),
        })?
        .unwrap_or(Value::Null);
    for s in &old {
        retire_secret(okta, &base, s).await?;
    }
    let Some(secret) = created["client_secret"].as_str() else {
        return Err(HttpError::bad_gateway("Okta answered no client secret"));
    };
    let config: Option<String> = conn
        .hget(state.keys.tenant(t), format!("config:{}", installation))
        .await
        .map_err(|e| HttpError::redis("tenant-config", e))?;
    let config: Option<Value> = config.and_then(|c| serde_json::from_str(&c).ok());
    store(state)
        .publish(
            &mut conn,
            t,
            installation,
            "secret-rotated",
            config.as_ref(),
            state.settings.signing_key(),
            state.settings.provisioning.config_stream_maxlen,
        )
        .await
        .map_err(|e| HttpError::redis("tenant-config", e))?;
    audit(
        state,
        who,
        "tenant:rotate-secret",
        &format!("{t}/{}", installation),
        "rotated",
    )
    .await;
    Ok(json!({
        "tenant": t,
        "installation": installation,
        "client_id": app,
        "client_secret": secret,
        "secret_id": created["id"],
        "note": "shown once: the adapter does not keep it",
    }))
}

/// Deactivates (when active) and deletes one client secret.
async fn retire_secret(okta: &OktaClient, base: &str, secret: &Value) -> Result<(), HttpError> {
    let Some(id) = secret["id"].as_str() else {
        return Ok(());
    };
    if secret["status"] == "ACTIVE" {
        okta.call(
            Lane::Interactive,
            Method::POST,
            &format!("{base}/{id}/lifecycle/deactivate"),
            None,
        )
        .await
        .map_err(|e| okta_failed(&e))?;
    }
    okta.call(
        Lane::Interactive,
        Method::DELETE,
        &format!("{base}/{id}"),
        None,
    )
    .await
    .map_err(|e| okta_failed(&e))?;
    Ok(())
}

impl TenantsApi {
    /// Installation keys read only their own installation; others as [`check_scope`].
    async fn check_installation_scope(
        &self,
        who: &Principal,
        tenant: &str,
        installation: &str,
    ) -> Result<(), HttpError> {
        check_scope(who, tenant)?;
        if who.role == Role::Installation {
            let mut conn = self.state.redis.clone();
            let bound = self
                .state
                .key_store
                .installation_of(&mut conn, &who.key_id)
                .await
                .map_err(|e| HttpError::redis("auth", e))?;
            if bound.as_deref() != Some(installation) {
                return Err(HttpError::not_found(format!(
                    "no installation `{installation}` of tenant `{tenant}`"
                )));
            }
        }
        Ok(())
    }
}
