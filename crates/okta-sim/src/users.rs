//! The Users API subset: create, read, update, lifecycle operations with Okta's status rules,
//! sessions and the two-step delete.

use super::*;

/// `POST /api/v1/users`
pub(crate) fn create_user(
    sim: &Sim,
    mut st: Guard<'_>,
    query: &HashMap<String, String>,
    body: &Value,
) -> Response {
    let profile = body.get("profile").cloned().unwrap_or(Value::Null);
    let login = profile.get("login").and_then(Value::as_str).unwrap_or("");
    if login.is_empty()
        || profile
            .get("email")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
    {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: login",
            &[
                "login: The field cannot be left blank",
                "email: The field cannot be left blank",
            ],
        );
    }
    if st.by_login.contains_key(&login.to_lowercase()) {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: login",
            &["login: An object with this field already exists in the current organization"],
        );
    }
    let has_credentials = body.pointer("/credentials/password").is_some();
    let activate = flag(query, "activate", true);
    let status = match (activate, has_credentials) {
        (false, _) => "STAGED",
        (true, true) => "ACTIVE",
        (true, false) => "PROVISIONED",
    };
    let user = SimUser {
        id: format!("00u{}", rand_id(17)),
        status,
        profile,
        has_credentials,
        created: now(),
        last_updated: now(),
    };
    st.by_login
        .insert(user.login().to_lowercase(), user.id.clone());
    st.users.insert(user.id.clone(), user.clone());
    drop(st);
    emit(sim, "user.lifecycle.create", &user, None);
    if activate {
        emit(sim, "user.lifecycle.activate", &user, None);
    }
    // Active group rules match new users, as Okta evaluates them on create.
    rules::apply_rules_to_user(sim, &mut sim.state.lock().unwrap(), &user.id);
    json_response(StatusCode::OK, &user.to_json())
}

/// `GET /api/v1/users/{id}`
pub(crate) fn get_user(st: Guard<'_>, id: &str) -> Response {
    match find(&st, id) {
        Some(u) => json_response(StatusCode::OK, &u.to_json()),
        None => not_found(id),
    }
}

/// `POST /api/v1/users/{id}`
pub(crate) fn update_user(sim: &Sim, mut st: Guard<'_>, id: &str, body: &Value) -> Response {
    let Some(uid) = find(&st, id).map(|u| u.id.clone()) else {
        return not_found(id);
    };
    let new_login = body
        .pointer("/profile/login")
        .and_then(Value::as_str)
        .map(str::to_lowercase);
    if let Some(l) = &new_login {
        if st.by_login.get(l).is_some_and(|other| *other != uid) {
            return okta_error(
                StatusCode::BAD_REQUEST,
                "E0000001",
                "Api validation failed: login",
                &["login: An object with this field already exists in the current organization"],
            );
        }
    }
    let old_login = st.users[&uid].login().to_lowercase();
    let user = st.users.get_mut(&uid).unwrap();
    if let (Some(target), Some(changes)) = (
        user.profile.as_object_mut(),
        body.get("profile").and_then(Value::as_object),
    ) {
        for (k, v) in changes {
            target.insert(k.clone(), v.clone());
        }
    }
    user.last_updated = now();
    let u = user.clone();
    if new_login.is_some() {
        st.by_login.remove(&old_login);
        st.by_login.insert(u.login().to_lowercase(), uid);
    }
    drop(st);
    emit(sim, "user.account.update_profile", &u, None);
    // ... and on profile changes.
    rules::apply_rules_to_user(sim, &mut sim.state.lock().unwrap(), &u.id);
    json_response(StatusCode::OK, &u.to_json())
}

