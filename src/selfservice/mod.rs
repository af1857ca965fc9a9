//! Self-service MFA reset: public pages where an end user who lost a factor resets it without
//! calling support (`docs/helpdesk.md`).
//!
//! 1. `GET /self-service/mfa`: a form asking for the login.
//! 2. `POST /self-service/mfa`: counts the request against the login's and the client IP's
//!    limits (one Redis round trip), queues it, and answers the same page whatever the login —
//!    known, unknown, limited, not enabled. The request path does the same work for every
//!    login; everything that depends on the login runs in a background task: the projection
//!    lookup (an ACTIVE user with factors, of a tenant listed in `self_service.tenants`), the
//!    user's primary email from Okta, the single-use link (`token`) and the mail. Every request
//!    is audited with its outcome there.
//! 3. `GET /self-service/mfa/reset?token=…`: the link. It lists that user's enrolled factors
//!    (from the projection) in a form carrying a CSRF token.
//! 4. `POST /self-service/mfa/reset`: checks the CSRF token, uses the link up (single use),
//!    resets the chosen factors through Okta (one `DELETE …/factors/{id}` each, or
//!    `reset_factors` for all), audits, and queues the confirmation mail.
//!
//! Pages carry a CSP without any script, `no-referrer`, `no-store`, and deny framing. The link
//! and its token are never logged; Redis holds only the token's SHA-256.

pub mod mail;
pub mod token;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use minijinja::context;
use poem::http::{header, HeaderValue, StatusCode};
use poem::web::Query;
use poem::{handler, Body, EndpointExt, Request, Response, Route};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Semaphore};

use crate::access::{audit_anonymous, AnonymousActor};
use crate::http::state::AppState;
use crate::okta::rate::Lane;
use crate::projection::granted::granted;
use crate::projection::read::Reader;
use crate::projection::update::field;
use crate::projection::UserRecord;
use token::LinkTarget;

/// Longest form body read (a login, or a token, a CSRF token and factor ids).
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Longest login looked at; longer input is treated as an unknown login.
const MAX_LOGIN_CHARS: usize = 256;
/// Mails sent at once by one process.
const MAIL_CONCURRENCY: usize = 8;

/// Work done off the request path.
enum Job {
    /// A request for a link: `allowed` is false when a limit was exceeded.
    Request {
        login: String,
        ip: String,
        allowed: bool,
    },
    /// The confirmation after a reset.
    Confirm {
        target: LinkTarget,
        factors: Vec<String>,
    },
}

struct SelfService {
    state: Arc<AppState>,
    jobs: mpsc::Sender<Job>,
}

/// The `/self-service` routes; starts the background task that sends the mails (it ends when
/// the routes are dropped).
pub fn routes(state: Arc<AppState>) -> Route {
    let settings = &state.settings.self_service;
    if !settings.tenants.is_empty() && settings.public_url.is_empty() {
        tracing::warn!(
            "self_service.public_url is empty: emailed links point at http://{} (http.listen)",
            state.settings.http.listen
        );
    }
    let (tx, rx) = mpsc::channel(settings.queue.max(1));
    tokio::spawn(run_jobs(state.clone(), rx));
    let ctx = Arc::new(SelfService { state, jobs: tx });
    Route::new()
        .at(
            "/mfa",
            poem::get(request_page).post(request_link).data(ctx.clone()),
        )
        .at(
            "/mfa/reset",
            poem::get(reset_page).post(reset_factors).data(ctx),
        )
}

fn ttl_minutes(state: &AppState) -> u64 {
    state.settings.self_service.link_ttl_secs.div_ceil(60)
}

