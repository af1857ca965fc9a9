//! [`TenantId`]: the one definition of a valid tenant id.
//!
//! Every place a tenant enters the adapter (API keys, tenant rules, route filters, query
//! filters, config) goes through [`TenantId::parse`]. An empty id must never reach a place where
//! "no tenant" could be read as "every tenant", and the ingest script's route filter (`|a|b|`)
//! needs ids without `|`. This file imports nothing from the adapter, so config can check ids
//! at load without depending on the tenant rules (which depend on config).

use std::fmt;

/// Longest tenant id (a DNS label's limit, so an id also fits a host name).
pub const TENANT_ID_MAX_LEN: usize = 63;

/// What a tenant id may look like, for error messages and docs.
pub const TENANT_ID_RULE: &str = "lowercase letters a-z, digits and `-`, starting with a letter \
     or digit, at most 63 characters";

/// A valid tenant id: `[a-z0-9][a-z0-9-]*`, at most [`TENANT_ID_MAX_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// Why a string is not a tenant id. The message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTenantId {
    #[error("a tenant id must not be empty")]
    Empty,
    #[error("`{0}` is not a tenant id ({TENANT_ID_RULE})")]
    Malformed(String),
}

impl TenantId {
    /// Checks `s` exactly as given: no trimming and no case folding, so what is stored is what
    /// was asked for.
    pub fn parse(s: &str) -> Result<Self, InvalidTenantId> {
        if s.trim().is_empty() {
            return Err(InvalidTenantId::Empty);
        }
        let bytes = s.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if s.len() > TENANT_ID_MAX_LEN
            || !allowed(&bytes[0])
            || !bytes.iter().all(|b| allowed(b) || *b == b'-')
        {
            // Cut what is echoed back: the message may end up in a log or a 400 body.
            let shown: String = s.chars().take(TENANT_ID_MAX_LEN + 1).collect();
            return Err(InvalidTenantId::Malformed(shown));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
