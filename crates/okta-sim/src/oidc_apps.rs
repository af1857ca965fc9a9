//! OIDC apps (`/api/v1/apps`), as Okta documents them for `signOnMode: OPENID_CONNECT`:
//!
//! - `POST /api/v1/apps?activate=true|false` answers the app with `credentials.oauthClient`
//!   holding `client_id` (the app id, as Okta does by default) and — on this answer only — the
//!   `client_secret` (none for `token_endpoint_auth_method: none`, i.e. a PKCE public client);
//! - `GET /api/v1/apps/{id}`, `GET /api/v1/apps?q=…` (label or name starting with `q`, case
//!   insensitive), `PUT /api/v1/apps/{id}` (full replace; the secret is never returned);
//! - lifecycle: `POST …/lifecycle/activate|deactivate`; `DELETE` only of an INACTIVE app
//!   (`E0000056` otherwise);
//! - client secrets (`/credentials/secrets`): create (at most two, `E0000001` beyond), list
//!   (hashes only), deactivate, delete an inactive one;
//! - group assignments (`PUT|DELETE /api/v1/apps/{id}/groups/{gid}`, `GET …/groups`): the
//!   group's members get a `GROUP`-scoped assignment and `application.user_membership.add`;
//!   `GET /api/v1/apps/{id}/users` lists assignments with their scope.
//!
//! All in the `apps` bucket (`SimConfig::apps_limit`). `DELETE /sim/apps/{id}` removes an app
//! as an admin would by hand in Okta's console (no rate limit), for drift tests.

use sha2_free::hash_hex;

use super::*;

/// A client secret of an app.
#[derive(Debug, Clone)]
pub(crate) struct SimSecret {
    id: String,
    secret: String,
    status: &'static str,
    created: String,
}

impl SimSecret {
    fn new() -> Self {
        Self {
            id: format!("ocs{}", rand_id(17)),
            secret: rand_id(40),
            status: "ACTIVE",
            created: now(),
        }
    }

    /// As Okta lists it: a hash, never the value (except right after creation).
    fn to_json(&self, reveal: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "status": self.status,
            "secret_hash": hash_hex(&self.secret),
            "created": self.created,
            "lastUpdated": self.created,
        });
        if reveal {
            v["client_secret"] = json!(self.secret);
        }
        v
    }
}

/// An OIDC app.
#[derive(Debug, Clone)]
pub(crate) struct SimApp {
    id: String,
    label: String,
    status: &'static str,
    /// `settings.oauthClient` as given (redirect_uris, grant_types, response_types, …).
    oauth_settings: Value,
    /// `credentials.oauthClient` minus the secret (token_endpoint_auth_method, pkce_required).
    oauth_credentials: Value,
    /// `profile`, free-form (products keep their settings here).
    profile: Value,
    secrets: Vec<SimSecret>,
    /// Group id → priority.
    groups: HashMap<String, u64>,
    created: String,
    last_updated: String,
}

impl SimApp {
    fn to_json(&self) -> Value {
        let mut credentials = self.oauth_credentials.clone();
        credentials["client_id"] = json!(self.id);
        json!({
            "id": self.id,
            "name": "oidc_client",
            "label": self.label,
            "status": self.status,
            "signOnMode": "OPENID_CONNECT",
            "created": self.created,
            "lastUpdated": self.last_updated,
            "credentials": {"oauthClient": credentials},
            "settings": {"oauthClient": self.oauth_settings},
            "profile": self.profile,
            "_links": {}
        })
    }

    fn target(&self) -> Value {
        json!({"id": self.id, "type": "AppInstance", "alternateId": self.label, "displayName": self.label})
    }
}

/// OIDC apps (the tenant-provisioning part of the simulated org; group rules are in `rules`).
#[derive(Debug, Default)]
pub(crate) struct TenancyState {
    pub(crate) apps: HashMap<String, SimApp>,
}

fn app_not_found(id: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {id} (AppInstance)"),
        &[],
    )
}

const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "implicit",
    "client_credentials",
    "password",
    "urn:ietf:params:oauth:grant-type:device_code",
];

