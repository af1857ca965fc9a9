//! Signing in and out: the sign-in page, the Okta OIDC round trip ([`super::oidc`]), the
//! `dev` one-click sign-in, one-time links ([`super::links`]) and sign-out.

use std::sync::Arc;

use minijinja::context;
use poem::http::{header, StatusCode};
use poem::web::{Data, Path, Query};
use poem::{handler, Body, Request, Response};
use serde::Deserialize;

use super::page::{self, Page};
use super::{read_form, ConsoleState};
use crate::access::Role;
use crate::domain::tenant::TenantId;

#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    expired: Option<String>,
    error: Option<String>,
}

#[handler]
pub async fn sign_in_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    q: Query<SignInQuery>,
) -> Response {
    if let Ok(Some(_)) = state.session(req).await {
        return page::see_other(&format!("{}/", state.base));
    }
    let notice = match (q.expired.is_some(), q.error.as_deref()) {
        (_, Some(e)) => Some(e.to_owned()),
        (true, None) => Some("Your session has ended. Please sign in again.".to_owned()),
        _ => None,
    };
    Page::anonymous(&state.base, "Sign in").render(
        &state.templates,
        StatusCode::OK,
        "sign_in.html",
        context! {
            notice => notice,
            okta => state.oidc.is_some(),
            dev => state.app.settings.console.dev_sign_in,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    login_hint: Option<String>,
}

fn sign_in_error(state: &ConsoleState, message: &str) -> Response {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("error", message)
        .finish();
    page::see_other(&format!("{}/sign-in?{q}", state.base))
}

#[handler]
pub async fn start_oidc(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    q: Query<StartQuery>,
) -> Response {
    let Some(oidc) = &state.oidc else {
        return sign_in_error(
            &state,
            "Okta sign-in is not configured (console.client_id).",
        );
    };
    let redirect_uri = format!("{}/auth/callback", state.public_base(req));
    let mut conn = state.app.redis.clone();
    match oidc
        .start(
            &mut conn,
            &state.app.keys,
            &redirect_uri,
            q.login_hint.as_deref(),
        )
        .await
    {
        Ok(url) => page::see_other(&url),
        Err(e) => {
            tracing::error!(error = %e, "console sign-in could not start");
            sign_in_error(&state, "Okta could not be reached; try again shortly.")
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[handler]
pub async fn oidc_callback(state: Data<&Arc<ConsoleState>>, q: Query<CallbackQuery>) -> Response {
    let Some(oidc) = &state.oidc else {
        return sign_in_error(
            &state,
            "Okta sign-in is not configured (console.client_id).",
        );
    };
    if let Some(e) = &q.error {
        let d = q.error_description.as_deref().unwrap_or("");
        return sign_in_error(&state, &format!("Okta refused the sign-in: {e} {d}"));
    }
    let (Some(code), Some(st)) = (&q.code, &q.state) else {
        return sign_in_error(
            &state,
            "The sign-in answer from Okta was incomplete; start again.",
        );
    };
    let mut conn = state.app.redis.clone();
    let signed_in = match oidc.finish(&mut conn, &state.app.keys, st, code).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in refused");
            return sign_in_error(&state, "The sign-in could not be completed; start again.");
        }
    };
    let Some((role, tenant)) =
        super::oidc::role_from_groups(&state.app.settings.console.roles, &signed_in.groups)
    else {
        tracing::info!(who = %signed_in.who, "console sign-in without a mapped group");
        return Page::anonymous(&state.base, "No access").render(
            &state.templates,
            StatusCode::FORBIDDEN,
            "no_access.html",
            context! { who => signed_in.who },
        );
    };
    start_session(&state, role, tenant, &signed_in.who).await
}

/// Creates the session and sends the browser to the console's start page with its cookie.
pub async fn start_session(
    state: &ConsoleState,
    role: Role,
    tenant: Option<String>,
    who: &str,
) -> Response {
    let mut conn = state.app.redis.clone();
    match state.sessions.create(&mut conn, role, tenant, who).await {
        Ok((token, _)) => {
            tracing::info!(%who, role = %role, "console session started");
            let cookie = super::session::set_cookie(
                &state.base,
                Some(&token),
                state.app.settings.console.absolute_timeout_secs,
                state.secure_cookies,
            );
            let mut resp = page::see_other(&format!("{}/", state.base));
            resp.headers_mut().insert(
                header::SET_COOKIE,
                cookie.parse().expect("cookie is a header value"),
            );
            resp
        }
        Err(e) => page::unavailable(
            &state.templates,
            Page::anonymous(&state.base, "Unavailable"),
            "console-session-create",
            &e,
        ),
    }
}

/// `okta-adapter dev` only: sign in as any role with one click.
#[handler]
pub async fn dev_sign_in(state: Data<&Arc<ConsoleState>>, body: Body) -> Response {
    if !state.app.settings.console.dev_sign_in {
        return page::forbidden(
            &state.templates,
            Page::anonymous(&state.base, "Not allowed"),
            "Local sign-in is only available in `okta-adapter dev`.",
        );
    }
    let form = read_form(body).await;
    let role = form.get("role").and_then(|r| Role::parse(r));
    let tenant = form.get("tenant").filter(|t| !t.is_empty());
    let (role, tenant) = match (role, tenant) {
        (Some(Role::ClientAdmin), Some(t)) => match TenantId::parse(t) {
            Ok(t) => (Role::ClientAdmin, Some(t.into_string())),
            Err(e) => return sign_in_error(&state, &format!("tenant: {e}")),
        },
        (Some(Role::ClientAdmin), None) => {
            return sign_in_error(&state, "A client admin needs a tenant.")
        }
        (Some(r), _) => (r, None),
        (None, _) => return sign_in_error(&state, "Pick a role."),
    };
    start_session(&state, role, tenant, &format!("dev-{}", role.as_str())).await
}

#[handler]
pub async fn sign_out(req: &Request, state: Data<&Arc<ConsoleState>>, body: Body) -> Response {
    let session = match state.session(req).await {
        Ok(Some(s)) => s,
        Ok(None) => return page::see_other(&format!("{}/sign-in", state.base)),
        Err(resp) => return resp,
    };
    if let Err(r) = state.checked_form(req, &session, body).await {
        return r;
    }
    let mut conn = state.app.redis.clone();
    if let Err(e) = state.sessions.destroy(&mut conn, &session).await {
        return page::unavailable(
            &state.templates,
            Page::anonymous(&state.base, "Unavailable"),
            "console-sign-out",
            &e,
        );
    }
    let mut resp = page::see_other(&format!("{}/sign-in", state.base));
    resp.headers_mut().insert(
        header::SET_COOKIE,
        super::session::set_cookie(&state.base, None, 0, state.secure_cookies)
            .parse()
            .expect("cookie is a header value"),
    );
    resp
}

/// A one-time link shows a button; only the POST spends it, so a mail scanner that fetches
/// the link does not use it up.
#[handler]
pub async fn link_page(state: Data<&Arc<ConsoleState>>, token: Path<String>) -> Response {
    Page::anonymous(&state.base, "Sign in with a one-time link").render(
        &state.templates,
        StatusCode::OK,
        "link.html",
        context! { token => token.0 },
    )
}

#[handler]
pub async fn follow_link(state: Data<&Arc<ConsoleState>>, body: Body) -> Response {
    let form = read_form(body).await;
    let token = form.get("token").map(String::as_str).unwrap_or("");
    let mut conn = state.app.redis.clone();
    match super::links::redeem(&mut conn, &state.app.keys, token).await {
        Ok(Some(link)) => {
            start_session(
                &state,
                Role::ClientAdmin,
                Some(link.tenant.clone()),
                &format!("link:{}", link.tenant),
            )
            .await
        }
        Ok(None) => sign_in_error(
            &state,
            "This sign-in link has been used or has expired. Ask your contact for a new one.",
        ),
        Err(e) => page::unavailable(
            &state.templates,
            Page::anonymous(&state.base, "Unavailable"),
            "console-link",
            &e,
        ),
    }
}
