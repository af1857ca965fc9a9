//! The Reports page (operators): pick a month, see the email exactly as recipients will (the
//! rendered HTML in a sandboxed iframe, served by its own route with its own strict CSP), and
//! send it after a confirmation. The rules are `reporting::service`'s, the same functions as
//! `GET /api/v1/reports/{month}` and `POST …/send`: operators only, no month that has not
//! started, exactly once per month.

use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{handler, Body, Request, Response};

use super::page;
use super::session::Session;
use super::ConsoleState;
use crate::reporting::service::{
    current_month, parse_report_month, preview_report_html, send_report, ReportError, Sent,
    REPORT_ROLES,
};

/// The CSP of the email preview: the email's own inline styles and its inline chart image, and
/// nothing else — no script, no request anywhere, only framed by the console itself.
pub const PREVIEW_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox";

#[derive(Debug, serde::Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
}

fn refusal(state: &ConsoleState, session: &Session, e: ReportError) -> Response {
    let page = state.page(session, "Reports", "/reports");
    let t = &state.templates;
    match e {
        ReportError::Forbidden(m) => page::forbidden(t, page, &m),
        ReportError::BadRequest(m) | ReportError::Conflict(m) | ReportError::Unavailable(m) => page
            .render(
                t,
                StatusCode::BAD_REQUEST,
                "error.html",
                context! { heading => "Not done", message => m },
            ),
        ReportError::Redis(op, e) => page::unavailable(t, page, op, &e),
    }
}

/// `GET /reports?month=YYYY-MM`: the month picker, the preview frame and the send form.
#[handler]
pub async fn reports_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    query: Query<MonthQuery>,
) -> Response {
    let session = match state.require(req, REPORT_ROLES).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let reporter = &state.app.reporter;
    let current = current_month(reporter).to_string();
    let raw = query
        .0
        .month
        .filter(|m| !m.is_empty())
        .unwrap_or(current.clone());
    let month = match parse_report_month(reporter, &raw) {
        Ok(m) => m.to_string(),
        Err(e) => return refusal(&state, &session, e),
    };
    state.page(&session, "Reports", "/reports").render(
        &state.templates,
        StatusCode::OK,
        "reports.html",
        context! { month, current, tz => reporter.tz.to_string() },
    )
}

/// `GET /reports/:month/preview`: the email's HTML alone, with its own CSP (framed by the
/// Reports page).
#[handler]
pub async fn report_preview(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    month: Path<String>,
) -> Response {
    let session = match state.require(req, REPORT_ROLES).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let reporter = &state.app.reporter;
    let month = match parse_report_month(reporter, &month) {
        Ok(m) => m,
        Err(e) => return refusal(&state, &session, e),
    };
    let mut conn = state.app.redis.clone();
    match preview_report_html(reporter, &mut conn, &session.principal, month).await {
        Ok(html) => Response::builder()
            .status(StatusCode::OK)
            .content_type("text/html; charset=utf-8")
            .header("content-security-policy", PREVIEW_CSP)
            .header("x-frame-options", "SAMEORIGIN")
            .header("cache-control", "no-store")
            .body(Body::from_string(html)),
        Err(e) => refusal(&state, &session, e),
    }
}

/// `POST /reports/:month/send`: after the confirmation, with the CSRF token.
#[handler]
pub async fn send_report_now(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    month: Path<String>,
    body: Body,
) -> Response {
    let session = match state.require(req, REPORT_ROLES).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = state.checked_form(req, &session, body).await {
        return r;
    }
    let reporter = &state.app.reporter;
    let month = match parse_report_month(reporter, &month) {
        Ok(m) => m,
        Err(e) => return refusal(&state, &session, e),
    };
    let mut conn = state.app.redis.clone();
    let (now, record) = match send_report(reporter, &mut conn, &session.principal, month).await {
        Ok(Sent::Now(r)) => (true, r),
        Ok(Sent::Earlier(r)) => (false, r),
        Err(e) => return refusal(&state, &session, e),
    };
    tracing::info!(who = %session.who, %month, now, "report sent from the console");
    state.page(&session, "Reports", "/reports").render(
        &state.templates,
        StatusCode::OK,
        "report_sent.html",
        context! { month => month.to_string(), now, record => Serde(&record) },
    )
}
