//! The event hook delivery envelope and the few LogEvent fields the adapter needs.
//!
//! Spec: <https://developer.okta.com/docs/concepts/event-hooks/> (HOOKS-SPEC §2.3).
//!
//! Parsing is deliberately lenient — Okta's own samples disagree on types (`version` is `"0"` or
//! `0`, `zone` is the string `"null"`) and Okta adds fields over time — so every field we do not
//! need is ignored, and the fields we do need accept strings, numbers or null. Each event is kept
//! as its raw JSON bytes, so the stream's `event` field is exactly what Okta sent.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The `eventType` of every event hook envelope.
pub const EVENT_HOOK_ENVELOPE_TYPE: &str = "com.okta.event_hook";

/// The envelope, borrowing each event's raw JSON from the request body.
#[derive(Debug, Deserialize)]
pub struct Delivery<'a> {
    #[serde(rename = "eventType", default, deserialize_with = "lenient_string")]
    pub event_type: Option<String>,
    #[serde(rename = "eventId", default, deserialize_with = "lenient_string")]
    pub event_id: Option<String>,
    #[serde(borrow)]
    pub data: Option<DeliveryData<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct DeliveryData<'a> {
    #[serde(borrow)]
    pub events: Option<Vec<&'a RawValue>>,
}

/// The LogEvent fields that routing, tenants and the stream envelope need.
#[derive(Debug, Default, Deserialize)]
pub struct LogEventSummary {
    #[serde(default, deserialize_with = "lenient_string")]
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub published: Option<String>,
    #[serde(rename = "eventType", default, deserialize_with = "lenient_string")]
    pub event_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub actor: Actor,
    #[serde(default, deserialize_with = "null_as_default")]
    pub outcome: Outcome,
    #[serde(default, deserialize_with = "null_as_default")]
    pub target: Vec<Target>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Actor {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "lenient_string")]
    pub kind: Option<String>,
    #[serde(rename = "alternateId", default, deserialize_with = "lenient_string")]
    pub alternate_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Outcome {
    #[serde(default, deserialize_with = "lenient_string")]
    pub result: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Target {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "lenient_string")]
    pub kind: Option<String>,
    #[serde(rename = "alternateId", default, deserialize_with = "lenient_string")]
    pub alternate_id: Option<String>,
    #[serde(rename = "displayName", default, deserialize_with = "lenient_string")]
    pub display_name: Option<String>,
    #[serde(rename = "detailEntry", default)]
    pub detail_entry: Option<serde_json::Value>,
    #[serde(rename = "changeDetails", default)]
    pub change_details: Option<serde_json::Value>,
}

impl LogEventSummary {
    /// The first target of `kind` (Okta: "search for a given type rather than the array location").
    pub fn target_of(&self, kind: &str) -> Option<&Target> {
        self.target.iter().find(|t| t.kind.as_deref() == Some(kind))
    }

    /// The user the event is about: the first `User` target, else a `User` actor (sign-in and
    /// session events carry the user only as the actor).
    pub fn subject_user(&self) -> Option<SubjectUser<'_>> {
        if let Some(t) = self.target_of("User") {
            return t.id.as_deref().map(|id| SubjectUser {
                id,
                login: t.alternate_id.as_deref(),
                target: Some(t),
            });
        }
        if self.actor.kind.as_deref() == Some("User") {
            return self.actor.id.as_deref().map(|id| SubjectUser {
                id,
                login: self.actor.alternate_id.as_deref(),
                target: None,
            });
        }
        None
    }
}

/// The user an event is about.
#[derive(Debug, Clone, Copy)]
pub struct SubjectUser<'a> {
    pub id: &'a str,
    /// Okta's `alternateId`: the login, usually an email address.
    pub login: Option<&'a str>,
    /// The `User` target, when the user came from one (it may carry profile details).
    pub target: Option<&'a Target>,
}

/// Accepts a string, a number, a boolean or null; anything else (objects, arrays) is `None`.
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string, number, boolean or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            Ok(None)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// `null` (or a value of the wrong shape) becomes the type's default instead of an error.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + serde::de::DeserializeOwned,
{
    // The raw text is only scanned once more for `T` (no intermediate `Value` tree): this runs
    // for every event on the ingest and projection paths. Only serde_json's own text
    // deserializers can hand out raw values, which is all the adapter uses for Okta payloads.
    let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
    Ok(serde_json::from_str(raw.get()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../hooks/event-hook-user-session-start.json");

    #[test]
    fn okta_sample_delivery_parses_and_keeps_the_event_bytes() {
        let d: Delivery = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(d.event_type.as_deref(), Some(EVENT_HOOK_ENVELOPE_TYPE));
        let events = d.data.unwrap().events.unwrap();
        assert_eq!(events.len(), 1);
        let raw = events[0].get();
        assert!(SAMPLE.contains(raw), "raw event must be a byte-exact slice");
        let e: LogEventSummary = serde_json::from_str(raw).unwrap();
        assert_eq!(
            e.uuid.as_deref(),
            Some("f1d0b993-cc19-11ed-a688-db22c99ef6c4")
        );
        assert_eq!(e.event_type.as_deref(), Some("user.session.start"));
        assert_eq!(e.outcome.result.as_deref(), Some("SUCCESS"));
        let user = e.subject_user().unwrap();
        assert_eq!(user.id, "00uz9fj5aT69fHVro1d6");
        assert_eq!(user.login, Some("admin@okta.com"));
    }

    #[test]
    fn numbers_nulls_and_odd_shapes_are_tolerated() {
        let e: LogEventSummary = serde_json::from_str(
            r#"{"uuid":"u1","published":"2024-01-01T00:00:00Z","eventType":"x","version":0,
                "actor":null,"outcome":{"result":null},"target":null,"extra":{"a":[1]}}"#,
        )
        .unwrap();
        assert_eq!(e.uuid.as_deref(), Some("u1"));
        assert!(e.actor.id.is_none());
        assert!(e.target.is_empty());
        assert!(e.subject_user().is_none());
    }

    #[test]
    fn a_user_target_wins_over_the_actor() {
        let e: LogEventSummary = serde_json::from_str(
            r#"{"actor":{"id":"admin","type":"User"},
                "target":[{"id":"grp","type":"UserGroup"},{"id":"00u1","type":"User","alternateId":"a@b.c"}]}"#,
        )
        .unwrap();
        assert_eq!(e.subject_user().unwrap().id, "00u1");
    }
}
