//! The rules of bulk jobs for a caller, once, for every way in: the JSON API
//! (`http::jobs`) and the console's Jobs page both call these functions with the caller's
//! [`Principal`] and map [`JobError`] to their own answer (JSON error or error page).
//!
//! - who may run jobs ([`JOB_RUNNERS`]) and see a job ([`may_see_job`]: an operator every job,
//!   a client admin only its tenant's; any other job reads exactly like a missing one);
//! - [`JobService::submit`]: parse the request, scope a client admin's upload (tenant fields,
//!   groups), create the job and stream the file into the queue; an upload that does not
//!   complete cancels its job with the reason (also when the request future is dropped);
//! - listing, progress, cancel (only while the job is open) and per-row results (failed rows
//!   first, for a person looking for what went wrong).

use crate::store::RedisConn;
use tokio::io::AsyncRead;

use super::groups::{GroupGuard, GroupRefusal, GroupScope};
use super::request::{parse_job_request, JobParams, JobRequest};
use super::rows::{ClientScope, JobKind, RowOutcome};
use super::store::{JobInfo, JobStore, RowResult, UploadError, UploadSpec};
use super::tenant_fields::TenantFields;
use crate::access::{check_role, Principal, Role};
use crate::config::Settings;
use crate::okta::client::OktaClient;

/// Roles that run bulk jobs.
pub const JOB_RUNNERS: &[Role] = &[Role::Operator, Role::ClientAdmin];

/// Jobs the list reads at most (newest first).
pub const LIST_LIMIT: isize = 200;

/// Why a job request was refused; each variant says which answer it is (400, 403, …) and
/// carries a message safe to show the caller. Redis errors keep their cause for the log.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// 400: the request or the file is not what a job takes; nothing was queued.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the caller's role (or key) may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such job or group — or none this caller may see.
    #[error("{0}")]
    NotFound(String),
    /// 409: the job already ended.
    #[error("{0}")]
    Conflict(String),
    /// 503: Okta is not configured or could not be asked.
    #[error("{0}")]
    Unavailable(String),
    /// 503: Redis failed during `op`.
    #[error("storage failed during {0}")]
    Redis(&'static str, #[source] redis::RedisError),
}

/// Whether `who` may see `job`: an operator every job, a client admin only its tenant's.
pub fn may_see_job(who: &Principal, job: &JobInfo) -> bool {
    who.role == Role::Operator || (job.tenant.is_some() && job.tenant == who.tenant)
}

/// The one wording of "no such job (for you)".
pub fn job_not_found(id: &str) -> JobError {
    JobError::NotFound(format!("no job `{id}`"))
}

/// What one caller can do with jobs: built per request from the shared state.
pub struct JobService<'a> {
    pub settings: &'a Settings,
    pub okta: Option<&'a OktaClient>,
    pub redis: &'a RedisConn,
    pub store: JobStore,
}

/// Cancels the job if the upload ends any way but through `disarm` — including the request
/// future being dropped (client gone, server stopping), when no code after the `await` runs.
struct UploadGuard {
    job: Option<(JobStore, RedisConn, String)>,
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

impl JobService<'_> {
    fn require_runner(who: &Principal) -> Result<(), JobError> {
        check_role(who, JOB_RUNNERS).map_err(|r| JobError::Forbidden(r.to_string()))
    }

    /// The job, if this caller may see it; otherwise answered exactly like a missing job.
    pub async fn visible(&self, who: &Principal, id: &str) -> Result<JobInfo, JobError> {
        Self::require_runner(who)?;
        let mut conn = self.redis.clone();
        match self.store.info(&mut conn, id).await {
            Ok(Some(job)) if may_see_job(who, &job) => Ok(job),
            Ok(_) => Err(job_not_found(id)),
            Err(e) => Err(JobError::Redis("job", e)),
        }
    }

    /// Recent jobs this caller may see, newest first.
    pub async fn list_visible(&self, who: &Principal) -> Result<Vec<JobInfo>, JobError> {
        Self::require_runner(who)?;
        let mut conn = self.redis.clone();
        let jobs = self
            .store
            .list(&mut conn, LIST_LIMIT)
            .await
            .map_err(|e| JobError::Redis("jobs", e))?;
        Ok(jobs.into_iter().filter(|j| may_see_job(who, j)).collect())
    }

    /// Cancels a visible job: rows not yet run fail with `cancelled`. 409 when it ended.
    pub async fn cancel(&self, who: &Principal, id: &str) -> Result<JobInfo, JobError> {
        let job = self.visible(who, id).await?;
        let mut conn = self.redis.clone();
        let cancelled = self
            .store
            .cancel(&mut conn, id)
            .await
            .map_err(|e| JobError::Redis("job-cancel", e))?;
        if !cancelled {
            return Err(JobError::Conflict(format!(
                "job {id} is already {}",
                job.state
            )));
        }
        self.visible(who, id).await
    }

