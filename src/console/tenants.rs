//! The Tenants page: one line per tenant with its users by status. Support staff and operators
//! see every tenant; a client admin only its own (`projection::census::TenantScope`, the same
//! scoping as the users API). Counts read at most [`COUNT_BUDGET`] users per
//! tenant — see `projection::census` — and the page says when a split is partial.

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Request, Response};

use super::page;
use super::ConsoleState;
use crate::access::Role;
use crate::projection::census::tenant_overview;

/// Who opens the Tenants page (a client admin sees only its own line).
pub const TENANT_READERS: &[Role] = &[Role::Support, Role::Operator, Role::ClientAdmin];

/// Users read per tenant for the split by status.
const COUNT_BUDGET: usize = 5_000;

/// `GET /tenants`.
#[handler]
pub async fn tenants_page(req: &Request, state: Data<&Arc<ConsoleState>>) -> Response {
    let session = match state.require(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut conn = state.app.redis.clone();
    let tenants =
        match tenant_overview(&mut conn, &state.app.keys, &session.principal, COUNT_BUDGET).await {
            Ok(t) => t,
            Err(e) => {
                return page::unavailable(
                    &state.templates,
                    state.page(&session, "Tenants", "/tenants"),
                    "tenant-overview",
                    &e,
                )
            }
        };
    // One column per status that any visible tenant has, in a stable order.
    let statuses: Vec<String> = tenants
        .iter()
        .flat_map(|t| t.by_status.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    state.page(&session, "Tenants", "/tenants").render(
        &state.templates,
        StatusCode::OK,
        "tenants.html",
        context! {
            tenants => Serde(&tenants),
            statuses,
            budget => COUNT_BUDGET,
        },
    )
}
