//! The saga: a tenant's Okta resources as an ordered list of steps, each *find by a stable
//! name, then create or update*. The same code makes the plan (`dry_run`: reads only) and runs
//! the apply, so a plan says exactly what an apply would do.
//!
//! Every step first reads what Okta has (never our memory of it), so drift made by hand shows
//! up, and a crash between "Okta created it" and "we recorded it" is healed by the find on
//! resume instead of creating a second group or app. The caller records each step's result
//! (with the Okta id it produced) before the next one runs ([`StepSink`]).

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::doc::{InstallationDoc, Names, TenantDoc};
use crate::okta::client::{OktaClient, OktaError};
use crate::okta::rate::Lane;

/// What a step does (or, in a plan, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Unchanged,
    Create,
    Update,
    Activate,
    Delete,
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Position in the apply.
    pub index: usize,
    /// Stable key: `group:users`, `group:admins`, `rule`, `rule:activate`, `app:<i>`,
    /// `app:<i>:assign`, `app:<i>:delete`.
    pub key: String,
    /// The Okta name the step finds by.
    pub resource: String,
    pub action: Action,
    /// The Okta id the step found or produced.
    #[serde(default)]
    pub okta_id: Option<String>,
    /// What differed, or what happened to a new app's client secret.
    #[serde(default)]
    pub detail: Option<String>,
    /// Why the step failed (Okta's own summary).
    #[serde(default)]
    pub error: Option<String>,
}

/// Where the apply records each step before the next runs, and hands out new client secrets.
pub trait StepSink: Send {
    /// A step already finished by an earlier run of this apply (resume), if any.
    fn done(&self, key: &str) -> Option<Step>;
    /// Records a finished step (and the Okta id under `key`) durably.
    fn record(
        &mut self,
        step: &Step,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
    /// A new app's client secret for `installation`; returns what happened to it (never stored).
    fn secret(
        &mut self,
        installation: &str,
        secret: &str,
    ) -> impl std::future::Future<Output = String> + Send;
}

/// A sink for plans: nothing done before, nothing recorded.
pub struct PlanSink;

impl StepSink for PlanSink {
    fn done(&self, _: &str) -> Option<Step> {
        None
    }
    async fn record(&mut self, _: &Step) -> Result<(), String> {
        Ok(())
    }
    async fn secret(&mut self, _: &str, _: &str) -> String {
        String::new()
    }
}

/// How the saga runs.
pub struct Engine<'a> {
    pub okta: &'a OktaClient,
    pub lane: Lane,
    /// Reads only: every write is reported, not made.
    pub dry_run: bool,
    /// `user.<attribute>=="<tenant>"` in the group rule.
    pub profile_attribute: &'a str,
}

/// The ids a run found or produced, by step key (`group:users`, `app:<i>`, …).
pub type Ids = HashMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("step {key}: {source}")]
    Okta { key: String, source: OktaError },
    #[error("step {key} could not be recorded: {reason}")]
    Record { key: String, reason: String },
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn id_of(v: &Value) -> Option<String> {
    v["id"].as_str().map(str::to_owned)
}

