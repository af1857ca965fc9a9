//! `/api/v1/keys`: API key management for `operator` keys (the first operator key comes from
//! `okta-adapter keys create --role operator`).

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::error::HttpError;
use super::users::ApiKey;
use super::ApiTags;
use crate::access::{ApiKeyInfo, Role};
use crate::startup::AppState;

pub struct KeysApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct CreateKey {
    pub role: Role,
    /// Required for `client-admin`, refused otherwise.
    pub tenant: Option<String>,
}

#[derive(Debug, Object)]
pub struct CreatedKey {
    /// The bearer token. Shown once: only its hash is stored.
    pub token: String,
    pub key: ApiKeyInfo,
}

#[derive(Debug, ApiResponse)]
pub enum Created {
    #[oai(status = 201)]
    Created(Json<CreatedKey>),
}

#[derive(Debug, ApiResponse)]
pub enum Revoked {
    #[oai(status = 204)]
    Revoked,
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Keys")]
impl KeysApi {
    /// List API keys (never their secrets).
    #[oai(path = "/keys", method = "get", operation_id = "list_keys")]
    async fn list_keys(&self, auth: ApiKey) -> Result<Json<Vec<ApiKeyInfo>>, HttpError> {
        self.state.require(&auth, &[Role::Operator]).await?;
        let mut conn = self.state.redis.clone();
        let keys = self
            .state
            .key_store
            .list(&mut conn)
            .await
            .map_err(|e| HttpError::redis("list-keys", e))?;
        Ok(Json(keys))
    }

    /// Create an API key.
    #[oai(path = "/keys", method = "post", operation_id = "create_key")]
    async fn create_key(&self, auth: ApiKey, body: Json<CreateKey>) -> Result<Created, HttpError> {
        self.state.require(&auth, &[Role::Operator]).await?;
        let mut conn = self.state.redis.clone();
        let (token, key) = self
            .state
            .key_store
            .create(&mut conn, body.role, body.tenant.as_deref())
            .await
            .map_err(|e| HttpError::bad_request(e.to_string()))?
            .map_err(|e| HttpError::redis("create-key", e))?;
        Ok(Created::Created(Json(CreatedKey { token, key })))
    }

    /// Revoke an API key.
    #[oai(path = "/keys/:id", method = "delete", operation_id = "revoke_key")]
    async fn revoke_key(&self, auth: ApiKey, id: Path<String>) -> Result<Revoked, HttpError> {
        self.state.require(&auth, &[Role::Operator]).await?;
        let mut conn = self.state.redis.clone();
        match self.state.key_store.revoke(&mut conn, &id).await {
            Ok(true) => Ok(Revoked::Revoked),
            Ok(false) => Err(HttpError::not_found(format!("no key `{}`", id.0))),
            Err(e) => Err(HttpError::redis("revoke-key", e)),
        }
    }
}
