//! MFA factors per user (`/api/v1/users/{id}/factors`), directory-imported groups
//! (`APP_GROUP`) and how an app assignment was made (`scope` `USER` or `GROUP`), for the
//! helpdesk endpoints.
//!
//! As in Okta:
//! - `GET /api/v1/users/{uid}/factors` lists the enrolled factors (`factorType`, `provider`,
//!   `status`, `created`); `DELETE …/factors/{fid}` removes one (`user.mfa.factor.deactivate`),
//!   `POST …/lifecycle/reset_factors` removes all (`user.mfa.factor.reset_all`);
//! - an `APP_GROUP` group's members come from its directory: adding or removing one through the
//!   API is refused (`E0000060`-like 400, see [`app_group_refusal`]);
//! - `GET /api/v1/apps/{aid}/users/{uid}` tells an app user's `scope`; a `GROUP`-scoped
//!   assignment (inherited from a group assigned to the app) cannot be removed user by user.
//!
//! Enrolment happens in the end user's browser, not through this API subset: tests call
//! [`OktaSim::enroll_factor`], which emits `user.mfa.factor.activate` as Okta would. The events'
//! `AuthenticatorEnrollment` target carries `factorType` and `provider` in `detailEntry`, and an
//! assignment inherited from a group carries the group as a second (`UserGroup`) target.

use super::*;

/// One enrolled factor.
#[derive(Debug, Clone)]
pub(crate) struct SimFactor {
    pub id: String,
    pub factor_type: String,
    pub provider: String,
    pub created: String,
}

impl SimFactor {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "factorType": self.factor_type,
            "provider": self.provider,
            "vendorName": self.provider,
            "status": "ACTIVE",
            "created": self.created,
            "lastUpdated": self.created,
            "profile": {},
            "_links": {}
        })
    }

    /// The `AuthenticatorEnrollment` target of a System Log event about this factor.
    fn target(&self) -> Value {
        json!({
            "id": self.id,
            "type": "AuthenticatorEnrollment",
            "alternateId": "unknown",
            "displayName": display_name(&self.factor_type, &self.provider),
            "detailEntry": {"factorType": self.factor_type, "provider": self.provider}
        })
    }
}

/// The name Okta's System Log shows for a factor.
fn display_name(factor_type: &str, provider: &str) -> String {
    match (factor_type, provider) {
        ("push", _) | ("signed_nonce", _) => "Okta Verify".into(),
        ("token:software:totp", "GOOGLE") => "Google Authenticator".into(),
        ("token:software:totp", _) => "Okta Verify TOTP".into(),
        ("sms", _) => "SMS Authentication".into(),
        ("call", _) => "Voice Call Authentication".into(),
        ("email", _) => "Email Authentication".into(),
        ("webauthn", _) => "Security Key or Biometric".into(),
        (t, p) => format!("{t} ({p})"),
    }
}

fn factor_not_found(fid: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {fid} (UserFactor)"),
        &[],
    )
}

/// Okta refuses membership changes of groups it does not master.
pub(crate) fn app_group_refusal() -> Response {
    okta_error(
        StatusCode::BAD_REQUEST,
        "E0000060",
        "Unsupported operation.",
        &["Cannot modify the membership of a group that is managed by an application or directory (APP_GROUP)."],
    )
}

/// `GET /api/v1/users/{uid}/factors`
pub(crate) fn list_factors(st: Guard<'_>, uid: &str) -> Response {
    let Some(u) = find(&st, uid) else {
        return not_found(uid);
    };
    let list: Vec<Value> = st
        .factors
        .get(&u.id)
        .map(|fs| fs.iter().map(SimFactor::to_json).collect())
        .unwrap_or_default();
    json_response(StatusCode::OK, &Value::Array(list))
}