/// `POST /api/v1/users/{id}/lifecycle/{op}`
pub(crate) fn lifecycle(
    sim: &Sim,
    mut st: Guard<'_>,
    id: &str,
    op: &str,
    query: &HashMap<String, String>,
) -> Response {
    let Some(uid) = find(&st, id).map(|u| u.id.clone()) else {
        return not_found(id);
    };
    let user = st.users.get_mut(&uid).unwrap();
    let (next, event, answer) = match (op, user.status) {
        ("activate", "STAGED" | "DEPROVISIONED") => {
            let next = if user.has_credentials {
                "ACTIVE"
            } else {
                "PROVISIONED"
            };
            let answer = if flag(query, "sendEmail", true) {
                json!({"emailSent": true})
            } else {
                json!({"activationUrl": format!("https://sim.okta/welcome/{}", rand_id(20)), "activationToken": rand_id(20)})
            };
            (next, "user.lifecycle.activate", answer)
        }
        ("reactivate", "PROVISIONED" | "RECOVERY") => {
            ("PROVISIONED", "user.lifecycle.reactivate", json!({}))
        }
        ("deactivate", s) if s != "DEPROVISIONED" => {
            ("DEPROVISIONED", "user.lifecycle.deactivate", json!({}))
        }
        ("suspend", "ACTIVE") => ("SUSPENDED", "user.lifecycle.suspend", json!({})),
        ("unsuspend", "SUSPENDED") => ("ACTIVE", "user.lifecycle.unsuspend", json!({})),
        ("unlock", "LOCKED_OUT" | "ACTIVE") => {
            ("ACTIVE", "user.account.unlock_by_admin", json!({}))
        }
        ("reset_factors", s) if s != "DEPROVISIONED" => (s, "user.mfa.factor.reset_all", json!({})),
        ("reset_password", "ACTIVE" | "RECOVERY" | "PASSWORD_EXPIRED" | "PROVISIONED") => (
            "RECOVERY",
            "user.account.reset_password",
            json!({"resetPasswordUrl": "https://sim.okta/reset"}),
        ),
        ("expire_password", "ACTIVE") => (
            "PASSWORD_EXPIRED",
            "user.account.expire_password",
            json!({}),
        ),
        (
            "activate" | "reactivate" | "deactivate" | "suspend" | "unsuspend" | "unlock"
            | "reset_factors" | "reset_password" | "expire_password",
            _,
        ) => return not_allowed(),
        _ => {
            return okta_error(
                StatusCode::NOT_FOUND,
                "E0000022",
                "The endpoint does not support the provided HTTP method",
                &[],
            )
        }
    };
    user.status = next;
    user.last_updated = now();
    let u = user.clone();
    if op == "reset_factors" {
        st.factors.remove(&uid);
    }
    if answer.get("emailSent").is_some() {
        st.activation_emails += 1;
    }
    drop(st);
    emit(sim, event, &u, None);
    let mut answer = answer;
    if let Some(fields) = answer.as_object_mut() {
        fields.remove("emailSent");
    }
    json_response(StatusCode::OK, &answer)
}

/// `DELETE /api/v1/users/{id}/sessions`
pub(crate) fn clear_sessions(sim: &Sim, st: Guard<'_>, id: &str) -> Response {
    let Some(u) = find(&st, id).cloned() else {
        return not_found(id);
    };
    drop(st);
    emit(sim, "user.session.clear", &u, None);
    Response::builder().status(StatusCode::NO_CONTENT).finish()
}

/// `DELETE /api/v1/users/{id}`
pub(crate) fn delete_user(sim: &Sim, mut st: Guard<'_>, id: &str) -> Response {
    let Some(uid) = find(&st, id).map(|u| u.id.clone()) else {
        return not_found(id);
    };
    // Okta: deleting a user that is not DEPROVISIONED deactivates it instead.
    let user = st.users.get_mut(&uid).unwrap();
    if user.status == "DEPROVISIONED" {
        let u = st.users.remove(&uid).unwrap();
        st.by_login.remove(&u.login().to_lowercase());
        drop(st);
        emit(sim, "user.lifecycle.delete.initiated", &u, None);
    } else {
        user.status = "DEPROVISIONED";
        let u = user.clone();
        drop(st);
        emit(sim, "user.lifecycle.deactivate", &u, None);
    }
    Response::builder().status(StatusCode::NO_CONTENT).finish()
}
