//! Resource access for products (`/api/v1/tenants/{t}/users/{user}/…`): the few Okta operations
//! a product needs on its own tenant, so it never holds an Okta token — read a user's groups
//! and app assignments, add or remove a user to or from the tenant's groups, assign or unassign
//! an installation's app.
//!
//! Scoped like client admins: the user must belong to the tenant (by the projection), or the
//! answer is 404 as for a missing user. An `installation` key acts only on its own app and on
//! the tenant's users group (never the admins group). Every write is audited and runs in the
//! interactive lane of the shared rate scheduler.

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use reqwest::Method;
use serde_json::{json, Value};

use super::actions::translate_okta_error;
use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::{AuditEntry, Principal, Role};
use crate::domain::tenant::TenantId;
use crate::okta::rate::Lane;
use crate::projection::read::Reader;
use crate::tenants::store::TenantStore;

pub struct TenantAccessApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, ApiResponse)]
pub enum Changed {
    /// Done in Okta; the projection follows when Okta's event arrives.
    #[oai(status = 204)]
    Done,
}

const ACTORS: &[Role] = &[Role::Support, Role::ClientAdmin, Role::Installation];

impl TenantAccessApi {
    /// The caller, its tenant scope, and the user (who must be in `tenant`).
    async fn scoped_user(
        &self,
        auth: &ApiKey,
        tenant: &str,
        user: &str,
    ) -> Result<(Principal, Value), HttpError> {
        let who = self.state.require(auth, ACTORS).await?;
        let tenant =
            TenantId::parse(tenant).map_err(|e| HttpError::bad_request(format!("tenant: {e}")))?;
        let t = tenant.as_str();
        let missing = || HttpError::not_found(format!("no user `{user}` in tenant `{t}`"));
        if who.role != Role::Support && who.tenant.as_deref() != Some(t) {
            return Err(missing());
        }
        let mut conn = self.state.redis.clone();
        let found = Reader::new(self.state.keys.clone())
            .find(&mut conn, user, 0)
            .await
            .map_err(|e| HttpError::redis("tenant-user", e))?;
        let Some((record, _)) = found else {
            return Err(missing());
        };
        if record.tenant.as_deref() != Some(t) {
            return Err(missing());
        }
        let record = serde_json::to_value(&record).unwrap_or(Value::Null);
        Ok((who, record))
    }

    /// The Okta id a tenant step recorded (`group:users`, `app:<i>`), or 404.
    async fn okta_id(&self, tenant: &str, key: &str, what: &str) -> Result<String, HttpError> {
        let mut conn = self.state.redis.clone();
        let ids = TenantStore::new(self.state.keys.clone())
            .ids(&mut conn, tenant)
            .await
            .map_err(|e| HttpError::redis("tenant-ids", e))?;
        ids.get(key)
            .cloned()
            .ok_or_else(|| HttpError::not_found(format!("no {what} of tenant `{tenant}`")))
    }

