//! API keys, roles and the audit stream.
//!
//! A key is shown once, at creation: `oka_<id>_<secret>`. Redis keeps only its id, role,
//! tenant and the SHA-256 of the secret; authentication looks the id up and compares the
//! digest in constant time. Roles: `support` sees every tenant, `client-admin` exactly one,
//! `operator` runs jobs, reports and key management but reads no user records.
//!
//! Fail closed: a `client-admin` key is only ever a principal together with a valid tenant id
//! ([`TenantId`]). A stored client-admin key whose tenant is empty or not a valid id (keys made
//! before ids were checked) does not authenticate at all, because elsewhere "no tenant" reads
//! as "not scoped to a tenant".

use std::fmt;

use crate::store::RedisConn;
use chrono::{SecondsFormat, Utc};
use rand::RngCore;
use redis::{AsyncCommands, RedisResult};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::tenant::{InvalidTenantId, TenantId};
use crate::store::Keys;

/// Longest the audit stream grows (MAXLEN ~).
const AUDIT_MAXLEN: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, serde::Serialize)]
#[oai(rename_all = "kebab-case")]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Support,
    ClientAdmin,
    Operator,
    /// A product installation: reads its own sign-in config (tenant provisioning) and nothing
    /// else. Bound to one tenant and one installation.
    Installation,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Support => "support",
            Role::ClientAdmin => "client-admin",
            Role::Operator => "operator",
            Role::Installation => "installation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Role::Support,
            Role::ClientAdmin,
            Role::Operator,
            Role::Installation,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling, once their key checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub role: Role,
    /// Set exactly for `client-admin`, and then always a valid [`TenantId`].
    pub tenant: Option<String>,
}

impl Principal {
    /// Whether this caller may see a user of `tenant` (`None` = a user without tenant).
    pub fn can_see_tenant(&self, tenant: Option<&str>) -> bool {
        match self.role {
            Role::Support => true,
            Role::ClientAdmin => self.tenant.is_some() && self.tenant.as_deref() == tenant,
            Role::Operator | Role::Installation => false,
        }
    }
}

/// Roles that manage API keys (list, create, revoke).
pub const KEY_ADMINS: &[Role] = &[Role::Operator];

/// Roles that read the adapter's operations view (streams, lag, dead letters, audit log).
pub const OPS_ROLES: &[Role] = &[Role::Operator];

/// A role refused for an operation; the message names the allowed roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {role} role may not do this (allowed: {allowed})")]
pub struct RoleRefused {
    pub role: Role,
    pub allowed: String,
}

