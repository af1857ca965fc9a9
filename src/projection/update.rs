//! From a firehose entry to the field updates it implies for its user (pure).
//!
//! Every projected field is a last-writer-wins register stamped with the event's `published`
//! time (and a hash of its uuid as a tie-break): see `apply.lua`. Sets (groups, apps, factors)
//! are one register per member, holding `+name` or `-name`, so an add and a remove delivered in
//! either order end the same way. Status is not stored: the newest event of each
//! status-affecting type is (`st:<type>`), and `domain::user_status` folds them at read time.

use std::collections::HashMap;

use chrono::DateTime;
use sha2::{Digest, Sha256};

use super::codec;
use crate::domain::tenant::TenantResolver;
use crate::domain::user_status::is_status_event;
use crate::okta::event_hook::LogEventSummary;

/// Register names in the user hash (short: they are stored once per user). None starts with
/// `codec::EVENT_PREFIX`.
pub mod field {
    pub const LOGIN: &str = "l";
    pub const EMAIL: &str = "m";
    pub const NAME: &str = "n";
    pub const TENANT: &str = "t";
    /// Newest successful sign-in.
    pub const SIGN_IN_OK: &str = "ok";
    /// Newest failed sign-in.
    pub const SIGN_IN_FAILED: &str = "x";
    /// Newest `user.mfa.factor.reset_all`: factors stamped before it are gone.
    pub const FACTORS_RESET: &str = "fr";
    /// `s:<type code>`: the newest event of that status-affecting type ([`status`]).
    pub const STATUS_PREFIX: &str = "s:";

    /// The status register of an event type.
    pub fn status(event_type: &str) -> String {
        format!("{STATUS_PREFIX}{}", super::codec::type_code(event_type))
    }
    pub const GROUP_PREFIX: &str = "g:";
    pub const APP_PREFIX: &str = "a:";
    pub const FACTOR_PREFIX: &str = "f:";
    /// `d:<member register>`: how a group or app was granted (`direct`, `rule`,
    /// `group:<group id>`) or a factor's `<factorType> <provider>`; set by the add event (see
    /// [`super::member_detail`]).
    pub const DETAIL_PREFIX: &str = "d:";
}

/// What one event changes in one user's projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionUpdate {
    pub user: String,
    /// `published` as 11 hex digits of epoch millis + 6 hex digits of SHA-256(uuid): fixed
    /// width and only `[0-9a-f]`, so byte order, Lua's `<` and any collation agree. Two events
    /// of one user in the same millisecond share a stamp once in 16.7 million; `apply.lua`
    /// breaks such ties by value, so the result still does not depend on order.
    pub stamp: String,
    pub event_type: String,
    pub actor: String,
    pub outcome: String,
    pub uuid: String,
    pub fields: Vec<(String, String)>,
}

impl ProjectionUpdate {
    /// The event entry (`e<stamp>`) of this event in the user's hash: the "why" of every
    /// register it sets, and a timeline entry.
    pub fn event_entry(&self) -> String {
        codec::encode_event(
            &self.user,
            &self.event_type,
            &self.actor,
            &self.outcome,
            &self.uuid,
        )
    }
}

/// Why an entry cannot be projected (it goes to the dead-letter stream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Poison(pub String);

pub const STAMP_LEN: usize = 17;
pub use crate::domain::user_status::STAMP_TIME_LEN;

/// Latest time a stamp can hold (11 hex digits of millis: the year 2527).
const STAMP_MAX_MS: i64 = 0xFFF_FFFF_FFFF;

pub fn stamp(published_ms: i64, uuid: &str) -> String {
    let h = Sha256::digest(uuid.as_bytes());
    format!(
        "{:011x}{}",
        published_ms.clamp(0, STAMP_MAX_MS),
        &hex::encode(&h[..3])[..STAMP_LEN - STAMP_TIME_LEN]
    )
}

/// The epoch millis at the start of a stamp.
pub fn stamp_millis(stamp: &str) -> Option<i64> {
    i64::from_str_radix(stamp.get(..STAMP_TIME_LEN)?, 16).ok()
}

