//! Fan-out: one event hook delivery → stream entries, atomically de-duplicated.
//!
//! [`Ingestor::prepare`] parses a delivery (leniently, keeping each event's raw bytes) and decides
//! everything that does not need Redis: the event's own tenant, which routes match its type, the
//! optional signature. [`Ingestor::write`] then runs `ingest.lua` once per slice of
//! `hooks.max_events_per_write` events; the script looks every uuid of the slice up in the
//! de-duplication sorted set, writes each new event's firehose and route entries, and only then
//! adds the written uuids to the set — so a crash or a Redis error can never leave an event
//! marked seen but not written. Okta gets its 2xx only after every slice succeeded; on any error
//! it gets 503, retries, and the events that did get written are recognised as duplicates.
//! [`Ingestor::trim_dedup`] (run by the maintenance loop) removes uuids older than the window.
//! [`labels`] bounds the event-type labels of the ingest metrics.

pub mod durability;
pub mod labels;

use crate::store::RedisConn;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{KeyInit, Mac};
use redis::{RedisResult, Script};
use serde_json::error::Category;
use sha2::Sha256;

use crate::config::{RouteSettings, Settings, CREDENTIAL_IMPORTS_ROUTE};
use crate::domain::routing::Route;
use crate::domain::tenant::TenantResolver;
use crate::inline::credentials::PASSWORD_IMPORTED_EVENT;
use crate::okta::event_hook::{Delivery, LogEventSummary, EVENT_HOOK_ENVELOPE_TYPE};
use crate::store::Keys;

const INGEST_SCRIPT: &str = include_str!("ingest.lua");

/// Removes up to ARGV[2] members of the dedup set KEYS[1] scored more than ARGV[1] ms before
/// now (the oldest first); returns how many. "Now" is Redis's clock, like the ingest script's,
/// unless ARGV[3] gives one (ms; tests). Count and removal are one atomic step, so a replica
/// trimming at the same time can never make it remove a member inside the window.
const DEDUP_TRIM_SCRIPT: &str = r"
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local cutoff = string.format('%.0f', now - tonumber(ARGV[1]))
local n = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. cutoff)
n = math.min(n, tonumber(ARGV[2]))
if n > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1) end
return n
";

/// Members removed per trim call: bounds how long one call keeps Redis busy.
const DEDUP_TRIM_CHUNK: u64 = 10_000;
/// Trim calls per [`Ingestor::trim_dedup`]: bounds one maintenance round. After a long outage
/// the set can hold days of expired uuids; they go over the next rounds.
const DEDUP_TRIM_CHUNKS_PER_ROUND: u32 = 10;

/// Why a body is not an event hook delivery. The message is safe to return to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidDelivery(pub String);

/// One event, ready for the script. Borrows the raw JSON from the request body.
#[derive(Debug)]
pub struct PreparedEvent<'a> {
    pub uuid: String,
    pub event_type: String,
    pub published: String,
    pub user: String,
    pub actor: String,
    pub outcome: String,
    pub raw: &'a str,
    pub sig: String,
    /// Tenant revealed by the event itself; empty = ask the user → tenant index.
    pub tenant: String,
    /// 1-based indexes into the configured routes whose type patterns match.
    pub routes: Vec<usize>,
}

/// What happened to each event of a delivery, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Written,
    Duplicate,
}

pub struct Ingestor {
    keys: Keys,
    routes: Vec<Route>,
    tenants: TenantResolver,
    signing_key: Option<Vec<u8>>,
    dedup_window_ms: u64,
    firehose_maxlen: u64,
    max_events_per_write: usize,
    script: Script,
    trim_script: Script,
    type_labels: labels::TypeLabels,
    /// What a write waits for after the script (`hooks.durability`); set once at start from
    /// what Redis offers (see [`durability`]); unset = nothing.
    wait: std::sync::OnceLock<durability::WaitStep>,
}

