//! The Tenants pages (issue 18): the list (declared tenants merged with their users by
//! status), one tenant (groups, rule, installations, user counts, last apply, drift), the
//! create and edit form with its plan, the apply's live per-step progress, the typed-name
//! delete, and one installation (its config with a copy button, secret rotation).
//!
//! Every rule is the tenants API's (`http::tenants`): the same role lists ([`WRITERS`],
//! [`READERS`]), the same scoping (a client admin reads only its own tenant; any other reads
//! exactly like a missing one), the same document checks, the same plan
//! ([`plan_steps`]: the engine's dry run), the same queued
//! apply and delete with their audit entries, the same secret rotation. The console adds
//! forms and words, not rules.
//!
//! User counts read at most `COUNT_BUDGET` (5,000) users per tenant (see `projection::census`) and
//! the page says when a split is partial.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::page;
use super::session::Session;
use super::users::error_parts;
use super::ConsoleState;
use crate::access::Role;
use crate::domain::tenant::TenantId;
use crate::http::error::HttpError;
use crate::http::tenants::{
    apply_record, check_doc, check_scope, delete_confirmed, parse_tenant, plan_steps, queue_apply,
    rotate_installation_secret, stored_doc, tenant_record, READERS, WRITERS,
};
use crate::projection::census::{tenant_counts, tenant_overview, TenantCounts, TenantScope};
use crate::tenants::doc::{InstallationDoc, Names, TenantDoc, GRANT_TYPES};
use crate::tenants::engine::{Action, Step};
use crate::tenants::store::{new_apply_id, ApplyRecord, TenantStore, MODE_DELETE};

/// Who opens the Tenants pages (a client admin only its own tenant): the API's readers.
pub const TENANT_READERS: &[Role] = READERS;

/// Users read per tenant for the split by status.
const COUNT_BUDGET: usize = 5_000;

/// Installation fieldsets one form holds at most (added, posted or shown for an edit). A
/// tenant declared through the API with more is refused by the form in words, never cut short:
/// a fieldset left out would plan, and on Apply carry out, the deletion of its app.
const MAX_INSTALLATIONS: usize = 100;

/// The one "not found" of the tenant pages, whatever the reason (missing, another tenant's).
fn tenant_not_found(state: &ConsoleState, session: &Session) -> Response {
    page::not_found(
        &state.templates,
        state.page(session, "Not found", "/tenants"),
        "There is no such tenant.",
    )
}

fn installation_not_found(state: &ConsoleState, session: &Session) -> Response {
    page::not_found(
        &state.templates,
        state.page(session, "Not found", "/tenants"),
        "There is no such installation.",
    )
}

/// An API refusal as a page: 404 reads like a missing tenant, the others say what happened.
fn refusal(state: &ConsoleState, session: &Session, heading: &str, e: &HttpError) -> Response {
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

/// The version of a tenant's declared document that a form, plan or re-apply was made from:
/// the SHA-256 of its JSON, or [`UNDECLARED`]. Every apply names it and is refused (409) when
/// the declared document has changed since (another person, another tab), so a plan is
/// never applied over a change its author has not seen.
fn doc_version(doc: &TenantDoc) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        serde_json::to_string(doc).unwrap_or_default().as_bytes(),
    ))
}

/// The version of a tenant that is not declared (a form that creates it).
const UNDECLARED: &str = "none";

/// The version of `tenant`'s declared document now.
async fn current_version(state: &ConsoleState, tenant: &str) -> Result<String, HttpError> {
    match stored_doc(&state.app, tenant).await {
        Ok(doc) => Ok(doc_version(&doc)),
        Err(HttpError::NotFound(_)) => Ok(UNDECLARED.to_owned()),
        Err(e) => Err(e),
    }
}

