//! Counting: stream entries → per-tenant, per-month aggregates, exactly once per entry.
//!
//! [`contributions_for_event`], [`contributions_for_decision`] and [`contributions_for_job_row`]
//! are pure: they turn one entry into [`Op`]s (counter increments, a HyperLogLog add, a sample
//! add). [`Counter::apply`] sends a batch of them to `count.lua`, which for every entry first
//! `XACK`s it and applies its ops **only if that XACK acknowledged it** (returned 1). Counting and
//! acknowledging are therefore one atomic step: an entry redelivered after a crash, or reclaimed
//! by another replica, was either not counted and not acknowledged (counted now) or both (XACK
//! returns 0, nothing is counted again). No per-entry markers are kept, so memory stays that of
//! the aggregates. Ingest already de-duplicates Okta's re-deliveries by event `uuid`, so an event
//! is counted once end to end — except after an ingest write failed half-way through an event
//! (e.g. a route stream key of the wrong type): the retry writes that event to the firehose a
//! second time, and it is counted twice.
//!
//! Distinct active users are a HyperLogLog (`PFADD`, 12 KB per tenant and month at most, standard
//! error 0.81 %); a bottom-k sample (the [`MFA_SAMPLE`] active users with the smallest hash) is
//! kept beside it so the MFA share can be measured on real projections at compile time.

use std::collections::HashMap;

use crate::store::RedisConn;
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use redis::{RedisResult, Script};
use sha2::{Digest, Sha256};

use super::month::ReportMonth;
use crate::store::Keys;

const COUNT_SCRIPT: &str = include_str!("count.lua");

/// Active users kept per tenant and month for the MFA share (exact below this many).
pub const MFA_SAMPLE: usize = 200;

/// The tenant label of events without a tenant.
pub const NO_TENANT: &str = "-";

/// Counter fields of the per-tenant hash.
pub mod counter {
    pub const NEW_USERS: &str = "new_users";
    pub const ACTIVATIONS: &str = "activations";
    pub const DEACTIVATIONS: &str = "deactivations";
    pub const SUSPENSIONS: &str = "suspensions";
    pub const DELETIONS: &str = "deletions";
    pub const SIGN_INS_OK: &str = "sign_ins_ok";
    pub const SIGN_INS_FAILED: &str = "sign_ins_failed";
    pub const LOCKOUTS: &str = "lockouts";
    pub const PASSWORD_RESETS: &str = "password_resets";
    pub const MFA_ENROLMENTS: &str = "mfa_enrolments";
    pub const MFA_RESETS: &str = "mfa_resets";
    pub const IMPORTS_VERIFIED: &str = "imports_verified";
    pub const IMPORTS_UNVERIFIED: &str = "imports_unverified";
    pub const JOB_ROWS_DONE: &str = "job_rows_done";
    pub const JOB_ROWS_FAILED: &str = "job_rows_failed";
}

/// Fields of the month's hook-health hash.
pub mod hook_field {
    pub const RECEIVED: &str = "received";
    pub const DUPLICATES: &str = "duplicates";
    pub const UNAVAILABLE: &str = "unavailable";
    /// `lat:ingest:<bucket>` / `lat:inline:<bucket>`: latency histogram buckets.
    pub const INGEST_LATENCY: &str = "lat:ingest:";
    pub const INLINE_LATENCY: &str = "lat:inline:";
    /// `inline:<hook>:<outcome>`: inline decisions.
    pub const INLINE: &str = "inline:";
    /// Events System Log backfill wrote that the event hook had missed (month total).
    pub const BACKFILLED: &str = "backfilled";
    /// `backfilled:h:<YYYY-MM-DDTHH>`: the same, per UTC hour of the events' `published` time.
    pub const BACKFILLED_HOUR: &str = "backfilled:h:";
}

/// Upper bounds (ms) of the latency buckets; the last bucket is "more".
pub const LATENCY_BUCKETS_MS: &[u64] = &[1, 2, 3, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// The bucket label of a latency: its upper bound, or `inf`.
pub fn latency_bucket(ms: f64) -> String {
    LATENCY_BUCKETS_MS
        .iter()
        .find(|b| ms <= **b as f64)
        .map(|b| b.to_string())
        .unwrap_or_else(|| "inf".into())
}

/// One change to the aggregates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `HINCRBY key field by`
    Incr { key: String, field: String, by: i64 },
    /// `PFADD key member`
    Distinct { key: String, member: String },
    /// `ZADD key score member`, then keep the `MFA_SAMPLE` smallest.
    Sample {
        key: String,
        member: String,
        score: u64,
    },
    /// `SADD key member`
    Member { key: String, member: String },
}

