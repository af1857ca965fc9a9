//! Inline hooks: synchronous decisions inside an Okta sign-in, registration, token or import.
//!
//! Spec: <https://developer.okta.com/docs/concepts/inline-hooks/> (HOOKS-SPEC §3).
//!
//! Okta waits at most 3 s and each hook type fails differently (§3.4): a password import that
//! times out blocks the sign-in, a token hook that times out issues the token unchanged. So every
//! decision runs under [`decide_within`], a hard internal deadline (`inline.deadline_ms`) after
//! which — or after any Redis error — the type's [`HookKind::safe_answer`] goes out at once.
//! Answers come from local data only (projections, this config, the legacy credential store),
//! never from a call to Okta.
//!
//! One module per type holds its decision as pure functions over the parsed request and what was
//! looked up, so the rules are unit-tested without Redis: [`password`] (legacy hashes, the hash
//! pool with load shedding), [`registration`], [`user_import`], [`token`], [`saml`],
//! [`telephony`]. [`credentials`] is the legacy credential store (file import, clean-up
//! consumer); [`policy`] compiles `[inline]` config; [`record`] writes the decision stream.

pub mod credentials;
pub mod password;
pub mod policy;
pub mod record;
pub mod registration;
pub mod saml;
pub mod telephony;
pub mod token;
pub mod user_import;

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::okta::inline_hook::{event_types, Command, ErrorCause, InlineError, InlineResponse};

pub use policy::Policy;

/// Everything the inline hook handlers share, built once from `[inline]`.
pub struct InlineState {
    pub policy: Policy,
    pub password: password::PasswordImport,
    pub telephony: Box<dyn telephony::TelephonyProvider>,
    pub keys: crate::store::Keys,
    pub deadline: Duration,
    pub max_body_bytes: usize,
    pub decisions_maxlen: u64,
    pub recorder: record::DecisionRecorder,
}

impl InlineState {
    pub fn new(settings: &crate::config::Settings) -> Self {
        let inline = &settings.inline;
        let keys = crate::store::Keys::new(settings.redis.prefix.clone());
        Self {
            policy: Policy::from_settings(inline),
            password: password::PasswordImport {
                keys: keys.clone(),
                pool: password::HashPool::new(inline.password_import.hash_permits()),
                limits: password::HashLimits::from_settings(&inline.password_import),
                max_failures: inline.password_import.max_failures,
                failure_window_secs: inline.password_import.failure_window_secs,
            },
            telephony: Box::new(telephony::OktaFallback),
            keys,
            deadline: Duration::from_millis(inline.deadline_ms),
            max_body_bytes: inline.max_body_bytes,
            decisions_maxlen: inline.decisions_maxlen,
            recorder: record::DecisionRecorder::new(),
        }
    }
}

/// The six inline hook types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    PasswordImport,
    Registration,
    UserImport,
    Token,
    Saml,
    Telephony,
}

impl HookKind {
    /// The label used in paths, metrics and the decision stream.
    pub fn name(self) -> &'static str {
        match self {
            Self::PasswordImport => "password-import",
            Self::Registration => "registration",
            Self::UserImport => "user-import",
            Self::Token => "token",
            Self::Saml => "saml",
            Self::Telephony => "telephony",
        }
    }

    /// The request's `eventType` for this hook.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::PasswordImport => event_types::PASSWORD_IMPORT,
            Self::Registration => event_types::REGISTRATION,
            Self::UserImport => event_types::USER_IMPORT,
            Self::Token => event_types::TOKEN,
            Self::Saml => event_types::SAML,
            Self::Telephony => event_types::TELEPHONY,
        }
    }

    /// What to answer when no decision could be made in time (HOOKS-SPEC §3.4): never more
    /// permissive than Okta's own behaviour on a timeout, but sent in time so Okta does not wait
    /// out its 3 s.
    ///
    /// - password import: `UNVERIFIED` — never let a password in unchecked;
    /// - registration: deny (Okta denies on a timeout too), with a "try again" message;
    /// - user import, token, SAML: 204 — Okta's default action (create / unchanged token /
    ///   original assertion);
    /// - telephony: the error that makes Okta send the OTP through its own providers.
    pub fn safe_answer(self) -> Answer {
        match self {
            Self::PasswordImport => password::answer(false),
            Self::Registration => Answer::Body(InlineResponse {
                commands: vec![Command::new(
                    "com.okta.action.update",
                    json!({"registration": "DENY"}),
                )],
                error: Some(InlineError {
                    error_summary:
                        "Registration can't be completed at this time. Please try again.".into(),
                    error_causes: vec![],
                }),
                debug_context: None,
            }),
            Self::UserImport | Self::Token | Self::Saml => Answer::NoContent,
            Self::Telephony => telephony::fallback_answer("okta-adapter could not decide in time"),
        }
    }
}

/// An inline hook answer: 200 with a body, or 204 (the type's default action).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    NoContent,
    Body(InlineResponse),
}

