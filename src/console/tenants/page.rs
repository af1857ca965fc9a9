//! `GET /tenants/:tenant` (groups, rule, installations, user counts, last apply) and its drift
//! fragment, which the page loads once it is shown.

use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Request, Response};
use serde::Serialize;

use super::shared::{
    is_writer, open_tenant, refusal, tenant_not_found, COUNT_BUDGET, TENANT_READERS,
};
use super::version::doc_version;
use super::views::{drift_words, ApplyView};
use crate::console::users::error_parts;
use crate::console::{page, ConsoleState};
use crate::domain::tenant::TenantId;
use crate::http::tenants::{plan_steps, tenant_record};
use crate::projection::census::tenant_counts;
use crate::tenants::doc::Names;
use crate::tenants::engine::Action;

/// One installation as the tenant page lists it.
#[derive(Debug, Serialize)]
struct InstallationRow {
    name: String,
    kind: String,
    app_id: Option<String>,
    redirect_uris: Vec<String>,
}

/// `GET /tenants/:tenant`: groups, rule, installations, users, last apply, drift.
#[handler]
pub async fn tenant_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    tenant: Path<String>,
) -> Response {
    let session = match state.require(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(t) = TenantId::parse(&tenant) else {
        return tenant_not_found(&state, &session);
    };
    let t = t.as_str();
    let record = match tenant_record(&state.app, &session.principal, t).await {
        Ok(r) => r,
        Err(e) => return refusal(&state, &session, "Tenant", &e),
    };
    let mut conn = state.app.redis.clone();
    let users = match tenant_counts(&mut conn, &state.app.keys, t, COUNT_BUDGET).await {
        Ok(c) => c,
        Err(e) => {
            return page::unavailable(
                &state.templates,
                state.page(&session, "Tenants", "/tenants"),
                "tenant-counts",
                &e,
            )
        }
    };
    let names = Names::new(t);
    let installations: Vec<InstallationRow> = record
        .doc
        .installations
        .iter()
        .map(|(name, inst)| InstallationRow {
            name: name.clone(),
            kind: inst.kind.clone(),
            app_id: record.ids.get(&format!("app:{name}")).cloned(),
            redirect_uris: inst.redirect_uris.clone(),
        })
        .collect();
    let busy = record.state.as_deref() == Some("applying");
    let title = format!("Tenant {t}");
    state.page(&session, title, "/tenants").render(
        &state.templates,
        StatusCode::OK,
        "tenant.html",
        context! {
            tenant => t,
            display_name => record.doc.display_name,
            tenant_state => record.state,
            updated => record.updated,
            busy,
            groups => vec![
                context! { role => "Users", name => names.users_group(), id => record.ids.get("group:users") },
                context! { role => "Client admins", name => names.admins_group(), id => record.ids.get("group:admins") },
            ],
            rule => context! { name => names.rule(), id => record.ids.get("rule") },
            installations => Serde(&installations),
            users => Serde(&users),
            last_apply => record.last_apply.as_ref().map(|a| Serde(ApplyView::from(a))),
            may_write => is_writer(&session),
        },
    )
}

/// `GET /tenants/:tenant/drift`: the drift section of the tenant page, loaded by the page
/// once it is shown (htmx, `hx-trigger="load"`), so the page itself never waits for Okta.
/// Drift is the plan of the declared state against what Okta has now (reads only): its steps
/// that are not `unchanged`, in words. A failed read is said, not hidden. The group rule's
/// status comes along (out of band, into the rule section).
#[handler]
pub async fn drift_fragment(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    tenant: Path<String>,
) -> Response {
    let session = match open_tenant(&state, req, TENANT_READERS, &tenant).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let record = match tenant_record(&state.app, &session.principal, &tenant).await {
        Ok(r) => r,
        Err(e) => return refusal(&state, &session, "Tenant", &e),
    };
    let (plan, plan_error) = match plan_steps(&state.app, &record.tenant, &record.doc).await {
        Ok(steps) => (Some(steps), None),
        Err(e) => (None, Some(error_parts(&e).1)),
    };
    let drift: Option<Vec<String>> = plan.as_ref().map(|steps| {
        steps
            .iter()
            .filter(|s| s.action != Action::Unchanged)
            .map(drift_words)
            .collect()
    });
    let rule_status = plan.as_ref().and_then(|steps| {
        let s = steps.iter().find(|s| s.key == "rule:activate")?;
        Some(match (s.action, s.okta_id.is_some()) {
            (Action::Unchanged, _) => "ACTIVE",
            (_, true) => "INACTIVE",
            (_, false) => "missing",
        })
    });
    state.templates.fragment(
        "tenant_drift.html",
        context! {
            page => context! { base => state.base.clone(), csrf => session.csrf.clone() },
            tenant => &record.tenant,
            drift,
            plan_error,
            rule_status,
            busy => record.state.as_deref() == Some("applying"),
            doc_json => serde_json::to_string(&record.doc).unwrap_or_default(),
            base => doc_version(&record.doc),
            may_write => is_writer(&session),
        },
    )
}