/// The update for one firehose entry; `None` when the event is about no user.
///
/// The tenant comes from what the event itself reveals (the same rules as ingest), not from the
/// entry's `tenant` field: that one also reflects the tenant remembered for the user when the
/// event was accepted, which depends on arrival order.
pub fn update_for_entry(
    entry: &HashMap<String, String>,
    tenants: &TenantResolver,
) -> Result<Option<ProjectionUpdate>, Poison> {
    let get = |k: &str| entry.get(k).map(String::as_str).unwrap_or("");
    let user = get("user");
    if user.is_empty() {
        return Ok(None);
    }
    let (uuid, event_type, published) = (get("uuid"), get("type"), get("published"));
    if uuid.is_empty() || event_type.is_empty() {
        return Err(Poison("entry has no uuid or type".into()));
    }
    let published_ms = DateTime::parse_from_rfc3339(published)
        .map_err(|e| Poison(format!("published `{published}` is not RFC 3339: {e}")))?
        .timestamp_millis();
    let event: LogEventSummary = serde_json::from_str(get("event"))
        .map_err(|e| Poison(format!("event is not a LogEvent: {e}")))?;

    let mut fields = Vec::new();
    let mut set = |name: String, value: String| fields.push((name, value));
    if let Some(subject) = event.subject_user().filter(|s| s.id == user) {
        if let Some(login) = subject.login.filter(|l| !l.is_empty() && *l != "unknown") {
            set(field::LOGIN.into(), login.to_owned());
        }
        if let Some(name) = subject.target.and_then(|t| t.display_name.as_deref()) {
            set(field::NAME.into(), name.to_owned());
        }
        let email = subject.target.and_then(|t| {
            t.change_details
                .as_ref()
                .and_then(|c| c.get("to"))
                .and_then(|to| to.get("email"))
                .and_then(|e| e.as_str())
        });
        if let Some(email) = email {
            set(field::EMAIL.into(), email.to_owned());
        }
    }
    if let Some(tenant) = tenants.resolve(&event) {
        set(field::TENANT.into(), tenant);
    }
    let outcome = get("outcome");
    let success = outcome.is_empty() || outcome.eq_ignore_ascii_case("SUCCESS");
    if is_status_event(event_type) {
        set(field::status(event_type), String::new());
    }
    let member = |kind: &str, prefix: &str, add: bool| {
        event.target_of(kind).and_then(|t| {
            let id = t.id.as_deref()?;
            let label = t
                .display_name
                .as_deref()
                .or(t.alternate_id.as_deref())
                .unwrap_or(id);
            Some((
                format!("{prefix}{id}"),
                format!("{}{label}", if add { '+' } else { '-' }),
            ))
        })
    };
    let membership = match event_type {
        "user.session.start" if success => {
            set(field::SIGN_IN_OK.into(), String::new());
            None
        }
        "user.session.start" => {
            set(field::SIGN_IN_FAILED.into(), String::new());
            None
        }
        "group.user_membership.add" if success => member("UserGroup", field::GROUP_PREFIX, true),
        "group.user_membership.remove" if success => {
            member("UserGroup", field::GROUP_PREFIX, false)
        }
        "application.user_membership.add" if success => {
            member("AppInstance", field::APP_PREFIX, true)
        }
        "application.user_membership.remove" if success => {
            member("AppInstance", field::APP_PREFIX, false)
        }
        "user.mfa.factor.activate" if success => {
            member("AuthenticatorEnrollment", field::FACTOR_PREFIX, true)
        }
        "user.mfa.factor.deactivate" if success => {
            member("AuthenticatorEnrollment", field::FACTOR_PREFIX, false)
        }
        "user.mfa.factor.reset_all" if success => {
            set(field::FACTORS_RESET.into(), String::new());
            None
        }
        _ => None,
    };
    if let Some((name, value)) = membership {
        if value.starts_with('+') {
            if let Some(detail) = member_detail(event_type, &event) {
                set(format!("{}{name}", field::DETAIL_PREFIX), detail);
            }
        }
        set(name, value);
    }
    Ok(Some(ProjectionUpdate {
        user: user.to_owned(),
        stamp: stamp(published_ms, uuid),
        event_type: event_type.to_owned(),
        actor: get("actor").to_owned(),
        outcome: outcome.to_owned(),
        uuid: uuid.to_owned(),
        fields,
    }))
}