/// The one role check of every way in (API keys, console sessions): `who` must have one of
/// `roles`.
pub fn check_role(who: &Principal, roles: &[Role]) -> Result<(), RoleRefused> {
    if roles.contains(&who.role) {
        return Ok(());
    }
    Err(RoleRefused {
        role: who.role,
        allowed: roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, poem_openapi::Object, serde::Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub role: Role,
    pub tenant: Option<String>,
    pub created: String,
    pub revoked: bool,
    /// The installation an `installation` key is bound to.
    pub installation: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("a client-admin key needs --tenant")]
    TenantRequired,
    #[error("only client-admin keys have a tenant")]
    TenantNotAllowed,
    /// Not `#[from]`: that would make the id error this one's source too, and the CLI's
    /// cause chain would print the same words twice.
    #[error("tenant: {0}")]
    InvalidTenant(InvalidTenantId),
    #[error("an installation key needs --tenant and --installation")]
    InstallationRequired,
    #[error("installation: lowercase letters, digits and `-`, at most 30 characters")]
    InvalidInstallation,
}

impl From<InvalidTenantId> for KeyError {
    fn from(e: InvalidTenantId) -> Self {
        KeyError::InvalidTenant(e)
    }
}

#[derive(Clone)]
pub struct KeyStore {
    keys: Keys,
}

fn digest_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl KeyStore {
    pub fn new(keys: Keys) -> Self {
        Self { keys }
    }

    /// Creates a key; returns the token (shown once) and what is stored.
    pub async fn create(
        &self,
        conn: &mut RedisConn,
        role: Role,
        tenant: Option<&str>,
    ) -> Result<RedisResult<(String, ApiKeyInfo)>, KeyError> {
        self.create_bound(conn, role, tenant, None).await
    }

    /// An `installation` key for one tenant's installation (the installation need not exist
    /// yet: the key reads nothing until it does).
    pub async fn create_installation(
        &self,
        conn: &mut RedisConn,
        tenant: &str,
        installation: &str,
    ) -> Result<RedisResult<(String, ApiKeyInfo)>, KeyError> {
        let valid = !installation.is_empty()
            && installation.len() <= 30
            && !installation.starts_with('-')
            && installation
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(KeyError::InvalidInstallation);
        }
        TenantId::parse(tenant)?;
        self.create_bound(conn, Role::Installation, Some(tenant), Some(installation))
            .await
    }

    async fn create_bound(
        &self,
        conn: &mut RedisConn,
        role: Role,
        tenant: Option<&str>,
        installation: Option<&str>,
    ) -> Result<RedisResult<(String, ApiKeyInfo)>, KeyError> {
        let tenant = match (role, tenant) {
            (Role::Installation, Some(t)) if installation.is_some() => Some(TenantId::parse(t)?),
            (Role::Installation, _) => return Err(KeyError::InstallationRequired),
            (Role::ClientAdmin, None) => return Err(KeyError::TenantRequired),
            (Role::ClientAdmin, Some(t)) => Some(TenantId::parse(t)?),
            (Role::Support | Role::Operator, Some(_)) => return Err(KeyError::TenantNotAllowed),
            (Role::Support | Role::Operator, None) => None,
        };
        let tenant = tenant.as_ref().map(TenantId::as_str);
        let mut id = [0u8; 6];
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut id);
        rand::rng().fill_bytes(&mut secret);
        let (id, secret) = (hex::encode(id), hex::encode(secret));
        let info = ApiKeyInfo {
            id: id.clone(),
            role,
            tenant: tenant.map(str::to_owned),
            created: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            revoked: false,
            installation: installation.map(str::to_owned),
        };
        let fields = [
            ("digest", digest_hex(&secret)),
            ("role", role.as_str().to_owned()),
            ("tenant", tenant.unwrap_or("").to_owned()),
            ("created", info.created.clone()),
            ("revoked", "0".to_owned()),
            ("installation", installation.unwrap_or("").to_owned()),
        ];
        let stored: RedisResult<()> = if conn.is_cluster() {
            // Two steps, the listing first: on a cluster the key hash and the id set are on
            // different slots, so no transaction can span them. A crash between the two leaves
            // a listed id without a hash (skipped by `list`, never accepted), never a usable key
            // no one can list.
            match conn.sadd::<_, _, ()>(self.keys.api_keys(), &id).await {
                Ok(()) => conn.hset_multiple(self.keys.api_key(&id), &fields).await,
                Err(e) => Err(e),
            }
        } else {
            redis::pipe()
                .atomic()
                .hset_multiple(self.keys.api_key(&id), &fields)
                .sadd(self.keys.api_keys(), &id)
                .query_async(conn)
                .await
        };
        Ok(stored.map(|()| (format!("oka_{id}_{secret}"), info)))
    }

    /// The caller behind `token`, or `None` for an unknown, malformed or revoked key.
    pub async fn authenticate(
        &self,
        conn: &mut RedisConn,
        token: &str,
    ) -> RedisResult<Option<Principal>> {
        let Some((id, secret)) = token
            .strip_prefix("oka_")
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let (digest, role, tenant, revoked): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = conn
            .hmget(
                self.keys.api_key(id),
                &["digest", "role", "tenant", "revoked"],
            )
            .await?;
        let (Some(digest), Some(role)) = (digest, role.as_deref().and_then(Role::parse)) else {
            return Ok(None);
        };
        let matches: bool = digest
            .as_bytes()
            .ct_eq(digest_hex(secret).as_bytes())
            .into();
        if !matches || revoked.as_deref() == Some("1") {
            return Ok(None);
        }
        let tenant = match role {
            // Fail closed: without a valid tenant this key has no scope, so it is no key.
            Role::ClientAdmin | Role::Installation => {
                match tenant.as_deref().map(TenantId::parse) {
                    Some(Ok(t)) => Some(t.into_string()),
                    _ => {
                        tracing::warn!(
                        key = id,
                        "client-admin key without a valid tenant refused; revoke it and create a new one"
                    );
                        return Ok(None);
                    }
                }
            }
            Role::Support | Role::Operator => None,
        };
        Ok(Some(Principal {
            key_id: id.to_owned(),
            role,
            tenant,
        }))
    }

    pub async fn list(&self, conn: &mut RedisConn) -> RedisResult<Vec<ApiKeyInfo>> {
        let mut ids: Vec<String> = conn.smembers(self.keys.api_keys()).await?;
        ids.sort();
        if ids.is_empty() {
            // An empty pipeline is an error in redis-rs ("empty command"), not an empty list.
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.keys.api_key(id));
        }
        let rows: Vec<std::collections::HashMap<String, String>> = pipe.query_async(conn).await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter_map(|(id, row)| {
                Some(ApiKeyInfo {
                    id,
                    role: Role::parse(row.get("role")?)?,
                    tenant: row.get("tenant").filter(|t| !t.is_empty()).cloned(),
                    created: row.get("created").cloned().unwrap_or_default(),
                    revoked: row.get("revoked").map(String::as_str) == Some("1"),
                    installation: row.get("installation").filter(|i| !i.is_empty()).cloned(),
                })
            })
            .collect())
    }

    /// The installation an `installation` key is bound to (`None` for other keys).
    pub async fn installation_of(
        &self,
        conn: &mut RedisConn,
        key_id: &str,
    ) -> RedisResult<Option<String>> {
        let i: Option<String> = conn.hget(self.keys.api_key(key_id), "installation").await?;
        Ok(i.filter(|i| !i.is_empty()))
    }

    /// Revokes a key; `false` when there is no such key.
    pub async fn revoke(&self, conn: &mut RedisConn, id: &str) -> RedisResult<bool> {
        let exists: bool = conn.exists(self.keys.api_key(id)).await?;
        if exists {
            let _: () = conn.hset(self.keys.api_key(id), "revoked", "1").await?;
        }
        Ok(exists)
    }
}

