//! Answers requests for a role this process does not run (`process.roles`) with a JSON 404
//! that says so, before any handler or authentication runs. Which path belongs to which role is
//! [`crate::config::roles::ProcessRole::of_path`]; the console (or any later surface) is gated by
//! its path prefix there, with no code of its own.

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::config::roles::{ProcessRole, Roles};

pub struct RoleGate {
    roles: Roles,
    console_path: String,
}

impl RoleGate {
    /// `console_path`: where the console is mounted (`console.path`).
    pub fn new(roles: Roles, console_path: String) -> Self {
        Self {
            roles,
            console_path,
        }
    }
}

impl<E: Endpoint> Middleware<E> for RoleGate {
    type Output = RoleGateEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RoleGateEndpoint {
            inner: ep,
            roles: self.roles.clone(),
            console_path: self.console_path.clone(),
        }
    }
}

pub struct RoleGateEndpoint<E> {
    inner: E,
    roles: Roles,
    console_path: String,
}

impl<E: Endpoint> Endpoint for RoleGateEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        match ProcessRole::of_path_in(req.uri().path(), &self.console_path) {
            Some(role) if !self.roles.runs(role) => Ok(not_served(role, &self.roles)),
            _ => self.inner.call(req).await.map(IntoResponse::into_response),
        }
    }
}

fn not_served(role: ProcessRole, roles: &Roles) -> Response {
    let body = serde_json::json!({
        "error": "not_found",
        "message": format!(
            "this process does not run the `{role}` role (it runs {roles}; process.roles)"
        ),
    });
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .content_type("application/json")
        .body(body.to_string())
}
