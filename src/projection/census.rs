//! Users per tenant by status, for the console's Tenants page.
//!
//! A user's status is not one stored field: it is decided from the evidence of the events in
//! its hash ([`super::read::assemble_record`]). So a count by status reads users. The total per
//! tenant is exact (the tenant index's size); the split by status reads at most `budget` users
//! of a tenant (in login order) and says so when the tenant has more, so one page view costs a
//! bounded amount of Redis work even with a million users.
//!
//! Who sees which tenants is [`TenantScope::of`]: support and operators every tenant, a client
//! admin only its own — the same scoping rule as the users API.

use std::collections::{BTreeMap, HashMap};

use crate::store::RedisConn;
use redis::{AsyncCommands, RedisResult};

use super::read::assemble_record;
use crate::access::{Principal, Role};
use crate::store::Keys;

/// Most tenants one overview lists.
pub const MAX_TENANTS: usize = 1000;

/// Which tenants a caller may see in the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    All,
    Only(String),
}

impl TenantScope {
    /// Support and operators see every tenant; a client admin only its own.
    pub fn of(who: &Principal) -> Self {
        match (who.role, &who.tenant) {
            (Role::ClientAdmin | Role::Installation, Some(t)) => TenantScope::Only(t.clone()),
            // A tenant-bound key without a tenant never authenticates (see `access`); fail closed.
            (Role::ClientAdmin | Role::Installation, None) => TenantScope::Only(String::new()),
            (Role::Support | Role::Operator, _) => TenantScope::All,
        }
    }
}

/// One tenant's users by status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantCounts {
    pub tenant: String,
    /// Users in the tenant's index (exact).
    pub total: u64,
    /// Users read for the split by status (`< total` when the budget ran out).
    pub counted: u64,
    /// status (`ACTIVE`, `SUSPENDED`, …) → users, of the `counted` ones.
    pub by_status: BTreeMap<String, u64>,
}

/// Tenants that have users in the projection, sorted (at most [`MAX_TENANTS`]).
pub async fn known_tenants(conn: &mut RedisConn, keys: &Keys) -> RedisResult<Vec<String>> {
    let prefix = keys.tenant_index("");
    let pattern = format!("{}*", crate::store::scan::glob_escape(&prefix));
    // On a cluster the tenant indexes spread over the masters: scan every one.
    let mut tenants: Vec<String> = crate::store::scan_match(conn, &pattern, Some(MAX_TENANTS))
        .await?
        .into_iter()
        .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    tenants.sort();
    tenants.dedup();
    tenants.truncate(MAX_TENANTS);
    Ok(tenants)
}

/// One tenant's users by status, reading at most `budget` of them.
pub async fn tenant_counts(
    conn: &mut RedisConn,
    keys: &Keys,
    tenant: &str,
    budget: usize,
) -> RedisResult<TenantCounts> {
    let index = keys.tenant_index(tenant);
    let total: u64 = conn.zcard(&index).await?;
    let mut by_status = BTreeMap::new();
    let mut counted = 0u64;
    let mut start = "-".to_owned();
    let mut read = 0usize;
    while read < budget {
        let chunk = (budget - read).min(500);
        let members: Vec<String> = conn
            .zrangebylex_limit(&index, &start, "+", 0, chunk as isize)
            .await?;
        if members.is_empty() {
            break;
        }
        read += members.len();
        let mut pipe = redis::pipe();
        for m in &members {
            let id = m.rsplit_once('\0').map_or(m.as_str(), |(_, id)| id);
            pipe.hgetall(keys.user(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
        for (m, hash) in members.iter().zip(hashes) {
            let id = m.rsplit_once('\0').map_or(m.as_str(), |(_, id)| id);
            // A stale index entry (the user moved tenant) is not this tenant's user.
            let Some(record) = assemble_record(id, &hash) else {
                continue;
            };
            if record.tenant.as_deref() != Some(tenant) {
                continue;
            }
            counted += 1;
            *by_status.entry(record.status.clone()).or_insert(0) += 1;
        }
        let at_end = members.len() < chunk;
        start = format!("({}", members.last().expect("not empty"));
        if at_end {
            break;
        }
    }
    Ok(TenantCounts {
        tenant: tenant.to_owned(),
        total,
        counted,
        by_status,
    })
}

/// The overview for `who`: every tenant it may see, each with its counts.
pub async fn tenant_overview(
    conn: &mut RedisConn,
    keys: &Keys,
    who: &Principal,
    budget: usize,
) -> RedisResult<Vec<TenantCounts>> {
    let tenants = match TenantScope::of(who) {
        TenantScope::All => known_tenants(conn, keys).await?,
        TenantScope::Only(t) if t.is_empty() => Vec::new(),
        TenantScope::Only(t) => vec![t],
    };
    let mut out = Vec::with_capacity(tenants.len());
    for t in tenants {
        out.push(tenant_counts(conn, keys, &t, budget).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_admin_sees_only_its_tenant_and_staff_see_all() {
        let p = |role, tenant: Option<&str>| Principal {
            key_id: "k".into(),
            role,
            tenant: tenant.map(Into::into),
        };
        assert_eq!(
            TenantScope::of(&p(Role::ClientAdmin, Some("acme"))),
            TenantScope::Only("acme".into())
        );
        assert_eq!(
            TenantScope::of(&p(Role::ClientAdmin, None)),
            TenantScope::Only(String::new())
        );
        assert_eq!(TenantScope::of(&p(Role::Support, None)), TenantScope::All);
        assert_eq!(TenantScope::of(&p(Role::Operator, None)), TenantScope::All);
    }

    #[test]
    fn scan_patterns_escape_glob_characters() {
        use crate::store::scan::glob_escape;
        assert_eq!(glob_escape("okta:idx:tenant:"), "okta:idx:tenant:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
