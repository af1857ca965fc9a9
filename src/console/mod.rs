//! The web console (`/console`, `console.*`): server-rendered pages for support staff, client
//! admins and operators, served by the same binary (issue 14).
//!
//! Pages are minijinja templates (`console/templates/`, one per page plus the htmx fragments),
//! htmx and the console's CSS/JS are embedded files ([`assets`]); nothing is loaded from
//! elsewhere and the Content-Security-Policy allows no inline script or style. People sign in
//! with the Okta org itself ([`oidc`], roles from the ID token's `groups` claim), with a
//! one-time link a support or operator key minted ([`links`]), or, in `okta-adapter dev`, with
//! one click ([`signin`]). A session ([`session`]) carries the JSON API's own
//! [`Principal`](crate::access::Principal), and every page calls the same store and domain
//! functions as the API (scoping, status rules, audit): the console adds forms, not rules.
//!
//! - [`page`] — templates, the [`Page`](page::Page) layout values, shared answers (404/403).
//! - [`users`] — the Users and User pages, the live status fragment and the lifecycle actions.
//! - [`tenants`] — the Tenants list, tenant and installation pages, the create/edit form with
//!   its plan, the apply's live progress and the typed-name delete.

// Handlers answer refusals with a finished page (`Err(Response)`); boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod assets;
pub mod links;
pub mod oidc;
pub mod page;
pub mod session;
pub mod signin;
pub mod users;
// Jobs, Tenants, Reports and Operations pages (console-b).
pub mod jobs;
pub mod operations;
pub mod reports;
pub mod tenants;

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::{header, HeaderValue, StatusCode};
use poem::web::Data;
use poem::{
    get, handler, post, Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
};

use crate::access::Role;
use crate::http::state::AppState;
use page::{Page, Templates};
use session::{Session, SessionStore};

/// Largest form body the console reads (its forms are a few fields).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What every console handler shares.
pub struct ConsoleState {
    /// The API's state: settings, Redis, key store, Okta client, audit.
    pub app: Arc<AppState>,
    /// `console.path`.
    pub base: String,
    pub templates: Templates,
    pub sessions: SessionStore,
    /// `None` when `console.client_id` is empty (no Okta sign-in).
    pub oidc: Option<oidc::Oidc>,
    /// The `Content-Security-Policy` of every answer.
    csp: HeaderValue,
    /// Whether cookies get `Secure` (`console.public_url` is https).
    pub secure_cookies: bool,
}

