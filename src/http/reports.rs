//! `/api/v1/reports`: preview and send the monthly IAM report (operator keys).

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::{Html, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, ResponseContent};

use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::reporting::compile::MonthlyReport;
use crate::reporting::service::{
    compile_report, parse_report_month, render_html, send_report, ReportError, Sent, REPORT_ROLES,
};
use crate::reporting::SentRecord;

pub struct ReportsApi {
    pub state: Arc<AppState>,
}

/// The report in the representation the client asked for.
#[derive(Debug, ResponseContent)]
pub enum ReportBody {
    /// The report's numbers.
    Json(Json<Box<MonthlyReport>>),
    /// The email's HTML, chart inline (for a browser).
    Html(Html<String>),
}

#[derive(Debug, ApiResponse)]
pub enum ReportResponse {
    /// The report: JSON, or HTML when the request's `Accept` prefers `text/html`.
    #[oai(status = 200)]
    Ok(ReportBody),
}

#[derive(Debug, Object)]
pub struct SendResult {
    /// `sent` now, or `already_sent` earlier (nothing was sent again).
    pub status: String,
    pub record: SentRecord,
}

impl From<ReportError> for HttpError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::BadRequest(m) => HttpError::bad_request(m),
            ReportError::Forbidden(m) => HttpError::forbidden(m),
            ReportError::Conflict(m) => HttpError::conflict(m),
            ReportError::Unavailable(m) => HttpError::unavailable(m),
            ReportError::Redis(op, e) => HttpError::redis(op, e),
        }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Reports")]
impl ReportsApi {
    /// Compile the report of a month (`YYYY-MM`, business time zone).
    ///
    /// JSON by default; `Accept: text/html` returns the email's HTML with the chart inline.
    /// A month in progress is compiled with what arrived so far (`complete: false`). A month
    /// without any recorded event is compiled too (all zeros, `no_events: true`), and `warnings`
    /// says so, as does every tenant that had events the month before (or is configured) but
    /// none this month (`tenants[].no_events`): check the event hook.
    #[oai(path = "/reports/:month", method = "get", operation_id = "get_report")]
    async fn get_report(
        &self,
        req: &Request,
        auth: ApiKey,
        month: Path<String>,
    ) -> Result<ReportResponse, HttpError> {
        let who = self.state.require(&auth, REPORT_ROLES).await?;
        let reporter = &self.state.reporter;
        let month = parse_report_month(reporter, &month)?;
        let mut conn = self.state.redis.clone();
        let report = compile_report(reporter, &mut conn, &who, month).await?;
        let wants_html = req
            .headers()
            .get(poem::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| {
                let html = a.find("text/html");
                let json = a.find("application/json");
                html.is_some() && (json.is_none() || html < json)
            });
        if wants_html {
            let rendered = render_html(report).await?;
            return Ok(ReportResponse::Ok(ReportBody::Html(Html(rendered))));
        }
        Ok(ReportResponse::Ok(ReportBody::Json(Json(Box::new(report)))))
    }

    /// Send the report of a month now, unless it was already sent.
    ///
    /// Exactly once per month across replicas: a second call answers `already_sent` with the
    /// first send's Message-ID. One SMTP attempt; on failure 503 (the scheduler keeps retrying
    /// the due month).
    #[oai(
        path = "/reports/:month/send",
        method = "post",
        operation_id = "send_report"
    )]
    async fn send_report(
        &self,
        auth: ApiKey,
        month: Path<String>,
    ) -> Result<Json<SendResult>, HttpError> {
        let who = self.state.require(&auth, REPORT_ROLES).await?;
        let reporter = &self.state.reporter;
        let month = parse_report_month(reporter, &month)?;
        let mut conn = self.state.redis.clone();
        let (status, record) = match send_report(reporter, &mut conn, &who, month).await? {
            Sent::Now(record) => ("sent", record),
            Sent::Earlier(record) => ("already_sent", record),
        };
        Ok(Json(SendResult {
            status: status.into(),
            record,
        }))
    }
}
