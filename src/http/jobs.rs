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
use crate::access::Principal;
use crate::jobs::request::{FormatHint, JobParams};
use crate::jobs::service::{JobError, JobService, JOB_RUNNERS};
use crate::jobs::store::{JobInfo, JobStore, RowResult};

pub struct JobsApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, ApiResponse)]
pub enum Accepted {
    /// The file was read and queued; poll the job for progress.
    #[oai(status = 202)]
    Accepted(Json<JobInfo>),
}

impl From<JobError> for HttpError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::BadRequest(m) => HttpError::bad_request(m),
            JobError::Forbidden(m) => HttpError::forbidden(m),
            JobError::NotFound(m) => HttpError::not_found(m),
            JobError::Conflict(m) => HttpError::conflict(m),
            JobError::Unavailable(m) => HttpError::unavailable(m),
            JobError::Redis(op, e) => HttpError::redis(op, e),
        }
    }
}

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

impl JobsApi {
    fn store(&self) -> JobStore {
        JobStore::new(self.state.keys.clone())
    }

    /// The shared job rules (`jobs::service`), for this request.
    fn jobs(&self) -> JobService<'_> {
        JobService {
            settings: &self.state.settings,
            okta: self.state.okta.as_ref(),
            redis: &self.state.redis,
            store: self.store(),
        }
    }

    /// The job, if this caller may see it (a client admin sees only its tenant's jobs).
    async fn visible_job(&self, who: &Principal, id: &str) -> Result<JobInfo, HttpError> {
        Ok(self.jobs().visible(who, id).await?)
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
        let who = self.state.require(&auth, JOB_RUNNERS).await?;
        let params = JobParams {
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
        };
        let stream = file
            .body
            .into_bytes_stream()
            .map(|r| r.map_err(std::io::Error::other));
        let info = self
            .jobs()
            .submit(&who, params, StreamReader::new(stream))
            .await?;
        Ok(Accepted::Accepted(Json(info)))
    }

    /// Recent jobs (a client admin sees its tenant's).
    #[oai(path = "/jobs", method = "get", operation_id = "list_jobs")]
    async fn list_jobs(&self, auth: ApiKey) -> Result<Json<Vec<JobInfo>>, HttpError> {
        let who = self.state.require(&auth, JOB_RUNNERS).await?;
        Ok(Json(self.jobs().list_visible(&who).await?))
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
        Ok(Json(self.jobs().cancel(&who, &id).await?))
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
        let body = results_body(
            self.store(),
            self.state.redis.clone(),
            id.0.clone(),
            self.state.settings.jobs.export_page,
            csv,
        );
        let content_type = if csv {
            "text/csv"
        } else {
            "application/x-ndjson"
        };
        Ok(payload::Response::new(Binary(body)).header("content-type", content_type))
    }
}

/// A job's results as a streamed body, CSV (with header) or JSON lines: pages of
/// `jobs.export_page` results become chunks, so memory stays one page whatever the size.
/// The caller has checked that the job is visible.
pub fn results_body(
    store: JobStore,
    conn: crate::store::RedisConn,
    job: String,
    page: usize,
    csv: bool,
) -> Body {
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
    Body::from_bytes_stream(futures::stream::iter(header).chain(pages))
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
