//! `POST /hooks/okta/inline/*`: Okta inline hooks, one path per type.
//!
//! Spec: <https://developer.okta.com/docs/concepts/inline-hooks/> (HOOKS-SPEC §3). Each handler
//! is thin: authenticate → read and parse the body leniently (400 only for a body that is not
//! an inline hook request of this type) → one decision under the deadline ([`decide_within`]) →
//! answer 200 with Okta's `{commands, error, debugContext}` or 204. Business refusals travel in
//! the body (`error`), never as HTTP errors: Okta treats a non-2xx as a failed hook.

use std::sync::Arc;
use std::time::Instant;

use metrics::{counter, histogram};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::error::HttpError;
use super::raw_json::RawJson;
use super::state::AppState;
use super::tags::ApiTags;
use crate::inline::record::DecisionRecord;
use crate::inline::{
    decide_within, registration, saml, telephony, token, user_import, Answer, Decided, HookKind,
};
use crate::okta::inline_hook::{
    profile_str, InlineRequest, InlineResponse, PasswordImportData, RegistrationData, SamlData,
    TelephonyData, TokenData, UserImportData,
};
use crate::projection::find_user;

/// Okta refuses larger answers (HOOKS-SPEC §3.3: "must be less than 256 KB").
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Kept back from `inline.deadline_ms` for serialising and sending the answer and for the time
/// a request waits before its handler runs, so the answer — not just the decision — leaves
/// within the deadline. Measured: with 5 ms, a saturated 2-core machine answered 12 ms late.
pub const RESPONSE_RESERVE: std::time::Duration = std::time::Duration::from_millis(50);

pub struct InlineHookApi {
    pub state: Arc<AppState>,
}

/// An Okta inline hook request (CloudEvents 0.1 envelope; `cloudEventVersion` singular). The
/// shape of `data` depends on the hook type; unknown fields are ignored, numbers and strings are
/// accepted for one another.
#[derive(Debug, Object)]
#[oai(rename = "InlineHookRequest")]
pub struct InlineHookRequestDoc {
    /// The hook type, e.g. `com.okta.oauth2.tokens.transform`; checked when present.
    #[oai(rename = "eventType")]
    pub event_type: Option<String>,
    /// Okta's id of this request; recorded with the decision.
    #[oai(rename = "eventId")]
    pub event_id: Option<String>,
    #[oai(rename = "eventTime")]
    pub event_time: Option<String>,
    #[oai(rename = "cloudEventVersion")]
    pub cloud_event_version: Option<String>,
    pub source: Option<String>,
    /// Registration (`self.service.registration` | `progressive.profile`) and telephony only.
    #[oai(rename = "requestType")]
    pub request_type: Option<String>,
    /// `data.context` (read-only Okta objects) and the objects the commands may change.
    pub data: serde_json::Value,
}

#[derive(Debug, ApiResponse)]
pub enum InlineHookAnswer {
    /// Okta's documented response: `commands` (applied in order), or an `error`.
    #[oai(status = 200)]
    Answer(Json<InlineResponse>),
    /// The hook type's default action (allowed for password import, registration, user import,
    /// token and SAML).
    #[oai(status = 204)]
    Default,
}

/// The parts of a request every handler uses.
struct Parsed<D> {
    event_id: String,
    request_type: Option<String>,
    data: D,
}

