//! `/api/v1/keys`: API key management for `operator` keys (the first operator key comes from
//! `okta-adapter keys create --role operator`).

use std::borrow::Cow;
use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::{ApiKeyInfo, Role, KEY_ADMINS};
use crate::domain::tenant::TENANT_ID_MAX_LEN;

pub struct KeysApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct CreateKey {
    pub role: Role,
    /// Required for `client-admin`, refused otherwise. A tenant id: lowercase letters, digits
    /// and `-`, starting with a letter or digit, at most 63 characters.
    pub tenant: Option<TenantField>,
    /// Required for `installation` (with `tenant`), refused otherwise.
    pub installation: Option<String>,
}

/// A tenant id in a request body: a JSON string only (poem-openapi's `String` would also take
/// `12` or `true` and turn them into text), documented with the tenant id pattern. Its content
/// is checked by `TenantId::parse` where the key is made, for a clear message.
#[derive(Debug, Clone)]
pub struct TenantField(pub String);

impl Type for TenantField {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string(tenant-id)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.pattern = Some("^[a-z0-9][a-z0-9-]*$".into());
        schema.max_length = Some(TENANT_ID_MAX_LEN);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for TenantField {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value {
            Some(serde_json::Value::String(s)) => Ok(Self(s)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for TenantField {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(self.0.clone()))
    }
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
        self.state.require(&auth, KEY_ADMINS).await?;
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
    ///
    /// The body is JSON; a request without `Content-Type` is read as JSON too.
    #[oai(path = "/keys", method = "post", operation_id = "create_key")]
    async fn create_key(&self, auth: ApiKey, body: Json<CreateKey>) -> Result<Created, HttpError> {
        self.state.require(&auth, KEY_ADMINS).await?;
        let mut conn = self.state.redis.clone();
        let tenant = body.tenant.as_ref().map(|t| t.0.as_str());
        let created = match (body.role, tenant, body.installation.as_deref()) {
            (Role::Installation, Some(t), Some(i)) => {
                self.state
                    .key_store
                    .create_installation(&mut conn, t, i)
                    .await
            }
            (Role::Installation, _, _) => Err(crate::access::KeyError::InstallationRequired),
            (_, _, Some(_)) => {
                return Err(HttpError::bad_request(
                    "only installation keys have an installation",
                ))
            }
            (role, tenant, None) => self.state.key_store.create(&mut conn, role, tenant).await,
        };
        let (token, key) = created
            .map_err(|e| HttpError::bad_request(e.to_string()))?
            .map_err(|e| HttpError::redis("create-key", e))?;
        Ok(Created::Created(Json(CreatedKey { token, key })))
    }

    /// Revoke an API key.
    #[oai(path = "/keys/:id", method = "delete", operation_id = "revoke_key")]
    async fn revoke_key(&self, auth: ApiKey, id: Path<String>) -> Result<Revoked, HttpError> {
        self.state.require(&auth, KEY_ADMINS).await?;
        let mut conn = self.state.redis.clone();
        match self.state.key_store.revoke(&mut conn, &id).await {
            Ok(true) => Ok(Revoked::Revoked),
            Ok(false) => Err(HttpError::not_found(format!("no key `{}`", id.0))),
            Err(e) => Err(HttpError::redis("revoke-key", e)),
        }
    }
}
