//! `POST /api/v1/users/{id}/actions/{action}`: lifecycle actions through one audited API.
//!
//! The projected status is checked first, so an impossible action gets a 409 that says what
//! to do instead, without spending Okta's rate budget. The call runs in the interactive lane
//! of the rate scheduler (ahead of bulk jobs). Okta's errors are translated; every attempt is
//! audited with its result.
//!
//! Okta's answer may carry credentials for the user's account: an activation token and link,
//! a password-reset link, a temporary password. They are withheld from every caller: the
//! roles that may run actions (`support`, `client-admin`) must not be able to take over the
//! account they act on, and `operator` keys run no actions. With `send_email=true` Okta mails
//! the link to the user instead.

use std::sync::Arc;

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::{AuditEntry, Principal, Role};
use crate::domain::actions::{check_action, Action};
use crate::domain::user_status::UserStatus;
use crate::okta::client::OktaError;
use crate::okta::rate::Lane;
use crate::projection::read::Reader;

pub struct ActionsApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct ActionResult {
    pub user_id: String,
    pub action: String,
    /// `done`: Okta accepted it. The projection follows when Okta's event arrives.
    pub result: String,
    /// What Okta answered, when it answered something, without account credentials (see
    /// `withheld`).
    #[oai(nullable)]
    pub okta: Option<serde_json::Value>,
    /// Fields of Okta's answer removed because they give access to the user's account
    /// (`activationToken`, `activationUrl`, `resetPasswordUrl`, `tempPassword`).
    pub withheld: Vec<String>,
}

/// Fields of Okta's lifecycle answers that let whoever holds them set the user's password.
const ACCOUNT_CREDENTIALS: &[&str] = &[
    "activationToken",
    "activationUrl",
    "resetPasswordUrl",
    "tempPassword",
];

/// Removes [`ACCOUNT_CREDENTIALS`] from Okta's answer; returns what is left and what was removed.
fn withhold_credentials(
    answer: Option<serde_json::Value>,
) -> (Option<serde_json::Value>, Vec<String>) {
    let Some(mut answer) = answer else {
        return (None, vec![]);
    };
    let mut withheld = vec![];
    if let Some(obj) = answer.as_object_mut() {
        for key in ACCOUNT_CREDENTIALS {
            if obj.remove(*key).is_some() {
                withheld.push((*key).to_owned());
            }
        }
    }
    (Some(answer), withheld)
}

/// Okta's error, in words for the person who clicked.
pub fn translate_okta_error(e: &OktaError) -> HttpError {
    match e {
        OktaError::Api { code, summary, .. } if code == "E0000038" => HttpError::conflict(format!(
            "Okta refused: {summary} (the adapter's view of the user may be behind Okta's)"
        )),
        OktaError::Api { code, .. } if code == "E0000007" => {
            HttpError::not_found("Okta has no such user (it may have been deleted)")
        }
        OktaError::Api { code, .. } if code == "E0000047" => {
            HttpError::unavailable("Okta's rate limit is exhausted; retry in a minute")
        }
        OktaError::Api {
            status,
            code,
            summary,
            causes,
        } => {
            let detail = if causes.is_empty() {
                String::new()
            } else {
                format!(" ({})", causes.join("; "))
            };
            HttpError::bad_gateway(format!("Okta answered {status} {code}: {summary}{detail}"))
        }
        OktaError::Network(_) => HttpError::unavailable("Okta could not be reached; retry shortly"),
        OktaError::Redis(_) => HttpError::unavailable("storage is unavailable; retry shortly"),
    }
}

