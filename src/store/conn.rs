//! [`RedisConn`]: the one connection type the adapter uses, to one Redis or to a Redis Cluster
//! (`redis.cluster`). Code above it runs commands, scripts and pipelines through redis-rs's
//! `ConnectionLike` and never knows which one it has.
//!
//! - Single Redis: redis-rs's `ConnectionManager` (multiplexed, reconnects by itself).
//! - Cluster: redis-rs's async `ClusterConnection` (`cluster-async`): routes each command by its
//!   key's slot, follows `MOVED`/`ASK` after a resharding or failover, and refreshes the slot map.
//!   `Script` re-loads itself on `NOSCRIPT` (a new master after failover has an empty script
//!   cache), on either kind.
//!
//! On a cluster, a script and an atomic pipeline (`MULTI`) must touch one slot: the keys in
//! `store::keys` carry hash tags for that, and `tests` check every script's keys. A non-atomic
//! pipeline promises no atomicity, only fewer round trips; redis-rs sends a pipeline to one node,
//! so one whose keys span slots (e.g. index writes for many users) is sent here as one pipeline
//! per slot, each in the original order, and the answers are put back in the original order.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Arg, Cmd, Pipeline, RedisFuture, Value};

/// A connection to one Redis or to a Redis Cluster; cheap to clone (both are multiplexed).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }
}

impl From<ConnectionManager> for RedisConn {
    fn from(c: ConnectionManager) -> Self {
        RedisConn::Single(c)
    }
}

impl From<ClusterConnection> for RedisConn {
    fn from(c: ClusterConnection) -> Self {
        RedisConn::Cluster(c)
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => {
                let slots = pipeline_slots(pipeline);
                let spans_slots = slots
                    .iter()
                    .flatten()
                    .collect::<std::collections::HashSet<_>>();
                if pipeline.is_transaction() || spans_slots.len() <= 1 {
                    return c.req_packed_commands(pipeline, offset, count);
                }
                let mut c = c.clone();
                Box::pin(async move { split_by_slot(&mut c, pipeline, &slots).await })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// The slot each command of `pipeline` routes to (`None`: no key, any node).
fn pipeline_slots(pipeline: &Pipeline) -> Vec<Option<u16>> {
    pipeline
        .cmd_iter()
        .map(|cmd| first_key(cmd).map(key_slot_bytes))
        .collect()
}

/// The first key of a command, by Redis's key positions for the commands this adapter
/// pipelines: scripts (`EVALSHA sha numkeys key…`), stream reads (`… STREAMS key…`), keyless
/// commands, and otherwise the first argument.
fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let numkeys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            (numkeys > 0).then(|| args.get(3).copied()).flatten()
        }
        b"XREAD" | b"XREADGROUP" => {
            let at = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
            args.get(at + 1).copied()
        }
        b"PING" | b"MULTI" | b"EXEC" | b"DISCARD" | b"INFO" | b"TIME" | b"DBSIZE" | b"SCRIPT"
        | b"CLUSTER" | b"CONFIG" | b"CLIENT" | b"SCAN" | b"KEYS" => None,
        _ => args.get(1).copied(),
    }
}

/// Runs a non-atomic pipeline whose commands span slots as one pipeline per slot (commands with
/// no key go with the first slot), concurrently, and returns the answers in the original order.
async fn split_by_slot(
    conn: &mut ClusterConnection,
    pipeline: &Pipeline,
    slots: &[Option<u16>],
) -> redis::RedisResult<Vec<Value>> {
    let first = slots.iter().flatten().next().copied();
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let slot = slot.or(first).unwrap_or(0);
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, members)) => members.push(i),
            None => groups.push((slot, vec![i])),
        }
    }
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let runs = groups.iter().map(|(_, members)| {
        let mut part = redis::pipe();
        for &i in members {
            part.add_command(cmds[i].clone());
        }
        let mut conn = conn.clone();
        async move {
            let n = part.len();
            conn.req_packed_commands(&part, 0, n).await
        }
    });
    let answers = futures::future::try_join_all(runs).await?;
    let mut out = vec![Value::Nil; slots.len()];
    for ((_, members), values) in groups.iter().zip(answers) {
        for (&i, v) in members.iter().zip(values) {
            out[i] = v;
        }
    }
    Ok(out)
}

/// Redis Cluster's slot of a key (CRC16/XMODEM of the hash tag or the whole key, mod 16384), as
/// the server computes it: for tests and docs that check which keys share a slot.
pub fn key_slot(key: &str) -> u16 {
    key_slot_bytes(key.as_bytes())
}

