//! One installation: `GET /tenants/:tenant/installations/:installation` (its config with a
//! copy button) and `POST …/rotate-secret` (a new client secret, shown on that answer only;
//! each rotate form is good for one rotation).

use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};

use super::shared::{open_tenant, refusal, TENANT_READERS};
use crate::console::session::Session;
use crate::console::{page, ConsoleState};
use crate::domain::tenant::TenantId;
use crate::http::error::HttpError;
use crate::http::tenants::{check_scope, rotate_installation_secret, tenant_record};

fn installation_not_found(state: &ConsoleState, session: &Session) -> Response {
    page::not_found(
        &state.templates,
        state.page(session, "Not found", "/tenants"),
        "There is no such installation.",
    )
}

/// `GET /tenants/:tenant/installations/:installation`: the config products read, with a
/// copy button, and secret rotation.
#[handler]
pub async fn installation_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    Path((tenant, installation)): Path<(String, String)>,
) -> Response {
    let session = match open_tenant(&state, req, TENANT_READERS, &tenant).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let record = match tenant_record(&state.app, &session.principal, &tenant).await {
        Ok(r) => r,
        Err(e) => return refusal(&state, &session, "Installation", &e),
    };
    let declared = record.doc.installations.get(&installation);
    let config = record.configs.get(&installation);
    if declared.is_none() && config.is_none() {
        return installation_not_found(&state, &session);
    }
    let config_json = config.map(|c| serde_json::to_string_pretty(c).unwrap_or_default());
    state
        .page(
            &session,
            format!("Installation {installation} of {}", record.tenant),
            "/tenants",
        )
        .render(
            &state.templates,
            StatusCode::OK,
            "installation.html",
            context! {
                tenant => &record.tenant,
                installation => &installation,
                declared => declared.map(Serde),
                config => config.map(Serde),
                config_json,
                app_id => record.ids.get(&format!("app:{installation}")),
                // The rotate form is good for one rotation: sent again (a reload, Back), it
                // does not rotate again and kill the secret just shown.
                once => crate::console::session::random_token(),
            },
        )
}

/// `POST /tenants/:tenant/installations/:installation/rotate-secret`: the new secret, shown
/// on this answer only.
#[handler]
pub async fn rotate_secret(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    Path((tenant, installation)): Path<(String, String)>,
    body: Body,
) -> Response {
    let session = match state.require(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Keys are built from valid tenant ids only; anything else reads like a missing tenant.
    if TenantId::parse(&tenant).is_err() {
        return installation_not_found(&state, &session);
    }
    let fields = match state.checked_form(req, &session, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    // Another tenant's installation reads as missing before anything is looked at or kept.
    if check_scope(&session.principal, &tenant).is_err() {
        return installation_not_found(&state, &session);
    }
    let once = fields.get("once").map(String::as_str).unwrap_or("");
    if once.len() != 64 || !once.bytes().all(|b| b.is_ascii_hexdigit()) {
        return refusal(
            &state,
            &session,
            "Not rotated",
            &HttpError::bad_request(
                "this rotate form is outdated; nothing was rotated. Open the installation page again.",
            ),
        );
    }
    let once_key = state
        .app
        .keys
        .console_once(&crate::console::session::digest(&format!(
            "{}:{once}",
            session.digest
        )));
    let mut conn = state.app.redis.clone();
    let claimed: Result<Option<String>, _> = redis::cmd("SET")
        .arg(&once_key)
        .arg("1")
        .arg("NX")
        .arg("EX")
        .arg(86_400)
        .query_async(&mut conn)
        .await;
    match claimed {
        Ok(Some(_)) => {}
        Ok(None) => {
            let heading = "Already rotated";
            return state.page(&session, heading, "/tenants").render(
                &state.templates,
                StatusCode::CONFLICT,
                "error.html",
                context! { heading, message => "This rotate form was already sent: the secret was rotated then and shown on that answer only. Nothing was rotated now. To rotate again, open the installation page." },
            );
        }
        Err(e) => {
            return page::unavailable(
                &state.templates,
                state.page(&session, "Not rotated", "/tenants"),
                "console-once",
                &e,
            )
        }
    }
    let rotated =
        rotate_installation_secret(&state.app, &session.principal, &tenant, &installation).await;
    if rotated.is_err() {
        // Nothing was rotated: the same form may be sent again.
        let _: Result<(), _> = redis::AsyncCommands::del(&mut conn, &once_key).await;
    }
    match rotated {
        Ok(answer) => state
            .page(&session, "New client secret", "/tenants")
            .render(
                &state.templates,
                StatusCode::OK,
                "secret_rotated.html",
                context! {
                    tenant => &tenant,
                    installation => &installation,
                    client_id => answer["client_id"].as_str(),
                    secret => answer["client_secret"].as_str(),
                },
            ),
        Err(HttpError::NotFound(_)) => installation_not_found(&state, &session),
        Err(e) => refusal(&state, &session, "Not rotated", &e),
    }
}
