//! The create/edit form (`GET /tenants/_new`, `GET /tenants/:tenant/edit`, `POST
//! /tenants/_new`): its values ([`TenantForm`]) read from the posted fields and checked into
//! the document the API takes, the form shown again with every problem, and the plan it leads
//! to.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use minijinja::context;
use minijinja::value::Serde;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::shared::{open_tenant, refusal};
use super::version::{changed_since, current_version, doc_version, UNDECLARED};
use super::views::StepView;
use crate::console::session::Session;
use crate::console::ConsoleState;
use crate::domain::tenant::TenantId;
use crate::http::error::HttpError;
use crate::http::tenants::{plan_steps, tenant_record, WRITERS};
use crate::tenants::doc::{InstallationDoc, TenantDoc, GRANT_TYPES};
use crate::tenants::engine::Action;

/// Installation fieldsets one form holds at most (added, posted or shown for an edit). A
/// tenant declared through the API with more is refused by the form in words, never cut short:
/// a fieldset left out would plan, and on Apply carry out, the deletion of its app.
const MAX_INSTALLATIONS: usize = 100;

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
    let session = match open_tenant(&state, req, WRITERS, &tenant).await {
        Ok(s) => s,
        Err(r) => return r,
    };
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
}
