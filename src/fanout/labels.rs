//! Bounded metric labels for event types.
//!
//! `eventType` comes from the request body, so using it as a Prometheus label as-is lets one
//! delivery of invented types grow `/metrics` (and the process's memory) for good. Only types
//! the adapter knows are labelled by name: Okta System Log types it reads (statuses, projections,
//! tenant rules, the hook fixtures), a few common ones from Okta's event-type catalogue, and the
//! exact (wildcard-free) types of configured routes. Every other type is counted as `other`.

use std::collections::HashSet;

use crate::config::RouteSettings;
use crate::domain::user_status::STATUS_EVENT_TYPES;
use crate::projection::codec::KNOWN_TYPES;

/// The label of every event type not in the known set.
pub const OTHER: &str = "other";

/// Okta event types (from Okta's event-type catalogue) this codebase handles or its fixtures
/// carry, besides [`STATUS_EVENT_TYPES`] and the projection's [`KNOWN_TYPES`].
const CATALOGUE: &[&str] = &[
    "application.provision.user.import_profile",
    "application.user_membership.add",
    "application.user_membership.change_password",
    "application.user_membership.deprovision",
    "application.user_membership.provision",
    "application.user_membership.remove",
    "application.user_membership.update",
    "group.user_membership.add",
    "group.user_membership.remove",
    "policy.evaluate_sign_on",
    "system.email.password_reset.sent_message",
    "system.import.start",
    "user.account.lock.limit",
    "user.account.privilege.grant",
    "user.account.privilege.revoke",
    "user.account.update_profile",
    "user.authentication.auth_via_mfa",
    "user.authentication.sso",
    "user.lifecycle.delete.completed",
    "user.mfa.factor.activate",
    "user.mfa.factor.deactivate",
    "user.mfa.factor.reset_all",
    "user.mfa.factor.update",
    "user.session.clear",
    "user.session.end",
    "user.session.start",
];

/// The fixed set of event types labelled by name.
#[derive(Debug, Clone)]
pub struct TypeLabels {
    known: HashSet<String>,
}

impl TypeLabels {
    pub fn new(routes: &[RouteSettings]) -> Self {
        let configured = routes
            .iter()
            .flat_map(|r| &r.event_types)
            .filter(|p| !p.contains('*'))
            .map(String::as_str);
        let known = CATALOGUE
            .iter()
            .chain(STATUS_EVENT_TYPES)
            .chain(KNOWN_TYPES)
            .copied()
            .chain(configured)
            .map(str::to_owned)
            .collect();
        Self { known }
    }

    /// `event_type` itself when known, else [`OTHER`].
    pub fn label(&self, event_type: &str) -> String {
        if self.known.contains(event_type) {
            event_type.to_owned()
        } else {
            OTHER.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_configured_types_keep_their_name_the_rest_is_other() {
        let routes: Vec<RouteSettings> = toml::from_str::<toml::Table>(
            r#"routes = [{ name = "r", event_types = ["custom.exact.type", "custom.wild.*"] }]"#,
        )
        .unwrap()["routes"]
            .clone()
            .try_into()
            .unwrap();
        let labels = TypeLabels::new(&routes);
        assert_eq!(
            labels.label("user.lifecycle.suspend"),
            "user.lifecycle.suspend"
        );
        assert_eq!(labels.label("user.session.start"), "user.session.start");
        assert_eq!(labels.label("custom.exact.type"), "custom.exact.type");
        assert_eq!(labels.label("custom.wild.x"), OTHER);
        assert_eq!(labels.label("invented.type.1"), OTHER);
    }
}