impl Engine<'_> {
    async fn get(&self, path: &str) -> Result<Value, OktaError> {
        Ok(self
            .okta
            .call(self.lane, Method::GET, path, None)
            .await?
            .unwrap_or(Value::Null))
    }

    async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, OktaError> {
        debug_assert!(!self.dry_run, "a plan never writes");
        Ok(self
            .okta
            .call(self.lane, method, path, body)
            .await?
            .unwrap_or(Value::Null))
    }

    async fn find_group(&self, name: &str) -> Result<Option<Value>, OktaError> {
        let search = format!("profile.name eq \"{name}\"");
        let list = self
            .get(&format!("/api/v1/groups?search={}", enc(&search)))
            .await?;
        Ok(list
            .as_array()
            .and_then(|a| a.iter().find(|g| g["profile"]["name"] == name).cloned()))
    }

    async fn find_rule(&self, name: &str) -> Result<Option<Value>, OktaError> {
        let list = self
            .get(&format!("/api/v1/groups/rules?search={}", enc(name)))
            .await?;
        Ok(list
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == name).cloned()))
    }

    async fn find_app(&self, label: &str) -> Result<Option<Value>, OktaError> {
        let list = self
            .get(&format!("/api/v1/apps?q={}&limit=200", enc(label)))
            .await?;
        Ok(list
            .as_array()
            .and_then(|a| a.iter().find(|app| app["label"] == label).cloned()))
    }

    /// Runs (or plans) every step that brings the tenant to `doc`. `known` are the ids recorded
    /// by earlier applies (to find installations that were removed from the document).
    pub async fn converge<S: StepSink>(
        &self,
        tenant: &str,
        doc: &TenantDoc,
        known: &Ids,
        sink: &mut S,
    ) -> Result<(Vec<Step>, Ids), EngineError> {
        let names = Names::new(tenant);
        let mut run = Run {
            steps: vec![],
            ids: Ids::new(),
        };
        let description = if doc.display_name.is_empty() {
            tenant.to_owned()
        } else {
            doc.display_name.clone()
        };
        for (key, name, desc) in [
            (
                "group:users",
                names.users_group(),
                format!("Users of {description}"),
            ),
            (
                "group:admins",
                names.admins_group(),
                format!("Client admins of {description}"),
            ),
        ] {
            run.step(sink, key, &name, self.group_step(&name, &desc))
                .await?;
        }
        let users_group = run.ids.get("group:users").cloned();
        run.step(
            sink,
            "rule",
            &names.rule(),
            self.rule_step(&names.rule(), tenant, users_group.as_deref()),
        )
        .await?;
        let rule = run.ids.get("rule").cloned();
        run.step(
            sink,
            "rule:activate",
            &names.rule(),
            self.rule_activate_step(rule.as_deref()),
        )
        .await?;
        for (installation, inst) in &doc.installations {
            let label = names.app_label(installation);
            let key = format!("app:{installation}");
            // Not `run.step`: a new app hands its client secret to the sink.
            if let Some(done) = sink.done(&key) {
                run.finish(sink, done, false).await?;
            } else {
                let outcome = self
                    .app_step(&label, tenant, installation, inst, sink)
                    .await;
                run.conclude(sink, &key, &label, outcome).await?;
            }
            let app = run.ids.get(&key).cloned();
            run.step(
                sink,
                &format!("{key}:assign"),
                &label,
                self.assign_step(app.as_deref(), users_group.as_deref()),
            )
            .await?;
        }
        // Installations removed from the document: their apps go (users never do).
        let mut removed: BTreeMap<&str, &str> = BTreeMap::new();
        for (k, id) in known {
            if let Some(installation) = k.strip_prefix("app:") {
                if !installation.contains(':') && !doc.installations.contains_key(installation) {
                    removed.insert(installation, id);
                }
            }
        }
        for (installation, id) in removed {
            let label = names.app_label(installation);
            run.step(
                sink,
                &format!("app:{installation}:delete"),
                &label,
                self.delete_app_step(&label, Some(id)),
            )
            .await?;
        }
        Ok((run.steps, run.ids))
    }

    /// Tears the tenant's Okta resources down (apps, rule, groups; never users).
    pub async fn teardown<S: StepSink>(
        &self,
        tenant: &str,
        doc: &TenantDoc,
        known: &Ids,
        sink: &mut S,
    ) -> Result<Vec<Step>, EngineError> {
        let names = Names::new(tenant);
        let mut run = Run {
            steps: vec![],
            ids: Ids::new(),
        };
        let mut installations: Vec<&str> = doc.installations.keys().map(String::as_str).collect();
        for k in known.keys() {
            if let Some(i) = k.strip_prefix("app:").filter(|i| !i.contains(':')) {
                if !installations.contains(&i) {
                    installations.push(i);
                }
            }
        }
        for installation in installations {
            let label = names.app_label(installation);
            let id = known
                .get(&format!("app:{installation}"))
                .map(String::as_str);
            run.step(
                sink,
                &format!("app:{installation}:delete"),
                &label,
                self.delete_app_step(&label, id),
            )
            .await?;
        }
        run.step(
            sink,
            "rule:delete",
            &names.rule(),
            self.delete_rule_step(&names.rule()),
        )
        .await?;
        for (key, name) in [
            ("group:admins:delete", names.admins_group()),
            ("group:users:delete", names.users_group()),
        ] {
            run.step(sink, key, &name, self.delete_group_step(&name))
                .await?;
        }
        Ok(run.steps)
    }

    async fn group_step(&self, name: &str, description: &str) -> Result<Outcome, OktaError> {
        match self.find_group(name).await? {
            None if self.dry_run => Ok(Outcome::new(Action::Create, None)),
            None => {
                let g = self
                    .write(
                        Method::POST,
                        "/api/v1/groups",
                        Some(&json!({"profile": {"name": name, "description": description}})),
                    )
                    .await?;
                Ok(Outcome::new(Action::Create, id_of(&g)))
            }
            Some(g) if g["profile"]["description"] != description => {
                if !self.dry_run {
                    let path = format!("/api/v1/groups/{}", g["id"].as_str().unwrap_or(""));
                    let body = json!({"profile": {"name": name, "description": description}});
                    self.write(Method::PUT, &path, Some(&body)).await?;
                }
                Ok(Outcome::new(Action::Update, id_of(&g)).detail("description"))
            }
            Some(g) => Ok(Outcome::new(Action::Unchanged, id_of(&g))),
        }
    }

    fn rule_body(&self, name: &str, tenant: &str, group: &str) -> Value {
        json!({
            "type": "group_rule",
            "name": name,
            "conditions": {"expression": {
                "value": format!("user.{}==\"{tenant}\"", self.profile_attribute),
                "type": "urn:okta:expression:1.0"
            }},
            "actions": {"assignUserToGroups": {"groupIds": [group]}}
        })
    }

    async fn rule_step(
        &self,
        name: &str,
        tenant: &str,
        group: Option<&str>,
    ) -> Result<Outcome, OktaError> {
        let found = self.find_rule(name).await?;
        let Some(group) = group else {
            // Only in a plan: the group does not exist yet, so neither can a rule on it.
            return Ok(Outcome::new(Action::Create, found.as_ref().and_then(id_of)));
        };
        let want = self.rule_body(name, tenant, group);
        match found {
            None if self.dry_run => Ok(Outcome::new(Action::Create, None)),
            None => {
                // Okta creates rules INACTIVE; the next step activates.
                let r = self
                    .write(Method::POST, "/api/v1/groups/rules", Some(&want))
                    .await?;
                Ok(Outcome::new(Action::Create, id_of(&r)))
            }
            Some(r)
                if r.pointer("/conditions/expression/value")
                    != want.pointer("/conditions/expression/value")
                    || r.pointer("/actions/assignUserToGroups/groupIds")
                        != want.pointer("/actions/assignUserToGroups/groupIds") =>
            {
                let id = id_of(&r).unwrap_or_default();
                if !self.dry_run {
                    // An active rule cannot be changed: deactivate, update (activated next).
                    if r["status"] == "ACTIVE" {
                        let path = format!("/api/v1/groups/rules/{id}/lifecycle/deactivate");
                        self.write(Method::POST, &path, None).await?;
                    }
                    let path = format!("/api/v1/groups/rules/{id}");
                    self.write(Method::PUT, &path, Some(&want)).await?;
                }
                Ok(Outcome::new(Action::Update, Some(id)).detail("expression or groups"))
            }
            Some(r) => Ok(Outcome::new(Action::Unchanged, id_of(&r))),
        }
    }

    async fn rule_activate_step(&self, rule: Option<&str>) -> Result<Outcome, OktaError> {
        let Some(id) = rule else {
            return Ok(Outcome::new(Action::Activate, None));
        };
        let r = self.get(&format!("/api/v1/groups/rules/{id}")).await?;
        if r["status"] == "ACTIVE" {
            return Ok(Outcome::new(Action::Unchanged, Some(id.to_owned())));
        }
        if !self.dry_run {
            let path = format!("/api/v1/groups/rules/{id}/lifecycle/activate");
            self.write(Method::POST, &path, None).await?;
        }
        Ok(Outcome::new(Action::Activate, Some(id.to_owned())))
    }

    async fn app_step<S: StepSink>(
        &self,
        label: &str,
        tenant: &str,
        installation: &str,
        inst: &InstallationDoc,
        sink: &mut S,
    ) -> Result<Outcome, OktaError> {
        let want = inst.app_body(label, tenant, installation);
        match self.find_app(label).await? {
            None if self.dry_run => Ok(Outcome::new(Action::Create, None)),
            None => {
                let app = self
                    .write(Method::POST, "/api/v1/apps?activate=true", Some(&want))
                    .await?;
                let delivered = match app
                    .pointer("/credentials/oauthClient/client_secret")
                    .and_then(Value::as_str)
                {
                    Some(secret) => sink.secret(installation, secret).await,
                    None => "public client: no secret".into(),
                };
                Ok(Outcome::new(Action::Create, id_of(&app)).detail(&delivered))
            }
            Some(app) => {
                let id = id_of(&app).unwrap_or_default();
                let diff = inst.differs_from(&app, tenant, installation);
                let inactive = app["status"] != "ACTIVE";
                if !self.dry_run {
                    if diff.is_some() {
                        let path = format!("/api/v1/apps/{id}");
                        self.write(Method::PUT, &path, Some(&want)).await?;
                    }
                    if inactive {
                        let path = format!("/api/v1/apps/{id}/lifecycle/activate");
                        self.write(Method::POST, &path, None).await?;
                    }
                }
                Ok(match (diff, inactive) {
                    (Some(d), _) => Outcome::new(Action::Update, Some(id)).detail(&d),
                    (None, true) => Outcome::new(Action::Activate, Some(id)),
                    (None, false) => Outcome::new(Action::Unchanged, Some(id)),
                })
            }
        }
    }

    async fn assign_step(
        &self,
        app: Option<&str>,
        group: Option<&str>,
    ) -> Result<Outcome, OktaError> {
        let (Some(app), Some(group)) = (app, group) else {
            return Ok(Outcome::new(Action::Create, None));
        };
        let assigned = self.get(&format!("/api/v1/apps/{app}/groups")).await?;
        let present = assigned
            .as_array()
            .is_some_and(|a| a.iter().any(|g| g["id"] == group));
        if present {
            return Ok(Outcome::new(Action::Unchanged, Some(group.to_owned())));
        }
        if !self.dry_run {
            let path = format!("/api/v1/apps/{app}/groups/{group}");
            self.write(Method::PUT, &path, Some(&json!({}))).await?;
        }
        Ok(Outcome::new(Action::Create, Some(group.to_owned())))
    }

    async fn delete_app_step(&self, label: &str, id: Option<&str>) -> Result<Outcome, OktaError> {
        let app = match id {
            Some(id) => match self.get(&format!("/api/v1/apps/{id}")).await {
                Ok(app) => Some(app),
                Err(e) if e.status() == Some(404) => self.find_app(label).await?,
                Err(e) => return Err(e),
            },
            None => self.find_app(label).await?,
        };
        let Some(app) = app.filter(|a| a["label"] == label) else {
            return Ok(Outcome::new(Action::Unchanged, None).detail("already gone"));
        };
        let id = id_of(&app).unwrap_or_default();
        if !self.dry_run {
            if app["status"] == "ACTIVE" {
                let path = format!("/api/v1/apps/{id}/lifecycle/deactivate");
                self.write(Method::POST, &path, None).await?;
            }
            self.write(Method::DELETE, &format!("/api/v1/apps/{id}"), None)
                .await?;
        }
        Ok(Outcome::new(Action::Delete, Some(id)))
    }

    async fn delete_rule_step(&self, name: &str) -> Result<Outcome, OktaError> {
        let Some(rule) = self.find_rule(name).await? else {
            return Ok(Outcome::new(Action::Unchanged, None).detail("already gone"));
        };
        let id = id_of(&rule).unwrap_or_default();
        if !self.dry_run {
            if rule["status"] == "ACTIVE" {
                let path = format!("/api/v1/groups/rules/{id}/lifecycle/deactivate");
                self.write(Method::POST, &path, None).await?;
            }
            self.write(Method::DELETE, &format!("/api/v1/groups/rules/{id}"), None)
                .await?;
        }
        Ok(Outcome::new(Action::Delete, Some(id)))
    }

    async fn delete_group_step(&self, name: &str) -> Result<Outcome, OktaError> {
        let Some(group) = self.find_group(name).await? else {
            return Ok(Outcome::new(Action::Unchanged, None).detail("already gone"));
        };
        let id = id_of(&group).unwrap_or_default();
        if !self.dry_run {
            // Deleting a group removes memberships, never the users.
            self.write(Method::DELETE, &format!("/api/v1/groups/{id}"), None)
                .await?;
        }
        Ok(Outcome::new(Action::Delete, Some(id)))
    }
}

