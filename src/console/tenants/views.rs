//! How the engine's steps and an apply read on the pages: a step with words for it
//! ([`StepView`]), drift in plain words ([`drift_words`]), and an apply with the numbers a
//! progress bar needs ([`ApplyView`]). The tenant page, the plan and the apply pages show them.

use serde::Serialize;

use crate::tenants::engine::{Action, Step};
use crate::tenants::store::{ApplyRecord, MODE_DELETE};

/// A step as the pages show it: the engine's step plus words for it.
#[derive(Debug, Serialize)]
pub(super) struct StepView {
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
pub(super) fn drift_words(step: &Step) -> String {
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

/// The apply as the pages show it, with the numbers a progress bar needs.
#[derive(Debug, Serialize)]
pub(super) struct ApplyView {
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

#[cfg(test)]
mod tests {
    use super::*;

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