impl ConsoleState {
    pub fn new(app: Arc<AppState>) -> Arc<Self> {
        let s = &app.settings.console;
        let oidc = oidc::Oidc::from_settings(&app.settings);
        // The sign-in form's redirect goes to the Okta org, and Chromium applies `form-action`
        // to the redirects that follow a form submission.
        let issuer_origin = oidc
            .as_ref()
            .map(|o| o.issuer_origin().to_owned())
            .unwrap_or_default();
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self' {issuer_origin}; frame-ancestors 'none'; \
             frame-src 'self'; base-uri 'none'"
        );
        Arc::new(Self {
            base: s.path.clone(),
            templates: Templates::new(),
            sessions: SessionStore::new(
                app.keys.clone(),
                s.idle_timeout_secs,
                s.absolute_timeout_secs,
            ),
            oidc,
            csp: HeaderValue::from_str(csp.trim()).expect("CSP is ASCII"),
            secure_cookies: s.public_url.starts_with("https://"),
            app,
        })
    }

    /// The session of this request, if it has a live one (this use renews its idle timeout).
    pub async fn session(&self, req: &Request) -> Result<Option<Session>, Response> {
        self.session_with(req, true).await
    }

    async fn session_with(&self, req: &Request, renew: bool) -> Result<Option<Session>, Response> {
        let Some(token) = req
            .headers()
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|c| session::cookie_value(c, session::COOKIE))
        else {
            return Ok(None);
        };
        let mut conn = self.app.redis.clone();
        self.sessions
            .load(&mut conn, token, renew)
            .await
            .map_err(|e| {
                page::unavailable(
                    &self.templates,
                    Page::anonymous(&self.base, "Unavailable"),
                    "console-session",
                    &e,
                )
            })
    }

    /// The session, if its role is one of `roles`. Without a session: to the sign-in page
    /// (htmx requests get `HX-Redirect`, so a polling fragment takes the whole page there).
    /// With another role: the 403 page.
    pub async fn require(&self, req: &Request, roles: &[Role]) -> Result<Session, Response> {
        self.require_with(req, roles, true).await
    }

    /// As [`Self::require`], for a page's background polling (`hx-trigger="every …"`): it
    /// does not count as use, so it does not keep an abandoned page's session alive.
    pub async fn require_polling(
        &self,
        req: &Request,
        roles: &[Role],
    ) -> Result<Session, Response> {
        self.require_with(req, roles, false).await
    }

    async fn require_with(
        &self,
        req: &Request,
        roles: &[Role],
        renew: bool,
    ) -> Result<Session, Response> {
        let Some(session) = self.session_with(req, renew).await? else {
            return Err(self.to_sign_in(req));
        };
        if !roles.contains(&session.principal.role) {
            let page = Page::new(&self.base, &session, "Not allowed", "");
            return Err(page::forbidden(
                &self.templates,
                page,
                &format!(
                    "Your role ({}) cannot open this page.",
                    session.principal.role
                ),
            ));
        }
        Ok(session)
    }

    /// Sends the browser to the sign-in page (expired or missing session).
    pub fn to_sign_in(&self, req: &Request) -> Response {
        let to = format!("{}/sign-in?expired=1", self.base);
        if req.headers().contains_key("hx-request") {
            Response::builder()
                .status(StatusCode::OK)
                .header("HX-Redirect", to)
                .finish()
        } else {
            page::see_other(&to)
        }
    }

    /// Refuses a state-changing request whose CSRF token (form field `csrf`, or header
    /// `X-CSRF-Token` from htmx) is not the session's: the 403 page, nothing changed.
    pub fn check_csrf(
        &self,
        req: &Request,
        session: &Session,
        form: &HashMap<String, String>,
    ) -> Result<(), Response> {
        let presented = form.get("csrf").map(String::as_str).or_else(|| {
            req.headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
        });
        if session.csrf_matches(presented) {
            Ok(())
        } else {
            tracing::info!(who = %session.who, path = %req.uri().path(), "console request without a valid CSRF token refused");
            Err(page::forbidden(
                &self.templates,
                Page::new(&self.base, session, "Not allowed", ""),
                "This form is out of date or was not sent from the console (CSRF check). Nothing was changed. Reload the page and try again.",
            ))
        }
    }

    /// A state-changing form of this session: read (at most [`MAX_FORM_BYTES`]) and
    /// CSRF-checked. A body over the limit is answered as one (413, nothing changed), not
    /// taken for a forged request; an unreadable one is a 400.
    pub async fn checked_form(
        &self,
        req: &Request,
        session: &Session,
        body: Body,
    ) -> Result<HashMap<String, String>, Response> {
        let refused = |status: StatusCode, message: &str| {
            let heading = "Not sent";
            self.page(session, heading, "").render(
                &self.templates,
                status,
                "error.html",
                minijinja::context! { heading, message },
            )
        };
        let fields = match read_form_limited(body).await {
            Ok(f) => f,
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return Err(refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "The form is too large (over {} KiB), so it was not read. Nothing was changed. Shorten it (settings, redirect URIs) or use the API.",
                        MAX_FORM_BYTES / 1024
                    ),
                ))
            }
            Err(_) => {
                return Err(refused(
                    StatusCode::BAD_REQUEST,
                    "The form could not be read. Nothing was changed. Reload the page and try again.",
                ))
            }
        };
        self.check_csrf(req, session, &fields)?;
        Ok(fields)
    }

    /// A page for this session.
    pub fn page(&self, session: &Session, title: impl Into<String>, current: &str) -> Page {
        Page::new(&self.base, session, title, current)
    }

    /// The URL people reach the console at: `console.public_url`, or (empty) the request's
    /// `Host` over http.
    pub fn public_base(&self, req: &Request) -> String {
        public_base(&self.app, req)
    }
}

/// `console.public_url` + `console.path`, or `http://<Host>` + path when it is empty.
pub fn public_base(app: &AppState, req: &Request) -> String {
    let s = &app.settings.console;
    let origin = if s.public_url.is_empty() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    } else {
        s.public_url.trim_end_matches('/').to_owned()
    };
    format!("{origin}{}", s.path)
}

/// A form body (`application/x-www-form-urlencoded`), at most [`MAX_FORM_BYTES`]; empty when
/// it is larger or unreadable (see [`ConsoleState::checked_form`] to tell those apart).
pub async fn read_form(body: Body) -> HashMap<String, String> {
    read_form_limited(body).await.unwrap_or_default()
}