/// Checks an app body; returns (label, settings.oauthClient, credentials.oauthClient, profile).
fn parse_app(body: &Value) -> Result<(String, Value, Value, Value), Box<Response>> {
    let invalid = |cause: String| {
        Box::new(okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: com.okta.app.OpenIdConnect",
            &[&cause],
        ))
    };
    if body["signOnMode"].as_str() != Some("OPENID_CONNECT") {
        return Err(invalid(
            "signOnMode: this simulator creates OPENID_CONNECT apps only".into(),
        ));
    }
    let label = body["label"].as_str().unwrap_or("").trim().to_owned();
    if label.is_empty() || label.len() > 100 {
        return Err(invalid(
            "label: The field must be 1 to 100 characters".into(),
        ));
    }
    let settings = body
        .pointer("/settings/oauthClient")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let grants: Vec<&str> = settings["grant_types"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if grants.is_empty() {
        return Err(invalid(
            "grant_types: at least one grant type is required".into(),
        ));
    }
    if let Some(bad) = grants.iter().find(|g| !GRANT_TYPES.contains(g)) {
        return Err(invalid(format!(
            "grant_types: unsupported grant type {bad}"
        )));
    }
    let redirects: Vec<&str> = settings["redirect_uris"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if grants.contains(&"authorization_code") && redirects.is_empty() {
        return Err(invalid(
            "redirect_uris: authorization_code requires at least one redirect URI".into(),
        ));
    }
    if let Some(bad) = redirects
        .iter()
        .find(|u| !(u.starts_with("https://") || u.starts_with("http://localhost")))
    {
        return Err(invalid(format!(
            "redirect_uris: {bad} must use https (or http://localhost)"
        )));
    }
    let mut credentials = body
        .pointer("/credentials/oauthClient")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(c) = credentials.as_object_mut() {
        c.remove("client_secret");
        c.remove("client_id");
        c.entry("token_endpoint_auth_method")
            .or_insert(json!("client_secret_basic"));
        c.entry("pkce_required").or_insert(json!(false));
        c.entry("autoKeyRotation").or_insert(json!(true));
    }
    let profile = body.get("profile").cloned().unwrap_or_else(|| json!({}));
    Ok((label, settings, credentials, profile))
}

/// Routes `/api/v1/apps…` (except user assignments, in `apps.rs`); `None` for other paths.
pub(crate) fn route(
    sim: &Sim,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
    body: &Value,
) -> Option<Response> {
    let ["api", "v1", "apps", rest @ ..] = segments else {
        return None;
    };
    let mut st = sim.state.lock().unwrap();
    Some(match (method.as_str(), rest) {
        ("POST", []) => create_app(&mut st, query, body),
        ("GET", []) => list_apps(&st, query),
        ("GET", [id]) => match st.tenancy.apps.get(*id) {
            Some(app) => json_response(StatusCode::OK, &app.to_json()),
            None => app_not_found(id),
        },
        ("PUT", [id]) => update_app(&mut st, id, body),
        ("DELETE", [id]) => match st.tenancy.apps.get(*id).map(|a| a.status) {
            None => app_not_found(id),
            Some("ACTIVE") => okta_error(
                StatusCode::FORBIDDEN,
                "E0000056",
                "Delete application forbidden.",
                &["The application must be deactivated before it can be deleted"],
            ),
            Some(_) => {
                st.tenancy.apps.remove(*id);
                Response::builder().status(StatusCode::NO_CONTENT).finish()
            }
        },
        ("POST", [id, "lifecycle", op @ ("activate" | "deactivate")]) => {
            match st.tenancy.apps.get_mut(*id) {
                Some(app) => {
                    app.status = if *op == "activate" {
                        "ACTIVE"
                    } else {
                        "INACTIVE"
                    };
                    app.last_updated = now();
                    json_response(StatusCode::OK, &json!({}))
                }
                None => app_not_found(id),
            }
        }
        (_, [id, "credentials", "secrets", more @ ..]) => {
            let Some(app) = st.tenancy.apps.get_mut(*id) else {
                return Some(app_not_found(id));
            };
            secrets(app, method.as_str(), more)
        }
        ("GET", [id, "groups"]) => match st.tenancy.apps.get(*id) {
            Some(app) => {
                let mut list: Vec<(&String, &u64)> = app.groups.iter().collect();
                list.sort();
                let list: Vec<Value> = list
                    .into_iter()
                    .map(|(g, p)| json!({"id": g, "priority": p, "profile": {}}))
                    .collect();
                json_response(StatusCode::OK, &Value::Array(list))
            }
            None => app_not_found(id),
        },
        ("PUT", [id, "groups", gid]) => assign_group(sim, &mut st, id, gid, body),
        ("DELETE", [id, "groups", gid]) => {
            let Some(app) = st.tenancy.apps.get_mut(*id) else {
                return Some(app_not_found(id));
            };
            app.groups.remove(*gid);
            Response::builder().status(StatusCode::NO_CONTENT).finish()
        }
        ("GET", [id, "users"]) => list_app_users(&st, id),
        // User assignments (`POST …/users`, `DELETE …/users/{uid}`) stay in `apps.rs`.
        _ => return None,
    })
}

fn create_app(st: &mut SimState, query: &HashMap<String, String>, body: &Value) -> Response {
    let (label, oauth_settings, oauth_credentials, profile) = match parse_app(body) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let public = oauth_credentials["token_endpoint_auth_method"] == "none";
    let secret = (!public).then(SimSecret::new);
    let app = SimApp {
        id: format!("0oa{}", rand_id(17)),
        label,
        status: if flag(query, "activate", true) {
            "ACTIVE"
        } else {
            "INACTIVE"
        },
        oauth_settings,
        oauth_credentials,
        profile,
        secrets: secret.clone().into_iter().collect(),
        groups: HashMap::new(),
        created: now(),
        last_updated: now(),
    };
    let mut answer = app.to_json();
    if let Some(s) = secret {
        // Okta shows the secret in the create answer only.
        answer["credentials"]["oauthClient"]["client_secret"] = json!(s.secret);
    }
    st.tenancy.apps.insert(app.id.clone(), app);
    json_response(StatusCode::OK, &answer)
}

fn list_apps(st: &SimState, query: &HashMap<String, String>) -> Response {
    let q = query.get("q").map(|q| q.to_lowercase());
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10_000);
    let mut apps: Vec<&SimApp> = st
        .tenancy
        .apps
        .values()
        .filter(|a| {
            q.as_ref().is_none_or(|q| {
                a.label.to_lowercase().starts_with(q) || "oidc_client".starts_with(q.as_str())
            })
        })
        .collect();
    apps.sort_by(|a, b| a.label.cmp(&b.label).then(a.id.cmp(&b.id)));
    let list: Vec<Value> = apps.iter().take(limit).map(|a| a.to_json()).collect();
    json_response(StatusCode::OK, &Value::Array(list))
}