/// How an added group, app or factor came to the user, as the add event tells it:
/// - a group joined by Okta itself (actor `SystemPrincipal`: a group rule) is `rule`, else
///   `direct`;
/// - an app whose event also names a `UserGroup` was inherited from that group's app
///   assignment (`scope` `GROUP`): `group:<group id>`, else `direct`;
/// - a factor: `<factorType> <provider>` from the enrolment's `detailEntry`, when given.
pub fn member_detail(event_type: &str, event: &LogEventSummary) -> Option<String> {
    match event_type {
        "group.user_membership.add" => {
            Some(if event.actor.kind.as_deref() == Some("SystemPrincipal") {
                "rule".to_owned()
            } else {
                "direct".to_owned()
            })
        }
        "application.user_membership.add" => Some(
            match event.target_of("UserGroup").and_then(|g| g.id.as_deref()) {
                Some(group) => format!("group:{group}"),
                None => "direct".to_owned(),
            },
        ),
        "user.mfa.factor.activate" => {
            let detail = event
                .target_of("AuthenticatorEnrollment")?
                .detail_entry
                .as_ref()?;
            let text = |k: &str| detail.get(k).and_then(|v| v.as_str()).unwrap_or("");
            let (kind, provider) = (text("factorType"), text("provider"));
            (!kind.is_empty()).then(|| format!("{kind} {provider}").trim().to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(event: &str, user: &str, tenant: &str) -> HashMap<String, String> {
        let e: serde_json::Value = serde_json::from_str(event).unwrap();
        [
            ("uuid", e["uuid"].as_str().unwrap()),
            ("type", e["eventType"].as_str().unwrap()),
            ("published", e["published"].as_str().unwrap()),
            ("user", user),
            ("actor", "00uadmin"),
            ("outcome", e["outcome"]["result"].as_str().unwrap_or("")),
            ("tenant", tenant),
            ("event", event),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn resolver() -> TenantResolver {
        TenantResolver::from_settings(&[crate::config::TenantRuleSettings::EmailDomain {
            map: [("acme.com".to_string(), "acme".to_string())].into(),
        }])
    }

    fn fields(u: &ProjectionUpdate) -> Vec<(&str, &str)> {
        u.fields
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect()
    }

    #[test]
    fn a_lifecycle_event_sets_identity_tenant_and_status_evidence() {
        let ev = r#"{"uuid":"u1","published":"2026-10-01T09:00:00.000Z","eventType":"user.lifecycle.suspend","outcome":{"result":"SUCCESS"},
            "target":[{"id":"00u1","type":"User","alternateId":"jane@acme.com","displayName":"Jane Doe"}]}"#;
        let u = update_for_entry(&entry(ev, "00u1", "acme"), &resolver())
            .unwrap()
            .unwrap();
        assert_eq!(
            fields(&u),
            [
                ("l", "jane@acme.com"),
                ("n", "Jane Doe"),
                ("t", "acme"),
                ("s:#4", "")
            ]
        );
        assert_eq!(u.stamp.len(), STAMP_LEN);
        assert_eq!(stamp_millis(&u.stamp), Some(1_790_845_200_000));
        assert_eq!(
            codec::decode_event("00u1", &u.event_entry()).unwrap(),
            codec::EventEntry {
                event_type: "user.lifecycle.suspend".into(),
                actor: "00uadmin".into(),
                outcome: "SUCCESS".into(),
                uuid: "u1".into()
            }
        );
    }

    #[test]
    fn memberships_and_sign_ins_become_registers() {
        let add = r#"{"uuid":"u2","published":"2026-10-01T09:00:00Z","eventType":"group.user_membership.add","outcome":{"result":"SUCCESS"},
            "target":[{"id":"00u1","type":"User","alternateId":"j@a.com"},{"id":"00g9","type":"UserGroup","displayName":"tenant-acme"}]}"#;
        let u = update_for_entry(&entry(add, "00u1", ""), &resolver())
            .unwrap()
            .unwrap();
        assert!(fields(&u).contains(&("g:00g9", "+tenant-acme")));
        let fail = r#"{"uuid":"u3","published":"2026-10-01T09:00:00Z","eventType":"user.session.start","outcome":{"result":"FAILURE"},
            "actor":{"id":"00u1","type":"User","alternateId":"j@a.com"}}"#;
        let u = update_for_entry(&entry(fail, "00u1", ""), &resolver())
            .unwrap()
            .unwrap();
        assert_eq!(fields(&u), [("l", "j@a.com"), ("x", "")]);
    }

    #[test]
    fn add_events_record_how_the_member_was_granted() {
        let rule = r#"{"uuid":"r1","published":"2026-10-01T09:00:00Z","eventType":"group.user_membership.add","outcome":{"result":"SUCCESS"},
            "actor":{"id":"0oarule","type":"SystemPrincipal"},
            "target":[{"id":"00u1","type":"User","alternateId":"j@a.com"},{"id":"00g9","type":"UserGroup","displayName":"staff"}]}"#;
        let u = update_for_entry(&entry(rule, "00u1", ""), &resolver())
            .unwrap()
            .unwrap();
        assert!(fields(&u).contains(&("d:g:00g9", "rule")));
        let app = r#"{"uuid":"a1","published":"2026-10-01T09:00:00Z","eventType":"application.user_membership.add","outcome":{"result":"SUCCESS"},
            "target":[{"id":"00u1","type":"User","alternateId":"j@a.com"},{"id":"0oa1","type":"AppInstance","displayName":"Survey"},{"id":"00g9","type":"UserGroup"}]}"#;
        let u = update_for_entry(&entry(app, "00u1", ""), &resolver())
            .unwrap()
            .unwrap();
        assert!(fields(&u).contains(&("d:a:0oa1", "group:00g9")));
        let factor = r#"{"uuid":"f1","published":"2026-10-01T09:00:00Z","eventType":"user.mfa.factor.activate","outcome":{"result":"SUCCESS"},
            "target":[{"id":"00u1","type":"User","alternateId":"j@a.com"},{"id":"opf1","type":"AuthenticatorEnrollment","displayName":"Okta Verify","detailEntry":{"factorType":"push","provider":"OKTA"}}]}"#;
        let u = update_for_entry(&entry(factor, "00u1", ""), &resolver())
            .unwrap()
            .unwrap();
        assert!(fields(&u).contains(&("d:f:opf1", "push OKTA")));
        // A removal sets no detail.
        let remove = app.replace("user_membership.add", "user_membership.remove");
        let u = update_for_entry(&entry(&remove, "00u1", ""), &resolver())
            .unwrap()
            .unwrap();
        assert!(!fields(&u).iter().any(|(f, _)| f.starts_with("d:")));
    }

    #[test]
    fn events_without_a_user_are_skipped_and_broken_entries_are_poison() {
        let ev =
            r#"{"uuid":"u4","published":"2026-10-01T09:00:00Z","eventType":"system.import.start"}"#;
        assert_eq!(
            update_for_entry(&entry(ev, "", ""), &resolver()).unwrap(),
            None
        );
        let mut bad = entry(ev, "00u1", "");
        bad.insert("event".into(), "not json".into());
        assert!(update_for_entry(&bad, &resolver()).is_err());
        let mut bad_time = entry(ev, "00u1", "");
        bad_time.insert("published".into(), "yesterday".into());
        assert!(update_for_entry(&bad_time, &resolver())
            .unwrap_err()
            .0
            .contains("RFC 3339"));
    }

    #[test]
    fn stamps_order_by_time_first() {
        assert!(stamp(1, "zzz") < stamp(2, "aaa"));
        assert_ne!(stamp(1, "a"), stamp(1, "b"));
        assert_eq!(stamp(-5, "a").len(), STAMP_LEN);
        assert_eq!(stamp(i64::MAX, "a").len(), STAMP_LEN);
        assert_eq!(
            stamp_millis(&stamp(1_790_845_200_123, "a")),
            Some(1_790_845_200_123)
        );
    }
}
