//! The helpdesk endpoints: a user's groups, apps and MFA factors (read from the projection,
//! each with how and when it was granted), and the changes a helpdesk makes to them through
//! the Okta client in the rate scheduler's interactive lane (groups, apps and users-by-id
//! buckets).
//!
//! The rules are the API's, not new ones: a user is found and scoped exactly as for lifecycle
//! actions (`Principal::can_see_tenant`; another tenant's user is "no user"); a client admin's
//! group is checked by the group jobs' [`GroupGuard`] (its allow-list or its name's `group`
//! rule, never a role group) and its app by the `app` tenant rule
//! ([`TenantResolver::tenant_of_app`]); anything else is answered as missing. Every change is
//! audited with its outcome, refusals included. Okta's own answer decides the rest:
//! - a group of type `APP_GROUP` (its members come from a directory or app) is refused with 409;
//! - a membership a group rule made, or an app inherited from a group (`scope` `GROUP`), is
//!   read-only: removing it is a 409 that says where to change it instead.

use std::sync::Arc;

use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use super::actions::translate_okta_error;
use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::{AuditEntry, Principal, Role};
use crate::domain::actions::{check_action, Action};
use crate::domain::tenant::TenantResolver;
use crate::domain::user_status::UserStatus;
use crate::jobs::groups::{not_found_message, GroupGuard};
use crate::okta::client::{OktaClient, OktaError};
use crate::okta::rate::Lane;
use crate::projection::granted::{granted, Grant, Granted};
use crate::projection::update::field;
use crate::projection::UserRecord;

pub struct HelpdeskApi {
    pub state: Arc<AppState>,
    groups: GroupGuard,
    tenants: TenantResolver,
}

impl HelpdeskApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            groups: GroupGuard::from_settings(&state.settings),
            tenants: TenantResolver::from_settings(&state.settings.tenants.rules),
            state,
        }
    }
}

/// A group or app the user has, and how it came.
#[derive(Debug, Object)]
pub struct GrantedEntry {
    pub id: String,
    pub name: String,
    /// `direct`, `group_rule` (a group rule made the membership), `group` (the app is assigned
    /// to a group the user is in: `scope` `GROUP`), or `unknown` (granted before the adapter
    /// recorded how).
    pub granted: String,
    /// For `group`: the group the app comes from.
    #[oai(nullable)]
    pub via_group: Option<String>,
    /// When (the granting event's `published`).
    pub since: String,
    /// The event that granted it.
    pub event_type: String,
    /// Inherited: it cannot be removed from the user directly (change the rule or the group).
    pub read_only: bool,
}

impl From<Granted> for GrantedEntry {
    fn from(g: Granted) -> Self {
        Self {
            read_only: g.grant.read_only(),
            granted: g.grant.as_str().to_owned(),
            via_group: match g.grant {
                Grant::Group(group) => Some(group),
                _ => None,
            },
            id: g.member.id,
            name: g.member.name,
            since: g.member.why.published,
            event_type: g.member.why.event_type,
        }
    }
}

#[derive(Debug, Object)]
pub struct UserGroups {
    pub user_id: String,
    pub groups: Vec<GrantedEntry>,
}

#[derive(Debug, Object)]
pub struct UserApps {
    pub user_id: String,
    pub apps: Vec<GrantedEntry>,
}

/// An enrolled MFA factor.
#[derive(Debug, Object)]
pub struct FactorEntry {
    /// Okta's factor id (for `DELETE /api/v1/users/{id}/factors/{factorId}`).
    pub id: String,
    /// As Okta's System Log names it, e.g. `Okta Verify`.
    pub name: String,
    /// `push`, `sms`, `token:software:totp`, … when the enrolment event said.
    #[oai(nullable)]
    pub factor_type: Option<String>,
    /// `OKTA`, `GOOGLE`, … when the enrolment event said.
    #[oai(nullable)]
    pub provider: Option<String>,
    /// `ACTIVE`: a factor appears here from its activation until it is reset.
    pub status: String,
    pub enrolled_at: String,
}

impl From<Granted> for FactorEntry {
    fn from(g: Granted) -> Self {
        let (factor_type, provider) = match g.detail.as_deref().map(|d| d.split_once(' ')) {
            Some(Some((t, p))) => (Some(t.to_owned()), Some(p.to_owned())),
            Some(None) => (g.detail.clone(), None),
            None => (None, None),
        };
        Self {
            id: g.member.id,
            name: g.member.name,
            factor_type,
            provider,
            status: "ACTIVE".into(),
            enrolled_at: g.member.why.published,
        }
    }
}

