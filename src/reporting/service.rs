//! The monthly report for a caller, once, for every way in: `GET/POST /api/v1/reports/…` and
//! the console's Reports page call these functions with the caller's [`Principal`] and map
//! [`ReportError`] to their own answer.
//!
//! Only operators read or send reports; a month that has not started in the business time
//! zone is refused with the month it is now; a send answers whether it went out now or earlier
//! (exactly once per month, see [`super::deliver`]).

use crate::store::RedisConn;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::compile::MonthlyReport;
use super::render::{render_report, ChartRef};
use super::{ReportMonth, Reporter, SendOutcome, SentRecord};
use crate::access::{check_role, Principal, Role};

/// Roles that read and send reports.
pub const REPORT_ROLES: &[Role] = &[Role::Operator];

/// Why a report request was refused; each message is safe to show the caller.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// 400: not a month, or one that has not started.
    #[error("{0}")]
    BadRequest(String),
    /// 403: not an operator.
    #[error("{0}")]
    Forbidden(String),
    /// 409: another replica is sending, or there is no one to send to.
    #[error("{0}")]
    Conflict(String),
    /// 503: rendering or the mail server failed.
    #[error("{0}")]
    Unavailable(String),
    /// 503: Redis failed during `op`.
    #[error("storage failed during {0}")]
    Redis(&'static str, #[source] redis::RedisError),
}

/// How a send ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Sent by this request.
    Now(SentRecord),
    /// Sent before; nothing was sent again.
    Earlier(SentRecord),
}

/// The caller must be allowed to read and send reports.
pub fn require_report_role(who: &Principal) -> Result<(), ReportError> {
    check_role(who, REPORT_ROLES).map_err(|r| ReportError::Forbidden(r.to_string()))
}

/// Parses `YYYY-MM` and refuses months that have not started in the business time zone.
pub fn parse_report_month(reporter: &Reporter, raw: &str) -> Result<ReportMonth, ReportError> {
    let month = ReportMonth::parse(raw).map_err(|e| ReportError::BadRequest(e.to_string()))?;
    let current = ReportMonth::of(Utc::now(), reporter.tz);
    if month > current {
        return Err(ReportError::BadRequest(format!(
            "{month} has not started yet (it is {current} in {}); ask for {current} or earlier",
            reporter.tz
        )));
    }
    Ok(month)
}

/// The month it is now in the business time zone (the console's default choice).
pub fn current_month(reporter: &Reporter) -> ReportMonth {
    ReportMonth::of(Utc::now(), reporter.tz)
}

/// The report's numbers for a month.
pub async fn compile_report(
    reporter: &Reporter,
    conn: &mut RedisConn,
    who: &Principal,
    month: ReportMonth,
) -> Result<MonthlyReport, ReportError> {
    require_report_role(who)?;
    reporter
        .compile(conn, month)
        .await
        .map_err(|e| ReportError::Redis("compile-report", e))
}

/// The email's HTML as recipients will see it, with the chart inline as a data URI (rendered
/// off the async threads).
pub async fn preview_report_html(
    reporter: &Reporter,
    conn: &mut RedisConn,
    who: &Principal,
    month: ReportMonth,
) -> Result<String, ReportError> {
    let report = compile_report(reporter, conn, who, month).await?;
    render_html(report).await
}

/// Renders a compiled report's HTML off the async threads.
pub async fn render_html(report: MonthlyReport) -> Result<String, ReportError> {
    tokio::task::spawn_blocking(move || render_report(&report, ChartRef::DataUri).html)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "report rendering failed");
            ReportError::Unavailable("the report could not be rendered".into())
        })
}

/// Sends a month's report now unless it was already sent (one SMTP attempt).
pub async fn send_report(
    reporter: &Reporter,
    conn: &mut RedisConn,
    who: &Principal,
    month: ReportMonth,
) -> Result<Sent, ReportError> {
    require_report_role(who)?;
    let outcome = reporter
        .send_once(conn, month, Some(1), &CancellationToken::new())
        .await
        .map_err(|e| ReportError::Redis("send-report", e))?;
    match outcome {
        SendOutcome::Sent(record) => Ok(Sent::Now(record)),
        SendOutcome::AlreadySent(record) => Ok(Sent::Earlier(record)),
        SendOutcome::Busy => Err(ReportError::Conflict(format!(
            "another replica is sending {month} right now; ask again in a minute"
        ))),
        SendOutcome::NoRecipients => Err(ReportError::Conflict(
            "report.recipients is empty: configure who receives the report".into(),
        )),
        SendOutcome::Failed(_) => Err(ReportError::Unavailable(format!(
            "the mail server did not accept the {month} report (details in the log); it was not sent"
        ))),
    }
}
