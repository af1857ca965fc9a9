//! `/api/v1/jobs`: queued bulk imports, updates and deletions.
//!
//! Upload a CSV or JSON-lines file of any size: it is read as a stream, validated row by row
//! (bad rows fail at once with their line number; a record longer than `jobs.max_record_bytes`
//! fails without being held) and queued; the answer is 202 with the job id as soon as the file
//! is read. `operator` keys run jobs for any tenant; `client-admin` keys only for their own (a
//! job of another tenant is a 404), a client admin's `create` sets
//! `jobs.tenant_profile_attribute`, and a client admin's group jobs may use only its tenant's
//! groups (`jobs::groups`: looked up in Okta during the request, once per distinct group, and
//! again when each row runs). An upload that does not complete — a body error, the client
//! leaving, the server stopping — cancels its job with the reason.
//!
//! Results export as JSON lines or CSV; CSV cells that a spreadsheet would read as a formula
//! (`=`, `+`, `-`, `@`, tab, CR first) are prefixed with `'` (OWASP's advice).

use std::sync::Arc;

use futures::StreamExt;
use poem::Body;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{self, Binary, Json};
use poem_openapi::{ApiResponse, OpenApi};
use tokio_util::io::StreamReader;

use super::auth::ApiKey;
use super::error::HttpError;
use super::raw_json::RawUpload;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::{Principal, Role};
use crate::jobs::groups::{GroupGuard, GroupRefusal, GroupScope};
use crate::jobs::request::{parse_job_request, FormatHint, JobParams, JobRequest};
use crate::jobs::rows::{ClientScope, JobKind};
use crate::jobs::store::{JobInfo, JobStore, RowResult, UploadError, UploadSpec};
use crate::jobs::tenant_fields::TenantFields;

pub struct JobsApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, ApiResponse)]
pub enum Accepted {
    /// The file was read and queued; poll the job for progress.
    #[oai(status = 202)]
    Accepted(Json<JobInfo>),
}

const JOB_RUNNERS: &[Role] = &[Role::Operator, Role::ClientAdmin];

