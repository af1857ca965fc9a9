//! The Jobs pages: upload a CSV or JSON-lines file (kind or migration phase, options), the
//! list of jobs with a live progress bar, rate and ETA (htmx polls a small fragment), one job's
//! per-row results with the failed rows first, the CSV download, and cancel.
//!
//! Every rule is `jobs::service`'s, the same functions `POST/GET /api/v1/jobs…` call: who may
//! run jobs (operators, client admins), which jobs a caller sees (a client admin only its
//! tenant's; another tenant's job is answered exactly like a missing one), how a client
//! admin's upload is scoped, and that only an open job can be cancelled.

use std::pin::Pin;
use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::{Data, Multipart, Path};
use poem::{handler, Body, Request, Response};
use serde::Serialize;
use tokio::io::AsyncRead;

use super::page;
use super::session::Session;
use super::ConsoleState;
use crate::http::jobs::results_body;
use crate::jobs::request::{FormatHint, JobParams};
use crate::jobs::service::{JobError, JobService, JOB_RUNNERS};
use crate::jobs::store::{JobInfo, JobStore};

/// Rows of results the job page shows (failed rows first); the download has all of them.
const RESULTS_SHOWN: usize = 200;
/// Results read at most to find the failed rows for the page.
const RESULTS_SCANNED: usize = 20_000;

/// Every job kind and migration phase the upload form offers, as (value, label).
const KINDS: &[(&str, &str)] = &[
    ("create", "Create users"),
    ("update", "Update profiles"),
    ("activate", "Activate"),
    ("deactivate", "Deactivate"),
    ("suspend", "Suspend"),
    ("unsuspend", "Unsuspend"),
    ("delete", "Delete"),
    ("add-to-group", "Add to group"),
    ("remove-from-group", "Remove from group"),
    (
        "phase:create",
        "Migration phase 1: create STAGED with the password hook",
    ),
    (
        "phase:activate",
        "Migration phase 2: activate without emails",
    ),
];

fn jobs(state: &ConsoleState) -> JobService<'_> {
    let app = &state.app;
    JobService {
        settings: &app.settings,
        okta: app.okta.as_ref(),
        redis: &app.redis,
        store: JobStore::new(app.keys.clone()),
    }
}

/// A job as the pages show it: the API's [`JobInfo`] plus the numbers a progress bar needs.
#[derive(Debug, Serialize)]
struct JobView {
    #[serde(flatten)]
    info: JobInfo,
    /// Rows finished (done + failed + invalid) out of `total`.
    finished_rows: u64,
    percent: u64,
    open: bool,
    rate: Option<String>,
    eta: Option<String>,
}

