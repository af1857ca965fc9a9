//! Group rules (`/api/v1/groups/rules`), as Okta documents them: a rule is created `INACTIVE`
//! and does nothing until `POST …/lifecycle/activate`; an active rule cannot be updated
//! (`E0000090`-style 400) and puts every user whose profile matches its expression into its
//! groups, emitting `group.user_membership.add` for each (and the GROUP-scoped app assignments
//! of those groups, see [`super::oidc`]). Calls are in the `groups` bucket, as in Okta.
//!
//! The expression subset is what tenant provisioning writes: `user.<attribute>=="<value>"`
//! (spaces around `==` allowed). Anything else is refused with `E0000001`, so a rule the
//! simulator would silently never apply cannot be created.

use super::*;

/// One group rule.
#[derive(Debug, Clone)]
pub(crate) struct SimRule {
    id: String,
    pub(crate) name: String,
    status: &'static str,
    /// The expression as given.
    expression: String,
    /// Parsed (attribute, value).
    matcher: (String, String),
    group_ids: Vec<String>,
    created: String,
    last_updated: String,
}

impl SimRule {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "type": "group_rule",
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "created": self.created,
            "lastUpdated": self.last_updated,
            "conditions": {
                "expression": {"value": self.expression, "type": "urn:okta:expression:1.0"}
            },
            "actions": {"assignUserToGroups": {"groupIds": self.group_ids}},
        })
    }

    fn matches(&self, user: &SimUser) -> bool {
        let (attr, value) = &self.matcher;
        user.profile.get(attr).and_then(Value::as_str) == Some(value.as_str())
    }
}

/// `user.attr=="value"` → (attr, value).
fn parse_expression(expr: &str) -> Option<(String, String)> {
    let (left, right) = expr.split_once("==")?;
    let attr = left.trim().strip_prefix("user.")?;
    let value = right.trim().strip_prefix('"')?.strip_suffix('"')?;
    let valid = !attr.is_empty() && attr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (valid && !value.contains('"')).then(|| (attr.to_owned(), value.to_owned()))
}

fn rule_not_found(id: &str) -> Response {
    okta_error(
        StatusCode::NOT_FOUND,
        "E0000007",
        &format!("Not found: Resource not found: {id} (GroupRule)"),
        &[],
    )
}

/// Routes `/api/v1/groups/rules…`; `None` for any other path.
pub(crate) fn route(
    sim: &Sim,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
    body: &Value,
) -> Option<Response> {
    let ["api", "v1", "groups", "rules", rest @ ..] = segments else {
        return None;
    };
    Some(match (method.as_str(), rest) {
        ("POST", []) => create_rule(sim, body),
        ("GET", []) => list_rules(sim, query),
        ("GET", [id]) => match sim.state.lock().unwrap().group_rules.get(*id) {
            Some(r) => json_response(StatusCode::OK, &r.to_json()),
            None => rule_not_found(id),
        },
        ("PUT", [id]) => update_rule(sim, id, body),
        ("DELETE", [id]) => {
            let removed = sim.state.lock().unwrap().group_rules.remove(*id);
            match removed {
                Some(_) => Response::builder().status(StatusCode::ACCEPTED).finish(),
                None => rule_not_found(id),
            }
        }
        ("POST", [id, "lifecycle", op @ ("activate" | "deactivate")]) => lifecycle(sim, id, op),
        _ => okta_error(
            StatusCode::NOT_FOUND,
            "E0000022",
            "The endpoint does not support the provided HTTP method",
            &[],
        ),
    })
}

/// What a rule body says: name, expression, its parsed (attribute, value), group ids.
type RuleBody = (String, String, (String, String), Vec<String>);

/// Reads name, expression and groups from a rule body, or the Okta error.
fn parse_body(st: &SimState, body: &Value) -> Result<RuleBody, Box<Response>> {
    let invalid = |cause: &str| {
        Box::new(okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: groupRule",
            &[cause],
        ))
    };
    let name = body["name"].as_str().unwrap_or("").trim().to_owned();
    if name.is_empty() || name.len() > 50 {
        return Err(invalid("name: The field must be 1 to 50 characters"));
    }
    let expression = body
        .pointer("/conditions/expression/value")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Some(matcher) = parse_expression(&expression) else {
        return Err(invalid("conditions.expression: Invalid expression"));
    };
    let group_ids: Vec<String> = body
        .pointer("/actions/assignUserToGroups/groupIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if group_ids.is_empty() {
        return Err(invalid(
            "actions.assignUserToGroups: groupIds cannot be empty",
        ));
    }
    if let Some(missing) = group_ids.iter().find(|g| !st.groups.contains_key(*g)) {
        return Err(invalid(&format!(
            "groupIds: group {missing} does not exist"
        )));
    }
    Ok((name, expression, matcher, group_ids))
}