fn update_app(st: &mut SimState, id: &str, body: &Value) -> Response {
    let parsed = parse_app(body);
    let Some(app) = st.tenancy.apps.get_mut(id) else {
        return app_not_found(id);
    };
    let (label, oauth_settings, oauth_credentials, profile) = match parsed {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    app.label = label;
    app.oauth_settings = oauth_settings;
    app.oauth_credentials = oauth_credentials;
    app.profile = profile;
    app.last_updated = now();
    json_response(StatusCode::OK, &app.to_json())
}

/// `/api/v1/apps/{id}/credentials/secrets…`
fn secrets(app: &mut SimApp, method: &str, rest: &[&str]) -> Response {
    let secret_not_found = |sid: &str| {
        okta_error(
            StatusCode::NOT_FOUND,
            "E0000007",
            &format!("Not found: Resource not found: {sid} (OAuth2ClientSecret)"),
            &[],
        )
    };
    match (method, rest) {
        ("POST", []) => {
            if app.oauth_credentials["token_endpoint_auth_method"] == "none" {
                return okta_error(
                    StatusCode::BAD_REQUEST,
                    "E0000001",
                    "Api validation failed: client_secret",
                    &["A public client (token_endpoint_auth_method none) has no secret"],
                );
            }
            if app.secrets.len() >= 2 {
                return okta_error(
                    StatusCode::BAD_REQUEST,
                    "E0000001",
                    "Api validation failed: client_secret",
                    &["You can only have two client secrets. Delete one to add another."],
                );
            }
            let s = SimSecret::new();
            let answer = s.to_json(true);
            app.secrets.push(s);
            json_response(StatusCode::OK, &answer)
        }
        ("GET", []) => json_response(
            StatusCode::OK,
            &Value::Array(app.secrets.iter().map(|s| s.to_json(false)).collect()),
        ),
        ("POST", [sid, "lifecycle", op @ ("activate" | "deactivate")]) => {
            let active = app.secrets.iter().filter(|s| s.status == "ACTIVE").count();
            let Some(s) = app.secrets.iter_mut().find(|s| s.id == *sid) else {
                return secret_not_found(sid);
            };
            if *op == "deactivate" && s.status == "ACTIVE" && active == 1 {
                return okta_error(
                    StatusCode::BAD_REQUEST,
                    "E0000001",
                    "Api validation failed: client_secret",
                    &["The only active secret of a client cannot be deactivated"],
                );
            }
            s.status = if *op == "activate" {
                "ACTIVE"
            } else {
                "INACTIVE"
            };
            json_response(StatusCode::OK, &s.to_json(false))
        }
        ("DELETE", [sid]) => match app.secrets.iter().position(|s| s.id == *sid) {
            None => secret_not_found(sid),
            Some(i) if app.secrets[i].status == "ACTIVE" => okta_error(
                StatusCode::BAD_REQUEST,
                "E0000001",
                "Api validation failed: client_secret",
                &["An active client secret cannot be deleted; deactivate it first"],
            ),
            Some(i) => {
                app.secrets.remove(i);
                Response::builder().status(StatusCode::NO_CONTENT).finish()
            }
        },
        _ => okta_error(
            StatusCode::NOT_FOUND,
            "E0000022",
            "The endpoint does not support the provided HTTP method",
            &[],
        ),
    }
}

fn assign_group(sim: &Sim, st: &mut SimState, id: &str, gid: &str, body: &Value) -> Response {
    if !st.tenancy.apps.contains_key(id) {
        return app_not_found(id);
    }
    let Some(group) = st.groups.get(gid) else {
        return group_not_found(gid);
    };
    if group.name.is_empty() {
        return group_not_found(gid);
    }
    let members: Vec<String> = group.members.iter().cloned().collect();
    let priority = body["priority"].as_u64().unwrap_or(0);
    let app = st.tenancy.apps.get_mut(id).expect("checked above");
    let new = app.groups.insert(gid.to_owned(), priority).is_none();
    let target = app.target();
    if new {
        for uid in members {
            if let Some(user) = st.users.get(&uid).cloned() {
                // A direct (`USER`) assignment stays as it is; otherwise the group's.
                if st
                    .apps
                    .entry(id.to_owned())
                    .or_default()
                    .insert(uid.clone())
                {
                    st.app_user_groups
                        .insert((id.to_owned(), uid.clone()), gid.to_owned());
                    emit(
                        sim,
                        "application.user_membership.add",
                        &user,
                        Some(target.clone()),
                    );
                }
            }
        }
    }
    json_response(
        StatusCode::OK,
        &json!({"id": gid, "priority": priority, "profile": {}, "lastUpdated": now()}),
    )
}

/// `GET /api/v1/apps/{id}/users`: direct (`USER`) and group (`GROUP`) assignments.
fn list_app_users(st: &SimState, id: &str) -> Response {
    let Some(app) = st.tenancy.apps.get(id) else {
        return app_not_found(id);
    };
    let mut scope: HashMap<&String, &str> = HashMap::new();
    for gid in app.groups.keys() {
        if let Some(g) = st.groups.get(gid) {
            for uid in &g.members {
                scope.insert(uid, "GROUP");
            }
        }
    }
    if let Some(direct) = st.apps.get(id) {
        for uid in direct {
            scope.entry(uid).or_insert("USER");
        }
    }
    let mut list: Vec<Value> = scope
        .into_iter()
        .filter_map(|(uid, scope)| {
            st.users.get(uid).map(|u| {
                json!({"id": u.id, "scope": scope, "status": "ACTIVE",
                       "credentials": {"userName": u.login()}, "_links": {}})
            })
        })
        .collect();
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    json_response(StatusCode::OK, &Value::Array(list))
}

/// A user just joined group `gid`: the group's apps assign them (scope `GROUP`, recorded as
/// the helpdesk's inherited assignments are, so leaving the group takes the app away), with
/// events.
pub(crate) fn grant_group_apps(sim: &Sim, st: &mut SimState, gid: &str, user: &SimUser) {
    let apps: Vec<(String, Value)> = st
        .tenancy
        .apps
        .values()
        .filter(|app| app.groups.contains_key(gid))
        .map(|app| (app.id.clone(), app.target()))
        .collect();
    for (app, target) in apps {
        if st
            .apps
            .entry(app.clone())
            .or_default()
            .insert(user.id.clone())
        {
            st.app_user_groups
                .insert((app, user.id.clone()), gid.to_owned());
            emit(sim, "application.user_membership.add", user, Some(target));
        }
    }
}

/// Test hooks (no rate limit, no event), as an admin working in Okta's console would.
impl OktaSim {
    /// Deletes an app outright; `false` when there was none.
    pub fn delete_app_by_hand(&self, id: &str) -> bool {
        self.sim
            .state
            .lock()
            .unwrap()
            .tenancy
            .apps
            .remove(id)
            .is_some()
    }

    /// Replaces an app's redirect URIs.
    pub fn set_redirect_uris_by_hand(&self, id: &str, uris: &[&str]) -> bool {
        let mut st = self.sim.state.lock().unwrap();
        let Some(app) = st.tenancy.apps.get_mut(id) else {
            return false;
        };
        app.oauth_settings["redirect_uris"] = json!(uris);
        app.last_updated = now();
        true
    }

    /// Apps with this exact label.
    pub fn apps_labelled(&self, label: &str) -> Vec<Value> {
        let st = self.sim.state.lock().unwrap();
        st.tenancy
            .apps
            .values()
            .filter(|a| a.label == label)
            .map(SimApp::to_json)
            .collect()
    }

    /// Groups with this exact name.
    pub fn groups_named(&self, name: &str) -> usize {
        let st = self.sim.state.lock().unwrap();
        st.groups.values().filter(|g| g.name == name).count()
    }

    /// Whether a client secret is one of the app's current secrets.
    pub fn app_has_secret(&self, id: &str, secret: &str) -> bool {
        let st = self.sim.state.lock().unwrap();
        st.tenancy
            .apps
            .get(id)
            .is_some_and(|a| a.secrets.iter().any(|s| s.secret == secret))
    }

    /// Ids of the users assigned to an app, by scope (`USER` or `GROUP`).
    pub fn app_user_scopes(&self, id: &str) -> Vec<(String, String)> {
        let st = self.sim.state.lock().unwrap();
        let Some(app) = st.tenancy.apps.get(id) else {
            return vec![];
        };
        let mut out: Vec<(String, String)> = vec![];
        for gid in app.groups.keys() {
            if let Some(g) = st.groups.get(gid) {
                out.extend(g.members.iter().map(|u| (u.clone(), "GROUP".to_owned())));
            }
        }
        if let Some(direct) = st.apps.get(id) {
            for u in direct {
                if !out.iter().any(|(x, _)| x == u) {
                    out.push((u.clone(), "USER".to_owned()));
                }
            }
        }
        out.sort();
        out
    }
}

/// A non-cryptographic digest is enough for a simulated `secret_hash` (never compared).
mod sha2_free {
    use std::hash::{DefaultHasher, Hash, Hasher};

    pub fn hash_hex(s: &str) -> String {
        let mut h = DefaultHasher::new();
        s.hash(&mut h);
        format!("{:016x}", h.finish())
    }
}
