//! What an operator reads about the adapter's own Redis: stream lengths and consumer lag, the
//! dead-letter stream, and the audit log with filters. Read-only; every function takes the
//! keys or stream names it reads, so it knows nothing of the HTTP state or the console.
//!
//! Lag is Redis' own `lag` of `XINFO GROUPS` (Redis ≥ 7.0: entries added to the stream that
//! the group has not been delivered yet; absent when Redis cannot tell, e.g. after entries
//! were trimmed past the group's position), next to `pending` (delivered, not acknowledged).

use std::collections::HashMap;

use crate::store::RedisConn;
use redis::streams::{StreamId, StreamRangeReply};
use redis::{AsyncCommands, RedisResult, Value};

use super::consumer::entry_fields;
use super::Keys;

/// One consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupLag {
    pub name: String,
    /// Entries not yet delivered to the group; `None` when Redis cannot tell.
    pub lag: Option<u64>,
    /// Delivered to a consumer and not acknowledged.
    pub pending: u64,
    pub consumers: u64,
}

/// One stream the adapter writes, with the groups configured on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamStat {
    pub stream: String,
    pub length: u64,
    /// Groups Redis knows for this stream (configured or made by a product).
    pub groups: Vec<GroupLag>,
}

/// One dead-letter record, without the event body (it may hold personal data).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// The dead-letter entry's id (its time).
    pub id: String,
    pub source: String,
    /// The entry's id in its source stream.
    pub entry: String,
    pub group: String,
    pub reason: String,
    pub uuid: String,
    pub event_type: String,
}

/// One audit record as stored by [`crate::access::audit`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    pub id: String,
    pub at: String,
    pub key: String,
    pub role: String,
    pub tenant: String,
    pub action: String,
    pub subject: String,
    pub reason: String,
    pub detail: String,
}

/// Filters of the audit log; an empty field matches anything. `action` matches a prefix
/// (`action:` finds every lifecycle action), the others match exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct AuditFilter {
    pub action: String,
    pub key: String,
    pub role: String,
    pub tenant: String,
    pub subject: String,
}

impl AuditFilter {
    pub fn matches(&self, r: &AuditRecord) -> bool {
        let exact = |want: &str, have: &str| want.trim().is_empty() || want.trim() == have;
        (self.action.trim().is_empty() || r.action.starts_with(self.action.trim()))
            && exact(&self.key, &r.key)
            && exact(&self.role, &r.role)
            && exact(&self.tenant, &r.tenant)
            && exact(&self.subject, &r.subject)
    }
}

fn field_u64(map: &HashMap<String, Value>, name: &str) -> Option<u64> {
    map.get(name)
        .and_then(|v| redis::from_redis_value_ref::<Option<u64>>(v).ok().flatten())
}

/// Lengths of `streams` and every consumer group on them, in the order given.
pub async fn stream_stats(
    conn: &mut RedisConn,
    streams: &[String],
) -> RedisResult<Vec<StreamStat>> {
    let mut out = Vec::with_capacity(streams.len());
    for stream in streams {
        let length: u64 = conn.xlen(stream).await?;
        // XINFO GROUPS on a missing stream is an error ("no such key"): no groups then.
        let groups: Vec<HashMap<String, Value>> = if length > 0 || conn.exists(stream).await? {
            redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(stream)
                .query_async(conn)
                .await?
        } else {
            Vec::new()
        };
        let mut groups: Vec<GroupLag> = groups
            .iter()
            .map(|g| GroupLag {
                name: g
                    .get("name")
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                    .unwrap_or_default(),
                lag: field_u64(g, "lag"),
                pending: field_u64(g, "pending").unwrap_or(0),
                consumers: field_u64(g, "consumers").unwrap_or(0),
            })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(StreamStat {
            stream: stream.clone(),
            length,
            groups,
        });
    }
    Ok(out)
}

fn dead_letter_of(e: &StreamId) -> DeadLetter {
    let f = entry_fields(e);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    DeadLetter {
        id: e.id.clone(),
        source: get("source"),
        entry: get("id"),
        group: get("group"),
        reason: get("reason"),
        uuid: get("uuid"),
        event_type: get("type"),
    }
}

/// How many entries the dead-letter stream holds, and the newest `n`, newest first.
pub async fn dead_letters(
    conn: &mut RedisConn,
    keys: &Keys,
    n: usize,
) -> RedisResult<(u64, Vec<DeadLetter>)> {
    let key = keys.dead_letter();
    let count: u64 = conn.xlen(&key).await?;
    let newest: StreamRangeReply = conn.xrevrange_count(&key, "+", "-", n).await?;
    Ok((count, newest.ids.iter().map(dead_letter_of).collect()))
}

fn audit_of(e: &StreamId) -> AuditRecord {
    let f = entry_fields(e);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    AuditRecord {
        id: e.id.clone(),
        at: get("at"),
        key: get("key"),
        role: get("role"),
        tenant: get("tenant"),
        action: get("action"),
        subject: get("subject"),
        reason: get("reason"),
        detail: get("detail"),
    }
}

/// The newest audit records matching `filter`, newest first, at most `limit`, reading at most
/// `scan` records (the log holds up to a million). `before` continues after a record id of an
/// earlier page. Returns the records and the cursor of the next page (`None` at the end).
pub async fn audit_log(
    conn: &mut RedisConn,
    keys: &Keys,
    filter: &AuditFilter,
    before: Option<&str>,
    limit: usize,
    scan: usize,
) -> RedisResult<(Vec<AuditRecord>, Option<String>)> {
    const PAGE: usize = 200;
    let key = keys.audit();
    let mut end = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
    let mut out = Vec::new();
    let mut read = 0usize;
    loop {
        let page: StreamRangeReply = conn.xrevrange_count(&key, &end, "-", PAGE).await?;
        let Some(last) = page.ids.last().map(|e| e.id.clone()) else {
            return Ok((out, None));
        };
        let at_end = page.ids.len() < PAGE;
        for e in &page.ids {
            read += 1;
            let r = audit_of(e);
            if filter.matches(&r) {
                out.push(r);
                if out.len() == limit {
                    return Ok((out, Some(e.id.clone())));
                }
            }
        }
        if at_end {
            return Ok((out, None));
        }
        if read >= scan {
            return Ok((out, Some(last)));
        }
        end = format!("({last}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(action: &str, tenant: &str) -> AuditRecord {
        AuditRecord {
            id: "1-0".into(),
            at: String::new(),
            key: "k1".into(),
            role: "support".into(),
            tenant: tenant.into(),
            action: action.into(),
            subject: "00u1".into(),
            reason: String::new(),
            detail: String::new(),
        }
    }

    #[test]
    fn audit_filters_match_an_action_prefix_and_exact_fields() {
        let r = record("action:suspend", "");
        assert!(AuditFilter::default().matches(&r));
        let f = |action: &str, tenant: &str, subject: &str| AuditFilter {
            action: action.into(),
            tenant: tenant.into(),
            subject: subject.into(),
            ..Default::default()
        };
        assert!(f("action:", "", "").matches(&r));
        assert!(f("action:suspend", "", "00u1").matches(&r));
        assert!(!f("read-user", "", "").matches(&r));
        assert!(!f("", "acme", "").matches(&r));
        assert!(!f("", "", "00u").matches(&r), "subject matches exactly");
        assert!(
            f(" action: ", "", " 00u1 ").matches(&r),
            "blanks around a filter are ignored"
        );
    }
}