/// Score of a user in the bottom-k sample: 48 bits of SHA-256, exact in a double.
pub fn sample_score(user: &str) -> u64 {
    let h = Sha256::digest(user.as_bytes());
    u64::from_be_bytes([0, 0, h[0], h[1], h[2], h[3], h[4], h[5]])
}

/// What a firehose entry counts for; `fields` are the entry's stream fields.
pub fn contributions_for_event(keys: &Keys, tz: Tz, fields: &HashMap<String, String>) -> Vec<Op> {
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    event_ops(
        keys,
        tz,
        get("type"),
        get("published"),
        get("tenant"),
        get("user"),
        get("outcome"),
    )
}

/// [`contributions_for_event`] on the fields themselves (the benchmark feeds these directly).
pub fn event_ops(
    keys: &Keys,
    tz: Tz,
    event_type: &str,
    published: &str,
    tenant: &str,
    user: &str,
    outcome: &str,
) -> Vec<Op> {
    let Ok(at) = DateTime::parse_from_rfc3339(published) else {
        return Vec::new();
    };
    let at = at.with_timezone(&Utc);
    let month = ReportMonth::of(at, tz).to_string();
    let tenant = if tenant.is_empty() { NO_TENANT } else { tenant };
    let success = outcome.is_empty() || outcome.eq_ignore_ascii_case("SUCCESS");
    let failure = outcome.eq_ignore_ascii_case("FAILURE") || outcome.eq_ignore_ascii_case("DENY");
    use counter::*;
    let counted: &[&str] = match event_type {
        "user.lifecycle.create" if success => &[NEW_USERS],
        "user.lifecycle.activate" if success => &[ACTIVATIONS],
        "user.lifecycle.deactivate" if success => &[DEACTIVATIONS],
        "user.lifecycle.suspend" if success => &[SUSPENSIONS],
        "user.lifecycle.delete.initiated" if success => &[DELETIONS],
        "user.session.start" if success => &[SIGN_INS_OK],
        "user.session.start" if failure => &[SIGN_INS_FAILED],
        "user.account.lock" if success => &[LOCKOUTS],
        "user.account.reset_password" if success => &[PASSWORD_RESETS],
        "user.mfa.factor.activate" if success => &[MFA_ENROLMENTS],
        "user.mfa.factor.reset_all" if success => &[MFA_RESETS],
        "user.import.password" if success => &[IMPORTS_VERIFIED],
        "user.import.password" if failure => &[IMPORTS_UNVERIFIED],
        _ => &[],
    };
    if counted.is_empty() {
        return Vec::new();
    }
    let counters = keys.report_counters(&month, tenant);
    let mut ops: Vec<Op> = counted
        .iter()
        .map(|f| Op::Incr {
            key: counters.clone(),
            field: (*f).to_string(),
            by: 1,
        })
        .collect();
    if event_type == "user.session.start" {
        let day = at.with_timezone(&tz).day();
        let what = if success { "ok" } else { "fail" };
        ops.push(Op::Incr {
            key: counters.clone(),
            field: format!("day:{day:02}:{what}"),
            by: 1,
        });
        if success && !user.is_empty() {
            ops.push(Op::Distinct {
                key: keys.report_active(&month, tenant),
                member: user.to_string(),
            });
            ops.push(Op::Sample {
                key: keys.report_active_sample(&month, tenant),
                member: user.to_string(),
                score: sample_score(user),
            });
        }
    }
    ops.push(Op::Member {
        key: keys.report_tenants(&month),
        member: tenant.to_string(),
    });
    ops
}

/// One entry of the inline-hook decision stream.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineDecision {
    /// Which inline hook answered, e.g. `password-import`.
    pub hook: String,
    pub user: String,
    /// The hook's answer, e.g. `verified`, `unverified`, `allow`, `deny`, `timeout`.
    pub outcome: String,
    pub latency_ms: f64,
    pub at: DateTime<Utc>,
}

