//! The Users and User pages (filled in next).

use std::sync::Arc;

use minijinja::context;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};

use super::ConsoleState;
use crate::access::Role;

const READERS: &[Role] = &[Role::Support, Role::ClientAdmin];

#[handler]
pub async fn users_page(req: &Request, state: Data<&Arc<ConsoleState>>) -> Response {
    let session = match state.require(req, READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    state.page(&session, "Users", "/users").render(
        &state.templates,
        StatusCode::OK,
        "users.html",
        context! {},
    )
}

#[handler]
pub async fn user_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    id: Path<String>,
) -> Response {
    let _ = id;
    match state.require(req, READERS).await {
        Ok(s) => super::page::not_found(
            &state.templates,
            state.page(&s, "Not found", "/users"),
            "No such user.",
        ),
        Err(r) => r,
    }
}

#[handler]
pub async fn status_fragment(req: &Request, state: Data<&Arc<ConsoleState>>) -> Response {
    match state.require(req, READERS).await {
        Ok(_) => Response::builder().status(StatusCode::NOT_FOUND).finish(),
        Err(r) => r,
    }
}

#[handler]
pub async fn run_action(req: &Request, state: Data<&Arc<ConsoleState>>, body: Body) -> Response {
    let session = match state.require(req, READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = super::read_form(body).await;
    if let Err(r) = state.check_csrf(req, &session, &form) {
        return r;
    }
    super::page::not_found(
        &state.templates,
        state.page(&session, "Not found", "/users"),
        "No such user.",
    )
}
