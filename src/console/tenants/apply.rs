//! The apply and the delete: `POST /tenants/:tenant/apply` queues the planned document,
//! `POST /tenants/:tenant/delete` the teardown once the tenant's name is typed, and the
//! apply's page with the progress fragment it polls.

use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use serde_json::Value;

use super::shared::{open_tenant, refusal, tenant_not_found, TENANT_READERS};
use super::version::{changed_since, current_version};
use super::views::ApplyView;
use crate::console::{page, ConsoleState};
use crate::domain::tenant::TenantId;
use crate::http::error::HttpError;
use crate::http::tenants::{
    apply_record, check_doc, delete_confirmed, parse_tenant, queue_apply_and_wait, WRITERS,
};
use crate::tenants::doc::TenantDoc;
use crate::tenants::store::{new_apply_id, MODE_DELETE};

/// `POST /tenants/:tenant/apply`: stores the planned document and queues its apply, exactly
/// as `PUT /api/v1/tenants/{tenant}?wait=`; then the apply's page, with the client secrets of
/// the apps it created shown this once.
#[handler]
pub async fn apply_tenant(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    tenant: Path<String>,
    body: Body,
) -> Response {
    let session = match state.require(req, WRITERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let fields = match state.checked_form(req, &session, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let tenant = match parse_tenant(&tenant) {
        Ok(t) => t,
        Err(e) => return refusal(&state, &session, "Not applied", &e),
    };
    let t = tenant.as_str();
    let doc = fields
        .get("doc")
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .ok_or_else(|| HttpError::bad_request("the planned document is missing; plan again"))
        .and_then(|v| TenantDoc::from_json(v).map_err(|e| HttpError::bad_request(e.to_string())))
        .and_then(|d| check_doc(&state.app, &tenant, d));
    let doc = match doc {
        Ok(d) => d,
        Err(e) => return refusal(&state, &session, "Not applied", &e),
    };
    // The plan (or drift re-apply) names the version it was made from; a change since then
    // is refused, not overwritten unseen. (A form without one is outdated or forged.)
    match current_version(&state, t).await {
        Ok(now) if fields.get("base") == Some(&now) => {}
        Ok(_) => return changed_since(&state, &session, t, "plan"),
        Err(e) => return refusal(&state, &session, "Not applied", &e),
    }
    let id = new_apply_id();
    // Waits (bounded) like `PUT …?wait=`, so the client secrets of apps this apply creates reach
    // the person who asked for them: on this answer only, never stored. An apply still running
    // after the wait goes on; the page then follows it live, and an app created later gets its
    // secret by rotation (the finished notice links the installation).
    let applied = queue_apply_and_wait(
        &state.app,
        &session.principal,
        t,
        &id,
        &doc,
        CONSOLE_APPLY_WAIT,
    )
    .await;
    let (record, secrets) = match applied {
        Ok(a) => a,
        Err(e) => return refusal(&state, &session, "Not applied", &e),
    };
    let secrets: Vec<(String, String)> = secrets.into_iter().collect();
    state
        .page(&session, format!("Applying tenant {t}"), "/tenants")
        .render(
            &state.templates,
            StatusCode::OK,
            "tenant_apply.html",
            context! { tenant => t, apply => Serde(ApplyView::from(&record)), secrets },
        )
}

/// Longest the console's Apply answer waits for the apply to end (collecting new apps' client
/// secrets) before it shows the live progress instead.
const CONSOLE_APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /tenants/:tenant/applies/:apply`: the apply's steps, live until it ends.
#[handler]
pub async fn apply_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    Path((tenant, apply)): Path<(String, String)>,
) -> Response {
    let session = match open_tenant(&state, req, TENANT_READERS, &tenant).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let record = match apply_record(&state.app, &session.principal, &tenant, &apply).await {
        Ok(a) => a,
        Err(e) => return refusal(&state, &session, "Apply", &e),
    };
    let title = if record.mode == MODE_DELETE {
        format!("Deleting tenant {tenant}")
    } else {
        format!("Applying tenant {tenant}")
    };
    state.page(&session, title, "/tenants").render(
        &state.templates,
        StatusCode::OK,
        "tenant_apply.html",
        context! { tenant => &tenant, apply => Serde(ApplyView::from(&record)) },
    )
}

/// `GET /tenants/:tenant/applies/:apply/progress`: the progress fragment the apply page
/// polls every second; once the apply has ended it no longer asks to be polled.
#[handler]
pub async fn apply_progress(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    Path((tenant, apply)): Path<(String, String)>,
) -> Response {
    let session = match state.require_polling(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Keys are built from valid tenant ids only; anything else reads like a missing tenant.
    if TenantId::parse(&tenant).is_err() {
        return tenant_not_found(&state, &session);
    }
    match apply_record(&state.app, &session.principal, &tenant, &apply).await {
        Ok(record) => state.templates.fragment(
            "tenant_apply_progress.html",
            context! {
                page => context! { base => state.base.clone() },
                tenant => &tenant,
                apply => Serde(ApplyView::from(&record)),
            },
        ),
        Err(e) => refusal(&state, &session, "Apply", &e),
    }
}

/// `POST /tenants/:tenant/delete`: only when the typed name is the tenant's, through the
/// API's DELETE with confirmation; then the teardown's page.
#[handler]
pub async fn delete_tenant(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    tenant: Path<String>,
    body: Body,
) -> Response {
    let session = match open_tenant(&state, req, WRITERS, &tenant).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let fields = match state.checked_form(req, &session, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let typed = fields.get("confirm").map(|c| c.trim()).unwrap_or("");
    match delete_confirmed(&state.app, &session.principal, &tenant, Some(typed)).await {
        Ok(apply) => page::see_other(&format!(
            "{}/tenants/{}/applies/{}",
            state.base, apply.tenant, apply.id
        )),
        Err(HttpError::BadRequest(_)) => {
            let message = if typed.is_empty() {
                format!(
                    "To delete tenant {}, type its name. Nothing was deleted.",
                    tenant.0
                )
            } else {
                format!(
                    "You typed “{typed}”, which is not the tenant's name. To delete tenant {}, type {} exactly. Nothing was deleted.",
                    tenant.0, tenant.0
                )
            };
            state.page(&session, "Not deleted", "/tenants").render(
                &state.templates,
                StatusCode::BAD_REQUEST,
                "tenant_not_deleted.html",
                context! { tenant => &tenant.0, message },
            )
        }
        Err(e) => refusal(&state, &session, "Not deleted", &e),
    }
}
