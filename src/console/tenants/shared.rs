//! What every Tenants page shares: who opens them, the user-count budget, and the answers for
//! a missing tenant and for the API's refusals (as pages).

use minijinja::context;
use poem::http::StatusCode;
use poem::{Request, Response};

use crate::access::Role;
use crate::console::page;
use crate::console::session::Session;
use crate::console::users::error_parts;
use crate::console::ConsoleState;
use crate::domain::tenant::TenantId;
use crate::http::error::HttpError;
use crate::http::tenants::{READERS, WRITERS};

/// Who opens the Tenants pages (a client admin only its own tenant): the API's readers.
pub(super) const TENANT_READERS: &[Role] = READERS;

/// Users read per tenant for the split by status.
pub(super) const COUNT_BUDGET: usize = 5_000;

/// The one "not found" of the tenant pages, whatever the reason (missing, another tenant's).
pub(super) fn tenant_not_found(state: &ConsoleState, session: &Session) -> Response {
    page::not_found(
        &state.templates,
        state.page(session, "Not found", "/tenants"),
        "There is no such tenant.",
    )
}

/// An API refusal as a page: 404 reads like a missing tenant, the others say what happened.
pub(super) fn refusal(
    state: &ConsoleState,
    session: &Session,
    heading: &str,
    e: &HttpError,
) -> Response {
    let (status, message) = error_parts(e);
    if status == StatusCode::NOT_FOUND {
        return tenant_not_found(state, session);
    }
    let heading = if status == StatusCode::FORBIDDEN {
        "Not allowed"
    } else {
        heading
    };
    state.page(session, heading, "/tenants").render(
        &state.templates,
        status,
        "error.html",
        context! { heading => heading, message => message },
    )
}

pub(super) fn is_writer(session: &Session) -> bool {
    WRITERS.contains(&session.principal.role)
}

/// The session of a page about one tenant: signed in with one of `roles`, and `tenant` a valid
/// tenant id. Keys are built from valid ids only; anything else reads like a missing tenant.
/// (Whether the caller may see *this* tenant is decided by the API functions each page calls.)
pub(super) async fn open_tenant(
    state: &ConsoleState,
    req: &Request,
    roles: &[Role],
    tenant: &str,
) -> Result<Session, Response> {
    let session = state.require(req, roles).await?;
    if TenantId::parse(tenant).is_err() {
        return Err(tenant_not_found(state, &session));
    }
    Ok(session)
}