/// An HTML page with the headers every self-service page carries.
fn page(status: StatusCode, html: String) -> Response {
    let mut resp = Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(html);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn invalid_link(reason: &str) -> Response {
    page(
        StatusCode::NOT_FOUND,
        mail::render("invalid.html", context! { reason => reason }),
    )
}

const LINK_GONE: &str = "The link is invalid, was already used, was replaced by a newer one, \
                         or has expired.";

/// Form fields, in order (repeated names kept).
async fn read_form(body: Body) -> Option<Vec<(String, String)>> {
    let bytes = body.into_bytes_limit(MAX_FORM_BYTES).await.ok()?;
    Some(
        form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

fn field_of<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn client_ip(req: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip.to_string();
        }
    }
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[handler]
fn request_page(ctx: poem::web::Data<&Arc<SelfService>>) -> Response {
    page(
        StatusCode::OK,
        mail::render(
            "request.html",
            context! { ttl_minutes => ttl_minutes(&ctx.state) },
        ),
    )
}

/// `POST /self-service/mfa`: the same work and the same answer for every login.
#[handler]
async fn request_link(
    req: &Request,
    body: Body,
    ctx: poem::web::Data<&Arc<SelfService>>,
) -> Response {
    let state = &ctx.state;
    let settings = &state.settings.self_service;
    let login: String = read_form(body)
        .await
        .map(|f| field_of(&f, "login").trim().to_lowercase())
        .unwrap_or_default()
        .chars()
        .take(MAX_LOGIN_CHARS + 1)
        .collect();
    let ip = client_ip(req, settings.trust_forwarded_for);
    let login_digest = hex::encode(Sha256::digest(login.as_bytes()));
    let window = settings.limit_window_secs.max(1);
    let login_key = state.keys.self_service_login_count(&login_digest);
    let ip_key = state.keys.self_service_ip_count(&ip);
    let mut conn = state.redis.clone();
    let counted: redis::RedisResult<(u64, u64)> = redis::pipe()
        .cmd("SET")
        .arg(&login_key)
        .arg(0)
        .arg("EX")
        .arg(window)
        .arg("NX")
        .ignore()
        .incr(&login_key, 1)
        .cmd("SET")
        .arg(&ip_key)
        .arg(0)
        .arg("EX")
        .arg(window)
        .arg("NX")
        .ignore()
        .incr(&ip_key, 1)
        .query_async(&mut conn)
        .await;
    // Redis down: nothing can be limited, so nothing is sent (fail closed), answered alike.
    let allowed = match counted {
        Ok((per_login, per_ip)) => {
            per_login <= settings.max_per_login && per_ip <= settings.max_per_ip
        }
        Err(e) => {
            tracing::warn!(error = %e, "self-service limits unavailable; request dropped");
            false
        }
    };
    if ctx
        .jobs
        .try_send(Job::Request { login, ip, allowed })
        .is_err()
    {
        metrics::counter!("okta_adapter_self_service_requests_total", "outcome" => "queue-full")
            .increment(1);
    }
    page(
        StatusCode::OK,
        mail::render(
            "sent.html",
            context! { ttl_minutes => ttl_minutes(state), support_contact => &settings.support_contact },
        ),
    )
}

/// One factor on the link page.
#[derive(serde::Serialize)]
struct FactorView {
    id: String,
    name: String,
    kind: Option<String>,
    enrolled_at: String,
}

async fn factors_of(state: &AppState, user: &UserRecord) -> redis::RedisResult<Vec<FactorView>> {
    let mut conn = state.redis.clone();
    let details = granted(
        &mut conn,
        &state.keys,
        user,
        field::FACTOR_PREFIX,
        &user.factors,
    )
    .await?;
    Ok(details
        .into_iter()
        .map(|g| FactorView {
            id: g.member.id,
            name: g.member.name,
            kind: g.detail,
            enrolled_at: g.member.why.published,
        })
        .collect())
}

async fn user_record(state: &AppState, id: &str) -> redis::RedisResult<Option<UserRecord>> {
    let mut conn = state.redis.clone();
    Ok(Reader::new(state.keys.clone())
        .find(&mut conn, id, 1)
        .await?
        .map(|(u, _)| u))
}

/// Whether the user may (still) reset their own factors; else why not (for the audit).
fn eligibility(state: &AppState, user: &UserRecord) -> Result<(), &'static str> {
    if !state.settings.self_service.allows(user.tenant.as_deref()) {
        return Err("tenant-not-enabled");
    }
    if user.status != "ACTIVE" {
        return Err("not-active");
    }
    if user.factors.is_empty() {
        return Err("no-factors");
    }
    Ok(())
}

fn render_reset(login: &str, token: &str, factors: &[FactorView], error: Option<&str>) -> String {
    mail::render(
        "reset.html",
        context! { login => login, token => token, csrf => token::csrf_for(token),
        factors => minijinja::Value::from(minijinja::value::Serde(factors)), error => error },
    )
}

/// `GET /self-service/mfa/reset?token=…`: the link's factors and the confirmation form.
#[handler]
async fn reset_page(
    Query(q): Query<std::collections::HashMap<String, String>>,
    ctx: poem::web::Data<&Arc<SelfService>>,
) -> Response {
    let state = &ctx.state;
    let token = q.get("token").map(String::as_str).unwrap_or("");
    let mut conn = state.redis.clone();
    let target = match token::peek(&mut conn, &state.keys, token).await {
        Ok(Some(t)) => t,
        Ok(None) => return invalid_link(LINK_GONE),
        Err(e) => return unavailable(e),
    };
    let user = match user_record(state, &target.user).await {
        Ok(Some(u)) if eligibility(state, &u).is_ok() => u,
        Ok(_) => return invalid_link(LINK_GONE),
        Err(e) => return unavailable(e),
    };
    match factors_of(state, &user).await {
        Ok(factors) => page(
            StatusCode::OK,
            render_reset(&target.login, token, &factors, None),
        ),
        Err(e) => unavailable(e),
    }
}

fn unavailable(e: redis::RedisError) -> Response {
    tracing::warn!(error = %e, "self-service storage unavailable");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        mail::render(
            "invalid.html",
            context! { reason => "The service is unavailable right now; your link still works. Please try again in a minute." },
        ),
    )
}