/// `DELETE /api/v1/users/{uid}/factors/{fid}`
pub(crate) fn delete_factor(sim: &Sim, mut st: Guard<'_>, uid: &str, fid: &str) -> Response {
    let Some(u) = find(&st, uid).cloned() else {
        return not_found(uid);
    };
    let factors = st.factors.entry(u.id.clone()).or_default();
    let Some(pos) = factors.iter().position(|f| f.id == fid) else {
        return factor_not_found(fid);
    };
    let factor = factors.remove(pos);
    drop(st);
    emit(sim, "user.mfa.factor.deactivate", &u, Some(factor.target()));
    Response::builder().status(StatusCode::NO_CONTENT).finish()
}

/// `GET /api/v1/apps/{aid}/users/{uid}`: the app user, with its `scope`.
pub(crate) fn get_app_user(st: Guard<'_>, aid: &str, uid: &str) -> Response {
    let Some(u) = find(&st, uid) else {
        return not_found(uid);
    };
    if !st.apps.get(aid).is_some_and(|users| users.contains(&u.id)) {
        return okta_error(
            StatusCode::NOT_FOUND,
            "E0000007",
            &format!("Not found: Resource not found: {uid} (AppUser)"),
            &[],
        );
    }
    let scope = match st.app_user_groups.get(&(aid.to_owned(), u.id.clone())) {
        Some(_) => "GROUP",
        None => "USER",
    };
    json_response(
        StatusCode::OK,
        &json!({"id": u.id, "scope": scope, "status": "PROVISIONED", "created": u.created,
                "credentials": {"userName": u.login()}, "_links": {}}),
    )
}

/// Whether the user's assignment to `aid` is inherited from a group (then it cannot be removed
/// user by user).
pub(crate) fn inherited(st: &SimState, aid: &str, uid: &str) -> bool {
    st.app_user_groups
        .contains_key(&(aid.to_owned(), uid.to_owned()))
}

/// Removes the user's assignments inherited from `gid` (the user left the group); returns the
/// apps lost.
pub(crate) fn drop_inherited_apps(st: &mut SimState, gid: &str, uid: &str) -> Vec<String> {
    let lost: Vec<String> = st
        .app_user_groups
        .iter()
        .filter(|((_, u), g)| u == uid && g.as_str() == gid)
        .map(|((a, _), _)| a.clone())
        .collect();
    for app in &lost {
        st.app_user_groups.remove(&(app.clone(), uid.to_owned()));
        if let Some(users) = st.apps.get_mut(app) {
            users.remove(uid);
        }
    }
    lost
}

/// The refusal of removing a `GROUP`-scoped assignment.
pub(crate) fn inherited_refusal() -> Response {
    okta_error(
        StatusCode::FORBIDDEN,
        "E0000006",
        "You do not have permission to perform the requested action",
        &["The user is assigned to this app through a group; remove the group assignment or the user's group membership instead."],
    )
}

/// `POST /sim/users/{id}/factors/{factorType}`: the user enrolls a factor (provider `OKTA`).
pub(crate) fn enroll_by_control(sim: &Sim, user: &str, factor_type: &str) -> Response {
    let mut st = sim.state.lock().unwrap();
    let Some(u) = find(&st, user).cloned() else {
        return not_found(user);
    };
    let factor = enroll(&mut st, &u, factor_type, "OKTA");
    drop(st);
    emit(sim, "user.mfa.factor.activate", &u, Some(factor.target()));
    json_response(StatusCode::OK, &factor.to_json())
}

fn enroll(st: &mut SimState, u: &SimUser, factor_type: &str, provider: &str) -> SimFactor {
    let factor = SimFactor {
        id: format!("{}{}", factor_prefix(factor_type), rand_id(17)),
        factor_type: factor_type.to_owned(),
        provider: provider.to_owned(),
        created: now(),
    };
    st.factors
        .entry(u.id.clone())
        .or_default()
        .push(factor.clone());
    factor
}

