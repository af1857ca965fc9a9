//! `GET /tenants`: the Tenants list, declared tenants merged with their users by status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Request, Response};
use serde::Serialize;

use super::shared::{is_writer, COUNT_BUDGET, TENANT_READERS};
use crate::console::{page, ConsoleState};
use crate::projection::census::{tenant_overview, TenantCounts, TenantScope};
use crate::tenants::doc::TenantDoc;
use crate::tenants::store::TenantStore;

/// One line of the Tenants list: a declared tenant, a tenant with users, or both.
#[derive(Debug, Serialize)]
struct ListRow {
    tenant: String,
    declared: bool,
    display_name: String,
    state: String,
    installations: Vec<String>,
    counts: Option<TenantCounts>,
}

/// `GET /tenants`: declared tenants and tenants with users, merged by name.
#[handler]
pub async fn tenants_page(req: &Request, state: Data<&Arc<ConsoleState>>) -> Response {
    let session = match state.require(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        page::unavailable(
            &state.templates,
            state.page(&session, "Tenants", "/tenants"),
            what,
            e,
        )
    };
    let mut conn = state.app.redis.clone();
    let counts =
        match tenant_overview(&mut conn, &state.app.keys, &session.principal, COUNT_BUDGET).await {
            Ok(t) => t,
            Err(e) => return unavailable("tenant-overview", &e),
        };
    let store = TenantStore::new(state.app.keys.clone());
    let declared = match store.list(&mut conn).await {
        Ok(l) => l,
        Err(e) => return unavailable("tenant-list", &e),
    };
    // The same scope as the counts (and as the API): a client admin only its own tenant.
    let declared: Vec<String> = match TenantScope::of(&session.principal) {
        TenantScope::All => declared,
        TenantScope::Only(t) => declared.into_iter().filter(|d| *d == t).collect(),
    };
    let mut rows: BTreeMap<String, ListRow> = BTreeMap::new();
    for t in declared {
        let h = match store.tenant(&mut conn, &t).await {
            Ok(h) => h,
            Err(e) => return unavailable("tenant-read", &e),
        };
        let doc: Option<TenantDoc> = h.get("doc").and_then(|d| serde_json::from_str(d).ok());
        rows.insert(
            t.clone(),
            ListRow {
                tenant: t,
                declared: doc.is_some(),
                display_name: doc
                    .as_ref()
                    .map(|d| d.display_name.clone())
                    .unwrap_or_default(),
                state: h.get("state").cloned().unwrap_or_default(),
                installations: doc
                    .map(|d| d.installations.into_keys().collect())
                    .unwrap_or_default(),
                counts: None,
            },
        );
    }
    for c in counts {
        let name = c.tenant.clone();
        rows.entry(name.clone())
            .or_insert_with(|| ListRow {
                tenant: name,
                declared: false,
                display_name: String::new(),
                state: String::new(),
                installations: vec![],
                counts: None,
            })
            .counts = Some(c);
    }
    // One column per status that any visible tenant has, in a stable order.
    let statuses: Vec<String> = rows
        .values()
        .filter_map(|r| r.counts.as_ref())
        .flat_map(|c| c.by_status.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let tenants: Vec<ListRow> = rows.into_values().collect();
    state.page(&session, "Tenants", "/tenants").render(
        &state.templates,
        StatusCode::OK,
        "tenants.html",
        context! {
            tenants => Serde(&tenants),
            statuses,
            budget => COUNT_BUDGET,
            may_write => is_writer(&session),
        },
    )
}