/// `POST /self-service/mfa/reset`: uses the link and resets the chosen factors.
#[handler]
async fn reset_factors(body: Body, ctx: poem::web::Data<&Arc<SelfService>>) -> Response {
    let state = &ctx.state;
    let Some(form) = read_form(body).await else {
        return invalid_link(LINK_GONE);
    };
    let token = field_of(&form, "token");
    if !token::well_formed(token) || !token::csrf_matches(token, field_of(&form, "csrf")) {
        return page(
            StatusCode::FORBIDDEN,
            mail::render(
                "invalid.html",
                context! { reason => "The form could not be verified. Open the link from your email again." },
            ),
        );
    }
    let chosen: HashSet<&str> = form
        .iter()
        .filter(|(k, _)| k == "factor")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut conn = state.redis.clone();
    // Checked before the link is used up, so a mistake does not cost the user the link.
    let target = match token::peek(&mut conn, &state.keys, token).await {
        Ok(Some(t)) => t,
        Ok(None) => return invalid_link(LINK_GONE),
        Err(e) => return unavailable(e),
    };
    let user = match user_record(state, &target.user).await {
        Ok(Some(u)) if eligibility(state, &u).is_ok() => u,
        Ok(_) => return invalid_link(LINK_GONE),
        Err(e) => return unavailable(e),
    };
    let factors = match factors_of(state, &user).await {
        Ok(f) => f,
        Err(e) => return unavailable(e),
    };
    let mine: HashSet<&str> = factors.iter().map(|f| f.id.as_str()).collect();
    if chosen.is_empty() || !chosen.is_subset(&mine) {
        let error = if chosen.is_empty() {
            "Choose at least one factor."
        } else {
            "Choose among your own factors only."
        };
        return page(
            StatusCode::BAD_REQUEST,
            render_reset(&target.login, token, &factors, Some(error)),
        );
    }
    let target = match token::claim(&mut conn, &state.keys, token).await {
        Ok(Some(t)) if t.user == user.id => t,
        Ok(_) => return invalid_link(LINK_GONE),
        Err(e) => return unavailable(e),
    };
    let names: Vec<String> = factors
        .iter()
        .filter(|f| chosen.contains(f.id.as_str()))
        .map(|f| f.name.clone())
        .collect();
    let outcome = reset_in_okta(state, &user.id, &chosen, chosen.len() == mine.len()).await;
    let detail = match &outcome {
        Ok(()) => format!("reset {}: {}", chosen.len(), names.join(", ")),
        Err(e) => format!("failed: {e}"),
    };
    audit(
        state,
        &target.tenant,
        "self-service:mfa-reset",
        &user.id,
        &detail,
    )
    .await;
    metrics::counter!("okta_adapter_self_service_resets_total", "result" => if outcome.is_ok() { "done" } else { "failed" }).increment(1);
    if outcome.is_err() {
        return page(
            StatusCode::BAD_GATEWAY,
            mail::render(
                "invalid.html",
                context! { reason => "Your factors could not be reset right now. Request a new link in a few minutes, or contact support." },
            ),
        );
    }
    let count = names.len();
    let _ = ctx.jobs.try_send(Job::Confirm {
        target,
        factors: names,
    });
    page(
        StatusCode::OK,
        mail::render("done.html", context! { count => count }),
    )
}