    async fn installation_allowed(
        &self,
        who: &Principal,
        installation: &str,
    ) -> Result<(), HttpError> {
        if who.role != Role::Installation {
            return Ok(());
        }
        let mut conn = self.state.redis.clone();
        let bound = self
            .state
            .key_store
            .installation_of(&mut conn, &who.key_id)
            .await
            .map_err(|e| HttpError::redis("auth", e))?;
        if bound.as_deref() == Some(installation) {
            Ok(())
        } else {
            Err(HttpError::not_found(format!(
                "no installation `{installation}`"
            )))
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), HttpError> {
        let okta = self.state.okta.as_ref().ok_or_else(|| {
            HttpError::unavailable("Okta is not configured (okta.org_url, okta.api_token)")
        })?;
        okta.call(Lane::Interactive, method, path, body)
            .await
            .map(|_| ())
            .map_err(|e| translate_okta_error(&e))
    }

    async fn audit(&self, who: &Principal, action: &str, user: &str, detail: &str) {
        self.state
            .record_audit(AuditEntry {
                who,
                action,
                subject: user,
                reason: None,
                detail,
            })
            .await;
    }

    async fn group(
        &self,
        auth: ApiKey,
        tenant: &str,
        user: &str,
        group: &str,
        add: bool,
    ) -> Result<Changed, HttpError> {
        let (who, record) = self.scoped_user(&auth, tenant, user).await?;
        let key = match group {
            "users" => "group:users",
            "admins" if who.role != Role::Installation => "group:admins",
            _ => {
                return Err(HttpError::not_found(format!(
                    "no group `{group}` (users, admins)"
                )))
            }
        };
        let gid = self.okta_id(tenant, key, "such group").await?;
        let uid = record["id"].as_str().unwrap_or(user).to_owned();
        let path = format!("/api/v1/groups/{gid}/users/{uid}");
        let method = if add { Method::PUT } else { Method::DELETE };
        let result = self.call(method, &path, None).await;
        let action = if add {
            "tenant:group-add"
        } else {
            "tenant:group-remove"
        };
        let detail = format!(
            "{tenant}/{group}: {}",
            if result.is_ok() { "done" } else { "failed" }
        );
        self.audit(&who, action, &uid, &detail).await;
        result.map(|()| Changed::Done)
    }

    async fn app(
        &self,
        auth: ApiKey,
        tenant: &str,
        user: &str,
        installation: &str,
        assign: bool,
    ) -> Result<Changed, HttpError> {
        let (who, record) = self.scoped_user(&auth, tenant, user).await?;
        self.installation_allowed(&who, installation).await?;
        let app = self
            .okta_id(tenant, &format!("app:{installation}"), "such installation")
            .await?;
        let uid = record["id"].as_str().unwrap_or(user).to_owned();
        let result = if assign {
            let body = json!({"id": uid, "scope": "USER"});
            self.call(
                Method::POST,
                &format!("/api/v1/apps/{app}/users"),
                Some(&body),
            )
            .await
        } else {
            self.call(
                Method::DELETE,
                &format!("/api/v1/apps/{app}/users/{uid}"),
                None,
            )
            .await
        };
        let action = if assign {
            "tenant:app-assign"
        } else {
            "tenant:app-unassign"
        };
        let detail = format!(
            "{tenant}/{installation}: {}",
            if result.is_ok() { "done" } else { "failed" }
        );
        self.audit(&who, action, &uid, &detail).await;
        result.map(|()| Changed::Done)
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Tenants")]
impl TenantAccessApi {
    /// A user's groups and app assignments (from the projection), for a product of the user's
    /// tenant. Another tenant's user is answered 404.
    #[oai(
        path = "/tenants/:tenant/users/:user/access",
        method = "get",
        operation_id = "get_tenant_user_access"
    )]
    async fn get_access(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        user: Path<String>,
    ) -> Result<Json<Value>, HttpError> {
        let (who, record) = self.scoped_user(&auth, &tenant, &user).await?;
        let uid = record["id"].as_str().unwrap_or_default().to_owned();
        self.audit(&who, "tenant:read-access", &uid, &tenant).await;
        Ok(Json(json!({
            "user": uid,
            "tenant": tenant.0,
            "status": record["status"],
            "groups": record["groups"],
            "apps": record["apps"],
        })))
    }

    /// Add a user of the tenant to its `users` or `admins` group (an installation key: `users`).
    #[oai(
        path = "/tenants/:tenant/users/:user/groups/:group",
        method = "put",
        operation_id = "add_tenant_user_to_group"
    )]
    async fn add_to_group(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        user: Path<String>,
        group: Path<String>,
    ) -> Result<Changed, HttpError> {
        self.group(auth, &tenant, &user, &group, true).await
    }

    /// Remove a user of the tenant from its `users` or `admins` group.
    #[oai(
        path = "/tenants/:tenant/users/:user/groups/:group",
        method = "delete",
        operation_id = "remove_tenant_user_from_group"
    )]
    async fn remove_from_group(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        user: Path<String>,
        group: Path<String>,
    ) -> Result<Changed, HttpError> {
        self.group(auth, &tenant, &user, &group, false).await
    }

    /// Assign an installation's app to a user of the tenant (scope `USER`).
    #[oai(
        path = "/tenants/:tenant/users/:user/installations/:installation",
        method = "put",
        operation_id = "assign_tenant_installation"
    )]
    async fn assign(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        user: Path<String>,
        installation: Path<String>,
    ) -> Result<Changed, HttpError> {
        self.app(auth, &tenant, &user, &installation, true).await
    }

    /// Remove a user's direct assignment to an installation's app.
    #[oai(
        path = "/tenants/:tenant/users/:user/installations/:installation",
        method = "delete",
        operation_id = "unassign_tenant_installation"
    )]
    async fn unassign(
        &self,
        auth: ApiKey,
        tenant: Path<String>,
        user: Path<String>,
        installation: Path<String>,
    ) -> Result<Changed, HttpError> {
        self.app(auth, &tenant, &user, &installation, false).await
    }
}