impl Answer {
    /// The JSON Okta receives (`null` for 204), for tests and size checks.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Answer::NoContent => serde_json::Value::Null,
            Answer::Body(b) => serde_json::to_value(b).expect("responses serialise"),
        }
    }
}

/// A decision: what to answer and a short outcome label for metrics and the decision stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub answer: Answer,
    /// e.g. `verified`, `deny`, `link`, `claims_added`; never contains request data.
    pub outcome: &'static str,
}

impl Decision {
    pub fn new(answer: Answer, outcome: &'static str) -> Self {
        Self { answer, outcome }
    }
}

/// Why a decision could not be made; the hook then sends its safe answer.
#[derive(Debug, thiserror::Error)]
pub enum InlineFailure {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Internal(String),
}

/// How a decision ended, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    pub deadline_hit: bool,
}

/// Runs `decide` until `deadline`; on expiry or failure answers `kind`'s safe answer. The
/// future is dropped at the deadline, so nothing it was waiting for (a Redis reply, a hash-pool
/// permit) can hold the answer back.
pub async fn decide_within<F>(kind: HookKind, deadline: Instant, decide: F) -> Decided
where
    F: Future<Output = Result<Decision, InlineFailure>>,
{
    let deadline = tokio::time::Instant::from_std(deadline);
    match tokio::time::timeout_at(deadline, decide).await {
        Ok(Ok(decision)) => Decided {
            decision,
            deadline_hit: false,
        },
        Ok(Err(e)) => {
            tracing::warn!(hook = kind.name(), error = %e, "inline hook decision failed; answering the safe default");
            Decided {
                decision: Decision::new(kind.safe_answer(), "unavailable"),
                deadline_hit: false,
            }
        }
        Err(_) => {
            tracing::warn!(
                hook = kind.name(),
                "inline hook deadline reached; answering the safe default"
            );
            Decided {
                decision: Decision::new(kind.safe_answer(), "deadline"),
                deadline_hit: true,
            }
        }
    }
}

/// An `errorCauses[]` entry that points at a request attribute, as the Sign-In Widget expects.
pub fn cause(summary: &str, reason: &str, location: &str) -> ErrorCause {
    ErrorCause {
        error_summary: summary.into(),
        reason: reason.into(),
        location_type: Some("body".into()),
        location: location.into(),
        domain: Some("end-user".into()),
    }
}

/// A projection view for unit tests: `id`, `tenant` and group names; the rest empty.
#[cfg(test)]
pub(crate) fn test_user(
    id: &str,
    tenant: Option<&str>,
    groups: &[&str],
) -> crate::projection::UserView {
    crate::projection::UserView {
        id: id.into(),
        login: None,
        email: None,
        display_name: None,
        tenant: tenant.map(str::to_string),
        status: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        apps: vec![],
        factors: vec![],
        freshness: None,
    }
}

/// JSON-Pointer escaping of one path segment (RFC 6901): `~` → `~0`, `/` → `~1`. Okta requires
/// it for claim and attribute names such as URIs.
pub fn pointer_segment(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_slow_decision_gets_the_safe_answer_at_the_deadline() {
        let started = Instant::now();
        let d = decide_within(
            HookKind::Token,
            started + Duration::from_millis(50),
            async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(Decision::new(Answer::NoContent, "never"))
            },
        )
        .await;
        assert!(d.deadline_hit);
        assert_eq!(d.decision.outcome, "deadline");
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_failed_decision_gets_the_safe_answer_at_once() {
        let d = decide_within(
            HookKind::PasswordImport,
            Instant::now() + Duration::from_secs(1),
            async { Err(InlineFailure::Internal("boom".into())) },
        )
        .await;
        assert!(!d.deadline_hit);
        assert_eq!(d.decision.outcome, "unavailable");
        assert_eq!(
            d.decision.answer.to_json()["commands"][0]["value"]["credential"],
            "UNVERIFIED"
        );
    }

    #[test]
    fn safe_answers_follow_okta_s_failure_behaviour() {
        assert_eq!(HookKind::Token.safe_answer(), Answer::NoContent);
        assert_eq!(HookKind::Saml.safe_answer(), Answer::NoContent);
        assert_eq!(HookKind::UserImport.safe_answer(), Answer::NoContent);
        let reg = HookKind::Registration.safe_answer().to_json();
        assert_eq!(reg["commands"][0]["value"]["registration"], "DENY");
        assert!(reg["error"]["errorSummary"].is_string());
        let tel = HookKind::Telephony.safe_answer().to_json();
        assert!(tel["error"]["errorSummary"].is_string());
        assert!(tel.get("commands").is_none());
    }

    #[test]
    fn pointer_segments_are_escaped() {
        assert_eq!(
            pointer_segment("https://example.com/claims/tenant~x"),
            "https:~1~1example.com~1claims~1tenant~0x"
        );
    }
}