#[derive(Debug, Object)]
pub struct UserFactors {
    pub user_id: String,
    pub factors: Vec<FactorEntry>,
    /// Whether a reset is offered (only when factors are enrolled).
    pub can_reset: bool,
}

/// What a helpdesk change did.
#[derive(Debug, Object)]
pub struct HelpdeskChange {
    pub user_id: String,
    /// e.g. `group:add`, `app:remove`, `factor:reset`, `factors:reset_all`.
    pub change: String,
    /// The group, app or factor changed (empty for a reset of all factors).
    pub target: String,
    /// `done`: Okta accepted it; the projection follows when Okta's event arrives.
    pub result: String,
}

const HELPDESK: &[Role] = &[Role::Support, Role::ClientAdmin];

fn no_such_app(app: &str) -> HttpError {
    HttpError::not_found(format!("no app `{app}`"))
}

/// Okta's "not found" (404) or "malformed id" (400).
fn is_missing(e: &OktaError) -> bool {
    matches!(e.status(), Some(404) | Some(400)) && e.code() != Some("E0000060")
}

impl HelpdeskApi {
    fn okta(&self) -> Result<&OktaClient, HttpError> {
        self.state.okta.as_ref().ok_or_else(|| {
            HttpError::unavailable("Okta is not configured (okta.org_url, okta.api_token)")
        })
    }

    /// The user's record, if this caller may see it; else 404 as for a missing user.
    /// The user lookup and tenant scoping of `GET /api/v1/users/{id}` (another tenant's user is
    /// answered exactly like a missing one).
    async fn visible_user(&self, who: &Principal, id: &str) -> Result<UserRecord, HttpError> {
        super::users::find_visible_user(&self.state, who, id, 1)
            .await
            .map(|(user, _, _)| user)
    }

    async fn granted(
        &self,
        user: &UserRecord,
        prefix: &str,
        members: &[crate::projection::view::Member],
    ) -> Result<Vec<Granted>, HttpError> {
        let mut conn = self.state.redis.clone();
        granted(&mut conn, &self.state.keys, user, prefix, members)
            .await
            .map_err(|e| HttpError::redis("helpdesk-read", e))
    }

    async fn audit(
        &self,
        who: &Principal,
        action: &str,
        subject: &str,
        reason: Option<&str>,
        detail: &str,
    ) {
        self.state
            .record_audit(AuditEntry {
                who,
                action,
                subject,
                reason,
                detail,
            })
            .await;
    }

    /// Reads by `support` keys are audited, as the user lookup's are.
    async fn audit_read(&self, who: &Principal, action: &str, user: &str, reason: Option<&str>) {
        super::users::audit_user_read(&self.state, reason, who, action, user, "200").await;
    }

    /// Audits a change's outcome and turns it into the answer.
    async fn finish(
        &self,
        who: &Principal,
        change: &str,
        user: &str,
        target: &str,
        reason: Option<&str>,
        outcome: Result<(), HttpError>,
    ) -> Result<Json<HelpdeskChange>, HttpError> {
        let detail = match &outcome {
            Ok(()) => format!("{target}: done"),
            Err(e) => format!("{target}: refused: {}", error_message(e)),
        };
        self.audit(who, change, user, reason, &detail).await;
        metrics::counter!("okta_adapter_helpdesk_changes_total", "change" => change.to_owned(), "result" => if outcome.is_ok() { "done" } else { "refused" }).increment(1);
        outcome.map(|()| {
            Json(HelpdeskChange {
                user_id: user.to_owned(),
                change: change.to_owned(),
                target: target.to_owned(),
                result: "done".into(),
            })
        })
    }