impl Ingestor {
    pub fn new(settings: &Settings) -> Self {
        let keys = Keys::new(settings.redis.prefix.clone());
        let mut routes: Vec<Route> = settings
            .routes
            .iter()
            .map(|r| Route::compile(r, keys.route(&r.name)))
            .collect();
        // Built in, last: the credential clean-up consumer reads only these events.
        routes.push(Route::compile(
            &RouteSettings {
                name: CREDENTIAL_IMPORTS_ROUTE.into(),
                event_types: vec![PASSWORD_IMPORTED_EVENT.into()],
                tenants: vec![],
                maxlen: 100_000,
                groups: vec![settings.inline.password_import.cleanup_group.clone()],
            },
            keys.credential_imports(),
        ));
        Self {
            routes,
            tenants: TenantResolver::from_settings(&settings.tenants.rules),
            signing_key: settings.signing_key().map(<[u8]>::to_vec),
            dedup_window_ms: settings.hooks.dedup_window_secs.saturating_mul(1000),
            firehose_maxlen: settings.firehose.maxlen,
            max_events_per_write: settings.hooks.max_events_per_write,
            script: Script::new(INGEST_SCRIPT),
            trim_script: Script::new(DEDUP_TRIM_SCRIPT),
            type_labels: labels::TypeLabels::new(&settings.routes),
            wait: std::sync::OnceLock::new(),
            keys,
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Sets what every write waits for after its script (once, at start).
    pub fn set_wait_step(&self, step: durability::WaitStep) {
        let _ = self.wait.set(step);
    }

    /// The metric label for `event_type`: its name when known, else `other` (see [`labels`]).
    pub fn type_label(&self, event_type: &str) -> String {
        self.type_labels.label(event_type)
    }

    /// The configured routes, then the built-in `credential-imports` route.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Parses and validates a delivery body. Nothing is written if this fails.
    pub fn prepare<'a>(&self, body: &'a [u8]) -> Result<Vec<PreparedEvent<'a>>, InvalidDelivery> {
        let delivery: Delivery<'a> =
            serde_json::from_slice(body).map_err(|e| match e.classify() {
                Category::Syntax | Category::Eof | Category::Io => {
                    InvalidDelivery(format!("body is not valid JSON: {e}"))
                }
                Category::Data => InvalidDelivery(format!(
                    "not an Okta event hook delivery: expected an object with data.events ({e})"
                )),
            })?;
        if let Some(kind) = delivery.event_type.as_deref() {
            if kind != EVENT_HOOK_ENVELOPE_TYPE {
                return Err(InvalidDelivery(format!(
                    "eventType is `{kind}`, expected `{EVENT_HOOK_ENVELOPE_TYPE}`"
                )));
            }
        }
        let events = delivery.data.and_then(|d| d.events).ok_or_else(|| {
            InvalidDelivery("not an Okta event hook delivery: data.events is missing".into())
        })?;
        if events.is_empty() {
            return Err(InvalidDelivery("data.events is empty".into()));
        }
        events
            .iter()
            .enumerate()
            .map(|(i, raw)| self.prepare_event(i, raw.get()))
            .collect()
    }

    fn prepare_event<'a>(
        &self,
        i: usize,
        raw: &'a str,
    ) -> Result<PreparedEvent<'a>, InvalidDelivery> {
        let at = |what: &str| InvalidDelivery(format!("data.events[{i}]: {what}"));
        if !raw.starts_with('{') {
            return Err(at("is not a JSON object"));
        }
        let event: LogEventSummary =
            serde_json::from_str(raw).map_err(|e| at(&format!("cannot be read: {e}")))?;
        let required = |v: &Option<String>, name: &str| match v {
            Some(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err(at(&format!("`{name}` is missing or empty"))),
        };
        let uuid = required(&event.uuid, "uuid")?;
        let event_type = required(&event.event_type, "eventType")?;
        let published = required(&event.published, "published")?;
        if DateTime::parse_from_rfc3339(&published).is_err() {
            return Err(at(&format!(
                "`published` is not an RFC 3339 time: `{published}`"
            )));
        }
        if uuid.len() > 256 || uuid.contains(char::is_whitespace) {
            return Err(at("`uuid` is not an Okta event id"));
        }
        let routes = self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matches_type(&event_type))
            .map(|(idx, _)| idx + 1)
            .collect();
        Ok(PreparedEvent {
            sig: self.sign(&uuid, raw),
            tenant: self.tenants.resolve(&event).unwrap_or_default(),
            user: event
                .subject_user()
                .map(|u| u.id.to_owned())
                .unwrap_or_default(),
            actor: event.actor.id.clone().unwrap_or_default(),
            outcome: event.outcome.result.clone().unwrap_or_default(),
            uuid,
            event_type,
            published,
            raw,
            routes,
        })
    }

    /// `sig` = hex HMAC-SHA256 over `uuid + "\n" + event`, or empty without a signing key.
    fn sign(&self, uuid: &str, raw: &str) -> String {
        let Some(key) = &self.signing_key else {
            return String::new();
        };
        hex::encode(entry_signature(key, uuid, raw))
    }

    /// Writes events; returns each event's outcome in order. On error, the events before the
    /// failing one are written and marked, the failing one may be partly written (never marked)
    /// and the rest are untouched; Okta's retry skips the marked ones and writes the others again
    /// (a partly written event then appears twice in some streams: a duplicate, never a loss).
    pub async fn write(
        &self,
        conn: &mut RedisConn,
        events: &[PreparedEvent<'_>],
        received: DateTime<Utc>,
    ) -> RedisResult<Vec<EventOutcome>> {
        let received = received.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut outcomes = Vec::with_capacity(events.len());
        for slice in events.chunks(self.max_events_per_write) {
            let mut inv = self.script.prepare_invoke();
            inv.key(self.keys.firehose())
                .key(self.keys.user_tenant())
                .key(self.keys.dedup());
            for route in &self.routes {
                inv.key(&route.stream);
            }
            inv.arg(self.dedup_window_ms)
                .arg(&received)
                .arg(self.firehose_maxlen)
                .arg(self.routes.len())
                .arg(slice.len());
            for route in &self.routes {
                inv.arg(route.maxlen);
            }
            for route in &self.routes {
                inv.arg(&route.tenant_filter);
            }
            for e in slice {
                inv.arg(&e.uuid)
                    .arg(&e.event_type)
                    .arg(&e.published)
                    .arg(&e.user)
                    .arg(&e.actor)
                    .arg(&e.outcome)
                    .arg(e.raw)
                    .arg(&e.sig)
                    .arg(&e.tenant)
                    .arg(e.routes.len());
                for r in &e.routes {
                    inv.arg(*r);
                }
            }
            let written: Vec<i64> = inv.invoke_async(conn).await?;
            outcomes.extend(written.into_iter().map(|w| {
                if w == 1 {
                    EventOutcome::Written
                } else {
                    EventOutcome::Duplicate
                }
            }));
        }
        // Also after an all-duplicate write: a retry must not get its 204 before the first
        // attempt's writes are as durable as promised.
        let step = self.wait.get().copied().unwrap_or_default();
        durability::wait(step, conn, &self.keys.firehose()).await?;
        Ok(outcomes)
    }

    /// Removes uuids accepted more than `hooks.dedup_window_secs` ago from the dedup set, at most
    /// 100,000 per call (in chunks of 10,000); returns how many. Only memory depends on it: the
    /// ingest script already treats such members as absent. "Now" is Redis's clock; `at`
    /// replaces it (tests).
    pub async fn trim_dedup(
        &self,
        conn: &mut RedisConn,
        at: Option<DateTime<Utc>>,
    ) -> RedisResult<u64> {
        let mut removed = 0;
        for _ in 0..DEDUP_TRIM_CHUNKS_PER_ROUND {
            let mut inv = self.trim_script.prepare_invoke();
            inv.key(self.keys.dedup())
                .arg(self.dedup_window_ms)
                .arg(DEDUP_TRIM_CHUNK);
            if let Some(at) = at {
                inv.arg(at.timestamp_millis());
            }
            let n: u64 = inv.invoke_async(conn).await?;
            removed += n;
            if n < DEDUP_TRIM_CHUNK {
                break;
            }
        }
        Ok(removed)
    }
}

