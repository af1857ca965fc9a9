//! Rendering: the templates (files under `console/templates/`, embedded at build time), the
//! [`Page`] every full page is rendered with (layout, navigation, CSRF token), and the answers
//! every handler shares (redirects, 403/404 pages).
//!
//! A new page is a template that `{% extends "layout.html" %}` and a handler that calls
//! [`Page::render`]; an htmx fragment is a template without the layout, rendered with
//! [`Templates::fragment`].

use minijinja::{context, Environment, Value};
use poem::http::{header, StatusCode};
use poem::Response;
use rust_embed::RustEmbed;
use serde::Serialize;

use super::session::Session;
use crate::access::Role;

#[derive(RustEmbed)]
#[folder = "console/templates/"]
struct TemplateFiles;

/// The templates, loaded once.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_loader(|name| {
            Ok(TemplateFiles::get(name).map(|f| String::from_utf8_lossy(&f.data).into_owned()))
        });
        // Auto-escaping is on for `.html` (minijinja's default); undefined values are errors,
        // so a typo in a template fails its test instead of rendering blank.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        Self { env }
    }

    /// Renders `name` with `ctx`; a template error is logged and becomes a 500 page.
    pub fn render(&self, status: StatusCode, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => html_response(status, html),
            Err(e) => {
                tracing::error!(template = name, error = %e, "console template failed");
                html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!doctype html><title>Error</title><h1>Something went wrong</h1>".into(),
                )
            }
        }
    }

    /// An htmx fragment (no layout), 200.
    pub fn fragment(&self, name: &str, ctx: Value) -> Response {
        self.render(StatusCode::OK, name, ctx)
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(html)
}

/// One entry of the navigation.
#[derive(Debug, Serialize)]
pub struct NavItem {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

/// What the layout needs on every page.
#[derive(Debug, Serialize)]
pub struct Page {
    /// The `<title>` and `<h1>`.
    pub title: String,
    /// Where the console is mounted (`console.path`): every link starts with it.
    pub base: String,
    /// Who is signed in (`None` on the sign-in pages).
    pub who: Option<String>,
    pub role: Option<&'static str>,
    pub tenant: Option<String>,
    /// The session's CSRF token, for forms (`<input name="csrf">`) and htmx (a header).
    pub csrf: String,
    pub nav: Vec<NavItem>,
    /// Asset URLs with a content hash, cached for a year.
    pub assets: super::assets::AssetUrls,
}

/// The sections a role may open, in navigation order: (path under the base, label, roles).
/// A section another helper adds goes here too, so the navigation stays one list.
pub const SECTIONS: &[(&str, &str, &[Role])] = &[
    ("/users", "Users", &[Role::Support, Role::ClientAdmin]),
    // The roles of `jobs::service::JOB_RUNNERS`: support keys run no jobs in the API either.
    ("/jobs", "Jobs", &[Role::ClientAdmin, Role::Operator]),
    (
        "/tenants",
        "Tenants",
        &[Role::Support, Role::ClientAdmin, Role::Operator],
    ),
    ("/reports", "Reports", &[Role::Operator]),
    ("/operations", "Operations", &[Role::Operator]),
];

impl Page {
    /// A page for a signed-in session; `current` is the section path it belongs to.
    pub fn new(base: &str, session: &Session, title: impl Into<String>, current: &str) -> Self {
        let role = session.principal.role;
        Self {
            title: title.into(),
            base: base.to_owned(),
            who: Some(session.who.clone()),
            role: Some(role.as_str()),
            tenant: session.principal.tenant.clone(),
            csrf: session.csrf.clone(),
            nav: SECTIONS
                .iter()
                .filter(|(_, _, roles)| roles.contains(&role))
                .map(|(path, label, _)| NavItem {
                    href: format!("{base}{path}"),
                    label,
                    current: *path == current,
                })
                .collect(),
            assets: super::assets::urls(base),
        }
    }

    /// A page for someone not signed in (sign-in, no access).
    pub fn anonymous(base: &str, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            base: base.to_owned(),
            who: None,
            role: None,
            tenant: None,
            csrf: String::new(),
            nav: vec![],
            assets: super::assets::urls(base),
        }
    }

    /// Renders `template` with `page` and the page's own values in `ctx` (a map).
    pub fn render(self, t: &Templates, status: StatusCode, template: &str, ctx: Value) -> Response {
        t.render(
            status,
            template,
            context! { page => minijinja::value::Serde(&self), ..ctx },
        )
    }
}

/// 303 to `location` (after a POST, and to the sign-in page).
pub fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

/// The page for "this is not there (for you)": the same for a missing user and one of
/// another tenant, as the API's 404.
pub fn not_found(t: &Templates, page: Page, what: &str) -> Response {
    page.render(
        t,
        StatusCode::NOT_FOUND,
        "error.html",
        context! { heading => "Not found", message => what },
    )
}

/// The page for a refused request (role, CSRF).
pub fn forbidden(t: &Templates, page: Page, message: &str) -> Response {
    page.render(
        t,
        StatusCode::FORBIDDEN,
        "error.html",
        context! { heading => "Not allowed", message => message },
    )
}

/// The page for a failure that is not the person's fault (Redis down…); the cause is logged.
pub fn unavailable(t: &Templates, page: Page, what: &str, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, what, "console request failed");
    page.render(
        t,
        StatusCode::SERVICE_UNAVAILABLE,
        "error.html",
        context! { heading => "Temporarily unavailable", message => "Storage could not be reached; try again shortly." },
    )
}