    /// The group, if this caller may change its members: 404 (as unknown) for a group of
    /// another tenant, 409 for an `APP_GROUP`.
    async fn usable_group(&self, who: &Principal, group: &str) -> Result<Value, HttpError> {
        let okta = self.okta()?;
        let found = okta.get_group(Lane::Interactive, group).await;
        let g = match found {
            Ok(g) => g,
            Err(e) if is_missing(&e) => return Err(HttpError::not_found(not_found_message(group))),
            Err(e) => return Err(translate_okta_error(&e)),
        };
        let name = g
            .pointer("/profile/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if who.role == Role::ClientAdmin {
            let tenant = who.tenant.as_deref().unwrap_or("");
            if !(self.groups.listed(tenant, group) || self.groups.name_belongs_to(tenant, name)) {
                return Err(HttpError::not_found(not_found_message(group)));
            }
        }
        if g.get("type").and_then(Value::as_str) == Some("APP_GROUP") {
            return Err(HttpError::conflict(format!(
                "group `{name}` ({group}) is an APP_GROUP: its members come from a directory or \
                 app, so Okta does not change them here; change the membership in that source"
            )));
        }
        Ok(g)
    }

    /// Whether this caller may assign this app: every app for `support`; for a client admin
    /// only an app the `app` tenant rules give its tenant (else 404, as unknown).
    fn usable_app(&self, who: &Principal, app: &str) -> Result<(), HttpError> {
        if who.role != Role::ClientAdmin {
            return Ok(());
        }
        match (who.tenant.as_deref(), self.tenants.tenant_of_app(app)) {
            (Some(mine), Some(its)) if mine == its => Ok(()),
            _ => Err(no_such_app(app)),
        }
    }

    async fn change_group(
        &self,
        auth: ApiKey,
        id: &str,
        group: &str,
        add: bool,
        reason: Option<&str>,
    ) -> Result<Json<HelpdeskChange>, HttpError> {
        let who = self.state.require(&auth, HELPDESK).await?;
        self.okta()?;
        let user = self.visible_user(&who, id).await?;
        let change = if add { "group:add" } else { "group:remove" };
        let outcome = async {
            self.usable_group(&who, group).await?;
            if !add {
                let current = self
                    .granted(&user, field::GROUP_PREFIX, &user.groups)
                    .await?;
                if let Some(g) = current.iter().find(|g| g.member.id == group) {
                    if g.grant == Grant::Rule {
                        return Err(HttpError::conflict(format!(
                            "`{}` was granted by a group rule: Okta would add the user back at \
                             the rule's next evaluation; change the rule or the user's profile \
                             attributes instead",
                            g.member.name
                        )));
                    }
                }
            }
            let okta = self.okta()?;
            let done = if add {
                okta.add_to_group(Lane::Interactive, group, &user.id).await
            } else {
                okta.remove_from_group(Lane::Interactive, group, &user.id)
                    .await
            };
            done.map_err(|e| match e {
                OktaError::Api { ref code, .. } if code == "E0000060" => HttpError::conflict(
                    format!("Okta refused: group `{group}` is managed by a directory or app"),
                ),
                e => translate_okta_error(&e),
            })
        }
        .await;
        self.finish(&who, change, &user.id, group, reason, outcome)
            .await
    }

    async fn change_app(
        &self,
        auth: ApiKey,
        id: &str,
        app: &str,
        assign: bool,
        reason: Option<&str>,
    ) -> Result<Json<HelpdeskChange>, HttpError> {
        let who = self.state.require(&auth, HELPDESK).await?;
        let okta = self.okta()?;
        let user = self.visible_user(&who, id).await?;
        let change = if assign { "app:assign" } else { "app:unassign" };
        let outcome = async {
            self.usable_app(&who, app)?;
            if assign {
                return okta
                    .assign_app(Lane::Interactive, app, &user.id)
                    .await
                    .map_err(|e| {
                        if is_missing(&e) {
                            no_such_app(app)
                        } else {
                            translate_okta_error(&e)
                        }
                    });
            }
            let inherited = |group: Option<&str>| {
                HttpError::conflict(format!(
                    "app `{app}` is inherited from {} (assignment scope GROUP): it cannot be \
                     removed from the user alone; remove the user from that group, or the \
                     group's assignment to the app",
                    group.map_or("a group".to_owned(), |g| format!("group `{g}`"))
                ))
            };
            // The projection answers without an Okta call when it knows...
            let current = self.granted(&user, field::APP_PREFIX, &user.apps).await?;
            if let Some(Grant::Group(g)) = current
                .iter()
                .find(|a| a.member.id == app)
                .map(|a| a.grant.clone())
            {
                return Err(inherited(Some(&g)));
            }
            // ...and Okta's app user decides (the projection may be behind, or not know how).
            match okta.get_app_user(Lane::Interactive, app, &user.id).await {
                Ok(app_user) if app_user.get("scope").and_then(Value::as_str) == Some("GROUP") => {
                    return Err(inherited(None));
                }
                Ok(_) => {}
                Err(e) if is_missing(&e) => {
                    return Err(HttpError::not_found(format!(
                        "user `{id}` has no assignment to app `{app}`"
                    )))
                }
                Err(e) => return Err(translate_okta_error(&e)),
            }
            okta.unassign_app(Lane::Interactive, app, &user.id)
                .await
                .map_err(|e| match e.status() {
                    Some(403) => inherited(None),
                    _ => translate_okta_error(&e),
                })
        }
        .await;
        self.finish(&who, change, &user.id, app, reason, outcome)
            .await
    }
}