async fn run(
    state: &AppState,
    action: Action,
    user_id: &str,
    send_email: bool,
) -> Result<Option<serde_json::Value>, OktaError> {
    let okta = state.okta.as_ref().expect("checked by the caller");
    let lane = Lane::Interactive;
    match action {
        Action::Activate => {
            okta.lifecycle(lane, user_id, "activate", Some(send_email))
                .await
        }
        Action::Reactivate => {
            okta.lifecycle(lane, user_id, "reactivate", Some(send_email))
                .await
        }
        Action::Deactivate => {
            okta.lifecycle(lane, user_id, "deactivate", Some(false))
                .await
        }
        Action::ResetPassword => {
            okta.lifecycle(lane, user_id, "reset_password", Some(send_email))
                .await
        }
        Action::ClearSessions => okta.clear_sessions(lane, user_id).await.map(|()| None),
        Action::Delete => okta.delete_user(lane, user_id).await.map(|()| None),
        other => okta.lifecycle(lane, user_id, other.as_str(), None).await,
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Users")]
impl ActionsApi {
    /// Run a lifecycle action on a user.
    ///
    /// `action`: activate, reactivate, deactivate, suspend, unsuspend, unlock, reset_factors,
    /// reset_password, expire_password, clear_sessions, delete. Checked against the user's
    /// projected status first (409 with advice); `client-admin` keys act only on their tenant.
    #[oai(
        path = "/users/:id/actions/:action",
        method = "post",
        operation_id = "run_user_action"
    )]
    async fn run_user_action(
        &self,
        auth: ApiKey,
        id: Path<String>,
        /// The action to run.
        #[oai(name = "action")]
        action: Path<Action>,
        /// For activate / reactivate / reset_password: whether Okta emails the user.
        #[oai(default)]
        send_email: Query<bool>,
        /// Why you act on this user; kept in the audit stream with the result.
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<ActionResult>, HttpError> {
        let who = self
            .state
            .require(&auth, &[Role::Support, Role::ClientAdmin])
            .await?;
        run_user_action(
            &self.state,
            &who,
            &id,
            action.0,
            send_email.0,
            audit_reason.0.as_deref(),
        )
        .await
        .map(Json)
    }
}

/// Runs `action` on user `id` for `who` — the one path for the JSON API and the console:
/// tenant scoping (another tenant's user is "no user"), the projected status check (409 with
/// advice, no Okta call), the call in the interactive lane, the audit record with the result,
/// and Okta's answer without account credentials.
pub async fn run_user_action(
    state: &AppState,
    who: &Principal,
    id: &str,
    action: Action,
    send_email: bool,
    reason: Option<&str>,
) -> Result<ActionResult, HttpError> {
    if state.okta.is_none() {
        return Err(HttpError::unavailable(
            "Okta is not configured (okta.org_url, okta.api_token)",
        ));
    }
    let mut conn = state.redis.clone();
    let found = Reader::new(state.keys.clone())
        .find(&mut conn, id, 1)
        .await
        .map_err(|e| HttpError::redis("action-lookup", e))?;
    let user = match found {
        Some((u, _)) if who.can_see_tenant(u.tenant.as_deref()) => u,
        _ => return Err(HttpError::not_found(format!("no user `{id}`"))),
    };
    let status = UserStatus::parse(&user.status);
    if let Err(why) = check_action(action, status) {
        audit_action(
            state,
            who,
            action,
            &user.id,
            reason,
            &format!("refused: {why}"),
        )
        .await;
        return Err(HttpError::conflict(why));
    }
    let outcome = run(state, action, &user.id, send_email).await;
    let detail = match &outcome {
        Ok(_) => "done".to_string(),
        Err(e) => format!("failed: {e}"),
    };
    audit_action(state, who, action, &user.id, reason, &detail).await;
    metrics::counter!("okta_adapter_actions_total", "action" => action.as_str(), "result" => if outcome.is_ok() { "done" } else { "failed" }).increment(1);
    let (okta, withheld) = withhold_credentials(outcome.map_err(|e| translate_okta_error(&e))?);
    Ok(ActionResult {
        user_id: user.id,
        action: action.as_str().into(),
        result: "done".into(),
        okta,
        withheld,
    })
}

async fn audit_action(
    state: &AppState,
    who: &Principal,
    action: Action,
    subject: &str,
    reason: Option<&str>,
    detail: &str,
) {
    let name = format!("action:{}", action.as_str());
    state
        .record_audit(AuditEntry {
            who,
            action: &name,
            subject,
            reason,
            detail,
        })
        .await;
}
