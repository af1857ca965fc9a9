//! The compact encoding of a user's projection hash.
//!
//! A projected user is one Redis hash (`Keys::user`), small enough to stay in Redis's compact
//! listpack encoding (every field and value ≤ `hash-max-listpack-value`, 64 bytes by default):
//!
//! - **Event entries** — field `e<stamp>`, value `<type>|<actor>|<outcome>|<uuid>`: the events
//!   the user's registers and timeline refer to. `type` is a short code for the event types the
//!   adapter knows ([`KNOWN_TYPES`]), `actor` is empty when the user acted on themselves,
//!   `outcome` is empty for `SUCCESS`, `uuid` is the 16 bytes of a canonical UUID in base64url.
//! - **Registers** — every other field, value `<stamp><value>`: a last-writer-wins register set
//!   by the event `e<stamp>` (its "why"). Field names are in `update::field`.
//!
//! Stamps (`update::stamp`) are 17 characters of `[0-9a-f]`: 11 hex digits of the event's
//! `published` epoch millis, then 6 of SHA-256(uuid) as a tie-break; byte order is time order.
//! The format is read by `store` and written by `apply.lua`; a change needs a
//! `projections rebuild`.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Event types stored as `#<position>`. **Append only**: stored hashes refer to positions, which
/// is why this is its own list and not built from `domain::user_status::STATUS_EVENT_TYPES`
/// (whose order is a ranking that may change); a test checks every status type is in it.
pub const KNOWN_TYPES: &[&str] = &[
    "user.lifecycle.create",
    "user.lifecycle.activate",
    "user.lifecycle.reactivate",
    "user.lifecycle.deactivate",
    "user.lifecycle.suspend",
    "user.lifecycle.unsuspend",
    "user.lifecycle.delete.initiated",
    "user.lifecycle.delete.completed",
    "user.account.lock",
    "user.account.unlock",
    "user.account.unlock_by_admin",
    "user.account.unlock_token",
    "user.account.reset_password",
    "user.account.expire_password",
    "user.account.update_password",
    "user.account.update_profile",
    "user.account.privilege.grant",
    "user.account.privilege.revoke",
    "user.import.password",
    "user.session.start",
    "user.session.end",
    "user.authentication.sso",
    "user.authentication.auth_via_mfa",
    "user.mfa.factor.activate",
    "user.mfa.factor.deactivate",
    "user.mfa.factor.reset_all",
    "user.mfa.factor.update",
    "group.user_membership.add",
    "group.user_membership.remove",
    "application.user_membership.add",
    "application.user_membership.remove",
    "application.user_membership.update",
    "application.user_membership.provision",
    "application.user_membership.deprovision",
    "application.user_membership.change_password",
    "application.provision.user.import_profile",
    "policy.evaluate_sign_on",
    "system.email.password_reset.sent_message",
];

/// Prefix of an event-entry field.
pub const EVENT_PREFIX: &str = "e";

/// One stored event entry, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEntry {
    pub event_type: String,
    pub actor: String,
    pub outcome: String,
    pub uuid: String,
}

/// The short code of a known event type (`#<position>`; also used in status register names),
/// else the type itself.
pub fn type_code(t: &str) -> Cow<'_, str> {
    match KNOWN_TYPES.iter().position(|k| *k == t) {
        Some(i) => Cow::Owned(format!("#{i}")),
        // An unknown type that happens to start with `#` keeps it doubled.
        None if t.starts_with('#') => Cow::Owned(format!("#{t}")),
        None => Cow::Borrowed(t),
    }
}

/// The event type behind a [`type_code`].
pub fn type_of_code(code: &str) -> String {
    match code.strip_prefix('#') {
        Some(rest) if rest.starts_with('#') => rest.to_owned(),
        Some(rest) => rest
            .parse::<usize>()
            .ok()
            .and_then(|i| KNOWN_TYPES.get(i))
            .map_or_else(|| code.to_owned(), |t| (*t).to_owned()),
        None => code.to_owned(),
    }
}