/// The answer when the declared document changed after a form or plan was made from it.
fn changed_since(state: &ConsoleState, session: &Session, tenant: &str, what: &str) -> Response {
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

fn is_writer(session: &Session) -> bool {
    WRITERS.contains(&session.principal.role)
}

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

/// A step as the pages show it: the engine's step plus words for it.
#[derive(Debug, Serialize)]
struct StepView {
    number: usize,
    key: String,
    resource: String,
    action: Action,
    /// What the step is about, in words ("users group", "app of installation efs"…).
    what: String,
    okta_id: Option<String>,
    detail: Option<String>,
    error: Option<String>,
}

/// What a step key is about, in words.
fn step_subject(key: &str) -> String {
    match key {
        "group:users" | "group:users:delete" => "users group".into(),
        "group:admins" | "group:admins:delete" => "client admins group".into(),
        "rule" | "rule:delete" => "group rule".into(),
        "rule:activate" => "group rule activation".into(),
        _ => match key.strip_prefix("app:") {
            Some(rest) => match rest.split_once(':') {
                Some((i, "assign")) => {
                    format!("app of installation {i} assigned to the users group")
                }
                Some((i, "delete")) => format!("app of installation {i}"),
                _ => format!("app of installation {rest}"),
            },
            None => key.to_owned(),
        },
    }
}

impl From<&Step> for StepView {
    fn from(s: &Step) -> Self {
        Self {
            number: s.index + 1,
            key: s.key.clone(),
            resource: s.resource.clone(),
            action: s.action,
            what: step_subject(&s.key),
            okta_id: s.okta_id.clone(),
            detail: s.detail.clone(),
            error: s.error.clone(),
        }
    }
}

/// How a step that is not `unchanged` reads as drift: what Okta has that the declared state
/// does not (or lacks), in plain words.
pub fn drift_words(step: &Step) -> String {
    let r = &step.resource;
    let detail = step.detail.as_deref().unwrap_or("");
    let key = step.key.as_str();
    let app_of = |rest: &str| rest.split(':').next().unwrap_or(rest).to_owned();
    match (key, step.action) {
        ("group:users" | "group:admins", Action::Create) => {
            format!("Group {r} is missing in Okta.")
        }
        ("group:users" | "group:admins", _) => {
            format!("Group {r} differs from the declared state ({detail}).")
        }
        ("rule", Action::Create) => format!("Group rule {r} is missing in Okta."),
        ("rule", _) => format!("Group rule {r} differs from the declared state ({detail})."),
        ("rule:activate", _) => format!("Group rule {r} is not active."),
        _ => {
            match key.strip_prefix("app:") {
                Some(rest) if rest.ends_with(":assign") => format!(
                    "App {r} (installation {}) is not assigned to the tenant's users group.",
                    app_of(rest)
                ),
                Some(rest) if rest.ends_with(":delete") => format!(
                    "App {r} still exists, but installation {} is no longer declared.",
                    app_of(rest)
                ),
                Some(rest) => match step.action {
                    Action::Create => format!("App {r} (installation {rest}) is missing in Okta."),
                    Action::Activate => format!("App {r} (installation {rest}) is not active."),
                    _ => {
                        let what = detail.replace("redirect_uris", "redirect URIs");
                        format!("App {r} (installation {rest}) differs from the declared state: {what}.")
                    }
                },
                None => format!("{r}: {:?} needed.", step.action),
            }
        }
    }
}

/// One installation as the tenant page lists it.
#[derive(Debug, Serialize)]
struct InstallationRow {
    name: String,
    kind: String,
    app_id: Option<String>,
    redirect_uris: Vec<String>,
}

/// The apply as the pages show it, with the numbers a progress bar needs.
#[derive(Debug, Serialize)]
struct ApplyView {
    id: String,
    mode: String,
    state: String,
    finished: bool,
    created: String,
    finished_at: Option<String>,
    requested_by: String,
    error: Option<String>,
    steps: Vec<StepView>,
    /// Steps recorded so far, and how many the apply will have (at least).
    done: usize,
    total: usize,
    /// Installations whose new app's client secret reached nobody (the console does not wait
    /// for secrets): they get one by rotating it on the installation page.
    undelivered: Vec<String>,
}

impl From<&ApplyRecord> for ApplyView {
    fn from(a: &ApplyRecord) -> Self {
        let installations = a.doc.as_ref().map_or(0, |d| d.installations.len());
        // Groups (2), rule and its activation, then app + assignment per installation; a
        // teardown deletes each app, the rule and both groups. Removed installations add one.
        let expected = if a.mode == MODE_DELETE {
            installations + 3
        } else {
            4 + 2 * installations
        };
        Self {
            id: a.id.clone(),
            mode: a.mode.clone(),
            state: a.state.clone(),
            finished: a.finished(),
            created: a.created.clone(),
            finished_at: a.finished.clone(),
            requested_by: a.by.clone(),
            error: a.error.clone(),
            steps: a.steps.iter().map(StepView::from).collect(),
            done: a.steps.len(),
            total: expected.max(a.steps.len()),
            undelivered: a
                .steps
                .iter()
                .filter(|s| {
                    s.detail
                        .as_deref()
                        .is_some_and(|d| d.starts_with("client secret not delivered"))
                })
                .filter_map(|s| s.key.strip_prefix("app:").map(str::to_owned))
                .collect(),
        }
    }
}

/// `GET /tenants/:tenant`: groups, rule, installations, users, last apply, drift.
#[handler]
pub async fn tenant_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    tenant: Path<String>,
) -> Response {
    let session = match state.require(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(t) = TenantId::parse(&tenant) else {
        return tenant_not_found(&state, &session);
    };
    let t = t.as_str();
    let record = match tenant_record(&state.app, &session.principal, t).await {
        Ok(r) => r,
        Err(e) => return refusal(&state, &session, "Tenant", &e),
    };
    let mut conn = state.app.redis.clone();
    let users = match tenant_counts(&mut conn, &state.app.keys, t, COUNT_BUDGET).await {
        Ok(c) => c,
        Err(e) => {
            return page::unavailable(
                &state.templates,
                state.page(&session, "Tenants", "/tenants"),
                "tenant-counts",
                &e,
            )
        }
    };
    let names = Names::new(t);
    let installations: Vec<InstallationRow> = record
        .doc
        .installations
        .iter()
        .map(|(name, inst)| InstallationRow {
            name: name.clone(),
            kind: inst.kind.clone(),
            app_id: record.ids.get(&format!("app:{name}")).cloned(),
            redirect_uris: inst.redirect_uris.clone(),
        })
        .collect();
    let busy = record.state.as_deref() == Some("applying");
    let title = format!("Tenant {t}");
    state.page(&session, title, "/tenants").render(
        &state.templates,
        StatusCode::OK,
        "tenant.html",
        context! {
            tenant => t,
            display_name => record.doc.display_name,
            tenant_state => record.state,
            updated => record.updated,
            busy,
            groups => vec![
                context! { role => "Users", name => names.users_group(), id => record.ids.get("group:users") },
                context! { role => "Client admins", name => names.admins_group(), id => record.ids.get("group:admins") },
            ],
            rule => context! { name => names.rule(), id => record.ids.get("rule") },
            installations => Serde(&installations),
            users => Serde(&users),
            last_apply => record.last_apply.as_ref().map(|a| Serde(ApplyView::from(a))),
            may_write => is_writer(&session),
        },
    )
}

/// `GET /tenants/:tenant/drift`: the drift section of the tenant page, loaded by the page
/// once it is shown (htmx, `hx-trigger="load"`), so the page itself never waits for Okta.
/// Drift is the plan of the declared state against what Okta has now (reads only): its steps
/// that are not `unchanged`, in words. A failed read is said, not hidden. The group rule's
/// status comes along (out of band, into the rule section).
#[handler]
pub async fn drift_fragment(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    tenant: Path<String>,
) -> Response {
    let session = match state.require(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Keys are built from valid tenant ids only; anything else reads like a missing tenant.
    if TenantId::parse(&tenant).is_err() {
        return tenant_not_found(&state, &session);
    }
    let record = match tenant_record(&state.app, &session.principal, &tenant).await {
        Ok(r) => r,
        Err(e) => return refusal(&state, &session, "Tenant", &e),
    };
    let (plan, plan_error) = match plan_steps(&state.app, &record.tenant, &record.doc).await {
        Ok(steps) => (Some(steps), None),
        Err(e) => (None, Some(error_parts(&e).1)),
    };
    let drift: Option<Vec<String>> = plan.as_ref().map(|steps| {
        steps
            .iter()
            .filter(|s| s.action != Action::Unchanged)
            .map(drift_words)
            .collect()
    });
    let rule_status = plan.as_ref().and_then(|steps| {
        let s = steps.iter().find(|s| s.key == "rule:activate")?;
        Some(match (s.action, s.okta_id.is_some()) {
            (Action::Unchanged, _) => "ACTIVE",
            (_, true) => "INACTIVE",
            (_, false) => "missing",
        })
    });
    state.templates.fragment(
        "tenant_drift.html",
        context! {
            page => context! { base => state.base.clone(), csrf => session.csrf.clone() },
            tenant => &record.tenant,
            drift,
            plan_error,
            rule_status,
            busy => record.state.as_deref() == Some("applying"),
            doc_json => serde_json::to_string(&record.doc).unwrap_or_default(),
            base => doc_version(&record.doc),
            may_write => is_writer(&session),
        },
    )
}

/// One installation fieldset of the form, as typed.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct InstallationForm {
    name: String,
    kind: String,
    /// One URI per line.
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: Vec<String>,
    pkce: bool,
    public_client: bool,
    /// A JSON object, or empty.
    settings: String,
}

impl InstallationForm {
    fn blank(kinds: &[String]) -> Self {
        Self {
            name: String::new(),
            kind: kinds.first().cloned().unwrap_or_default(),
            redirect_uris: String::new(),
            post_logout_redirect_uris: String::new(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            pkce: true,
            public_client: false,
            settings: String::new(),
        }
    }

    fn is_blank(&self) -> bool {
        self.name.trim().is_empty()
            && self.redirect_uris.trim().is_empty()
            && self.post_logout_redirect_uris.trim().is_empty()
            && self.settings.trim().is_empty()
    }
}

/// The create/edit form's values.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct TenantForm {
    tenant: String,
    display_name: String,
    /// Editing a declared tenant (its name is fixed) rather than creating one.
    editing: bool,
    installations: Vec<InstallationForm>,
    /// The version of the declared document the form was made from ([`doc_version`]);
    /// [`UNDECLARED`] for a form that creates a tenant.
    base: String,
    /// The fieldsets the posted form claimed (`count`) when more than [`MAX_INSTALLATIONS`]:
    /// then the form is refused, not cut short.
    #[serde(skip)]
    too_many: Option<usize>,
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl TenantForm {
    fn blank(kinds: &[String]) -> Self {
        Self {
            tenant: String::new(),
            display_name: String::new(),
            editing: false,
            installations: vec![InstallationForm::blank(kinds)],
            base: UNDECLARED.to_owned(),
            too_many: None,
        }
    }

    /// The form of a declared tenant (`base`: the version it was made from).
    fn from_doc(tenant: &str, doc: &TenantDoc, editing: bool, base: String) -> Self {
        Self {
            tenant: tenant.to_owned(),
            display_name: doc.display_name.clone(),
            editing,
            installations: doc
                .installations
                .iter()
                .map(|(name, i)| InstallationForm {
                    name: name.clone(),
                    kind: i.kind.clone(),
                    redirect_uris: i.redirect_uris.join("\n"),
                    post_logout_redirect_uris: i.post_logout_redirect_uris.join("\n"),
                    grant_types: i.grant_types.clone(),
                    pkce: i.pkce,
                    public_client: i.public_client,
                    settings: if i.settings.is_empty() {
                        String::new()
                    } else {
                        serde_json::to_string_pretty(&i.settings).unwrap_or_default()
                    },
                })
                .collect(),
            base,
            too_many: None,
        }
    }

    /// The form as posted: fields `tenant`, `display_name`, `count`, and per fieldset `n`
    /// `i<n>_name`, `i<n>_kind`, `i<n>_redirect_uris`, `i<n>_post_logout_redirect_uris`,
    /// `i<n>_grant_<type>`, `i<n>_pkce`, `i<n>_public_client`, `i<n>_settings`,
    /// `i<n>_remove` (a checked box drops the fieldset).
    fn from_fields(f: &HashMap<String, String>) -> Self {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let claimed = get("count").parse::<usize>().unwrap_or(0);
        let count = claimed.min(MAX_INSTALLATIONS);
        let installations = (0..count)
            .filter(|n| !f.contains_key(&format!("i{n}_remove")))
            .map(|n| {
                let p = |k: &str| get(&format!("i{n}_{k}"));
                InstallationForm {
                    name: p("name").trim().to_owned(),
                    kind: p("kind"),
                    redirect_uris: p("redirect_uris"),
                    post_logout_redirect_uris: p("post_logout_redirect_uris"),
                    grant_types: GRANT_TYPES
                        .iter()
                        .filter(|g| f.contains_key(&format!("i{n}_grant_{g}")))
                        .map(|g| (*g).to_owned())
                        .collect(),
                    pkce: f.contains_key(&format!("i{n}_pkce")),
                    public_client: f.contains_key(&format!("i{n}_public_client")),
                    settings: p("settings"),
                }
            })
            .collect();
        let editing = get("editing") == "1";
        Self {
            tenant: get("tenant").trim().to_owned(),
            display_name: get("display_name").trim().to_owned(),
            editing,
            installations,
            // A form that creates a tenant is made from "not declared", whatever it says.
            base: if editing {
                get("base")
            } else {
                UNDECLARED.to_owned()
            },
            too_many: (claimed > MAX_INSTALLATIONS).then_some(claimed),
        }
    }

    /// The tenant document the form describes, checked by the API's own rules; or every
    /// problem, in words. Blank fieldsets are left out.
    fn to_doc(&self, kinds: &[String]) -> Result<(TenantId, TenantDoc), Vec<String>> {
        let mut problems = vec![];
        if let Some(n) = self.too_many {
            problems.push(too_many_words(n));
        }
        let tenant = TenantId::parse(&self.tenant).map_err(|e| format!("Tenant: {e}"));
        let mut installations = BTreeMap::new();
        for (n, i) in self.installations.iter().enumerate() {
            if i.is_blank() {
                continue;
            }
            let at = format!("Installation {}", n + 1);
            if i.name.is_empty() {
                problems.push(format!("{at}: give it a name."));
                continue;
            }
            let settings: Map<String, Value> = if i.settings.trim().is_empty() {
                Map::new()
            } else {
                match serde_json::from_str::<Value>(&i.settings) {
                    Ok(Value::Object(m)) => m,
                    _ => {
                        problems.push(format!(
                            "{at} ({}): settings must be a JSON object, e.g. {{\"region\": \"eu\"}}.",
                            i.name
                        ));
                        Map::new()
                    }
                }
            };
            let doc = InstallationDoc {
                kind: i.kind.clone(),
                redirect_uris: lines(&i.redirect_uris),
                post_logout_redirect_uris: lines(&i.post_logout_redirect_uris),
                grant_types: i.grant_types.clone(),
                pkce: i.pkce,
                public_client: i.public_client,
                settings,
            };
            // The first of two with one name is the one checked further.
            if installations.contains_key(&i.name) {
                problems.push(format!(
                    "{at}: the name {} is used twice; each installation needs its own.",
                    i.name
                ));
            } else {
                installations.insert(i.name.clone(), doc);
            }
        }
        let doc = TenantDoc {
            tenant: None,
            display_name: self.display_name.clone(),
            installations,
        };
        let tenant = match tenant {
            Ok(t) => t,
            Err(e) => {
                problems.insert(0, e);
                return Err(problems);
            }
        };
        if let Err(invalid) = doc.check(&tenant, kinds) {
            problems.extend(invalid.0);
        }
        if problems.is_empty() {
            Ok((tenant, doc))
        } else {
            Err(problems)
        }
    }
}

/// Why a form with `n` installations is not taken.
fn too_many_words(n: usize) -> String {
    format!(
        "The form has {n} installations, more installations than this form holds ({MAX_INSTALLATIONS}); declare such a tenant with the API (PUT /api/v1/tenants/{{tenant}})."
    )
}

/// The answer for a declared document too large for the form (edit, "Change the form"):
/// refused in words rather than shown cut short.
fn too_many_for_form(state: &ConsoleState, session: &Session, n: usize) -> Response {
    let heading = "Not editable here";
    state.page(session, heading, "/tenants").render(
        &state.templates,
        StatusCode::CONFLICT,
        "error.html",
        context! { heading, message => too_many_words(n) },
    )
}

fn render_form(
    state: &ConsoleState,
    session: &Session,
    form: &TenantForm,
    problems: &[String],
    focus_last: bool,
) -> Response {
    let title = if form.editing {
        format!("Edit tenant {}", form.tenant)
    } else {
        "New tenant".to_owned()
    };
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    state.page(session, title, "/tenants").render(
        &state.templates,
        status,
        "tenant_form.html",
        context! {
            form => Serde(form),
            problems => Serde(problems),
            kinds => Serde(&state.app.settings.provisioning.kinds),
            grant_types => Serde(GRANT_TYPES),
            focus_last,
        },
    )
}

/// `GET /tenants/_new`: an empty form with one installation.
#[handler]
pub async fn new_tenant_page(req: &Request, state: Data<&Arc<ConsoleState>>) -> Response {
    let session = match state.require(req, WRITERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = TenantForm::blank(&state.app.settings.provisioning.kinds);
    render_form(&state, &session, &form, &[], false)
}

/// `GET /tenants/:tenant/edit`: the form with the declared state.
#[handler]
pub async fn edit_tenant_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    tenant: Path<String>,
) -> Response {
    let session = match state.require(req, WRITERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Keys are built from valid tenant ids only; anything else reads like a missing tenant.
    if TenantId::parse(&tenant).is_err() {
        return tenant_not_found(&state, &session);
    }
    let record = match tenant_record(&state.app, &session.principal, &tenant).await {
        Ok(r) => r,
        Err(e) => return refusal(&state, &session, "Tenant", &e),
    };
    if record.doc.installations.len() > MAX_INSTALLATIONS {
        return too_many_for_form(&state, &session, record.doc.installations.len());
    }
    let base = doc_version(&record.doc);
    let form = TenantForm::from_doc(&record.tenant, &record.doc, true, base);
    render_form(&state, &session, &form, &[], false)
}

/// `POST /tenants/_new`: the form's buttons. `op=add` shows the form again with one more
/// installation; `op=edit` shows the form of a planned document (`doc`) again; `op=plan`
/// checks the form and shows the plan with the Apply button.
#[handler]
pub async fn tenant_form_post(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    body: Body,
) -> Response {
    let session = match state.require(req, WRITERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let fields = match state.checked_form(req, &session, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let kinds = &state.app.settings.provisioning.kinds;
    let op = fields.get("op").map(String::as_str).unwrap_or("plan");
    if op == "edit" {
        let doc = fields
            .get("doc")
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|v| TenantDoc::from_json(v).ok());
        let Some(doc) = doc else {
            return refusal(
                &state,
                &session,
                "Not planned",
                &HttpError::bad_request("the planned document could not be read; start again"),
            );
        };
        let tenant = fields.get("tenant").cloned().unwrap_or_default();
        let editing = fields.get("editing").map(String::as_str) == Some("1");
        if doc.installations.len() > MAX_INSTALLATIONS {
            return too_many_for_form(&state, &session, doc.installations.len());
        }
        let base = fields.get("base").cloned().unwrap_or_default();
        let form = TenantForm::from_doc(&tenant, &doc, editing, base);
        return render_form(&state, &session, &form, &[], false);
    }
    let mut form = TenantForm::from_fields(&fields);
    if op == "add" {
        if form.installations.len() >= MAX_INSTALLATIONS {
            let problem = format!(
                "This form holds at most {MAX_INSTALLATIONS} installations; declare more with the API."
            );
            return render_form(&state, &session, &form, &[problem], false);
        }
        form.installations.push(InstallationForm::blank(kinds));
        return render_form(&state, &session, &form, &[], true);
    }
    let (tenant, doc) = match form.to_doc(kinds) {
        Ok(d) => d,
        Err(problems) => return render_form(&state, &session, &form, &problems, false),
    };
    let t = tenant.as_str();
    // Creating a tenant that is already declared would replace its state unseen.
    if !form.editing {
        match tenant_record(&state.app, &session.principal, t).await {
            Ok(_) => {
                let problem =
                    format!("Tenant {t} already exists; open it and use Edit to change it.");
                return render_form(&state, &session, &form, &[problem], false);
            }
            Err(HttpError::NotFound(_)) => {}
            Err(e) => return refusal(&state, &session, "Not planned", &e),
        }
    }
    // An edit form opened before someone else's change would undo it unseen.
    match current_version(&state, t).await {
        Ok(now) if now == form.base => {}
        Ok(_) => return changed_since(&state, &session, t, "form"),
        Err(e) => return refusal(&state, &session, "Not planned", &e),
    }
    let steps = match plan_steps(&state.app, t, &doc).await {
        Ok(s) => s,
        Err(e) => return refusal(&state, &session, "Not planned", &e),
    };
    let changes = steps
        .iter()
        .filter(|s| s.action != Action::Unchanged)
        .count();
    let steps: Vec<StepView> = steps.iter().map(StepView::from).collect();
    state
        .page(&session, format!("Plan for tenant {t}"), "/tenants")
        .render(
            &state.templates,
            StatusCode::OK,
            "tenant_plan.html",
            context! {
                tenant => t,
                editing => form.editing,
                steps => Serde(&steps),
                changes,
                doc_json => serde_json::to_string(&doc).unwrap_or_default(),
                base => &form.base,
                installations => doc.installations.len(),
            },
        )
}

/// `POST /tenants/:tenant/apply`: stores the planned document and queues its apply, exactly
/// as `PUT /api/v1/tenants/{tenant}`; then the apply's page.
#[handler]
pub async fn apply_tenant(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    tenant: Path<String>,
    body: Body,
) -> Response {
    let session = match state.require(req, WRITERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let fields = match state.checked_form(req, &session, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let tenant = match parse_tenant(&tenant) {
        Ok(t) => t,
        Err(e) => return refusal(&state, &session, "Not applied", &e),
    };
    let t = tenant.as_str();
    let doc = fields
        .get("doc")
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .ok_or_else(|| HttpError::bad_request("the planned document is missing; plan again"))
        .and_then(|v| TenantDoc::from_json(v).map_err(|e| HttpError::bad_request(e.to_string())))
        .and_then(|d| check_doc(&state.app, &tenant, d));
    let doc = match doc {
        Ok(d) => d,
        Err(e) => return refusal(&state, &session, "Not applied", &e),
    };
    // The plan (or drift re-apply) names the version it was made from; a change since then
    // is refused, not overwritten unseen. (A form without one is outdated or forged.)
    match current_version(&state, t).await {
        Ok(now) if fields.get("base") == Some(&now) => {}
        Ok(_) => return changed_since(&state, &session, t, "plan"),
        Err(e) => return refusal(&state, &session, "Not applied", &e),
    }
    let id = new_apply_id();
    match queue_apply(&state.app, &session.principal, t, &id, &doc).await {
        Ok(()) => page::see_other(&format!("{}/tenants/{t}/applies/{id}", state.base)),
        Err(e) => refusal(&state, &session, "Not applied", &e),
    }
}

/// `GET /tenants/:tenant/applies/:apply`: the apply's steps, live until it ends.
#[handler]
pub async fn apply_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    Path((tenant, apply)): Path<(String, String)>,
) -> Response {
    let session = match state.require(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Keys are built from valid tenant ids only; anything else reads like a missing tenant.
    if TenantId::parse(&tenant).is_err() {
        return tenant_not_found(&state, &session);
    }
    let record = match apply_record(&state.app, &session.principal, &tenant, &apply).await {
        Ok(a) => a,
        Err(e) => return refusal(&state, &session, "Apply", &e),
    };
    let title = if record.mode == MODE_DELETE {
        format!("Deleting tenant {tenant}")
    } else {
        format!("Applying tenant {tenant}")
    };
    state.page(&session, title, "/tenants").render(
        &state.templates,
        StatusCode::OK,
        "tenant_apply.html",
        context! { tenant => &tenant, apply => Serde(ApplyView::from(&record)) },
    )
}

/// `GET /tenants/:tenant/applies/:apply/progress`: the progress fragment the apply page
/// polls every second; once the apply has ended it no longer asks to be polled.
#[handler]
pub async fn apply_progress(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    Path((tenant, apply)): Path<(String, String)>,
) -> Response {
    let session = match state.require_polling(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Keys are built from valid tenant ids only; anything else reads like a missing tenant.
    if TenantId::parse(&tenant).is_err() {
        return tenant_not_found(&state, &session);
    }
    match apply_record(&state.app, &session.principal, &tenant, &apply).await {
        Ok(record) => state.templates.fragment(
            "tenant_apply_progress.html",
            context! {
                page => context! { base => state.base.clone() },
                tenant => &tenant,
                apply => Serde(ApplyView::from(&record)),
            },
        ),
        Err(e) => refusal(&state, &session, "Apply", &e),
    }
}

/// `POST /tenants/:tenant/delete`: only when the typed name is the tenant's, through the
/// API's DELETE with confirmation; then the teardown's page.
#[handler]
pub async fn delete_tenant(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    tenant: Path<String>,
    body: Body,
) -> Response {
    let session = match state.require(req, WRITERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Keys are built from valid tenant ids only; anything else reads like a missing tenant.
    if TenantId::parse(&tenant).is_err() {
        return tenant_not_found(&state, &session);
    }
    let fields = match state.checked_form(req, &session, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let typed = fields.get("confirm").map(|c| c.trim()).unwrap_or("");
    match delete_confirmed(&state.app, &session.principal, &tenant, Some(typed)).await {
        Ok(apply) => page::see_other(&format!(
            "{}/tenants/{}/applies/{}",
            state.base, apply.tenant, apply.id
        )),
        Err(HttpError::BadRequest(_)) => {
            let message = if typed.is_empty() {
                format!(
                    "To delete tenant {}, type its name. Nothing was deleted.",
                    tenant.0
                )
            } else {
                format!(
                    "You typed “{typed}”, which is not the tenant's name. To delete tenant {}, type {} exactly. Nothing was deleted.",
                    tenant.0, tenant.0
                )
            };
            state.page(&session, "Not deleted", "/tenants").render(
                &state.templates,
                StatusCode::BAD_REQUEST,
                "tenant_not_deleted.html",
                context! { tenant => &tenant.0, message },
            )
        }
        Err(e) => refusal(&state, &session, "Not deleted", &e),
    }
}

/// `GET /tenants/:tenant/installations/:installation`: the config products read, with a
/// copy button, and secret rotation.
#[handler]
pub async fn installation_page(
    req: &Request,
    state: Data<&Arc<ConsoleState>>,
    Path((tenant, installation)): Path<(String, String)>,
) -> Response {
    let session = match state.require(req, TENANT_READERS).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Keys are built from valid tenant ids only; anything else reads like a missing tenant.
    if TenantId::parse(&tenant).is_err() {
        return tenant_not_found(&state, &session);
    }
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
                once => super::session::random_token(),
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
        .console_once(&super::session::digest(&format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> Vec<String> {
        vec!["efs".into(), "portals".into(), "dv".into()]
    }

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_posted_form_becomes_the_document_the_api_takes() {
        let f = fields(&[
            ("tenant", "acme"),
            ("display_name", "Acme Corp"),
            ("count", "3"),
            ("i0_name", "efs"),
            ("i0_kind", "efs"),
            (
                "i0_redirect_uris",
                "https://efs.acme.example/cb\r\n\r\n https://efs2.acme.example/cb ",
            ),
            ("i0_grant_authorization_code", "on"),
            ("i0_pkce", "on"),
            ("i0_settings", "{\"region\": \"eu\"}"),
            ("i1_name", "web"),
            ("i1_kind", "portals"),
            ("i1_redirect_uris", "http://localhost:3000/cb"),
            ("i1_grant_authorization_code", "on"),
            ("i1_pkce", "on"),
            ("i1_public_client", "on"),
            // A blank fieldset (added, never filled) is left out.
            ("i2_kind", "efs"),
            ("i2_pkce", "on"),
        ]);
        let form = TenantForm::from_fields(&f);
        assert_eq!(form.installations.len(), 3);
        let (tenant, doc) = form.to_doc(&kinds()).unwrap();
        assert_eq!(tenant.as_str(), "acme");
        assert_eq!(doc.installations.len(), 2);
        let efs = &doc.installations["efs"];
        assert_eq!(
            efs.redirect_uris,
            vec![
                "https://efs.acme.example/cb",
                "https://efs2.acme.example/cb"
            ]
        );
        assert_eq!(efs.grant_types, vec!["authorization_code"]);
        assert_eq!(efs.settings["region"], "eu");
        assert!(doc.installations["web"].public_client);
        // And back: the edit form of the document is the same document again.
        let again = TenantForm::from_doc("acme", &doc, true, "v".into());
        assert_eq!(again.to_doc(&kinds()).unwrap().1, doc);
    }

    #[test]
    fn every_problem_of_a_form_is_named_and_a_removed_fieldset_is_dropped() {
        let f = fields(&[
            ("tenant", "Acme!"),
            ("count", "4"),
            ("i0_name", "efs"),
            ("i0_kind", "crm"),
            ("i0_redirect_uris", "http://evil.example/cb"),
            ("i0_grant_authorization_code", "on"),
            ("i0_settings", "[1]"),
            ("i1_name", "efs"),
            ("i1_kind", "efs"),
            ("i1_redirect_uris", "https://a.example/cb"),
            ("i1_grant_authorization_code", "on"),
            ("i2_redirect_uris", "https://b.example/cb"),
            ("i3_name", "gone"),
            ("i3_remove", "on"),
        ]);
        let form = TenantForm::from_fields(&f);
        assert_eq!(form.installations.len(), 3, "the removed one is dropped");
        let problems = form.to_doc(&kinds()).unwrap_err().join("\n");
        for expected in [
            "Tenant: `Acme!` is not a tenant id",
            "settings must be a JSON object",
            "is used twice",
            "Installation 3: give it a name",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} missing in:\n{problems}"
            );
        }
        // With a valid tenant, the API's own checks speak too.
        let mut f = f;
        f.insert("tenant".into(), "acme".into());
        let problems = TenantForm::from_fields(&f)
            .to_doc(&kinds())
            .unwrap_err()
            .join("\n");
        assert!(
            problems.contains("`crm` is not a configured kind"),
            "{problems}"
        );
        assert!(problems.contains("must use https"), "{problems}");
    }

    #[test]
    fn the_form_never_holds_more_than_its_limit_and_says_so_instead_of_cutting() {
        let f = fields(&[("tenant", "acme"), ("count", "100000")]);
        let form = TenantForm::from_fields(&f);
        assert_eq!(form.installations.len(), MAX_INSTALLATIONS);
        let problems = form.to_doc(&kinds()).unwrap_err();
        assert!(
            problems[0].contains("100000 installations, more installations than this form holds"),
            "{problems:?}"
        );
        // At the limit, every fieldset is read.
        let count = MAX_INSTALLATIONS.to_string();
        let f = fields(&[("tenant", "acme"), ("count", &count)]);
        let form = TenantForm::from_fields(&f);
        assert_eq!(form.installations.len(), MAX_INSTALLATIONS);
        assert_eq!(form.too_many, None);
    }

    fn step(key: &str, resource: &str, action: Action, detail: Option<&str>) -> Step {
        Step {
            index: 0,
            key: key.into(),
            resource: resource.into(),
            action,
            okta_id: None,
            detail: detail.map(Into::into),
            error: None,
        }
    }

    #[test]
    fn drift_reads_in_plain_words() {
        let cases = [
            (
                step("app:efs", "tenant-acme-efs", Action::Create, None),
                "App tenant-acme-efs (installation efs) is missing in Okta.",
            ),
            (
                step(
                    "app:efs",
                    "tenant-acme-efs",
                    Action::Update,
                    Some("redirect_uris"),
                ),
                "App tenant-acme-efs (installation efs) differs from the declared state: redirect URIs.",
            ),
            (
                step("app:efs:assign", "tenant-acme-efs", Action::Create, None),
                "App tenant-acme-efs (installation efs) is not assigned to the tenant's users group.",
            ),
            (
                step("app:old:delete", "tenant-acme-old", Action::Delete, None),
                "App tenant-acme-old still exists, but installation old is no longer declared.",
            ),
            (
                step("group:users", "tenant-acme", Action::Create, None),
                "Group tenant-acme is missing in Okta.",
            ),
            (
                step("rule:activate", "tenant-acme", Action::Activate, None),
                "Group rule tenant-acme is not active.",
            ),
        ];
        for (s, words) in cases {
            assert_eq!(drift_words(&s), words);
        }
        assert_eq!(
            step_subject("app:efs:assign"),
            "app of installation efs assigned to the users group"
        );
        assert_eq!(step_subject("group:admins:delete"), "client admins group");
    }
}