/// One audit record.
pub struct AuditEntry<'a> {
    pub who: &'a Principal,
    /// e.g. `read-user`, `list-users`, `read-timeline`, `action:suspend`.
    pub action: &'a str,
    /// The user whose data was touched (empty for lists).
    pub subject: &'a str,
    /// The caller's `X-Audit-Reason`, if given.
    pub reason: Option<&'a str>,
    /// Result or detail, e.g. `200` or `3 users`.
    pub detail: &'a str,
}

/// Appends to the audit stream.
pub async fn audit(conn: &mut RedisConn, keys: &Keys, e: AuditEntry<'_>) -> RedisResult<()> {
    let who = [
        e.who.key_id.as_str(),
        e.who.role.as_str(),
        e.who.tenant.as_deref().unwrap_or(""),
    ];
    let what = [e.action, e.subject, e.reason.unwrap_or(""), e.detail];
    write_audit(conn, keys, who, what).await
}

/// Who acted when no API key did: an end user on a public page (`role` e.g. `self-service`,
/// `key` the page, e.g. `mfa-reset`; `tenant` the user's).
pub struct AnonymousActor<'a> {
    pub key: &'a str,
    pub role: &'a str,
    pub tenant: &'a str,
}

/// Appends an end user's (keyless) action to the audit stream, in the same fields as [`audit`].
pub async fn audit_anonymous(
    conn: &mut RedisConn,
    keys: &Keys,
    actor: AnonymousActor<'_>,
    action: &str,
    subject: &str,
    detail: &str,
) -> RedisResult<()> {
    let who = [actor.key, actor.role, actor.tenant];
    write_audit(conn, keys, who, [action, subject, "", detail]).await
}

/// The one writer of audit records: `who` = key, role, tenant; `what` = action, subject,
/// reason, detail.
async fn write_audit(
    conn: &mut RedisConn,
    keys: &Keys,
    who: [&str; 3],
    what: [&str; 4],
) -> RedisResult<()> {
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    redis::cmd("XADD")
        .arg(keys.audit())
        .arg("MAXLEN")
        .arg("~")
        .arg(AUDIT_MAXLEN)
        .arg("*")
        .arg(&[
            ("at", at.as_str()),
            ("key", who[0]),
            ("role", who[1]),
            ("tenant", who[2]),
            ("action", what[0]),
            ("subject", what[1]),
            ("reason", what[2]),
            ("detail", what[3]),
        ])
        .query_async(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_visibility_by_role() {
        let p = |role, tenant: Option<&str>| Principal {
            key_id: "k".into(),
            role,
            tenant: tenant.map(Into::into),
        };
        assert!(p(Role::Support, None).can_see_tenant(Some("acme")));
        assert!(p(Role::Support, None).can_see_tenant(None));
        assert!(p(Role::ClientAdmin, Some("acme")).can_see_tenant(Some("acme")));
        assert!(!p(Role::ClientAdmin, Some("acme")).can_see_tenant(Some("globex")));
        assert!(!p(Role::ClientAdmin, Some("acme")).can_see_tenant(None));
        assert!(!p(Role::Operator, None).can_see_tenant(Some("acme")));
    }

    #[test]
    fn roles_round_trip() {
        for r in [
            Role::Support,
            Role::ClientAdmin,
            Role::Operator,
            Role::Installation,
        ] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
