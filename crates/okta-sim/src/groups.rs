//! The Groups API subset: groups with a `profile.name`, search, and membership (whose events
//! name the group, as Okta's `group.user_membership.*` do).

use super::*;

/// `POST /api/v1/groups`
pub(crate) fn create_group(mut st: Guard<'_>, body: &Value) -> Response {
    let name = body
        .pointer("/profile/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.trim().is_empty() {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: name",
            &["name: The field cannot be left blank"],
        );
    }
    if st.groups.values().any(|g| g.name == name) {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: name",
            &["name: An object with this field already exists in the current organization"],
        );
    }
    let description = body
        .pointer("/profile/description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let group = new_group(&mut st, name, description);
    json_response(StatusCode::OK, &group.to_json())
}

/// `GET /api/v1/groups`
pub(crate) fn list_groups(st: Guard<'_>, query: &HashMap<String, String>) -> Response {
    let q = query.get("q").map(|q| q.to_lowercase());
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10_000);
    let mut groups: Vec<&SimGroup> = st
        .groups
        .values()
        .filter(|g| {
            q.as_ref()
                .is_none_or(|q| g.name.to_lowercase().starts_with(q))
        })
        .filter(|g| {
            query
                .get("search")
                .is_none_or(|expr| group_matches_search(g, expr))
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let list: Vec<Value> = groups
        .iter()
        .take(limit)
        .map(|g| factors::group_json(&st, g))
        .collect();
    json_response(StatusCode::OK, &Value::Array(list))
}

/// `GET /api/v1/groups/{gid}`
pub(crate) fn get_group(st: Guard<'_>, gid: &str) -> Response {
    match st.groups.get(gid) {
        Some(g) => json_response(StatusCode::OK, &factors::group_json(&st, g)),
        None => group_not_found(gid),
    }
}

/// `PUT /api/v1/groups/{gid}`
pub(crate) fn update_group(mut st: Guard<'_>, gid: &str, body: &Value) -> Response {
    let name = body.pointer("/profile/name").and_then(Value::as_str);
    let Some(g) = st.groups.get_mut(gid) else {
        return group_not_found(gid);
    };
    if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
        g.name = name.to_owned();
    }
    if let Some(d) = body.pointer("/profile/description").and_then(Value::as_str) {
        g.description = d.to_owned();
    }
    g.last_updated = now();
    json_response(StatusCode::OK, &g.to_json())
}

/// `DELETE /api/v1/groups/{gid}`
pub(crate) fn delete_group(mut st: Guard<'_>, gid: &str) -> Response {
    match st.groups.remove(gid) {
        Some(_) => Response::builder().status(StatusCode::NO_CONTENT).finish(),
        None => group_not_found(gid),
    }
}

/// `GET /api/v1/groups/{gid}/users`
pub(crate) fn list_group_members(st: Guard<'_>, gid: &str) -> Response {
    let Some(g) = st.groups.get(gid) else {
        return group_not_found(gid);
    };
    let members: Vec<Value> = g
        .members
        .iter()
        .filter_map(|id| st.users.get(id))
        .map(SimUser::to_json)
        .collect();
    json_response(StatusCode::OK, &Value::Array(members))
}

/// `PUT|DELETE /api/v1/groups/{gid}/users/{uid}`
pub(crate) fn group_membership(
    sim: &Sim,
    mut st: Guard<'_>,
    method: &str,
    gid: &str,
    uid: &str,
) -> Response {
    if !st.groups.contains_key(gid) {
        return group_not_found(gid);
    }
    let Some(u) = find(&st, uid).cloned() else {
        return not_found(uid);
    };
    if st.app_groups.contains(gid) {
        return factors::app_group_refusal();
    }
    let group = st.groups.get_mut(gid).expect("checked above");
    let event = if method == "PUT" {
        group.members.insert(u.id.clone());
        "group.user_membership.add"
    } else {
        group.members.remove(&u.id);
        "group.user_membership.remove"
    };
    group.last_membership_updated = now();
    let target = group.target();
    // Leaving the group takes away the apps the user had only through it.
    let lost_apps = if method == "PUT" {
        Vec::new()
    } else {
        factors::drop_inherited_apps(&mut st, gid, &u.id)
    };
    emit(sim, event, &u, Some(target.clone()));
    if method == "PUT" {
        // Apps assigned to the group now assign the user too (scope GROUP).
        oidc_apps::grant_group_apps(sim, &mut st, gid, &u);
    }
    drop(st);
    for app in lost_apps {
        emit_targets(
            sim,
            "application.user_membership.remove",
            &u,
            vec![factors::app_target(&app), target.clone()],
        );
    }
    Response::builder().status(StatusCode::NO_CONTENT).finish()
}