/// Reads a decision-stream entry. THE one place that knows that stream's field names: the
/// inline-hook code owns the format, so adapt only this when it changes. The inline-hooks branch
/// writes `v, type (the hook's name), user, outcome, latency_ms, deadline_hit, event_id, at`;
/// `hook` is accepted as well. `id_ms` is the stream entry id's time, used when there is no `at`.
pub fn parse_decision(fields: &HashMap<String, String>, id_ms: i64) -> Option<InlineDecision> {
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let hook = match get("hook") {
        "" => get("type"),
        h => h,
    };
    if hook.is_empty() {
        return None;
    }
    let at = DateTime::parse_from_rfc3339(get("at"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| DateTime::from_timestamp_millis(id_ms))?;
    Some(InlineDecision {
        hook: hook.to_string(),
        user: get("user").to_string(),
        outcome: match get("outcome") {
            "" => "unknown".to_string(),
            o => o.to_ascii_lowercase(),
        },
        latency_ms: get("latency_ms").parse().unwrap_or(0.0),
        at,
    })
}

/// What an inline decision counts for: hook health of its month.
pub fn contributions_for_decision(keys: &Keys, tz: Tz, d: &InlineDecision) -> Vec<Op> {
    let key = keys.report_hooks(&ReportMonth::of(d.at, tz).to_string());
    vec![
        Op::Incr {
            key: key.clone(),
            field: format!("{}{}:{}", hook_field::INLINE, d.hook, d.outcome),
            by: 1,
        },
        Op::Incr {
            key,
            field: format!(
                "{}{}",
                hook_field::INLINE_LATENCY,
                latency_bucket(d.latency_ms)
            ),
            by: 1,
        },
    ]
}

/// What a bulk-job row counts for: migration progress of its tenant and month.
pub fn contributions_for_job_row(
    keys: &Keys,
    tz: Tz,
    fields: &HashMap<String, String>,
    id_ms: i64,
) -> Vec<Op> {
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let field = match get("outcome") {
        "done" => counter::JOB_ROWS_DONE,
        "failed" => counter::JOB_ROWS_FAILED,
        _ => return Vec::new(),
    };
    let Some(at) = DateTime::parse_from_rfc3339(get("at"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| DateTime::from_timestamp_millis(id_ms))
    else {
        return Vec::new();
    };
    let month = ReportMonth::of(at, tz).to_string();
    let tenant = match get("tenant") {
        "" => NO_TENANT,
        t => t,
    };
    vec![
        Op::Incr {
            key: keys.report_counters(&month, tenant),
            field: field.to_string(),
            by: 1,
        },
        Op::Member {
            key: keys.report_tenants(&month),
            member: tenant.to_string(),
        },
    ]
}

/// The millisecond part of a stream entry id (`1700000000000-0`).
pub fn entry_id_ms(id: &str) -> i64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

/// Sends batches of ops to Redis.
#[derive(Clone)]
pub struct Counter {
    script: Script,
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

/// Whose acknowledgement gates counting: entries of `stream` pending in `group`.
#[derive(Debug, Clone, Copy)]
pub struct AckGate<'a> {
    pub stream: &'a str,
    pub group: &'a str,
}

impl Counter {
    pub fn new() -> Self {
        Self {
            script: Script::new(COUNT_SCRIPT),
        }
    }

    /// Counts a batch: `(entry id, ops)` pairs. With a gate, each entry is acknowledged in the
    /// same script and counted only if it was still pending; returns how many were counted.
    /// Without a gate (benchmark, hook-health flushes) every entry is counted.
    pub async fn apply(
        &self,
        conn: &mut RedisConn,
        gate: Option<AckGate<'_>>,
        entries: &[(String, Vec<Op>)],
    ) -> RedisResult<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        self.invocation(gate, entries).invoke_async(conn).await
    }

    /// The script call for a batch (the benchmark pipelines several of these).
    pub fn invocation<'s>(
        &'s self,
        gate: Option<AckGate<'_>>,
        entries: &[(String, Vec<Op>)],
    ) -> redis::ScriptInvocation<'s> {
        let mut inv = self.script.prepare_invoke();
        let mut key_index: HashMap<&str, usize> = HashMap::new();
        let mut key_list: Vec<&str> = Vec::new();
        if let Some(g) = gate {
            key_list.push(g.stream);
        }
        // Keys are declared (KEYS[]) so the script stays legal on a cluster; ops refer to them
        // by index to keep the argument list short.
        let mut op_keys: Vec<usize> = Vec::new();
        for (_, ops) in entries {
            for op in ops {
                let k = match op {
                    Op::Incr { key, .. }
                    | Op::Distinct { key, .. }
                    | Op::Sample { key, .. }
                    | Op::Member { key, .. } => key.as_str(),
                };
                let i = *key_index.entry(k).or_insert_with(|| {
                    key_list.push(k);
                    key_list.len()
                });
                op_keys.push(i);
            }
        }
        for k in &key_list {
            inv.key(*k);
        }
        inv.arg(if gate.is_some() { "1" } else { "0" })
            .arg(gate.map(|g| g.group).unwrap_or(""))
            .arg(MFA_SAMPLE)
            .arg(entries.len());
        let mut op_keys = op_keys.into_iter();
        for (id, ops) in entries {
            inv.arg(id).arg(ops.len());
            for op in ops {
                let k = op_keys.next().expect("one key index per op");
                match op {
                    Op::Incr { field, by, .. } => inv.arg("h").arg(k).arg(field).arg(*by),
                    Op::Distinct { member, .. } => inv.arg("p").arg(k).arg(member).arg(0),
                    Op::Sample { member, score, .. } => inv.arg("z").arg(k).arg(member).arg(*score),
                    Op::Member { member, .. } => inv.arg("s").arg(k).arg(member).arg(0),
                };
            }
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new("p")
    }

    fn incr_fields(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .filter_map(|o| match o {
                Op::Incr { field, .. } => Some(field.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_successful_sign_in_counts_once_per_day_and_adds_an_active_user() {
        let ops = event_ops(
            &keys(),
            chrono_tz::UTC,
            "user.session.start",
            "2026-10-05T08:00:00Z",
            "acme",
            "00u1",
            "SUCCESS",
        );
        assert_eq!(incr_fields(&ops), ["sign_ins_ok", "day:05:ok"]);
        assert!(ops.contains(&Op::Distinct {
            key: "p:{events}:report:2026-10:active:acme".into(),
            member: "00u1".into()
        }));
        assert!(ops.iter().any(|o| matches!(o, Op::Sample { .. })));
    }

    #[test]
    fn a_failed_sign_in_is_not_an_active_user_and_other_outcomes_count_nothing() {
        let f = |outcome| {
            event_ops(
                &keys(),
                chrono_tz::UTC,
                "user.session.start",
                "2026-10-05T08:00:00Z",
                "",
                "00u1",
                outcome,
            )
        };
        let failed = f("FAILURE");
        assert_eq!(incr_fields(&failed), ["sign_ins_failed", "day:05:fail"]);
        assert!(failed
            .iter()
            .all(|o| !matches!(o, Op::Distinct { .. } | Op::Sample { .. })));
        assert!(failed.contains(&Op::Member {
            key: "p:{events}:report:2026-10:tenants".into(),
            member: NO_TENANT.into()
        }));
        assert!(f("CHALLENGE").is_empty());
    }

    #[test]
    fn the_month_follows_the_business_time_zone() {
        let ops = event_ops(
            &keys(),
            chrono_tz::Europe::Berlin,
            "user.lifecycle.create",
            "2026-10-31T23:30:00Z",
            "acme",
            "00u1",
            "SUCCESS",
        );
        assert!(matches!(&ops[0], Op::Incr { key, .. } if key.contains(":2026-11:")));
    }

    #[test]
    fn decisions_are_parsed_in_one_place_with_the_entry_time_as_fallback() {
        let f: HashMap<String, String> = [
            ("hook", "password-import"),
            ("user", "00u1"),
            ("outcome", "VERIFIED"),
            ("latency_ms", "4.2"),
        ]
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
        let d = parse_decision(&f, 1_790_845_200_000).unwrap();
        assert_eq!(d.outcome, "verified");
        assert_eq!(d.at.to_rfc3339(), "2026-10-01T09:00:00+00:00");
        let ops = contributions_for_decision(&keys(), chrono_tz::UTC, &d);
        assert_eq!(
            incr_fields(&ops),
            ["inline:password-import:verified", "lat:inline:5"]
        );
        assert!(parse_decision(&HashMap::new(), 0).is_none());
        // The inline-hooks writer's own format: the hook's name in `type`, an explicit `at`.
        let written: HashMap<String, String> = [
            ("v", "1"),
            ("type", "password-import"),
            ("user", "00u1"),
            ("outcome", "unverified"),
            ("latency_ms", "12.250"),
            ("deadline_hit", "0"),
            ("event_id", "evt1"),
            ("at", "2026-10-31T23:59:59.000Z"),
        ]
        .into_iter()
        .map(|(a, b)| (a.into(), b.into()))
        .collect();
        let d = parse_decision(&written, 0).unwrap();
        assert_eq!(
            (d.hook.as_str(), d.outcome.as_str()),
            ("password-import", "unverified")
        );
        assert_eq!(latency_bucket(d.latency_ms), "25");
        assert_eq!(ReportMonth::of(d.at, chrono_tz::UTC).to_string(), "2026-10");
    }

    #[test]
    fn latency_buckets_have_upper_bounds() {
        assert_eq!(latency_bucket(0.3), "1");
        assert_eq!(latency_bucket(5.0), "5");
        assert_eq!(latency_bucket(5.1), "10");
        assert_eq!(latency_bucket(9_000.0), "inf");
    }
}