/// `|` separates the parts; Okta never puts one in a type, an id or an outcome, and one that did
/// would become `/` rather than shift the other parts.
fn clean(s: &str) -> Cow<'_, str> {
    if s.contains('|') {
        Cow::Owned(s.replace('|', "/"))
    } else {
        Cow::Borrowed(s)
    }
}

fn encode_uuid(uuid: &str) -> String {
    let b = uuid.as_bytes();
    let canonical = b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b.iter()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    match canonical
        .then(|| hex::decode(uuid.replace('-', "")).ok())
        .flatten()
    {
        Some(bytes) => URL_SAFE_NO_PAD.encode(bytes),
        None => format!("={uuid}"),
    }
}

fn decode_uuid(s: &str) -> String {
    if let Some(raw) = s.strip_prefix('=') {
        return raw.to_owned();
    }
    match URL_SAFE_NO_PAD.decode(s) {
        Ok(b) if b.len() == 16 => {
            let h = hex::encode(b);
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        _ => s.to_owned(),
    }
}

/// The value of `user`'s event entry.
pub fn encode_event(
    user: &str,
    event_type: &str,
    actor: &str,
    outcome: &str,
    uuid: &str,
) -> String {
    let actor = match actor {
        a if a == user => "",
        "" => "-",
        a => a,
    };
    let outcome = match outcome {
        o if o.eq_ignore_ascii_case("SUCCESS") => "",
        "" => "-",
        o => o,
    };
    format!(
        "{}|{}|{}|{}",
        clean(&type_code(event_type)),
        clean(actor),
        clean(outcome),
        encode_uuid(uuid)
    )
}

/// Decodes `user`'s event entry; `None` when it is not one.
pub fn decode_event(user: &str, raw: &str) -> Option<EventEntry> {
    let mut parts = raw.splitn(4, '|');
    let (t, actor, outcome, uuid) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(EventEntry {
        event_type: type_of_code(t),
        actor: match actor {
            "" => user.to_owned(),
            "-" => String::new(),
            a => a.to_owned(),
        },
        outcome: match outcome {
            "" => "SUCCESS".to_owned(),
            "-" => String::new(),
            o => o.to_owned(),
        },
        uuid: decode_uuid(uuid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user_status::STATUS_EVENT_TYPES;

    #[test]
    fn event_entries_round_trip_and_stay_short() {
        let cases = [
            (
                "user.lifecycle.create",
                "00uadmin0000000000000",
                "SUCCESS",
                "a6f0d6f2-8b8c-11ef-9d4f-1b3f0c1e2d3a",
            ),
            ("user.session.start", "00u1", "FAILURE", "not-a-uuid"),
            (
                "custom.event|odd",
                "",
                "",
                "A6F0D6F2-8B8C-11EF-9D4F-1B3F0C1E2D3A",
            ),
            ("#weird", "-x", "DENY", ""),
        ];
        for (t, actor, outcome, uuid) in cases {
            let raw = encode_event("00u1", t, actor, outcome, uuid);
            let e = decode_event("00u1", &raw).unwrap();
            assert_eq!(e.event_type, t.replace('|', "/"));
            assert_eq!(e.actor, actor);
            assert_eq!(e.outcome, outcome);
            assert_eq!(e.uuid, uuid);
        }
        let raw = encode_event(
            "00u1",
            "application.user_membership.change_password",
            "00uadmin0000000000000",
            "FAILURE",
            "a6f0d6f2-8b8c-11ef-9d4f-1b3f0c1e2d3a",
        );
        assert!(raw.len() <= 64, "{raw} ({} bytes)", raw.len());
    }

    #[test]
    fn every_status_type_has_a_short_code() {
        for t in STATUS_EVENT_TYPES {
            assert!(type_code(t).starts_with('#'), "{t}");
            assert_eq!(type_of_code(&type_code(t)), *t);
        }
        assert_eq!(type_of_code(&type_code("#odd")), "#odd");
        assert_eq!(type_of_code(&type_code("custom.type")), "custom.type");
        let mut seen = std::collections::HashSet::new();
        assert!(KNOWN_TYPES.iter().all(|t| seen.insert(t)), "no duplicates");
    }
}
