//! The Operations page (operators): stream lengths and consumer lag, the dead-letter count
//! with the newest entries, API keys (create — the secret shown once, on the answer page only
//! — and revoke), and the audit log with filters.
//!
//! The reads are `store::insight`'s; keys go through the same [`KeyStore`] calls and role
//! check ([`KEY_ADMINS`]) as `/api/v1/keys`.
//!
//! [`KeyStore`]: crate::access::KeyStore

use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{handler, Body, Request, Response};

use super::page;
use super::session::Session;
use super::ConsoleState;
use crate::access::{Role, KEY_ADMINS, OPS_ROLES};
use crate::store::insight::{audit_log, dead_letters, stream_stats, AuditFilter};

/// Dead-letter entries shown (newest first).
const DEAD_LETTERS_SHOWN: usize = 20;
/// Audit records per page, and records read at most to fill one.
const AUDIT_PAGE: usize = 50;
const AUDIT_SCAN: usize = 20_000;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct OpsQuery {
    #[serde(flatten)]
    audit: AuditFilter,
    /// Audit cursor: records older than this id.
    before: String,
    /// The key just revoked (after the revoke form), for the notice.
    revoked: String,
}

fn storage_down(
    state: &ConsoleState,
    session: &Session,
    op: &str,
    e: &redis::RedisError,
) -> Response {
    page::unavailable(
        &state.templates,
        state.page(session, "Operations", "/operations"),
        op,
        e,
    )
}

/// `GET /operations?action=&key=&role=&tenant=&subject=&before=`.
#[handler]
pub async fn operations_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    query: Query<OpsQuery>,
) -> Response {
    let session = match state.require(req, OPS_ROLES).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let app = &state.app;
    let mut conn = app.redis.clone();
    let streams = match stream_stats(&mut conn, &app.streams()).await {
        Ok(s) => s,
        Err(e) => return storage_down(&state, &session, "ops-streams", &e),
    };
    let (dead_count, dead) = match dead_letters(&mut conn, &app.keys, DEAD_LETTERS_SHOWN).await {
        Ok(d) => d,
        Err(e) => return storage_down(&state, &session, "ops-dead-letters", &e),
    };
    let keys = match app.key_store.list(&mut conn).await {
        Ok(k) => k,
        Err(e) => return storage_down(&state, &session, "ops-keys", &e),
    };
    let OpsQuery {
        audit,
        before,
        revoked,
    } = query.0;
    let before = Some(before.trim()).filter(|b| !b.is_empty());
    let (records, next) =
        match audit_log(&mut conn, &app.keys, &audit, before, AUDIT_PAGE, AUDIT_SCAN).await {
            Ok(a) => a,
            Err(e) => return storage_down(&state, &session, "ops-audit", &e),
        };
    let next_query = next.map(|n| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("action", &audit.action)
            .append_pair("key", &audit.key)
            .append_pair("role", &audit.role)
            .append_pair("tenant", &audit.tenant)
            .append_pair("subject", &audit.subject)
            .append_pair("before", &n)
            .finish()
    });
    let roles: Vec<&str> = [Role::Support, Role::ClientAdmin, Role::Operator]
        .iter()
        .map(|r| r.as_str())
        .collect();
    state.page(&session, "Operations", "/operations").render(
        &state.templates,
        StatusCode::OK,
        "operations.html",
        context! {
            streams => Serde(&streams),
            dead_count,
            dead => Serde(&dead),
            keys => Serde(&keys),
            roles,
            audit => Serde(&records),
            filter => Serde(&audit),
            next_query,
            revoked => Some(revoked).filter(|r| !r.is_empty()),
        },
    )
}

/// `POST /operations/keys`: creates a key and shows its token once (this answer only).
#[handler]
pub async fn create_key(req: &Request, state: Data<&Arc<ConsoleState>>, body: Body) -> Response {
    let session = match state.require(req, KEY_ADMINS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = match state.checked_form(req, &session, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let page = state.page(&session, "New API key", "/operations");
    let t = &state.templates;
    let Some(role) = form.get("role").and_then(|r| Role::parse(r)) else {
        return page.render(
            t,
            StatusCode::BAD_REQUEST,
            "error.html",
            context! { heading => "Not done", message => "Choose a role: support, client-admin or operator." },
        );
    };
    let tenant = form
        .get("tenant")
        .map(|t| t.trim())
        .filter(|t| !t.is_empty());
    let mut conn = state.app.redis.clone();
    match state.app.key_store.create(&mut conn, role, tenant).await {
        Err(e) => page.render(
            t,
            StatusCode::BAD_REQUEST,
            "error.html",
            context! { heading => "Not done", message => e.to_string() },
        ),
        Ok(Err(e)) => page::unavailable(t, page, "create-key", &e),
        Ok(Ok((token, key))) => {
            tracing::info!(who = %session.who, key = %key.id, role = %key.role, "API key created from the console");
            page.render(
                t,
                StatusCode::CREATED,
                "key_created.html",
                context! { token, key => Serde(&key) },
            )
        }
    }
}

/// `POST /operations/keys/:id/revoke`: after the confirmation, with the CSRF token.
#[handler]
pub async fn revoke_key(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    id: Path<String>,
    body: Body,
) -> Response {
    let session = match state.require(req, KEY_ADMINS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = state.checked_form(req, &session, body).await {
        return r;
    }
    let mut conn = state.app.redis.clone();
    match state.app.key_store.revoke(&mut conn, &id).await {
        Ok(true) => {
            tracing::info!(who = %session.who, key = %id.0, "API key revoked from the console");
            page::see_other(&format!("{}/operations?revoked={}#keys", state.base, id.0))
        }
        Ok(false) => page::not_found(
            &state.templates,
            state.page(&session, "Operations", "/operations"),
            &format!("no key `{}`", id.0),
        ),
        Err(e) => storage_down(&state, &session, "revoke-key", &e),
    }
}