/// All of them: Okta's `reset_factors`; some: one `DELETE` each.
async fn reset_in_okta(
    state: &AppState,
    user: &str,
    chosen: &HashSet<&str>,
    all: bool,
) -> Result<(), String> {
    let okta = state.okta.as_ref().ok_or("Okta is not configured")?;
    if all {
        return okta
            .lifecycle(Lane::Interactive, user, "reset_factors", None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    for factor in chosen {
        okta.delete_factor(Lane::Interactive, user, factor)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn audit(state: &AppState, tenant: &str, action: &str, subject: &str, detail: &str) {
    let mut conn = state.redis.clone();
    let actor = AnonymousActor {
        key: "mfa-reset",
        role: "self-service",
        tenant,
    };
    if let Err(e) = audit_anonymous(&mut conn, &state.keys, actor, action, subject, detail).await {
        metrics::counter!("okta_adapter_audit_failures_total").increment(1);
        tracing::warn!(error = %e, "self-service audit record not written");
    }
}

/// The background task: link requests and confirmations, a few mails at a time.
async fn run_jobs(state: Arc<AppState>, mut rx: mpsc::Receiver<Job>) {
    let permits = Arc::new(Semaphore::new(MAIL_CONCURRENCY));
    while let Some(job) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            match job {
                Job::Request { login, ip, allowed } => {
                    handle_request(&state, &login, &ip, allowed).await
                }
                Job::Confirm { target, factors } => {
                    send_confirmation(&state, &target, &factors).await
                }
            }
            drop(permit);
        });
    }
}

async fn handle_request(state: &AppState, login: &str, ip: &str, allowed: bool) {
    let outcome = request_outcome(state, login, allowed).await;
    let (tenant, subject, detail) = match &outcome {
        Ok(t) => (t.tenant.as_str(), t.user.as_str(), "link sent".to_string()),
        Err((Some(u), why)) => (
            u.tenant.as_deref().unwrap_or(""),
            u.id.as_str(),
            format!("no link: {why}"),
        ),
        Err((None, why)) => ("", "", format!("no link: {why}")),
    };
    let label = match &outcome {
        Ok(_) => "sent",
        Err((_, why)) => why.split(':').next().unwrap_or("other"),
    };
    metrics::counter!("okta_adapter_self_service_requests_total", "outcome" => label.to_owned())
        .increment(1);
    // The login as typed stays out of the audit when it names nobody (it may be anything).
    let detail = format!("{detail} (ip {ip})");
    audit(state, tenant, "self-service:mfa-request", subject, &detail).await;
}

type Refusal = (Option<UserRecord>, String);

async fn request_outcome(
    state: &AppState,
    login: &str,
    allowed: bool,
) -> Result<LinkTarget, Refusal> {
    if !allowed {
        return Err((None, "limited".into()));
    }
    if login.is_empty() || login.chars().count() > MAX_LOGIN_CHARS {
        return Err((None, "unknown-login".into()));
    }
    let user = match user_record(state, login).await {
        Ok(Some(u))
            if [&u.login, &u.email]
                .iter()
                .any(|v| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(login))) =>
        {
            u
        }
        Ok(_) => return Err((None, "unknown-login".into())),
        Err(e) => return Err((None, format!("storage: {e}"))),
    };
    if let Err(why) = eligibility(state, &user) {
        return Err((Some(user), why.into()));
    }
    let email = match primary_email(state, &user).await {
        Some(e) => e,
        None => return Err((Some(user), "no-email".into())),
    };
    let target = LinkTarget {
        user: user.id.clone(),
        login: user.login.clone().unwrap_or_default(),
        tenant: user.tenant.clone().unwrap_or_default(),
        email: email.to_string(),
    };
    let ttl = Duration::from_secs(state.settings.self_service.link_ttl_secs);
    let mut conn = state.redis.clone();
    let token = match token::issue(&mut conn, &state.keys, &target, ttl).await {
        Ok(t) => t,
        Err(e) => return Err((Some(user), format!("storage: {e}"))),
    };
    let link = format!(
        "{}/self-service/mfa/reset?token={token}",
        public_url(state).trim_end_matches('/')
    );
    let name = user
        .display_name
        .clone()
        .unwrap_or_else(|| target.login.clone());
    let ctx = context! { name => name, login => &target.login, link => link,
    ttl_minutes => ttl_minutes(state) };
    let sent = match mail::build(
        "link_mail",
        ctx,
        "Reset your sign-in factors",
        &state.settings.report.from,
        email,
    ) {
        Ok(m) => mail::send(&state.reporter.transport, m).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        // An unsent link must not stay usable.
        let _ = token::claim(&mut conn, &state.keys, &token).await;
        return Err((Some(user), format!("mail-failed: {e}")));
    }
    Ok(target)
}