fn key_slot_bytes(bytes: &[u8]) -> u16 {
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        bytes[open + 1..]
            .iter()
            .position(|&b| b == b'}')
            .filter(|&len| len > 0)
            .map(|len| &bytes[open + 1..open + 1 + len])
    });
    crc16_xmodem(tagged.unwrap_or(bytes)) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slot_matches_the_redis_cluster_spec_examples() {
        // From the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(
            key_slot("{user1000}.following"),
            key_slot("{user1000}.followers")
        );
        assert_eq!(key_slot("foo{}{bar}"), key_slot("foo{}{bar}")); // empty tag: whole key
        assert_ne!(key_slot("foo{}{bar}"), key_slot("bar"));
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
    }
}

/// Every Lua script and `MULTI` of the adapter with the keys it is given, checked against Redis
/// Cluster's rule that they share one slot (CRC16 of the hash tag). A new script belongs here.
#[cfg(test)]
mod slot_tests {
    use super::key_slot;
    use crate::store::Keys;

    fn one_slot(keys: &[String]) -> bool {
        keys.iter().all(|k| key_slot(k) == key_slot(&keys[0]))
    }

    #[test]
    fn every_script_s_keys_share_one_cluster_slot() {
        let k = Keys::new("okta-adapter");
        let scripts: Vec<(&str, Vec<String>)> = vec![
            // fanout::INGEST_SCRIPT: firehose, user → tenant, dedup, every route stream.
            (
                "fanout ingest",
                vec![
                    k.firehose(),
                    k.user_tenant(),
                    k.dedup(),
                    k.route("lifecycle"),
                    k.route("credential-imports"),
                    k.credential_imports(),
                ],
            ),
            ("fanout dedup trim", vec![k.dedup()]),
            ("projection apply", vec![k.user("00uA1")]),
            ("okta rate", vec![k.okta_rate("users")]),
            (
                "job rows / results",
                vec![k.job("j1"), k.job_results("j1"), k.job_attempts("j1")],
            ),
            // jobs::store end_upload_script: the job hash only (`jobs:validating` is updated
            // after it, in its own command).
            ("job upload end", vec![k.job("j1")]),
            ("job cancel", vec![k.job("j1")]),
            (
                "report count (aggregate)",
                vec![
                    k.report_counters("2026-11", "acme"),
                    k.report_active("2026-11", "acme"),
                    k.report_active_sample("2026-11", "acme"),
                    k.report_tenants("2026-11"),
                    k.report_hooks("2026-11"),
                    k.firehose(),
                    k.inline_decisions(),
                    k.job_rows(),
                ],
            ),
            ("report hook-stats MULTI", vec![k.report_hooks("2026-11")]),
            (
                "report sent MULTI",
                vec![
                    k.report_sent("2026-11"),
                    k.report_last_sent(),
                    k.report_attempt("2026-11"),
                ],
            ),
            (
                "report lease renew/release",
                vec![k.report_lease("2026-11")],
            ),
            // tenants::store: queue (apply record + tenant hash), finish, each step's record,
            // the take-over script. The listing, the queue and the config stream are written
            // outside them, in a crash-safe order.
            (
                "tenant queue / finish / step MULTI",
                vec![
                    k.tenant_apply("acme", "a1"),
                    k.tenant("acme"),
                    k.tenant_ids("acme"),
                ],
            ),
            ("tenant take-over", vec![k.tenant("acme")]),
            (
                "self-service link claim MULTI",
                vec![k.self_service_token("d")],
            ),
            (
                "password import reserve/release",
                vec![
                    k.legacy_credential("Jane@Acme.example"),
                    k.credential_failures("jane@acme.example"),
                ],
            ),
        ];
        for (name, keys) in &scripts {
            assert!(one_slot(keys), "{name}: keys on several slots: {keys:?}");
        }
    }

    /// The send record had no hash tag before; its old names (still read, see
    /// `reporting::migrate`) are on other slots, which is why they are never written together.
    #[test]
    fn the_old_report_record_names_were_cross_slot() {
        let k = Keys::new("okta-adapter");
        assert!(!one_slot(&[
            k.legacy_report_sent("2026-11"),
            k.legacy_report_last_sent(),
            k.legacy_report_attempt("2026-11"),
        ]));
        assert_eq!(
            k.legacy_report_sent("2026-11"),
            "okta-adapter:report:sent:2026-11"
        );
        assert_eq!(
            k.report_sent("2026-11"),
            "okta-adapter:{report}:sent:2026-11"
        );
    }

    #[test]
    fn per_user_and_per_job_keys_spread_over_the_slots() {
        let k = Keys::new("okta-adapter");
        let users: std::collections::HashSet<u16> = (0..100)
            .map(|i| key_slot(&k.user(&format!("00u{i}"))))
            .collect();
        assert!(users.len() > 90, "{} slots for 100 users", users.len());
        let jobs: std::collections::HashSet<u16> = (0..50)
            .map(|i| key_slot(&k.job(&format!("j{i}"))))
            .collect();
        assert!(jobs.len() > 40);
    }
}
