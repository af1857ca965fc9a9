//! The Users and User pages, the user's live status fragment and lifecycle actions.
//!
//! Every read goes through `http::users::{find_visible_user, list_visible_users}` and every
//! action through `http::actions::run_user_action`, exactly as the JSON API: a client admin's
//! session sees and acts only in its tenant, and another tenant's user is answered exactly as
//! a missing one (same page, same 404) — by search, by URL and by a forged form post. Support
//! reads are audited as the API audits them; a support action needs a reason, which goes to
//! the audit stream with the result.

use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{handler, Body, Request, Response};
use serde::{Deserialize, Serialize};

use super::page;
use super::session::Session;
use super::ConsoleState;
use crate::access::Role;
use crate::domain::actions::{offered_actions, Action};
use crate::domain::user_status::UserStatus;
use crate::http::actions::run_user_action;
use crate::http::error::HttpError;
use crate::http::users::{audit_user_read, find_visible_user, list_visible_users, UserListQuery};
use crate::projection::read::TimelineEntry;
use crate::projection::UserRecord;

/// Roles that read user records (as the API's `USER_READERS`: operators read none).
const READERS: &[Role] = &[Role::Support, Role::ClientAdmin];
/// Users per page of the Users list.
const PAGE_SIZE: usize = 25;
/// Timeline entries on the User page.
const TIMELINE: usize = 20;

/// Status and message of an API error, for a page.
pub(super) fn error_parts(e: &HttpError) -> (StatusCode, String) {
    let (status, body) = match e {
        HttpError::BadRequest(b) => (StatusCode::BAD_REQUEST, b),
        HttpError::Unauthorized(b) => (StatusCode::UNAUTHORIZED, b),
        HttpError::Forbidden(b) => (StatusCode::FORBIDDEN, b),
        HttpError::NotFound(b) => (StatusCode::NOT_FOUND, b),
        HttpError::Conflict(b) => (StatusCode::CONFLICT, b),
        HttpError::PayloadTooLarge(b) => (StatusCode::PAYLOAD_TOO_LARGE, b),
        HttpError::BadGateway(b) => (StatusCode::BAD_GATEWAY, b),
        HttpError::Unavailable(b) => (StatusCode::SERVICE_UNAVAILABLE, b),
    };
    (status, body.message.clone())
}

/// The one "not found" of the console's user pages, whatever the reason (missing, other
/// tenant): it never names the id's owner or tenant.
fn user_not_found(state: &ConsoleState, session: &Session) -> Response {
    page::not_found(
        &state.templates,
        state.page(session, "Not found", "/users"),
        "There is no such user.",
    )
}

fn error_page(state: &ConsoleState, session: &Session, e: &HttpError) -> Response {
    let (status, message) = error_parts(e);
    if status == StatusCode::NOT_FOUND {
        return user_not_found(state, session);
    }
    state.page(session, "Error", "/users").render(
        &state.templates,
        status,
        "error.html",
        context! { heading => status.canonical_reason().unwrap_or("Error"), message => message },
    )
}

#[derive(Debug, Deserialize)]
pub struct UsersQuery {
    /// Okta id, login or email (exact), or the start of a login.
    q: Option<String>,
    status: Option<String>,
    tenant: Option<String>,
    after: Option<String>,
}

/// One row of the Users table.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    login: String,
    name: String,
    status: String,
    tenant: String,
    last_sign_in: String,
}

impl From<&UserRecord> for Row {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.clone(),
            login: u
                .login
                .clone()
                .or_else(|| u.email.clone())
                .unwrap_or_default(),
            name: u.display_name.clone().unwrap_or_default(),
            status: u.status.clone(),
            tenant: u.tenant.clone().unwrap_or_default(),
            last_sign_in: u.last_sign_in.clone().unwrap_or_default(),
        }
    }
}

