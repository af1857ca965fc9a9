//! `/api/v1/reports`: preview and send the monthly IAM report (operator keys).

use std::sync::Arc;

use chrono::Utc;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::{Html, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, ResponseContent};
use tokio_util::sync::CancellationToken;

use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::Role;
use crate::reporting::compile::MonthlyReport;
use crate::reporting::render::{render_report, ChartRef};
use crate::reporting::{ReportMonth, SendOutcome, SentRecord};

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

const REPORT_ROLES: &[Role] = &[Role::Operator];

impl ReportsApi {
    /// Parses the month and refuses months that have not started in the business time zone.
    fn month(&self, raw: &str) -> Result<ReportMonth, HttpError> {
        let month = ReportMonth::parse(raw).map_err(|e| HttpError::bad_request(e.to_string()))?;
        let current = ReportMonth::of(Utc::now(), self.state.reporter.tz);
        if month > current {
            return Err(HttpError::bad_request(format!(
                "{month} has not started yet (it is {current} in {}); ask for {current} or earlier",
                self.state.reporter.tz
            )));
        }
        Ok(month)
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
        self.state.require(&auth, REPORT_ROLES).await?;
        let month = self.month(&month)?;
        let mut conn = self.state.redis.clone();
        let report = self
            .state
            .reporter
            .compile(&mut conn, month)
            .await
            .map_err(|e| HttpError::redis("compile-report", e))?;
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
            let rendered =
                tokio::task::spawn_blocking(move || render_report(&report, ChartRef::DataUri).html)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "report rendering failed");
                        HttpError::unavailable("the report could not be rendered")
                    })?;
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
        self.state.require(&auth, REPORT_ROLES).await?;
        let month = self.month(&month)?;
        let mut conn = self.state.redis.clone();
        let outcome = self
            .state
            .reporter
            .send_once(&mut conn, month, Some(1), &CancellationToken::new())
            .await
            .map_err(|e| HttpError::redis("send-report", e))?;
        match outcome {
            SendOutcome::Sent(record) => Ok(Json(SendResult {
                status: "sent".into(),
                record,
            })),
            SendOutcome::AlreadySent(record) => Ok(Json(SendResult {
                status: "already_sent".into(),
                record,
            })),
            SendOutcome::Busy => Err(HttpError::conflict(format!(
                "another replica is sending {month} right now; ask again in a minute"
            ))),
            SendOutcome::NoRecipients => Err(HttpError::conflict(
                "report.recipients is empty: configure who receives the report",
            )),
            SendOutcome::Failed(_) => Err(HttpError::unavailable(format!(
                "the mail server did not accept the {month} report (details in the log); it was not sent"
            ))),
        }
    }
}