fn error_message(e: &HttpError) -> String {
    match e {
        HttpError::BadRequest(b)
        | HttpError::Unauthorized(b)
        | HttpError::Forbidden(b)
        | HttpError::NotFound(b)
        | HttpError::Conflict(b)
        | HttpError::PayloadTooLarge(b)
        | HttpError::BadGateway(b)
        | HttpError::Unavailable(b) => b.0.message.clone(),
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Users")]
impl HelpdeskApi {
    /// A user's groups, each with how it was granted and when.
    ///
    /// From the projection (no Okta call). `granted`: `direct`, `group_rule` (read-only: the
    /// rule would add it back) or `unknown`. `client-admin` keys see only their tenant's users.
    #[oai(
        path = "/users/:id/groups",
        method = "get",
        operation_id = "get_user_groups"
    )]
    async fn get_user_groups(
        &self,
        auth: ApiKey,
        id: Path<String>,
        /// Why you read this; kept in the audit stream (reads by `support` keys).
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<UserGroups>, HttpError> {
        let who = self.state.require(&auth, HELPDESK).await?;
        let user = self.visible_user(&who, &id).await?;
        let groups = self
            .granted(&user, field::GROUP_PREFIX, &user.groups)
            .await?;
        self.audit_read(&who, "read-groups", &user.id, audit_reason.0.as_deref())
            .await;
        Ok(Json(UserGroups {
            user_id: user.id,
            groups: groups.into_iter().map(Into::into).collect(),
        }))
    }

    /// A user's app assignments, each with how it was granted and when.
    ///
    /// From the projection. `granted`: `direct`, `group` (inherited from a group assigned to the
    /// app, `via_group`; read-only) or `unknown`.
    #[oai(
        path = "/users/:id/apps",
        method = "get",
        operation_id = "get_user_apps"
    )]
    async fn get_user_apps(
        &self,
        auth: ApiKey,
        id: Path<String>,
        /// Why you read this; kept in the audit stream (reads by `support` keys).
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<UserApps>, HttpError> {
        let who = self.state.require(&auth, HELPDESK).await?;
        let user = self.visible_user(&who, &id).await?;
        let apps = self.granted(&user, field::APP_PREFIX, &user.apps).await?;
        self.audit_read(&who, "read-apps", &user.id, audit_reason.0.as_deref())
            .await;
        Ok(Json(UserApps {
            user_id: user.id,
            apps: apps.into_iter().map(Into::into).collect(),
        }))
    }

    /// A user's enrolled MFA factors (type, provider, status, enrolled at).
    #[oai(
        path = "/users/:id/factors",
        method = "get",
        operation_id = "get_user_factors"
    )]
    async fn get_user_factors(
        &self,
        auth: ApiKey,
        id: Path<String>,
        /// Why you read this; kept in the audit stream (reads by `support` keys).
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<UserFactors>, HttpError> {
        let who = self.state.require(&auth, HELPDESK).await?;
        let user = self.visible_user(&who, &id).await?;
        let factors = self
            .granted(&user, field::FACTOR_PREFIX, &user.factors)
            .await?;
        self.audit_read(&who, "read-factors", &user.id, audit_reason.0.as_deref())
            .await;
        Ok(Json(UserFactors {
            user_id: user.id,
            can_reset: !factors.is_empty(),
            factors: factors.into_iter().map(Into::into).collect(),
        }))
    }

    /// Add a user to a group.
    ///
    /// `client-admin`: only its tenant's groups (another's is answered as unknown). `APP_GROUP`
    /// groups are refused (409). Audited.
    #[oai(
        path = "/users/:id/groups/:group",
        method = "put",
        operation_id = "add_user_to_group"
    )]
    async fn add_user_to_group(
        &self,
        auth: ApiKey,
        id: Path<String>,
        group: Path<String>,
        /// Why; kept in the audit stream with the result.
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<HelpdeskChange>, HttpError> {
        self.change_group(auth, &id, &group, true, audit_reason.0.as_deref())
            .await
    }

    /// Remove a user from a group.
    ///
    /// A membership made by a group rule is read-only (409). Same scoping as adding.
    #[oai(
        path = "/users/:id/groups/:group",
        method = "delete",
        operation_id = "remove_user_from_group"
    )]
    async fn remove_user_from_group(
        &self,
        auth: ApiKey,
        id: Path<String>,
        group: Path<String>,
        /// Why; kept in the audit stream with the result.
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<HelpdeskChange>, HttpError> {
        self.change_group(auth, &id, &group, false, audit_reason.0.as_deref())
            .await
    }

    /// Assign an app to a user (scope `USER`).
    ///
    /// `client-admin`: only apps the `app` tenant rules give its tenant. Audited.
    #[oai(
        path = "/users/:id/apps/:app",
        method = "post",
        operation_id = "assign_user_app"
    )]
    async fn assign_user_app(
        &self,
        auth: ApiKey,
        id: Path<String>,
        app: Path<String>,
        /// Why; kept in the audit stream with the result.
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<HelpdeskChange>, HttpError> {
        self.change_app(auth, &id, &app, true, audit_reason.0.as_deref())
            .await
    }

    /// Remove a user's direct app assignment.
    ///
    /// An app inherited from a group (scope `GROUP`) cannot be removed this way: 409 naming the
    /// group. Audited.
    #[oai(
        path = "/users/:id/apps/:app",
        method = "delete",
        operation_id = "unassign_user_app"
    )]
    async fn unassign_user_app(
        &self,
        auth: ApiKey,
        id: Path<String>,
        app: Path<String>,
        /// Why; kept in the audit stream with the result.
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<HelpdeskChange>, HttpError> {
        self.change_app(auth, &id, &app, false, audit_reason.0.as_deref())
            .await
    }

    /// Reset one MFA factor; the user enrolls it anew at the next sign-in. Audited.
    #[oai(
        path = "/users/:id/factors/:factor",
        method = "delete",
        operation_id = "reset_user_factor"
    )]
    async fn reset_user_factor(
        &self,
        auth: ApiKey,
        id: Path<String>,
        factor: Path<String>,
        /// Why; kept in the audit stream with the result.
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<HelpdeskChange>, HttpError> {
        let who = self.state.require(&auth, HELPDESK).await?;
        let okta = self.okta()?;
        let user = self.visible_user(&who, &id).await?;
        let outcome = okta
            .delete_factor(Lane::Interactive, &user.id, &factor)
            .await
            .map_err(|e| {
                if is_missing(&e) {
                    HttpError::not_found(format!("user `{}` has no factor `{}`", id.0, factor.0))
                } else {
                    translate_okta_error(&e)
                }
            });
        self.finish(
            &who,
            "factor:reset",
            &user.id,
            &factor,
            audit_reason.0.as_deref(),
            outcome,
        )
        .await
    }

    /// Reset all of a user's MFA factors (Okta's `reset_factors`). Audited.
    ///
    /// Offered only when factors are enrolled (409 otherwise) and the status allows it.
    #[oai(
        path = "/users/:id/factors",
        method = "delete",
        operation_id = "reset_user_factors"
    )]
    async fn reset_user_factors(
        &self,
        auth: ApiKey,
        id: Path<String>,
        /// Why; kept in the audit stream with the result.
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<HelpdeskChange>, HttpError> {
        let who = self.state.require(&auth, HELPDESK).await?;
        let okta = self.okta()?;
        let user = self.visible_user(&who, &id).await?;
        let outcome = async {
            if user.factors.is_empty() {
                return Err(HttpError::conflict(
                    "the user has no enrolled factors (as far as the projection knows)",
                ));
            }
            check_action(Action::ResetFactors, UserStatus::parse(&user.status))
                .map_err(HttpError::conflict)?;
            okta.lifecycle(Lane::Interactive, &user.id, "reset_factors", None)
                .await
                .map(|_| ())
                .map_err(|e| translate_okta_error(&e))
        }
        .await;
        self.finish(
            &who,
            "factors:reset_all",
            &user.id,
            "",
            audit_reason.0.as_deref(),
            outcome,
        )
        .await
    }
}
