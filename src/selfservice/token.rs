//! Single-use links: a random token goes into the email; Redis keeps only its SHA-256.
//!
//! - `ss:t:<digest>` (hash: user, login, tenant, email) expires with the link;
//! - `ss:u:{<user>}` holds the digest of the user's current link: issuing a new link swaps it
//!   (`SET … GET`) and deletes the link it replaced, so only the newest link works;
//! - using a link deletes `ss:t:<digest>` first, and only the caller whose `DEL` removed it goes
//!   on (a reused link, or two tabs at once, find nothing).
//!
//! The form's CSRF token is derived from the link token (SHA-256 of a label and the token), so
//! it needs no storage and only someone holding the link can produce it.

use std::collections::HashMap;
use std::time::Duration;

use crate::store::RedisConn;
use rand::RngCore;
use redis::{AsyncCommands, RedisResult};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::Keys;

/// What a link was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    pub user: String,
    pub login: String,
    pub tenant: String,
    pub email: String,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The digest a token is stored under.
pub fn digest(token: &str) -> String {
    sha256_hex(token)
}

/// The CSRF token of the confirmation form of this link.
pub fn csrf_for(token: &str) -> String {
    sha256_hex(&format!("okta-adapter self-service csrf\n{token}"))
}

/// Whether `presented` is the CSRF token of `token` (constant time).
pub fn csrf_matches(token: &str, presented: &str) -> bool {
    csrf_for(token)
        .as_bytes()
        .ct_eq(presented.as_bytes())
        .into()
}

/// A link token's shape: 64 hex digits. Anything else names no link (and is never looked up).
pub fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Issues a new link for `target`, replacing (deleting) the user's previous one. Returns the
/// token: it exists only in the email from here on.
pub async fn issue(
    conn: &mut RedisConn,
    keys: &Keys,
    target: &LinkTarget,
    ttl: Duration,
) -> RedisResult<String> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let d = digest(&token);
    let ttl_ms = ttl.as_millis() as u64;
    let key = keys.self_service_token(&d);
    let _: () = redis::pipe()
        .hset_multiple(
            &key,
            &[
                ("user", target.user.as_str()),
                ("login", target.login.as_str()),
                ("tenant", target.tenant.as_str()),
                ("email", target.email.as_str()),
            ],
        )
        .ignore()
        .pexpire(&key, ttl_ms as i64)
        .ignore()
        .query_async(conn)
        .await?;
    // Stored before it is published as current, so whoever replaces it finds it to delete.
    let previous: Option<String> = redis::cmd("SET")
        .arg(keys.self_service_user(&target.user))
        .arg(&d)
        .arg("PX")
        .arg(ttl_ms)
        .arg("GET")
        .query_async(conn)
        .await?;
    if let Some(old) = previous.filter(|old| *old != d) {
        let _: () = conn.del(keys.self_service_token(&old)).await?;
    }
    Ok(token)
}

/// The link's target, if the link is current (not used, replaced or expired).
pub async fn peek(
    conn: &mut RedisConn,
    keys: &Keys,
    token: &str,
) -> RedisResult<Option<LinkTarget>> {
    if !well_formed(token) {
        return Ok(None);
    }
    let h: HashMap<String, String> = conn
        .hgetall(keys.self_service_token(&digest(token)))
        .await?;
    Ok(target_of(h))
}

/// Uses the link up: its target if this call was the one that removed it, else `None`.
pub async fn claim(
    conn: &mut RedisConn,
    keys: &Keys,
    token: &str,
) -> RedisResult<Option<LinkTarget>> {
    if !well_formed(token) {
        return Ok(None);
    }
    let d = digest(token);
    let key = keys.self_service_token(&d);
    let (h, removed): (HashMap<String, String>, u32) = redis::pipe()
        .atomic()
        .hgetall(&key)
        .del(&key)
        .query_async(conn)
        .await?;
    if removed == 0 {
        return Ok(None);
    }
    let target = target_of(h);
    if let Some(t) = &target {
        // Best effort: the pointer expires anyway, and a new link overwrites it.
        let user_key = keys.self_service_user(&t.user);
        let current: Option<String> = conn.get(&user_key).await?;
        if current.as_deref() == Some(d.as_str()) {
            let _: () = conn.del(&user_key).await?;
        }
    }
    Ok(target)
}

fn target_of(mut h: HashMap<String, String>) -> Option<LinkTarget> {
    let user = h.remove("user").filter(|u| !u.is_empty())?;
    Some(LinkTarget {
        user,
        login: h.remove("login").unwrap_or_default(),
        tenant: h.remove("tenant").unwrap_or_default(),
        email: h.remove("email").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_one_link() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        assert!(csrf_matches(&a, &csrf_for(&a)));
        assert!(!csrf_matches(&a, &csrf_for(&b)));
        assert!(!csrf_matches(&a, ""));
        assert_ne!(
            csrf_for(&a),
            digest(&a),
            "the form never shows the stored digest"
        );
    }

    #[test]
    fn only_64_hex_digits_are_tokens() {
        assert!(well_formed(&"0f".repeat(32)));
        assert!(!well_formed("abc"));
        assert!(!well_formed(&"g".repeat(64)));
    }
}