impl InlineHookApi {
    /// Authenticates, reads (under `inline.max_body_bytes`) and parses a request of `kind`.
    async fn accept<D: DeserializeOwned>(
        &self,
        kind: HookKind,
        req: &Request,
        body: RawJson<InlineHookRequestDoc>,
    ) -> Result<Parsed<D>, HttpError> {
        let state = &self.state;
        if !state.inline_auth.verify(req.headers(), kind.name()).await {
            counter!("okta_adapter_hook_auth_failures_total", "hook" => kind.name()).increment(1);
            return Err(HttpError::unauthorized());
        }
        let bytes = body.read(req, state.inline.max_body_bytes).await?;
        let bad = |msg: String| {
            counter!("okta_adapter_inline_hook_rejected_total", "hook" => kind.name()).increment(1);
            tracing::info!(hook = kind.name(), reason = %msg, "inline hook request rejected");
            HttpError::bad_request(msg)
        };
        // serde would read a top-level array positionally into the envelope's fields.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|&b| b != b'{') {
            return Err(bad(
                "not an Okta inline hook request: expected a JSON object".into(),
            ));
        }
        // The message names the position only: serde's text could quote the body, which for
        // the password hook holds a password.
        let request: InlineRequest<D> = serde_json::from_slice(&bytes).map_err(|e| {
            bad(match e.classify() {
                Category::Data => format!(
                    "not an Okta inline hook request: expected a JSON object (line {}, column {})",
                    e.line(),
                    e.column()
                ),
                _ => format!(
                    "body is not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            })
        })?;
        if let Some(t) = request.event_type.as_deref() {
            if t != kind.event_type() {
                return Err(bad(format!(
                    "eventType is `{t}`, this endpoint takes `{}`",
                    kind.event_type()
                )));
            }
        }
        let data = request.data.ok_or_else(|| {
            bad("not an Okta inline hook request: `data` is missing or not an object".into())
        })?;
        Ok(Parsed {
            event_id: request.event_id.unwrap_or_default(),
            request_type: request.request_type,
            data,
        })
    }

    /// Metrics, the decision record and the HTTP answer.
    fn finish(
        &self,
        kind: HookKind,
        started: Instant,
        user: String,
        event_id: String,
        decided: Decided,
    ) -> InlineHookAnswer {
        let Decided {
            mut decision,
            deadline_hit,
        } = decided;
        if let Answer::Body(body) = &decision.answer {
            let size = serde_json::to_vec(body).map_or(usize::MAX, |v| v.len());
            if size >= MAX_RESPONSE_BYTES {
                tracing::warn!(
                    hook = kind.name(),
                    size,
                    "inline hook answer too large for Okta; answering the safe default"
                );
                decision.answer = kind.safe_answer();
                decision.outcome = "too_large";
            }
        }
        let elapsed = started.elapsed();
        counter!("okta_adapter_inline_hook_requests_total", "hook" => kind.name(), "outcome" => decision.outcome)
            .increment(1);
        histogram!("okta_adapter_inline_hook_duration_seconds", "hook" => kind.name())
            .record(elapsed.as_secs_f64());
        if deadline_hit {
            counter!("okta_adapter_inline_hook_deadline_hits_total", "hook" => kind.name())
                .increment(1);
        }
        self.state.inline.recorder.record(DecisionRecord::now(
            kind.name(),
            user,
            decision.outcome,
            elapsed.as_secs_f64() * 1000.0,
            deadline_hit,
            event_id,
        ));
        match decision.answer {
            Answer::NoContent => InlineHookAnswer::Default,
            Answer::Body(b) => InlineHookAnswer::Answer(Json(b)),
        }
    }

    fn deadline(&self, started: Instant) -> Instant {
        started + self.state.inline.deadline.saturating_sub(RESPONSE_RESERVE)
    }
}

#[OpenApi]
impl InlineHookApi {
    /// Password import: check a migrated user's legacy password at first sign-in.
    ///
    /// <https://developer.okta.com/docs/reference/password-hook/>. Answers
    /// `com.okta.action.update {"credential": "VERIFIED"|"UNVERIFIED"}`. `UNVERIFIED` also for an
    /// unknown login, a throttled login (too many wrong passwords), a stored hash over the cost
    /// limits (`inline.password_import.max_*`), a full hash pool (load shedding), the deadline
    /// and Redis errors.
    #[oai(
        path = "/hooks/okta/inline/password-import",
        method = "post",
        operation_id = "password_import_hook",
        tag = "ApiTags::OktaHooks"
    )]
    async fn password_import_hook(
        &self,
        req: &Request,
        body: RawJson<InlineHookRequestDoc>,
    ) -> Result<InlineHookAnswer, HttpError> {
        let started = Instant::now();
        let kind = HookKind::PasswordImport;
        let p: Parsed<PasswordImportData> = self.accept(kind, req, body).await?;
        let credential = p
            .data
            .context
            .and_then(|c| c.credential)
            .unwrap_or_default();
        let user = credential.username.clone().unwrap_or_default();
        let deadline = self.deadline(started);
        let mut conn = self.state.redis.clone();
        let decided = decide_within(
            kind,
            deadline,
            self.state
                .inline
                .password
                .decide(&mut conn, credential, deadline),
        )
        .await;
        Ok(self.finish(kind, started, user, p.event_id, decided))
    }

