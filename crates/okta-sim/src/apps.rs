//! App assignments of users (`/api/v1/apps/{app}/users`).

use super::*;

/// `POST /api/v1/apps/{aid}/users`
pub(crate) fn assign_app(sim: &Sim, mut st: Guard<'_>, aid: &str, body: &Value) -> Response {
    let uid = body.get("id").and_then(Value::as_str).unwrap_or("");
    let Some(u) = find(&st, uid).cloned() else {
        return not_found(uid);
    };
    st.apps
        .entry(aid.to_string())
        .or_default()
        .insert(u.id.clone());
    // A direct assignment over an inherited one makes it `USER`-scoped (it outlives the group's).
    st.app_user_groups.remove(&(aid.to_string(), u.id.clone()));
    drop(st);
    emit(
        sim,
        "application.user_membership.add",
        &u,
        Some(json!({"id": aid, "type": "AppInstance", "alternateId": aid, "displayName": aid})),
    );
    json_response(
        StatusCode::OK,
        &json!({"id": u.id, "scope": "USER", "status": "ACTIVE"}),
    )
}

/// `DELETE /api/v1/apps/{aid}/users/{uid}`
pub(crate) fn unassign_app(sim: &Sim, mut st: Guard<'_>, aid: &str, uid: &str) -> Response {
    let Some(u) = find(&st, uid).cloned() else {
        return not_found(uid);
    };
    if factors::inherited(&st, aid, &u.id) {
        return factors::inherited_refusal();
    }
    st.apps.entry(aid.to_string()).or_default().remove(&u.id);
    drop(st);
    emit(
        sim,
        "application.user_membership.remove",
        &u,
        Some(json!({"id": aid, "type": "AppInstance", "alternateId": aid, "displayName": aid})),
    );
    Response::builder().status(StatusCode::NO_CONTENT).finish()
}