/// HMAC-SHA256 over `uuid + "\n" + event`: what a consumer recomputes to check an entry.
pub fn entry_signature(key: &[u8], uuid: &str, event: &str) -> Vec<u8> {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    mac.update(uuid.as_bytes());
    mac.update(b"\n");
    mac.update(event.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingestor(extra: &str) -> Ingestor {
        let s =
            Settings::from_toml_overrides(&format!("[hooks]\nsecrets=[\"s\"]\n{extra}")).unwrap();
        Ingestor::new(&s)
    }

    fn body(events: &str) -> Vec<u8> {
        format!(r#"{{"eventType":"com.okta.event_hook","data":{{"events":[{events}]}}}}"#)
            .into_bytes()
    }

    const EVENT: &str = r#"{"uuid":"e1","published":"2024-05-01T10:00:00.000Z","eventType":"user.lifecycle.suspend","actor":{"id":"00uAdmin","type":"User"},"outcome":{"result":"SUCCESS"},"target":[{"id":"00u1","type":"User","alternateId":"a@b.c"}]}"#;

    #[test]
    fn a_lifecycle_event_is_routed_and_described() {
        let b = body(EVENT);
        let events = ingestor("").prepare(&b).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.uuid.as_str(), e.user.as_str(), e.actor.as_str()),
            ("e1", "00u1", "00uAdmin")
        );
        assert_eq!(e.outcome, "SUCCESS");
        assert_eq!(e.routes, vec![1], "the default lifecycle route matches");
        assert_eq!(e.raw, EVENT);
        assert!(e.sig.is_empty());
    }

    #[test]
    fn malformed_bodies_are_explained() {
        let i = ingestor("");
        let err = |b: &[u8]| i.prepare(b).unwrap_err().0;
        assert!(err(b"{not json").contains("not valid JSON"));
        assert!(err(b"[1,2]").contains("not an Okta event hook"));
        assert!(err(br#"{"data":{}}"#).contains("data.events is missing"));
        assert!(err(&body("")).contains("data.events is empty"));
        assert!(
            err(br#"{"eventType":"com.okta.import.transform","data":{"events":[]}}"#)
                .contains("expected `com.okta.event_hook`")
        );
        assert!(err(&body(
            r#"{"published":"2024-05-01T10:00:00Z","eventType":"x"}"#
        ))
        .contains("data.events[0]: `uuid` is missing"));
        assert!(err(&body(
            r#"{"uuid":"u","published":"yesterday","eventType":"x"}"#
        ))
        .contains("RFC 3339"));
        assert!(err(&body("42")).contains("data.events[0]: is not a JSON object"));
    }

    #[test]
    fn with_a_signing_key_the_signature_covers_uuid_and_event() {
        let b = body(EVENT);
        let i = ingestor("signing_key = \"k\"");
        let e = &i.prepare(&b).unwrap()[0];
        assert_eq!(e.sig, hex::encode(entry_signature(b"k", "e1", EVENT)));
        assert_ne!(e.sig, hex::encode(entry_signature(b"other", "e1", EVENT)));
        assert_eq!(e.sig.len(), 64);
    }
}