#[handler]
pub async fn users_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    q: Query<UsersQuery>,
) -> Response {
    let session = match state.require(req, READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let who = &session.principal;
    let text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let tenant = match who.role {
        // A client admin's list is always their tenant; the field is not even shown.
        Role::ClientAdmin => None,
        _ => q.tenant.clone().filter(|t| !t.is_empty()),
    };
    let mut notice = None;
    let parsed_status = match status.map(UserStatus::parse) {
        Some(None) => {
            notice = Some(format!("Unknown status `{}`.", status.unwrap_or_default()));
            None
        }
        Some(s) => s,
        None => None,
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut next = None;
    let mut exact = false;
    // An exact Okta id, login or email first (the same lookup as the User page).
    if let (Some(t), None) = (text, q.after.as_deref()) {
        if let Ok((user, _, _)) = find_visible_user(&state.app, who, t, 1).await {
            let tenant_ok = tenant
                .as_deref()
                .is_none_or(|x| user.tenant.as_deref() == Some(x));
            let status_ok =
                parsed_status.is_none_or(|s| UserStatus::parse(&user.status) == Some(s));
            if tenant_ok && status_ok {
                rows.push(Row::from(&user));
                exact = true;
            }
        }
    }
    if !exact && notice.is_none() {
        let query = UserListQuery {
            tenant: tenant.clone(),
            status: parsed_status,
            login_prefix: text.map(str::to_owned),
            after: q.after.clone(),
            limit: PAGE_SIZE,
        };
        match list_visible_users(&state.app, who, query).await {
            Ok(list) => {
                rows = list.users.iter().map(Row::from).collect();
                next = list.next;
            }
            Err(e) => {
                let (status, message) = error_parts(&e);
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    return error_page(&state, &session, &e);
                }
                notice = Some(message);
            }
        }
    }
    audit_user_read(
        &state.app,
        None,
        who,
        "list-users",
        "",
        &format!("{} users (console)", rows.len()),
    )
    .await;
    let next_url = next.map(|n| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", text),
            ("status", status),
            ("tenant", tenant.as_deref()),
        ] {
            if let Some(v) = v {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair("after", &n);
        format!("{}/users?{}", state.base, ser.finish())
    });
    state.page(&session, "Users", "/users").render(
        &state.templates,
        StatusCode::OK,
        "users.html",
        context! {
            rows => Serde(&rows),
            q => text.unwrap_or(""),
            status => status.unwrap_or(""),
            tenant => tenant.as_deref().unwrap_or(""),
            statuses => UserStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            can_pick_tenant => who.role != Role::ClientAdmin,
            next_url => next_url,
            notice => notice,
            searched => text.is_some() || status.is_some() || tenant.is_some(),
        },
    )
}

/// What the status area and the action bar show.
#[derive(Debug, Serialize)]
struct StatusView {
    id: String,
    status: String,
    status_reason: Option<String>,
    /// Whether the status lets the user sign in (it changes with the status, so it lives here).
    can_sign_in: bool,
    /// The event that set the status: type, time, actor.
    set_by: Option<serde_json::Value>,
    actions: Vec<ActionView>,
    freshness: Option<String>,
}

#[derive(Debug, Serialize)]
struct ActionView {
    name: &'static str,
    label: String,
}

fn action_label(a: Action) -> String {
    let s = a.as_str().replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

fn status_view(user: &UserRecord, freshness: Option<String>) -> StatusView {
    let status = UserStatus::parse(&user.status);
    StatusView {
        id: user.id.clone(),
        status: user.status.clone(),
        status_reason: user.status_reason.clone(),
        can_sign_in: user.can_sign_in,
        set_by: user
            .why
            .iter()
            .find(|w| w.field == "status")
            .and_then(|w| serde_json::to_value(&w.why).ok()),
        actions: offered_actions(status, !user.factors.is_empty())
            .into_iter()
            .map(|a| ActionView {
                name: a.as_str(),
                label: action_label(a),
            })
            .collect(),
        freshness,
    }
}

#[derive(Debug, Serialize)]
struct EventView {
    published: String,
    event_type: String,
    actor: String,
    outcome: String,
}

impl From<TimelineEntry> for EventView {
    fn from(t: TimelineEntry) -> Self {
        Self {
            published: t.published,
            event_type: t.event_type,
            actor: t.actor,
            outcome: t.outcome,
        }
    }
}

async fn render_user(
    state: &ConsoleState,
    session: &Session,
    id: &str,
    result: Option<ActionOutcome>,
) -> Response {
    let who = &session.principal;
    let (user, timeline, freshness) = match find_visible_user(&state.app, who, id, TIMELINE).await {
        Ok(found) => found,
        Err(e) => return error_page(state, session, &e),
    };
    audit_user_read(&state.app, None, who, "read-user", &user.id, "console").await;
    let title = user
        .display_name
        .clone()
        .or_else(|| user.login.clone())
        .unwrap_or_else(|| user.id.clone());
    let view = status_view(&user, freshness.clone());
    let events: Vec<EventView> = timeline.into_iter().map(EventView::from).collect();
    state.page(session, title, "/users").render(
        &state.templates,
        StatusCode::OK,
        "user.html",
        context! {
            user => Serde(&user),
            s => Serde(&view),
            events => Serde(&events),
            freshness => freshness,
            reason_required => who.role == Role::Support,
            result => Serde(&result),
        },
    )
}

#[handler]
pub async fn user_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    id: Path<String>,
) -> Response {
    let session = match state.require(req, READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    render_user(&state, &session, &id, None).await
}

#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    /// The status the page shows now; when it changed, the action bar is re-rendered too.
    known: Option<String>,
}

/// The status area, polled every second by the User page (`hx-trigger="every 1s"`): when the
/// status changed, the action bar and the timeline come along (out-of-band swaps).
#[handler]
pub async fn status_fragment(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    id: Path<String>,
    q: Query<StatusQuery>,
) -> Response {
    let session = match state.require_polling(req, READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (user, timeline, freshness) =
        match find_visible_user(&state.app, &session.principal, &id, TIMELINE).await {
            Ok(found) => found,
            Err(e) => {
                let (status, message) = error_parts(&e);
                return Response::builder()
                    .status(status)
                    .content_type("text/plain")
                    .body(message);
            }
        };
    let view = status_view(&user, freshness);
    let changed = q.known.as_deref() != Some(user.status.as_str());
    let events: Vec<EventView> = timeline.into_iter().map(EventView::from).collect();
    state.templates.fragment(
        "user_status.html",
        context! {
            page => context! { base => &state.base, csrf => &session.csrf },
            s => Serde(&view),
            changed => changed,
            events => Serde(&events),
            reason_required => session.principal.role == Role::Support,
        },
    )
}

/// What the page shows after an action: Okta's answer, or why it did not happen.
#[derive(Debug, Serialize)]
struct ActionOutcome {
    ok: bool,
    action: String,
    message: String,
    /// Okta's answer without account credentials (pretty JSON).
    okta: Option<String>,
    withheld: Vec<String>,
}

#[handler]
pub async fn run_action(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    id: Path<String>,
    body: Body,
) -> Response {
    let session = match state.require(req, READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = match state.checked_form(req, &session, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let htmx = req.headers().contains_key("hx-request");
    let action = form.get("op").and_then(|a| Action::parse(a));
    let reason = form
        .get("reason")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty());
    let outcome = match (action, reason, session.principal.role) {
        (None, _, _) => ActionOutcome {
            ok: false,
            action: form.get("op").cloned().unwrap_or_default(),
            message: "Unknown action.".into(),
            okta: None,
            withheld: vec![],
        },
        (Some(a), None, Role::Support) => ActionOutcome {
            ok: false,
            action: a.as_str().into(),
            message: "Give a reason: support actions are audited with it. Nothing was changed."
                .into(),
            okta: None,
            withheld: vec![],
        },
        (Some(a), reason, _) => {
            match run_user_action(&state.app, &session.principal, &id, a, false, reason).await {
                Ok(r) => ActionOutcome {
                    ok: true,
                    action: r.action.clone(),
                    message: format!(
                        "Okta accepted “{}”. The status below follows when Okta's event arrives.",
                        action_label(a)
                    ),
                    okta: r
                        .okta
                        .as_ref()
                        .and_then(|v| serde_json::to_string_pretty(v).ok()),
                    withheld: r.withheld,
                },
                Err(e) => {
                    let (status, message) = error_parts(&e);
                    // Another tenant's user (or none): exactly the "no such user" answer.
                    if status == StatusCode::NOT_FOUND {
                        return user_not_found(&state, &session);
                    }
                    ActionOutcome {
                        ok: false,
                        action: a.as_str().into(),
                        message,
                        okta: None,
                        withheld: vec![],
                    }
                }
            }
        }
    };
    if htmx {
        return state
            .templates
            .fragment("action_result.html", context! { result => Serde(&outcome) });
    }
    render_user(&state, &session, &id, Some(outcome)).await
}