fn eta_words(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

impl From<JobInfo> for JobView {
    fn from(info: JobInfo) -> Self {
        let finished_rows = info.done + info.failed + info.invalid;
        let percent = (finished_rows * 100).checked_div(info.total).unwrap_or(0);
        Self {
            finished_rows,
            percent: percent.min(100),
            open: info.state.is_open(),
            rate: info.rows_per_second.map(|r| format!("{r:.1} rows/s")),
            eta: info
                .eta_seconds
                .filter(|_| info.state.is_open())
                .map(eta_words),
            info,
        }
    }
}

/// A refusal of `jobs::service` as a page: 404 reads like a missing job, 400/409 say what to
/// change, storage failures are logged.
fn refusal(state: &ConsoleState, session: &Session, e: JobError) -> Response {
    let page = state.page(session, "Jobs", "/jobs");
    let t = &state.templates;
    match e {
        JobError::NotFound(m) => page::not_found(t, page, &m),
        JobError::Forbidden(m) => page::forbidden(t, page, &m),
        JobError::BadRequest(m) | JobError::Conflict(m) | JobError::Unavailable(m) => page.render(
            t,
            StatusCode::BAD_REQUEST,
            "error.html",
            context! { heading => "Not done", message => m },
        ),
        JobError::Redis(op, e) => page::unavailable(t, page, op, &e),
    }
}

/// The jobs as the table shows them, and whether any is still open (the table polls only
/// then; an upload lands on its job's page, and the list is fresh when opened again).
fn list_context(jobs: Vec<JobInfo>) -> (Serde<Vec<JobView>>, bool) {
    let views: Vec<JobView> = jobs.into_iter().map(JobView::from).collect();
    let any_open = views.iter().any(|j| j.open);
    (Serde(views), any_open)
}

/// `GET /jobs`: the upload form and the jobs this person may see.
#[handler]
pub async fn jobs_page(req: &Request, state: Data<&Arc<ConsoleState>>) -> Response {
    let session = match state.require(req, JOB_RUNNERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let list = match jobs(&state).list_visible(&session.principal).await {
        Ok(l) => l,
        Err(e) => return refusal(&state, &session, e),
    };
    let tenant_attr = &state.app.settings.jobs.tenant_profile_attribute;
    // A client admin cannot create users without the tenant attribute; the API refuses it, so
    // the form does not offer it.
    let may_create = session.principal.tenant.is_none() || !tenant_attr.is_empty();
    let kinds: Vec<_> = KINDS
        .iter()
        .filter(|(v, _)| may_create || !matches!(*v, "create" | "phase:create"))
        .map(|(value, label)| context! { value => *value, label => *label })
        .collect();
    state
        .page(&session, "Jobs", "/jobs")
        .render(&state.templates, StatusCode::OK, "jobs.html", {
            let (jobs, any_open) = list_context(list);
            context! { jobs, any_open, kinds }
        })
}

/// `GET /jobs/list`: the jobs table body, polled by the list page.
#[handler]
pub async fn jobs_fragment(req: &Request, state: Data<&Arc<ConsoleState>>) -> Response {
    let session = match state.require(req, JOB_RUNNERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match jobs(&state).list_visible(&session.principal).await {
        Ok(list) => {
            let (jobs, any_open) = list_context(list);
            state.templates.fragment(
                "jobs_rows.html",
                context! { page => context! { base => state.base.clone() }, jobs, any_open },
            )
        }
        Err(e) => refusal(&state, &session, e),
    }
}

/// The upload form's fields before the file, in form order (the file comes last, so the CSRF
/// token and every option are known before one byte of it is read).
#[derive(Default)]
struct UploadForm {
    csrf: Option<String>,
    kind: Option<String>,
    format: Option<String>,
    activate: bool,
    password_hook: bool,
    send_email: bool,
    group_id: Option<String>,
}

impl UploadForm {
    fn set(&mut self, name: &str, value: String) {
        let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        match name {
            "csrf" => self.csrf = value,
            "kind" => self.kind = value,
            "format" => self.format = value.filter(|f| f != "auto"),
            "activate" => self.activate = value.is_some(),
            "password_hook" => self.password_hook = value.is_some(),
            "send_email" => self.send_email = value.is_some(),
            "group_id" => self.group_id = value,
            _ => {}
        }
    }
}

fn bad_upload(state: &ConsoleState, session: &Session, message: &str) -> Response {
    refusal(state, session, JobError::BadRequest(message.to_owned()))
}

/// `POST /jobs` (multipart): submits the job through `jobs::service` and goes to its page.
#[handler]
pub async fn upload_job(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    mut multipart: Multipart,
) -> Response {
    let session = match state.require(req, JOB_RUNNERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut form = UploadForm::default();
    let file = loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break None,
            Err(e) => {
                return bad_upload(
                    &state,
                    &session,
                    &format!("the form could not be read: {e}"),
                )
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            break Some(field);
        }
        match field.text().await {
            Ok(v) => form.set(&name, v),
            Err(e) => {
                return bad_upload(
                    &state,
                    &session,
                    &format!("the form could not be read: {e}"),
                )
            }
        }
    };
    let csrf = std::collections::HashMap::from([(
        "csrf".to_owned(),
        form.csrf.clone().unwrap_or_default(),
    )]);
    if let Err(r) = state.check_csrf(req, &session, &csrf) {
        return r;
    }
    let Some(file) = file else {
        return bad_upload(
            &state,
            &session,
            "choose a CSV or JSON-lines file to upload",
        );
    };
    let file_name = file.file_name().map(std::path::PathBuf::from);
    let content_type = file.content_type().map(str::to_owned);
    let (kind, phase) = match form.kind.as_deref() {
        Some(k) => match k.strip_prefix("phase:") {
            Some(p) => (None, Some(p)),
            None => (Some(k), None),
        },
        None => (None, None),
    };
    // The file's name says more than the browser's guess at a Content-Type (often
    // `application/octet-stream` for .jsonl).
    let format_hint = match (&file_name, &content_type) {
        (Some(n), _) if n.extension().is_some() => FormatHint::FileName(n),
        (_, Some(ct)) => FormatHint::ContentType(ct),
        _ => FormatHint::None,
    };
    let params = JobParams {
        kind,
        phase,
        format: form.format.as_deref(),
        activate: form.activate.then_some(true),
        password_hook: form.password_hook.then_some(true),
        send_email: form.send_email.then_some(true),
        group_id: form.group_id.clone(),
        format_hint,
    };
    let reader: Pin<Box<dyn AsyncRead + Send>> = Box::pin(file.into_async_read());
    match jobs(&state)
        .submit(&session.principal, params, reader)
        .await
    {
        Ok(job) => page::see_other(&format!("{}/jobs/{}", state.base, job.id)),
        Err(e) => refusal(&state, &session, e),
    }
}

/// `GET /jobs/:id`: progress, results (failed rows first), download, cancel.
#[handler]
pub async fn job_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    id: Path<String>,
) -> Response {
    let session = match state.require(req, JOB_RUNNERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let service = jobs(&state);
    let job = match service.visible(&session.principal, &id).await {
        Ok(j) => j,
        Err(e) => return refusal(&state, &session, e),
    };
    let (results, more) = match service
        .results_errors_first(&session.principal, &id, RESULTS_SHOWN, RESULTS_SCANNED)
        .await
    {
        Ok(r) => r,
        Err(e) => return refusal(&state, &session, e),
    };
    let failed_shown = results
        .iter()
        .filter(|r| r.outcome == crate::jobs::rows::RowOutcome::Failed)
        .count();
    // The upload form's words for the kind (`create` → "Create users").
    let kind_label = KINDS
        .iter()
        .find(|(value, _)| *value == job.kind)
        .map_or(job.kind.clone(), |(_, label)| (*label).to_owned());
    state
        .page(&session, format!("Job {}", job.id), "/jobs")
        .render(
            &state.templates,
            StatusCode::OK,
            "job.html",
            context! {
                job => Serde(JobView::from(job)),
                kind_label,
                results => Serde(&results),
                more,
                failed_shown,
            },
        )
}

/// `GET /jobs/:id/progress`: the progress fragment. Once the job has ended it asks htmx to
/// reload the page, which then shows the final results and stops polling.
#[handler]
pub async fn job_progress(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    id: Path<String>,
) -> Response {
    let session = match state.require(req, JOB_RUNNERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match jobs(&state).visible(&session.principal, &id).await {
        Ok(job) if !job.state.is_open() => Response::builder()
            .status(StatusCode::OK)
            .header("HX-Refresh", "true")
            .finish(),
        Ok(job) => state.templates.fragment(
            "job_progress.html",
            context! {
                page => context! { base => state.base.clone() },
                job => Serde(JobView::from(job)),
            },
        ),
        Err(e) => refusal(&state, &session, e),
    }
}

/// `GET /jobs/:id/results.csv`: every result row, in line order (formula cells neutralised).
#[handler]
pub async fn job_results_csv(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    id: Path<String>,
) -> Response {
    let session = match state.require(req, JOB_RUNNERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = jobs(&state).visible(&session.principal, &id).await {
        return refusal(&state, &session, e);
    }
    let app = &state.app;
    let body: Body = results_body(
        JobStore::new(app.keys.clone()),
        app.redis.clone(),
        id.0.clone(),
        app.settings.jobs.export_page,
        true,
    );
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/csv; charset=utf-8")
        .header(
            "content-disposition",
            format!(
                "attachment; filename=\"job-{}-results.csv\"",
                id.0.replace('"', "")
            ),
        )
        .header("cache-control", "no-store")
        .body(body)
}

/// `POST /jobs/:id/cancel`: after the confirmation on the job page, with the CSRF token.
#[handler]
pub async fn cancel_job(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    id: Path<String>,
    body: Body,
) -> Response {
    let session = match state.require(req, JOB_RUNNERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = state.checked_form(req, &session, body).await {
        return r;
    }
    match jobs(&state).cancel(&session.principal, &id).await {
        Ok(job) => page::see_other(&format!("{}/jobs/{}", state.base, job.id)),
        Err(e) => refusal(&state, &session, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_reads_in_the_largest_sensible_units() {
        assert_eq!(eta_words(0), "0 s");
        assert_eq!(eta_words(59), "59 s");
        assert_eq!(eta_words(61), "1 min 1 s");
        assert_eq!(eta_words(3 * 3600 + 120), "3 h 2 min");
    }

    #[test]
    fn every_kind_the_form_offers_is_one_the_api_takes() {
        use crate::jobs::request::parse_job_request;
        for (value, _) in KINDS {
            let (kind, phase) = match value.strip_prefix("phase:") {
                Some(p) => (None, Some(p)),
                None => (Some(*value), None),
            };
            let parsed = parse_job_request(JobParams {
                kind,
                phase,
                ..Default::default()
            });
            assert!(parsed.is_ok(), "{value}: {parsed:?}");
        }
    }
}