/// What one step function found or did.
struct Outcome {
    action: Action,
    id: Option<String>,
    detail: Option<String>,
}

impl Outcome {
    fn new(action: Action, id: Option<String>) -> Self {
        Self {
            action,
            id,
            detail: None,
        }
    }

    fn detail(mut self, d: &str) -> Self {
        if !d.is_empty() {
            self.detail = Some(d.to_owned());
        }
        self
    }
}

struct Run {
    steps: Vec<Step>,
    ids: Ids,
}

impl Run {
    async fn step<S: StepSink>(
        &mut self,
        sink: &mut S,
        key: &str,
        resource: &str,
        work: impl std::future::Future<Output = Result<Outcome, OktaError>>,
    ) -> Result<(), EngineError> {
        if let Some(done) = sink.done(key) {
            return self.finish(sink, done, false).await;
        }
        let outcome = work.await;
        self.conclude(sink, key, resource, outcome).await
    }

    async fn conclude<S: StepSink>(
        &mut self,
        sink: &mut S,
        key: &str,
        resource: &str,
        outcome: Result<Outcome, OktaError>,
    ) -> Result<(), EngineError> {
        let index = self.steps.len();
        match outcome {
            Ok(o) => {
                let step = Step {
                    index,
                    key: key.to_owned(),
                    resource: resource.to_owned(),
                    action: o.action,
                    okta_id: o.id,
                    detail: o.detail,
                    error: None,
                };
                self.finish(sink, step, true).await
            }
            Err(source) => {
                let step = Step {
                    index,
                    key: key.to_owned(),
                    resource: resource.to_owned(),
                    action: Action::Unchanged,
                    okta_id: None,
                    detail: None,
                    error: Some(source.to_string()),
                };
                self.steps.push(step);
                Err(EngineError::Okta {
                    key: key.to_owned(),
                    source,
                })
            }
        }
    }

    async fn finish<S: StepSink>(
        &mut self,
        sink: &mut S,
        mut step: Step,
        record: bool,
    ) -> Result<(), EngineError> {
        step.index = self.steps.len();
        if record {
            sink.record(&step)
                .await
                .map_err(|reason| EngineError::Record {
                    key: step.key.clone(),
                    reason,
                })?;
        }
        if let Some(id) = &step.okta_id {
            if !step.key.ends_with(":assign") && step.action != Action::Delete {
                self.ids.insert(step.key.clone(), id.clone());
            }
        }
        self.steps.push(step);
        Ok(())
    }
}