/// The user's primary email: Okta's `profile.email` (authoritative), else the projected one.
async fn primary_email(state: &AppState, user: &UserRecord) -> Option<Mailbox> {
    let from_okta = match &state.okta {
        Some(okta) => okta
            .get_user(Lane::Interactive, &user.id)
            .await
            .ok()
            .and_then(|u| {
                u.pointer("/profile/email")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
        None => None,
    };
    from_okta
        .or_else(|| user.email.clone())
        .and_then(|e| e.parse::<Mailbox>().ok())
}

fn public_url(state: &AppState) -> String {
    let configured = &state.settings.self_service.public_url;
    if configured.is_empty() {
        format!("http://{}", state.settings.http.listen)
    } else {
        configured.clone()
    }
}

async fn send_confirmation(state: &AppState, target: &LinkTarget, factors: &[String]) {
    let Ok(to) = target.email.parse::<Mailbox>() else {
        return;
    };
    let ctx = context! { name => &target.login, login => &target.login, factors => minijinja::Value::from(minijinja::value::Serde(factors)),
    support_contact => &state.settings.self_service.support_contact };
    let sent = match mail::build(
        "done_mail",
        ctx,
        "Your MFA was reset",
        &state.settings.report.from,
        to,
    ) {
        Ok(m) => mail::send(&state.reporter.transport, m).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        tracing::warn!(user = %target.user, error = %e, "self-service confirmation mail not sent");
        audit(
            state,
            &target.tenant,
            "self-service:mfa-confirmation",
            &target.user,
            &format!("mail-failed: {e}"),
        )
        .await;
    }
}