    /// Registration: self-service registration and progressive profile.
    ///
    /// <https://developer.okta.com/docs/reference/registration-hook/>. Denies email domains that
    /// belong to no configured tenant (when tenants list domains), with an `errorCauses` entry at
    /// the email field; otherwise sets the tenant attribute (and the tenant's attributes), or
    /// answers 204 (allow unchanged).
    #[oai(
        path = "/hooks/okta/inline/registration",
        method = "post",
        operation_id = "registration_hook",
        tag = "ApiTags::OktaHooks"
    )]
    async fn registration_hook(
        &self,
        req: &Request,
        body: RawJson<InlineHookRequestDoc>,
    ) -> Result<InlineHookAnswer, HttpError> {
        let started = Instant::now();
        let kind = HookKind::Registration;
        let p: Parsed<RegistrationData> = self.accept(kind, req, body).await?;
        let user = profile_str(&p.data.user_profile, "login")
            .or_else(|| profile_str(&p.data.user_profile, "email"))
            .or_else(|| {
                p.data
                    .context
                    .as_ref()
                    .and_then(|c| c.user.as_ref())
                    .and_then(|u| u.id.as_deref())
            })
            .unwrap_or_default()
            .to_string();
        let policy = &self.state.inline.policy;
        let decided = decide_within(kind, self.deadline(started), async {
            Ok(registration::decide_registration(
                policy,
                p.request_type.as_deref(),
                &p.data,
            ))
        })
        .await;
        Ok(self.finish(kind, started, user, p.event_id, decided))
    }

    /// User import: link to an existing user or create, and set the tenant.
    ///
    /// <https://developer.okta.com/docs/reference/import-hook/>. A user found in the projection
    /// by login or email → `LINK_USER` + `com.okta.user.update {id}`; otherwise `CREATE_USER`.
    #[oai(
        path = "/hooks/okta/inline/user-import",
        method = "post",
        operation_id = "user_import_hook",
        tag = "ApiTags::OktaHooks"
    )]
    async fn user_import_hook(
        &self,
        req: &Request,
        body: RawJson<InlineHookRequestDoc>,
    ) -> Result<InlineHookAnswer, HttpError> {
        let started = Instant::now();
        let kind = HookKind::UserImport;
        let p: Parsed<UserImportData> = self.accept(kind, req, body).await?;
        let lookup = user_import::lookup_keys(&p.data);
        let user = lookup.first().cloned().unwrap_or_default();
        let state = &self.state;
        let decided = decide_within(kind, self.deadline(started), async {
            let mut conn = state.redis.clone();
            let mut matched = None;
            for key in &lookup {
                matched = find_user(&mut conn, &state.inline.keys, key).await?;
                if matched.is_some() {
                    break;
                }
            }
            Ok(user_import::decide_user_import(
                &state.inline.policy,
                &p.data,
                matched.as_ref(),
            ))
        })
        .await;
        Ok(self.finish(kind, started, user, p.event_id, decided))
    }

    /// Token: add tenant and role claims to the tokens being minted.
    ///
    /// <https://developer.okta.com/docs/reference/token-hook/>. `com.okta.identity.patch` /
    /// `com.okta.access.patch` for the tokens present in the request; 204 when nothing is added
    /// (unknown user, no tenant, no mapped roles).
    #[oai(
        path = "/hooks/okta/inline/token",
        method = "post",
        operation_id = "token_hook",
        tag = "ApiTags::OktaHooks"
    )]
    async fn token_hook(
        &self,
        req: &Request,
        body: RawJson<InlineHookRequestDoc>,
    ) -> Result<InlineHookAnswer, HttpError> {
        let started = Instant::now();
        let kind = HookKind::Token;
        let p: Parsed<TokenData> = self.accept(kind, req, body).await?;
        let ctx = p.data.context.as_ref();
        let user_id = ctx.and_then(|c| c.user_id()).map(str::to_string);
        let user = user_id
            .clone()
            .or_else(|| ctx.and_then(|c| c.login()).map(str::to_string))
            .unwrap_or_default();
        let state = &self.state;
        let decided = decide_within(kind, self.deadline(started), async {
            let found = projected_user(state, user_id.as_deref()).await?;
            Ok(token::decide_token(
                &state.inline.policy,
                &p.data,
                found.as_ref(),
            ))
        })
        .await;
        Ok(self.finish(kind, started, user, p.event_id, decided))
    }

    /// SAML assertion: add tenant and role attributes.
    ///
    /// <https://developer.okta.com/docs/reference/saml-hook/>. `com.okta.assertion.patch`; 204
    /// keeps the original assertion.
    #[oai(
        path = "/hooks/okta/inline/saml",
        method = "post",
        operation_id = "saml_hook",
        tag = "ApiTags::OktaHooks"
    )]
    async fn saml_hook(
        &self,
        req: &Request,
        body: RawJson<InlineHookRequestDoc>,
    ) -> Result<InlineHookAnswer, HttpError> {
        let started = Instant::now();
        let kind = HookKind::Saml;
        let p: Parsed<SamlData> = self.accept(kind, req, body).await?;
        let ctx = p.data.context.as_ref();
        let user_id = ctx.and_then(|c| c.user_id()).map(str::to_string);
        let user = user_id.clone().unwrap_or_default();
        let state = &self.state;
        let decided = decide_within(kind, self.deadline(started), async {
            let found = projected_user(state, user_id.as_deref()).await?;
            Ok(saml::decide_saml(
                &state.inline.policy,
                &p.data,
                found.as_ref(),
            ))
        })
        .await;
        Ok(self.finish(kind, started, user, p.event_id, decided))
    }

    /// Telephony: deliver an OTP, or let Okta fall back to its own providers.
    ///
    /// <https://developer.okta.com/docs/reference/telephony-hook/>. Without a configured
    /// provider, answers the documented `error`, so Okta sends the OTP itself.
    #[oai(
        path = "/hooks/okta/inline/telephony",
        method = "post",
        operation_id = "telephony_hook",
        tag = "ApiTags::OktaHooks"
    )]
    async fn telephony_hook(
        &self,
        req: &Request,
        body: RawJson<InlineHookRequestDoc>,
    ) -> Result<InlineHookAnswer, HttpError> {
        let started = Instant::now();
        let kind = HookKind::Telephony;
        let p: Parsed<TelephonyData> = self.accept(kind, req, body).await?;
        let user = profile_str(&p.data.user_profile, "userId")
            .or_else(|| profile_str(&p.data.user_profile, "login"))
            .unwrap_or_default()
            .to_string();
        let provider = self.state.inline.telephony.as_ref();
        let decided = decide_within(kind, self.deadline(started), async {
            Ok(telephony::decide_telephony(provider, p.request_type.as_deref(), &p.data).await)
        })
        .await;
        Ok(self.finish(kind, started, user, p.event_id, decided))
    }
}

/// The projection of the user a token or SAML hook is about, when the request names one.
async fn projected_user(
    state: &AppState,
    user_id: Option<&str>,
) -> redis::RedisResult<Option<crate::projection::UserView>> {
    match user_id {
        Some(id) => {
            let mut conn = state.redis.clone();
            find_user(&mut conn, &state.inline.keys, id).await
        }
        None => Ok(None),
    }
}