impl OktaSim {
    /// Enrolls a factor for a user, as the user would at sign-in (`factor_type`: `push`,
    /// `sms`, `token:software:totp`, …; `provider`: `OKTA`, `GOOGLE`, …). Returns its id, or
    /// `None` for an unknown user. Emits `user.mfa.factor.activate`.
    pub fn enroll_factor(&self, user: &str, factor_type: &str, provider: &str) -> Option<String> {
        let mut st = self.sim.state.lock().unwrap();
        let u = find(&st, user)?.clone();
        let factor = enroll(&mut st, &u, factor_type, provider);
        drop(st);
        emit(
            &self.sim,
            "user.mfa.factor.activate",
            &u,
            Some(factor.target()),
        );
        Some(factor.id)
    }

    /// Ids of a user's enrolled factors.
    pub fn factors_of(&self, user: &str) -> Vec<String> {
        let st = self.sim.state.lock().unwrap();
        let Some(u) = find(&st, user) else {
            return vec![];
        };
        st.factors
            .get(&u.id)
            .map(|fs| fs.iter().map(|f| f.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Creates a group whose members an application or directory masters (`type: APP_GROUP`).
    pub fn create_app_group(&self, name: &str) -> String {
        let mut st = self.sim.state.lock().unwrap();
        let id = new_group(&mut st, name, "").id;
        st.app_groups.insert(id.clone());
        id
    }

    /// Puts a user in a group directly (as a directory import would; no refusal for
    /// `APP_GROUP`); emits `group.user_membership.add`.
    pub fn add_member(&self, group: &str, user: &str) -> bool {
        let mut st = self.sim.state.lock().unwrap();
        let Some(u) = find(&st, user).cloned() else {
            return false;
        };
        let Some(g) = st.groups.get_mut(group) else {
            return false;
        };
        g.members.insert(u.id.clone());
        let target = g.target();
        drop(st);
        emit(&self.sim, "group.user_membership.add", &u, Some(target));
        true
    }

    /// Assigns an app to a group: every current member gets the app with scope `GROUP` (unless
    /// already assigned directly); emits `application.user_membership.add` per member, with the
    /// group as a second target.
    pub fn assign_app_to_group(&self, app: &str, group: &str) -> usize {
        let mut st = self.sim.state.lock().unwrap();
        let Some(g) = st.groups.get(group).cloned() else {
            return 0;
        };
        let mut granted = vec![];
        for uid in &g.members {
            let users = st.apps.entry(app.to_owned()).or_default();
            if users.insert(uid.clone()) {
                st.app_user_groups
                    .insert((app.to_owned(), uid.clone()), g.id.clone());
                if let Some(u) = st.users.get(uid) {
                    granted.push(u.clone());
                }
            }
        }
        drop(st);
        for u in &granted {
            emit_targets(
                &self.sim,
                "application.user_membership.add",
                u,
                vec![app_target(app), g.target()],
            );
        }
        granted.len()
    }

    /// Whether the user is assigned to the app (either scope).
    pub fn app_assigned(&self, app: &str, user: &str) -> bool {
        let st = self.sim.state.lock().unwrap();
        st.apps.get(app).is_some_and(|u| u.contains(user))
    }
}

/// The `AppInstance` target of an app event.
pub(crate) fn app_target(aid: &str) -> Value {
    json!({"id": aid, "type": "AppInstance", "alternateId": aid, "displayName": aid})
}

/// Okta's id prefixes by factor type (`mbl` for Okta Verify, `sms`, `clf`, …).
fn factor_prefix(factor_type: &str) -> &'static str {
    match factor_type {
        "push" | "signed_nonce" => "opf",
        "sms" => "sms",
        "call" => "clf",
        "email" => "emf",
        "webauthn" => "fwf",
        _ => "ost",
    }
}

/// A group's JSON with its `type` (`APP_GROUP` for directory-mastered groups).
pub(crate) fn group_json(st: &SimState, g: &SimGroup) -> Value {
    let mut v = g.to_json();
    if st.app_groups.contains(&g.id) {
        v["type"] = json!("APP_GROUP");
    }
    v
}
