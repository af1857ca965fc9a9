//! Replay and dead-letter redrive (operator role).
//!
//! **Replay** copies firehose entries that match a filter (entry time range, event type, tenant,
//! user) into a target: an existing route stream, or a new stream `<prefix>:{events}:replay:<name>`
//! with a consumer group `<name>` on it, for a product service that lost its data. Entries keep
//! every field, `uuid` included (consumers de-duplicate by it), plus `replayed_from` (the firehose
//! entry id). A dry run only counts.
//!
//! **Dead letters**: the projection consumer moves entries it cannot apply to
//! `<prefix>:dead-letter` with a reason. They can be listed, deleted, and redriven: the original
//! entry (read back from its source stream by id, or the copy in the dead-letter record) is
//! applied by its consumer again — only the projection dead-letters today, so redrive applies to
//! the projection directly (compare-and-set by `published`, so a redrive can never roll a user
//! back). A redriven record leaves the dead-letter stream when it applied; one that fails again
//! stays, with the new reason in the answer.

use std::collections::HashMap;

use crate::store::RedisConn;
use redis::streams::{StreamId, StreamRangeReply};
use redis::{AsyncCommands, RedisResult};
use serde::Serialize;

use crate::domain::tenant::TenantResolver;
use crate::projection::update::update_for_entry;
use crate::projection::write::Applier;
use crate::store::consumer::entry_fields;
use crate::store::{ensure_group, Keys};

/// Entries read per `XRANGE` while scanning.
const SCAN_PAGE: usize = 1000;

/// Which firehose entries a replay takes. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Entry ids (or ms times) bounding the range, as `XRANGE` takes them; `-` / `+` = open.
    pub from: String,
    pub to: String,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    pub user: Option<String>,
}

impl ReplayFilter {
    fn matches(&self, f: &HashMap<String, String>) -> bool {
        let is = |want: &Option<String>, key: &str| {
            want.as_ref()
                .is_none_or(|w| f.get(key).is_some_and(|v| v == w))
        };
        is(&self.event_type, "type") && is(&self.tenant, "tenant") && is(&self.user, "user")
    }
}

/// Where replayed entries go.
#[derive(Debug, Clone)]
pub enum ReplayTarget {
    /// An existing route stream (by route name).
    Route(String),
    /// A new stream `…:replay:<name>` with consumer group `<name>`.
    Group(String),
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    /// Firehose entries that matched.
    pub matched: u64,
    /// Entries written (0 on a dry run).
    pub written: u64,
    /// The stream written to (or that would be).
    pub stream: String,
    /// The consumer group created, for a group target.
    pub group: Option<String>,
    pub dry_run: bool,
}

/// Copies matching firehose entries into `stream` (nothing written when `dry_run`).
pub async fn replay(
    conn: &mut RedisConn,
    keys: &Keys,
    filter: &ReplayFilter,
    target: &ReplayTarget,
    dry_run: bool,
) -> RedisResult<ReplayReport> {
    let (stream, group) = match target {
        ReplayTarget::Route(name) => (keys.route(name), None),
        ReplayTarget::Group(name) => (keys.replay(name), Some(name.clone())),
    };
    if let (Some(group), false) = (&group, dry_run) {
        // From 0: the group reads every entry the replay writes.
        ensure_group(conn, &stream, group).await?;
    }
    let firehose = keys.firehose();
    let from = if filter.from.is_empty() {
        "-"
    } else {
        &filter.from
    };
    let to = if filter.to.is_empty() {
        "+"
    } else {
        &filter.to
    };
    let mut start = from.to_owned();
    let (mut matched, mut written) = (0, 0);
    loop {
        let page: StreamRangeReply = conn.xrange_count(&firehose, &start, to, SCAN_PAGE).await?;
        let Some(last) = page.ids.last().map(|e| e.id.clone()) else {
            break;
        };
        let mut pipe = redis::pipe();
        for entry in &page.ids {
            let fields = entry_fields(entry);
            if !filter.matches(&fields) {
                continue;
            }
            matched += 1;
            if !dry_run {
                let mut items: Vec<(String, String)> = fields.into_iter().collect();
                items.sort(); // deterministic field order
                items.push(("replayed_from".into(), entry.id.clone()));
                pipe.xadd(&stream, "*", &items).ignore();
                written += 1;
            }
        }
        if !dry_run {
            let _: () = pipe.query_async(conn).await?;
        }
        if page.ids.len() < SCAN_PAGE {
            break;
        }
        start = format!("({last}");
    }
    metrics::counter!("okta_adapter_replayed_entries_total").increment(written);
    Ok(ReplayReport {
        matched,
        written,
        stream,
        group,
        dry_run,
    })
}