    /// Per-row results of a visible job, failed rows first (each group in line order), at
    /// most `limit`; reads at most `scan` results to find them. The bool says whether rows
    /// were left out.
    pub async fn results_errors_first(
        &self,
        who: &Principal,
        id: &str,
        limit: usize,
        scan: usize,
    ) -> Result<(Vec<RowResult>, bool), JobError> {
        self.visible(who, id).await?;
        let mut conn = self.redis.clone();
        let page = self.settings.jobs.export_page.max(1);
        let (mut failed, mut rest) = (Vec::new(), Vec::new());
        let mut after = 0u64;
        let mut read = 0usize;
        let mut more = false;
        loop {
            let rows = self
                .store
                .results_page(&mut conn, id, after, page)
                .await
                .map_err(|e| JobError::Redis("job-results", e))?;
            let Some(last) = rows.last().map(|r| r.line) else {
                break;
            };
            read += rows.len();
            for r in rows {
                match r.outcome {
                    RowOutcome::Failed if failed.len() < limit => failed.push(r),
                    RowOutcome::Failed => more = true,
                    _ if rest.len() < limit => rest.push(r),
                    _ => more = true,
                }
            }
            after = last;
            if read >= scan {
                more = true;
                break;
            }
        }
        let room = limit.saturating_sub(failed.len());
        more |= rest.len() > room;
        rest.truncate(room);
        failed.extend(rest);
        Ok((failed, more))
    }

    /// Submits a job: the request is parsed and scoped to the caller, the job created and
    /// `file` read into the queue row by row. Returns the job as it stands after the upload.
    pub async fn submit<R: AsyncRead + Unpin + Send>(
        &self,
        who: &Principal,
        params: JobParams<'_>,
        file: R,
    ) -> Result<JobInfo, JobError> {
        Self::require_runner(who)?;
        let settings = self.settings;
        let JobRequest {
            kind,
            options,
            format,
        } = parse_job_request(params).map_err(|e| JobError::BadRequest(e.to_string()))?;
        let tenant_attr = &settings.jobs.tenant_profile_attribute;
        let tenant_fields = TenantFields::from_settings(settings);
        let tenant = match (&who.tenant, kind) {
            (Some(_), JobKind::Create) if tenant_attr.is_empty() => {
                return Err(JobError::Forbidden(
                    "client-admin keys can create users only when jobs.tenant_profile_attribute is configured".into(),
                ))
            }
            (Some(t), _) => Some(ClientScope {
                tenant: t.as_str(),
                create_attribute: tenant_attr.as_str(),
                fields: &tenant_fields,
            }),
            (None, _) => None,
        };
        let Some(okta) = self.okta else {
            return Err(JobError::Unavailable(
                "Okta is not configured (okta.org_url, okta.api_token)".into(),
            ));
        };
        // A client admin's group job: the job's group now, each row's group while reading.
        let guard = GroupGuard::from_settings(settings);
        // A client admin without a tenant must not fall through to "no restriction".
        let client_tenant = match (who.role, who.tenant.as_deref()) {
            (Role::ClientAdmin, Some(t)) if !t.trim().is_empty() => Some(t),
            (Role::ClientAdmin, _) => {
                return Err(JobError::Forbidden(
                    "this client-admin key has no tenant".into(),
                ))
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
                    return Err(JobError::NotFound(GroupRefusal::NotYours.message(group)))
                }
                Err(refusal) => return Err(JobError::Unavailable(refusal.message(group))),
            }
        }
        let store = &self.store;
        let mut conn = self.redis.clone();
        let id = store
            .create(
                &mut conn,
                kind,
                &options,
                who.tenant.as_deref(),
                &format!("key:{}", who.key_id),
            )
            .await
            .map_err(|e| JobError::Redis("job-create", e))?;
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
                    max_record_bytes: settings.jobs.max_record_bytes,
                    groups: groups.as_ref(),
                },
                file,
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
                        JobError::BadRequest(format!("job {id} cancelled: {msg}"))
                    }
                    UploadError::Redis(e) => JobError::Redis("job-upload", e),
                });
            }
        };
        store
            .finish_upload(&mut conn, &id, counts)
            .await
            .map_err(|e| JobError::Redis("job-upload", e))?;
        guard.disarm();
        let info = self.visible(who, &id).await?;
        tracing::info!(job = %id, kind = kind.as_str(), rows = counts.total, invalid = counts.invalid, "job queued");
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::rows::JobOptions;
    use crate::jobs::rows::JobState;

    fn job(tenant: Option<&str>) -> JobInfo {
        JobInfo {
            id: "j".into(),
            kind: "create".into(),
            state: JobState::Queued,
            tenant: tenant.map(Into::into),
            created_by: "key:k".into(),
            created: String::new(),
            started: None,
            finished: None,
            total: 0,
            invalid: 0,
            valid: 0,
            done: 0,
            failed: 0,
            pending: 0,
            rows_per_second: None,
            eta_seconds: None,
            options: JobOptions::default(),
            reason: None,
        }
    }

    fn who(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            key_id: "k".into(),
            role,
            tenant: tenant.map(Into::into),
        }
    }

    #[test]
    fn an_operator_sees_every_job_and_a_client_admin_only_its_tenants() {
        let op = who(Role::Operator, None);
        let acme = who(Role::ClientAdmin, Some("acme"));
        assert!(may_see_job(&op, &job(None)));
        assert!(may_see_job(&op, &job(Some("globex"))));
        assert!(may_see_job(&acme, &job(Some("acme"))));
        assert!(!may_see_job(&acme, &job(Some("globex"))));
        assert!(!may_see_job(&acme, &job(None)));
        // Support runs no jobs; if it ever could, it would not see them through this rule.
        assert!(!may_see_job(&who(Role::Support, None), &job(None)));
    }
}
