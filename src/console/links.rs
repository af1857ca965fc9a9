//! One-time sign-in links for client admins who are in no mapped Okta group (as WorkOS's
//! admin-portal links and Svix's app-portal links): a support or operator key mints a link for
//! one tenant with `POST /api/v1/console/links`; the link is good once, for
//! `console.link_ttl_secs`; following it starts a client-admin session of that tenant.
//!
//! Redis keeps only the SHA-256 of the link's token; redeeming is one `GETDEL`, so two
//! browsers racing for one link get one session between them.

use std::sync::Arc;

use crate::store::RedisConn;
use chrono::{SecondsFormat, Utc};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use redis::{AsyncCommands, RedisResult};

use super::session::{digest, random_token};
use crate::access::{AuditEntry, Role};
use crate::domain::tenant::TenantId;
use crate::http::auth::ApiKey;
use crate::http::error::HttpError;
use crate::http::state::AppState;
use crate::http::tags::ApiTags;
use crate::store::Keys;

pub struct ConsoleLinksApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct NewLink {
    /// The tenant whose client admin the link signs in.
    pub tenant: crate::http::keys::TenantField,
}

#[derive(Debug, Object)]
pub struct MintedLink {
    /// Give this to the client admin (shown once; only its hash is kept). Good once.
    pub url: String,
    pub tenant: String,
    /// RFC 3339; unused links stop working then.
    pub expires_at: String,
}

/// What a redeemed link stood for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Link {
    pub tenant: String,
    /// The key id that minted it.
    pub by: String,
}

/// Spends the link behind `token`: `Some` exactly once, `None` when unknown, used or expired.
pub async fn redeem(conn: &mut RedisConn, keys: &Keys, token: &str) -> RedisResult<Option<Link>> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let raw: Option<String> = conn.get_del(keys.console_link(&digest(token))).await?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Keys")]
impl ConsoleLinksApi {
    /// Mint a one-time console sign-in link for a client admin of one tenant.
    ///
    /// For client admins who are in no Okta group the console maps. The link signs its first
    /// user in as `client-admin` of `tenant`, once, within `console.link_ttl_secs`. Roles:
    /// `support`, `operator`. Audited.
    #[oai(
        path = "/console/links",
        method = "post",
        operation_id = "create_console_link"
    )]
    async fn create_console_link(
        &self,
        req: &Request,
        auth: ApiKey,
        body: Json<NewLink>,
    ) -> Result<Json<MintedLink>, HttpError> {
        let who = self
            .state
            .require(&auth, &[Role::Support, Role::Operator])
            .await?;
        if !self.state.settings.console.enabled {
            return Err(HttpError::not_found(
                "the console is disabled (console.enabled)",
            ));
        }
        let tenant = TenantId::parse(&body.tenant.0)
            .map_err(|e| HttpError::bad_request(format!("tenant: {e}")))?
            .into_string();
        let token = random_token();
        let ttl = self.state.settings.console.link_ttl_secs;
        let link = Link {
            tenant: tenant.clone(),
            by: who.key_id.clone(),
        };
        let mut conn = self.state.redis.clone();
        let _: () = conn
            .set_ex(
                self.state.keys.console_link(&digest(&token)),
                serde_json::to_string(&link).expect("serializable"),
                ttl,
            )
            .await
            .map_err(|e| HttpError::redis("console-link", e))?;
        self.state
            .record_audit(AuditEntry {
                who: &who,
                action: "console-link",
                subject: "",
                reason: None,
                detail: &format!("tenant {tenant}"),
            })
            .await;
        let expires_at = (Utc::now() + chrono::Duration::seconds(ttl as i64))
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        Ok(Json(MintedLink {
            url: format!("{}/link/{token}", super::public_base(&self.state, req)),
            tenant,
            expires_at,
        }))
    }
}
