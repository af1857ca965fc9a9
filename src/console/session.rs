//! Console sessions, server-side in Redis, and the CSRF token each one carries.
//!
//! The browser holds only a random id (256 bits) in an `HttpOnly`, `SameSite=Lax` cookie
//! (`Secure` when `console.public_url` is https); Redis holds the session under the SHA-256 of
//! that id, so a copy of Redis opens no session. The key's TTL is the idle timeout and every use
//! renews it; the absolute timeout is checked against the sign-in time. Signing out deletes the
//! key. The principal a session carries is the API's own [`Principal`], so every page applies
//! exactly the guard the JSON API applies to a key of that role and tenant.

use crate::store::RedisConn;
use chrono::Utc;
use rand::RngCore;
use redis::{AsyncCommands, RedisResult};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::access::{Principal, Role};
use crate::store::Keys;

/// The session cookie's name.
pub const COOKIE: &str = "okta_adapter_console";

/// A signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 (hex) of the cookie's id: the Redis key's last part.
    pub digest: String,
    /// Role and tenant, exactly as an API key of that role and tenant would have them.
    pub principal: Principal,
    /// Who signed in, for the page header and the audit stream (an Okta login or a link's note).
    pub who: String,
    /// Every state-changing form and htmx request must send this back.
    pub csrf: String,
    /// Sign-in time, seconds since the epoch (for the absolute timeout).
    pub created: i64,
}

impl Session {
    /// True when `presented` is this session's CSRF token (constant-time). A session without
    /// a token (a damaged record) matches nothing, not an empty field: fail closed.
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        !self.csrf.is_empty()
            && presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[derive(Clone)]
pub struct SessionStore {
    keys: Keys,
    idle_secs: u64,
    absolute_secs: u64,
}

impl SessionStore {
    pub fn new(keys: Keys, idle_secs: u64, absolute_secs: u64) -> Self {
        Self {
            keys,
            idle_secs,
            absolute_secs,
        }
    }

    /// Starts a session; returns the cookie value (shown to the browser only).
    pub async fn create(
        &self,
        conn: &mut RedisConn,
        role: Role,
        tenant: Option<String>,
        who: &str,
    ) -> RedisResult<(String, Session)> {
        let token = random_token();
        let session = Session {
            digest: digest(&token),
            principal: Principal {
                key_id: format!("console:{who}"),
                role,
                tenant,
            },
            who: who.to_owned(),
            csrf: random_token(),
            created: Utc::now().timestamp(),
        };
        let key = self.keys.console_session(&session.digest);
        let _: () = redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("role", session.principal.role.as_str().to_owned()),
                    (
                        "tenant",
                        session.principal.tenant.clone().unwrap_or_default(),
                    ),
                    ("who", session.who.clone()),
                    ("csrf", session.csrf.clone()),
                    ("created", session.created.to_string()),
                ],
            )
            .expire(&key, self.idle_secs as i64)
            .query_async(conn)
            .await?;
        Ok((token, session))
    }

    /// The session behind a cookie value; `None` when unknown, idle too long or past its
    /// absolute lifetime. With `renew`, this use restarts the idle timeout; a page's own
    /// background polling does not renew, so an open page left alone still times out.
    pub async fn load(
        &self,
        conn: &mut RedisConn,
        token: &str,
        renew: bool,
    ) -> RedisResult<Option<Session>> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let digest = digest(token);
        let key = self.keys.console_session(&digest);
        let mut pipe = redis::pipe();
        pipe.hgetall(&key);
        if renew {
            // XX: never resurrects a session that expired in between.
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(self.idle_secs)
                .arg("XX")
                .ignore();
        }
        let (fields,): (std::collections::HashMap<String, String>,) =
            pipe.query_async(conn).await?;
        let get = |f: &str| fields.get(f).cloned().unwrap_or_default();
        let Some(role) = Role::parse(&get("role")) else {
            return Ok(None);
        };
        let created: i64 = get("created").parse().unwrap_or(0);
        if Utc::now().timestamp() - created >= self.absolute_secs as i64 {
            let _: () = conn.del(&key).await?;
            return Ok(None);
        }
        let tenant = Some(get("tenant")).filter(|t| !t.is_empty());
        // Fail closed, as API keys do: a client admin without a tenant is nobody.
        if role == Role::ClientAdmin && tenant.is_none() {
            return Ok(None);
        }
        let who = get("who");
        Ok(Some(Session {
            digest,
            principal: Principal {
                key_id: format!("console:{who}"),
                role,
                tenant,
            },
            who,
            csrf: get("csrf"),
            created,
        }))
    }

    /// Ends a session.
    pub async fn destroy(&self, conn: &mut RedisConn, session: &Session) -> RedisResult<()> {
        conn.del(self.keys.console_session(&session.digest)).await
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// `Set-Cookie` for a new session (or, with `None`, one that clears it).
pub fn set_cookie(path: &str, token: Option<&str>, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => {
            format!("{COOKIE}={t}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
        }
        None => format!("{COOKIE}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Lax{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = "a=1; okta_adapter_console=abc; b=2";
        assert_eq!(cookie_value(h, COOKIE), Some("abc"));
        assert_eq!(cookie_value("a=1", COOKIE), None);
    }

    #[test]
    fn the_cookie_is_http_only_and_lax_and_secure_on_tls() {
        let c = set_cookie("/console", Some("t"), 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(!set_cookie("/console", Some("t"), 60, false).contains("Secure"));
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        let s = Session {
            digest: String::new(),
            principal: Principal {
                key_id: "k".into(),
                role: Role::Support,
                tenant: None,
            },
            who: "w".into(),
            csrf: "abc".into(),
            created: 0,
        };
        assert!(s.csrf_matches(Some("abc")));
        assert!(!s.csrf_matches(Some("abd")));
        assert!(!s.csrf_matches(Some("")));
        assert!(!s.csrf_matches(None));
        let damaged = Session {
            csrf: String::new(),
            ..s
        };
        assert!(!damaged.csrf_matches(Some("")));
        assert!(!damaged.csrf_matches(None));
    }
}