/// A form body, or why it was not read (over [`MAX_FORM_BYTES`]: `PayloadTooLarge`).
async fn read_form_limited(
    body: Body,
) -> Result<HashMap<String, String>, poem::error::ReadBodyError> {
    let bytes = body.into_bytes_limit(MAX_FORM_BYTES).await?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The start page: support staff and client admins go straight to Users; operators (who
/// read no user records) get the list of their sections.
#[handler]
async fn home(req: &Request, state: Data<&Arc<ConsoleState>>) -> Response {
    match state.session(req).await {
        Ok(Some(session)) if session.principal.role != Role::Operator => {
            page::see_other(&format!("{}/users", state.base))
        }
        Ok(Some(session)) => state.page(&session, "Console", "").render(
            &state.templates,
            StatusCode::OK,
            "home.html",
            minijinja::context! {},
        ),
        Ok(None) => page::see_other(&format!("{}/sign-in", state.base)),
        Err(resp) => resp,
    }
}

/// The console's routes, mounted by `http::router` at `console.path`.
pub fn router(app: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let state = ConsoleState::new(app);
    let csp = state.csp.clone();
    Route::new()
        .at("/", get(home))
        .nest("/assets", assets::endpoint())
        .at("/sign-in", get(signin::sign_in_page))
        .at("/auth/start", get(signin::start_oidc))
        .at("/auth/callback", get(signin::oidc_callback))
        .at("/dev-sign-in", post(signin::dev_sign_in))
        .at("/sign-out", post(signin::sign_out))
        .at("/link/:token", get(signin::link_page))
        .at("/link", post(signin::follow_link))
        .at("/users", get(users::users_page))
        .at("/users/:id", get(users::user_page))
        .at("/users/:id/status", get(users::status_fragment))
        .at("/users/:id/actions", post(users::run_action))
        // Jobs, Tenants, Reports, Operations (console-b).
        .at("/jobs", get(jobs::jobs_page).post(jobs::upload_job))
        .at("/jobs/list", get(jobs::jobs_fragment))
        .at("/jobs/:id", get(jobs::job_page))
        .at("/jobs/:id/progress", get(jobs::job_progress))
        .at("/jobs/:id/results.csv", get(jobs::job_results_csv))
        .at("/jobs/:id/cancel", post(jobs::cancel_job))
        .at("/tenants", get(tenants::tenants_page))
        .at(
            "/tenants/_new",
            get(tenants::new_tenant_page).post(tenants::tenant_form_post),
        )
        .at("/tenants/:tenant", get(tenants::tenant_page))
        .at("/tenants/:tenant/edit", get(tenants::edit_tenant_page))
        .at("/tenants/:tenant/drift", get(tenants::drift_fragment))
        .at("/tenants/:tenant/apply", post(tenants::apply_tenant))
        .at("/tenants/:tenant/delete", post(tenants::delete_tenant))
        .at("/tenants/:tenant/applies/:apply", get(tenants::apply_page))
        .at(
            "/tenants/:tenant/applies/:apply/progress",
            get(tenants::apply_progress),
        )
        .at(
            "/tenants/:tenant/installations/:installation",
            get(tenants::installation_page),
        )
        .at(
            "/tenants/:tenant/installations/:installation/rotate-secret",
            post(tenants::rotate_secret),
        )
        .at("/reports", get(reports::reports_page))
        .at("/reports/:month/preview", get(reports::report_preview))
        .at("/reports/:month/send", post(reports::send_report_now))
        .at("/operations", get(operations::operations_page))
        .at("/operations/keys", post(operations::create_key))
        .at("/operations/keys/:id/revoke", post(operations::revoke_key))
        .data(state)
        .around(move |ep, req| {
            let csp = csp.clone();
            async move {
                let mut resp = match ep.call(req).await {
                    Ok(r) => r.into_response(),
                    Err(e) => e.into_response(),
                };
                let h = resp.headers_mut();
                // A page with its own policy (the report email preview) keeps it.
                if !h.contains_key("content-security-policy") {
                    h.insert("content-security-policy", csp);
                }
                h.insert(
                    "x-content-type-options",
                    HeaderValue::from_static("nosniff"),
                );
                if !h.contains_key("x-frame-options") {
                    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
                }
                h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
                Ok(resp)
            }
        })
}