/// `POST /api/v1/groups/rules`: created INACTIVE.
fn create_rule(sim: &Sim, body: &Value) -> Response {
    let mut st = sim.state.lock().unwrap();
    let (name, expression, matcher, group_ids) = match parse_body(&st, body) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    if st.group_rules.values().any(|r| r.name == name) {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: name",
            &["name: A rule with this name already exists"],
        );
    }
    let rule = SimRule {
        id: format!("0pr{}", rand_id(17)),
        name,
        status: "INACTIVE",
        expression,
        matcher,
        group_ids,
        created: now(),
        last_updated: now(),
    };
    st.group_rules.insert(rule.id.clone(), rule.clone());
    json_response(StatusCode::OK, &rule.to_json())
}

/// `GET /api/v1/groups/rules?search=…` (search matches the rule name, as Okta's does).
fn list_rules(sim: &Sim, query: &HashMap<String, String>) -> Response {
    let st = sim.state.lock().unwrap();
    let search = query.get("search").map(|s| s.to_lowercase());
    let mut rules: Vec<&SimRule> = st
        .group_rules
        .values()
        .filter(|r| {
            search
                .as_ref()
                .is_none_or(|s| r.name.to_lowercase().contains(s))
        })
        .collect();
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    json_response(
        StatusCode::OK,
        &Value::Array(rules.iter().map(|r| r.to_json()).collect()),
    )
}

/// `PUT /api/v1/groups/rules/{id}`: only an INACTIVE rule may change.
fn update_rule(sim: &Sim, id: &str, body: &Value) -> Response {
    let mut st = sim.state.lock().unwrap();
    let parsed = parse_body(&st, body);
    let Some(rule) = st.group_rules.get_mut(id) else {
        return rule_not_found(id);
    };
    if rule.status == "ACTIVE" {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: groupRule",
            &["status: Cannot update rule while it is active. Please deactivate the rule first."],
        );
    }
    let (name, expression, matcher, group_ids) = match parsed {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    rule.name = name;
    rule.expression = expression;
    rule.matcher = matcher;
    rule.group_ids = group_ids;
    rule.last_updated = now();
    json_response(StatusCode::OK, &rule.to_json())
}

/// `POST /api/v1/groups/rules/{id}/lifecycle/activate|deactivate`
fn lifecycle(sim: &Sim, id: &str, op: &str) -> Response {
    let mut st = sim.state.lock().unwrap();
    let Some(rule) = st.group_rules.get_mut(id) else {
        return rule_not_found(id);
    };
    rule.status = if op == "activate" {
        "ACTIVE"
    } else {
        "INACTIVE"
    };
    rule.last_updated = now();
    let rule = rule.clone();
    if op == "activate" {
        let users: Vec<SimUser> = st
            .users
            .values()
            .filter(|u| u.status != "DEPROVISIONED" && rule.matches(u))
            .cloned()
            .collect();
        for user in users {
            add_to_rule_groups(sim, &mut st, &rule, &user);
        }
    }
    Response::builder().status(StatusCode::NO_CONTENT).finish()
}

/// Puts `user` into the rule's groups (events for new memberships only).
fn add_to_rule_groups(sim: &Sim, st: &mut SimState, rule: &SimRule, user: &SimUser) {
    for gid in &rule.group_ids {
        let Some(group) = st.groups.get_mut(gid) else {
            continue;
        };
        if group.members.insert(user.id.clone()) {
            group.last_membership_updated = now();
            let target = group.target();
            emit(sim, "group.user_membership.add", user, Some(target));
            super::oidc_apps::grant_group_apps(sim, st, gid, user);
        }
    }
}

/// Applies every ACTIVE rule to one user (after a create or profile update), as Okta
/// evaluates rules on profile changes.
pub(crate) fn apply_rules_to_user(sim: &Sim, st: &mut SimState, user_id: &str) {
    let Some(user) = st.users.get(user_id).cloned() else {
        return;
    };
    let rules: Vec<SimRule> = st
        .group_rules
        .values()
        .filter(|r| r.status == "ACTIVE" && r.matches(&user))
        .cloned()
        .collect();
    for rule in rules {
        add_to_rule_groups(sim, st, &rule, &user);
    }
}

/// Test hooks for group rules.
impl OktaSim {
    /// Group rules with this exact name, as Okta answers them.
    pub fn rules_named(&self, name: &str) -> Vec<Value> {
        let st = self.sim.state.lock().unwrap();
        st.group_rules
            .values()
            .filter(|r| r.name == name)
            .map(|r| r.to_json())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_expression;

    #[test]
    fn the_tenant_expression_parses_and_others_are_refused() {
        assert_eq!(
            parse_expression(r#"user.tenant=="acme""#),
            Some(("tenant".into(), "acme".into()))
        );
        assert_eq!(
            parse_expression(r#" user.tenantId == "acme-2" "#),
            Some(("tenantId".into(), "acme-2".into()))
        );
        assert_eq!(parse_expression(r#"user.tenant=="a" OR true"#), None);
        assert_eq!(parse_expression(r#"tenant=="acme""#), None);
        assert_eq!(parse_expression("user.tenant==acme"), None);
    }
}
