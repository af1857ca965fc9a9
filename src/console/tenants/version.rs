//! The version of a tenant's declared document that a form, plan or re-apply was made from,
//! and the 409 answer when it has changed since: a plan is never applied over a change its
//! author has not seen.

use minijinja::context;
use poem::http::StatusCode;
use poem::Response;

use crate::console::session::Session;
use crate::console::ConsoleState;
use crate::http::error::HttpError;
use crate::http::tenants::stored_doc;
use crate::tenants::doc::TenantDoc;

/// The version of a tenant's declared document that a form, plan or re-apply was made from:
/// the SHA-256 of its JSON, or [`UNDECLARED`]. Every apply names it and is refused (409) when
/// the declared document has changed since (another person, another tab), so a plan is
/// never applied over a change its author has not seen.
pub(super) fn doc_version(doc: &TenantDoc) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        serde_json::to_string(doc).unwrap_or_default().as_bytes(),
    ))
}

/// The version of a tenant that is not declared (a form that creates it).
pub(super) const UNDECLARED: &str = "none";

/// The version of `tenant`'s declared document now.
pub(super) async fn current_version(
    state: &ConsoleState,
    tenant: &str,
) -> Result<String, HttpError> {
    match stored_doc(&state.app, tenant).await {
        Ok(doc) => Ok(doc_version(&doc)),
        Err(HttpError::NotFound(_)) => Ok(UNDECLARED.to_owned()),
        Err(e) => Err(e),
    }
}

/// The answer when the declared document changed after a form or plan was made from it.
pub(super) fn changed_since(
    state: &ConsoleState,
    session: &Session,
    tenant: &str,
    what: &str,
) -> Response {
    let heading = "Changed meanwhile";
    let message = format!(
        "Tenant {tenant} was changed since this {what} was made (by someone else, or in another tab). Nothing was {}. Open the tenant to see its current state, then edit and plan again.",
        if what == "plan" { "applied" } else { "planned" }
    );
    state.page(session, heading, "/tenants").render(
        &state.templates,
        StatusCode::CONFLICT,
        "error.html",
        context! { heading, message },
    )
}