/// A cell a spreadsheet would evaluate as a formula gets a leading `'` (OWASP, "CSV
/// Injection"); anything else is unchanged. Quoting is the CSV writer's job.
fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Result rows as CSV (with the header when `header`).
fn results_csv(rows: &[RowResult], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    if header {
        out.write_record(["line", "login", "okta_id", "outcome", "error"])?;
    }
    for r in rows {
        let text = |v: &Option<String>| neutralise(v.as_deref().unwrap_or("")).into_owned();
        out.write_record([
            r.line.to_string(),
            text(&r.login),
            text(&r.okta_id),
            r.outcome.as_str().to_owned(),
            text(&r.error),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

/// Cancels the job if the upload ends any way but through `disarm` — including the request
/// future being dropped (client gone, server stopping), when no code after the `await` runs.
struct UploadGuard {
    job: Option<(JobStore, crate::store::RedisConn, String)>,
}

impl UploadGuard {
    fn disarm(&mut self) {
        self.job = None;
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        let Some((store, mut conn, id)) = self.job.take() else {
            return;
        };
        // Drop cannot wait; a runtime that is itself shutting down may not run this, and then
        // the maintenance sweep settles the job after `jobs.stale_upload_secs`.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let reason = "the upload was cut off before the whole file was read \
                              (the client went away or the server stopped)";
                match store.abandon_upload(&mut conn, &id, reason).await {
                    Ok(true) => tracing::warn!(job = %id, "upload cut off; job cancelled"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(job = %id, error = %e, "could not cancel a cut-off upload; the sweep will"),
                }
            });
        }
    }
}

impl JobsApi {
    fn store(&self) -> JobStore {
        JobStore::new(self.state.keys.clone())
    }

    /// The job, if this caller may see it (a client admin sees only its tenant's jobs).
    async fn visible_job(&self, who: &Principal, id: &str) -> Result<JobInfo, HttpError> {
        let mut conn = self.state.redis.clone();
        let info = self
            .store()
            .info(&mut conn, id)
            .await
            .map_err(|e| HttpError::redis("job", e))?;
        match info {
            Some(job)
                if who.role == Role::Operator
                    || (job.tenant.is_some() && job.tenant == who.tenant) =>
            {
                Ok(job)
            }
            _ => Err(HttpError::not_found(format!("no job `{id}`"))),
        }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Upload a bulk job.
    ///
    /// `kind`: create, update, activate, deactivate, suspend, unsuspend, delete, add-to-group,
    /// remove-from-group — or `phase=create|activate` for the migration phases (create STAGED
    /// with the password import hook; activate without emails). Columns: `login`, `email`,
    /// `firstName`, `lastName` and any profile attribute for create; `id` or `login` for the
    /// others; `group_id` for group kinds (or the `group_id` option). A client admin's group
    /// jobs may use only its tenant's groups (`[tenants] groups`, or a group whose Okta name the
    /// `group` tenant rule maps to its tenant and that `[inline] roles` does not map to roles);
    /// another group is answered exactly like an unknown one: 404 for the job's `group_id`,
    /// a failed row for a row's `group_id`. Records longer than `jobs.max_record_bytes` fail
    /// with their line number; the upload goes on.
    #[oai(path = "/jobs", method = "post", operation_id = "create_job")]
    #[allow(clippy::too_many_arguments)]
    async fn create_job(
        &self,
        auth: ApiKey,
        kind: Query<Option<String>>,
        /// `create` or `activate`: the migration phases.
        #[oai(name = "phase")]
        migration_phase: Query<Option<String>>,
        /// `csv` or `jsonl`; default from the Content-Type (JSON lines for application/x-ndjson).
        format: Query<Option<String>>,
        /// create: activate at once (default: STAGED).
        activate: Query<Option<bool>>,
        /// create: users sign in with their legacy password via the password import hook.
        password_hook: Query<Option<bool>>,
        /// activate: let Okta email an activation link (never for password-hook users).
        send_email: Query<Option<bool>>,
        /// group kinds: the Okta group id for every row.
        group_id: Query<Option<String>>,
        file: RawUpload,
    ) -> Result<Accepted, HttpError> {
        let state = &self.state;
        let who = state.require(&auth, JOB_RUNNERS).await?;
        let JobRequest {
            kind,
            options,
            format,
        } = parse_job_request(JobParams {
            kind: kind.0.as_deref(),
            phase: migration_phase.0.as_deref(),
            format: format.0.as_deref(),
            activate: activate.0,
            password_hook: password_hook.0,
            send_email: send_email.0,
            group_id: group_id.0,
            format_hint: file
                .content_type
                .as_deref()
                .map_or(FormatHint::None, FormatHint::ContentType),
        })
        .map_err(|e| HttpError::bad_request(e.to_string()))?;
        let tenant_attr = &state.settings.jobs.tenant_profile_attribute;
        let tenant_fields = TenantFields::from_settings(&state.settings);
        let tenant = match (&who.tenant, kind) {
            (Some(_), JobKind::Create) if tenant_attr.is_empty() => {
                return Err(HttpError::forbidden(
                    "client-admin keys can create users only when jobs.tenant_profile_attribute is configured",
                ))
            }
            (Some(t), _) => Some(ClientScope {
                tenant: t.as_str(),
                create_attribute: tenant_attr.as_str(),
                fields: &tenant_fields,
            }),
            (None, _) => None,
        };
        let Some(okta) = state.okta.as_ref() else {
            return Err(HttpError::unavailable(
                "Okta is not configured (okta.org_url, okta.api_token)",
            ));
        };
        // A client admin's group job: the job's group now, each row's group while reading.
        let guard = GroupGuard::from_settings(&state.settings);
        // A client admin without a tenant must not fall through to "no restriction".
        let client_tenant = match (who.role, who.tenant.as_deref()) {
            (Role::ClientAdmin, Some(t)) if !t.trim().is_empty() => Some(t),
            (Role::ClientAdmin, _) => {
                return Err(HttpError::forbidden("this client-admin key has no tenant"))
            }
            _ => None,
        };
        let groups = match (client_tenant, kind) {
            (Some(t), JobKind::AddToGroup | JobKind::RemoveFromGroup) => {
                Some(GroupScope::new(&guard, okta, t))
            }
            _ => None,
        };
        if let (Some(scope), Some(group)) = (&groups, options.group_id.as_deref()) {
            match scope.check(group).await {
                Ok(()) => {}
                Err(GroupRefusal::NotYours) => {
                    return Err(HttpError::not_found(GroupRefusal::NotYours.message(group)))
                }
                Err(refusal) => return Err(HttpError::unavailable(refusal.message(group))),
            }
        }
        let store = self.store();
        let mut conn = state.redis.clone();
        let id = store
            .create(
                &mut conn,
                kind,
                &options,
                who.tenant.as_deref(),
                &format!("key:{}", who.key_id),
            )
            .await
            .map_err(|e| HttpError::redis("job-create", e))?;
        let stream = file
            .body
            .into_bytes_stream()
            .map(|r| r.map_err(std::io::Error::other));
        let reader = StreamReader::new(stream);
        let mut guard = UploadGuard {
            job: Some((store.clone(), conn.clone(), id.clone())),
        };
        let counts = match store
            .upload(
                &mut conn,
                &id,
                UploadSpec {
                    kind,
                    options: &options,
                    tenant,
                    format,
                    max_record_bytes: state.settings.jobs.max_record_bytes,
                    groups: groups.as_ref(),
                },
                reader,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("the upload failed: {e}");
                if store.abandon_upload(&mut conn, &id, &reason).await.is_ok() {
                    guard.disarm();
                }
                return Err(match e {
                    UploadError::Read(msg) => {
                        HttpError::bad_request(format!("job {id} cancelled: {msg}"))
                    }
                    UploadError::Redis(e) => HttpError::redis("job-upload", e),
                });
            }
        };
        store
            .finish_upload(&mut conn, &id, counts)
            .await
            .map_err(|e| HttpError::redis("job-upload", e))?;
        guard.disarm();
        let info = self.visible_job(&who, &id).await?;
        tracing::info!(job = %id, kind = kind.as_str(), rows = counts.total, invalid = counts.invalid, "job queued");
        Ok(Accepted::Accepted(Json(info)))
    }

    /// Recent jobs (a client admin sees its tenant's).
    #[oai(path = "/jobs", method = "get", operation_id = "list_jobs")]
    async fn list_jobs(&self, auth: ApiKey) -> Result<Json<Vec<JobInfo>>, HttpError> {
        let who = self.state.require(&auth, JOB_RUNNERS).await?;
        let mut conn = self.state.redis.clone();
        let jobs = self
            .store()
            .list(&mut conn, 200)
            .await
            .map_err(|e| HttpError::redis("jobs", e))?;
        Ok(Json(
            jobs.into_iter()
                .filter(|j| {
                    who.role == Role::Operator || (j.tenant.is_some() && j.tenant == who.tenant)
                })
                .collect(),
        ))
    }

    /// A job's progress: counts, rate and ETA.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "get_job")]
    async fn get_job(&self, auth: ApiKey, id: Path<String>) -> Result<Json<JobInfo>, HttpError> {
        let who = self.state.require(&auth, JOB_RUNNERS).await?;
        Ok(Json(self.visible_job(&who, &id).await?))
    }

    /// Cancel a job: rows not yet run fail with `cancelled`.
    #[oai(
        path = "/jobs/:id/cancel",
        method = "post",
        operation_id = "cancel_job"
    )]
    async fn cancel_job(&self, auth: ApiKey, id: Path<String>) -> Result<Json<JobInfo>, HttpError> {
        let who = self.state.require(&auth, JOB_RUNNERS).await?;
        let job = self.visible_job(&who, &id).await?;
        let mut conn = self.state.redis.clone();
        let cancelled = self
            .store()
            .cancel(&mut conn, &id)
            .await
            .map_err(|e| HttpError::redis("job-cancel", e))?;
        if !cancelled {
            return Err(HttpError::conflict(format!(
                "job {} is already {}",
                id.0, job.state
            )));
        }
        Ok(Json(self.visible_job(&who, &id).await?))
    }

    /// Per-row results, streamed in line order (`format=csv` or `jsonl`).
    #[oai(
        path = "/jobs/:id/results",
        method = "get",
        operation_id = "get_job_results"
    )]
    async fn get_job_results(
        &self,
        auth: ApiKey,
        id: Path<String>,
        #[oai(default = "default_format")] format: Query<String>,
    ) -> Result<payload::Response<Binary<Body>>, HttpError> {
        let who = self.state.require(&auth, JOB_RUNNERS).await?;
        self.visible_job(&who, &id).await?;
        let csv = match format.0.as_str() {
            "csv" => true,
            "jsonl" => false,
            other => {
                return Err(HttpError::bad_request(format!(
                    "unknown format `{other}`; csv or jsonl"
                )))
            }
        };
        let store = self.store();
        let conn = self.state.redis.clone();
        let page = self.state.settings.jobs.export_page;
        let job = id.0.clone();
        // Pages of results become chunks of the body: memory stays one page, whatever the size.
        let header = csv.then(|| {
            results_csv(&[], true)
                .map(bytes::Bytes::from)
                .map_err(std::io::Error::other)
        });
        let pages = futures::stream::unfold(Some((0u64, conn)), move |cursor| {
            let store = store.clone();
            let job = job.clone();
            async move {
                let (after, mut conn) = cursor?;
                let rows = match store.results_page(&mut conn, &job, after, page).await {
                    Ok(rows) => rows,
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
                };
                let last = rows.last()?.line;
                let chunk = if csv {
                    results_csv(&rows, false).map_err(std::io::Error::other)
                } else {
                    let mut out = Vec::new();
                    for r in &rows {
                        serde_json::to_writer(&mut out, r).expect("results serialise");
                        out.push(b'\n');
                    }
                    Ok(out)
                };
                match chunk {
                    Ok(bytes) => Some((Ok(bytes::Bytes::from(bytes)), Some((last, conn)))),
                    Err(e) => Some((Err(e), None)),
                }
            }
        });
        let body = futures::stream::iter(header).chain(pages);
        let content_type = if csv {
            "text/csv"
        } else {
            "application/x-ndjson"
        };
        Ok(
            payload::Response::new(Binary(Body::from_bytes_stream(body)))
                .header("content-type", content_type),
        )
    }
}

fn default_format() -> String {
    "csv".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::rows::RowOutcome;

    #[test]
    fn formula_cells_are_neutralised_and_quoting_is_the_writers() {
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(formula), format!("'{formula}"));
        }
        assert_eq!(neutralise("a@b.co"), "a@b.co");
        assert_eq!(neutralise(""), "");
        let rows = [RowResult {
            line: 2,
            login: Some("=HYPERLINK(\"x\")".into()),
            okta_id: None,
            outcome: RowOutcome::Failed,
            error: Some("line 2 has 5 fields, \"the header\" has 4\nsecond line".into()),
        }];
        let out = String::from_utf8(results_csv(&rows, true).unwrap()).unwrap();
        assert_eq!(
            out,
            "line,login,okta_id,outcome,error\n\
             2,\"'=HYPERLINK(\"\"x\"\")\",,failed,\"line 2 has 5 fields, \"\"the header\"\" has 4\nsecond line\"\n"
        );
    }
}