/// One dead-letter record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// Stream and entry id it came from, and the consumer group that gave up on it.
    pub source: String,
    pub source_id: String,
    pub group: String,
    pub reason: String,
    pub uuid: String,
    pub event_type: String,
}

fn dead_letter_of(entry: &StreamId) -> DeadLetter {
    let f = entry_fields(entry);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    DeadLetter {
        id: entry.id.clone(),
        source: get("source"),
        source_id: get("id"),
        group: get("group"),
        reason: get("reason"),
        uuid: get("uuid"),
        event_type: get("type"),
    }
}

/// Dead-letter records, oldest first, at most `limit`, optionally of one reason only.
pub async fn list_dead_letters(
    conn: &mut RedisConn,
    keys: &Keys,
    reason: Option<&str>,
    limit: usize,
) -> RedisResult<(u64, Vec<DeadLetter>)> {
    let depth: u64 = conn.xlen(keys.dead_letter()).await?;
    metrics::gauge!("okta_adapter_dead_letter_depth").set(depth as f64);
    let all: StreamRangeReply = conn.xrange_all(keys.dead_letter()).await?;
    let records = all
        .ids
        .iter()
        .map(dead_letter_of)
        .filter(|d| reason.is_none_or(|r| d.reason == r))
        .take(limit)
        .collect();
    Ok((depth, records))
}

/// Deletes dead-letter records; returns how many existed.
pub async fn delete_dead_letters(
    conn: &mut RedisConn,
    keys: &Keys,
    ids: &[String],
) -> RedisResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    conn.xdel(keys.dead_letter(), ids).await
}

/// What happened to one redriven record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Redriven {
    pub id: String,
    /// `applied` (and removed from the dead-letter stream), `skipped` (nothing to apply; removed),
    /// `failed` (kept; `reason` says why) or `missing` (no such record).
    pub outcome: String,
    pub reason: Option<String>,
}

/// Redrives dead-letter records (`ids`, or every record with `reason`) to the projection.
pub async fn redrive(
    conn: &mut RedisConn,
    keys: &Keys,
    applier: &Applier,
    tenants: &TenantResolver,
    projection_group: &str,
    ids: &[String],
    reason: Option<&str>,
) -> RedisResult<Vec<Redriven>> {
    let all: StreamRangeReply = conn.xrange_all(keys.dead_letter()).await?;
    let by_id: HashMap<&str, &StreamId> = all.ids.iter().map(|e| (e.id.as_str(), e)).collect();
    let chosen: Vec<String> = match reason {
        Some(r) => all
            .ids
            .iter()
            .filter(|e| dead_letter_of(e).reason == r)
            .map(|e| e.id.clone())
            .collect(),
        None => ids.to_vec(),
    };
    let mut out = Vec::new();
    for id in chosen {
        let Some(entry) = by_id.get(id.as_str()) else {
            out.push(Redriven {
                id,
                outcome: "missing".into(),
                reason: None,
            });
            continue;
        };
        let dl = dead_letter_of(entry);
        if dl.group != projection_group {
            out.push(Redriven {
                id,
                outcome: "failed".into(),
                reason: Some(format!(
                    "group `{}` has no redrive (only the projection consumer `{projection_group}` dead-letters)",
                    dl.group
                )),
            });
            continue;
        }
        // The original entry has every field; the record's copy is the fallback when trimmed.
        let original: StreamRangeReply = conn
            .xrange(&dl.source, &dl.source_id, &dl.source_id)
            .await?;
        let fields = match original.ids.first() {
            Some(e) => entry_fields(e),
            None => entry_fields(entry),
        };
        let result = match update_for_entry(&fields, tenants) {
            Ok(None) => Ok(false),
            Ok(Some(update)) => match applier.apply(conn, &[update]).await?.pop() {
                Some(Err(e)) => Err(e.to_string()),
                _ => Ok(true),
            },
            Err(poison) => Err(poison.0),
        };
        match result {
            Ok(applied) => {
                let _: u64 = conn.xdel(keys.dead_letter(), &[&id]).await?;
                metrics::counter!("okta_adapter_dead_letter_redriven_total").increment(1);
                out.push(Redriven {
                    id,
                    outcome: if applied { "applied" } else { "skipped" }.into(),
                    reason: None,
                });
            }
            Err(why) => out.push(Redriven {
                id,
                outcome: "failed".into(),
                reason: Some(why),
            }),
        }
    }
    Ok(out)
}
