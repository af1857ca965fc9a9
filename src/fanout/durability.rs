//! What a 204 to Okta waits for (`hooks.durability`), checked against what Redis offers.
//!
//! The ingest script's reply means "in Redis's memory". Whether that survives a Redis crash
//! depends on Redis's persistence: with `appendfsync always` the reply follows the fsync; with
//! `everysec` up to a second of acknowledged writes can be lost; without AOF everything since the
//! last snapshot. `hooks.durability` says which of these a 204 must mean:
//!
//! - `memory` — nothing more (a warning at start when Redis has no AOF and no replica);
//! - `aof` — AOF on disk: `appendfsync always` needs nothing more; on Redis ≥ 7.2
//!   `WAITAOF 1 0` follows the script (so `everysec` works too); anything else is a start error;
//! - `replicas:N` — `WAIT N timeout` follows the script; fewer acknowledgements than N is a
//!   failed write (the delivery is spooled, or 503), never a 204.
//!
//! The probe runs at start and in `/readyz`.

use crate::store::RedisConn;
use redis::RedisResult;

use crate::config::Durability;

/// What Redis reports about its persistence and replication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisPersistence {
    pub version: (u32, u32, u32),
    pub aof_enabled: bool,
    /// `always`, `everysec`, `no`; `None` when `CONFIG GET` is not allowed.
    pub appendfsync: Option<String>,
    /// `master` or `slave`.
    pub role: String,
    pub connected_replicas: u32,
}

impl RedisPersistence {
    /// Reads `INFO server|persistence|replication` and `CONFIG GET appendfsync`.
    pub async fn probe(conn: &mut RedisConn) -> RedisResult<Self> {
        let mut info = String::new();
        for section in ["server", "persistence", "replication"] {
            // One Redis answers text; a cluster answers a map of node → text (every master).
            // The masters are set up alike; the first one's answer speaks for them.
            let reply: redis::Value = redis::cmd("INFO").arg(section).query_async(conn).await?;
            let reply = match reply {
                redis::Value::Map(nodes) => nodes
                    .into_iter()
                    .next()
                    .map(|(_, text)| text)
                    .unwrap_or(redis::Value::Nil),
                other => other,
            };
            let text: String = redis::from_redis_value(reply)?;
            info.push_str(&text);
        }
        let appendfsync: Option<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .query_async::<Vec<String>>(conn)
            .await
            .ok()
            .and_then(|v| v.get(1).cloned());
        Ok(Self::parse(&info, appendfsync))
    }

    /// Parses `INFO` text (pure, for tests).
    pub fn parse(info: &str, appendfsync: Option<String>) -> Self {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let mut version = (0, 0, 0);
        if let Some(v) = field("redis_version") {
            let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
            version = (
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
                parts.next().unwrap_or(0),
            );
        }
        Self {
            version,
            aof_enabled: field("aof_enabled") == Some("1"),
            appendfsync,
            role: field("role").unwrap_or("").to_owned(),
            connected_replicas: field("connected_slaves")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }

    /// `WAITAOF` exists from Redis 7.2.
    pub fn has_waitaof(&self) -> bool {
        self.version >= (7, 2, 0)
    }

    /// One line for `/readyz` and the start log.
    pub fn describe(&self) -> String {
        format!(
            "redis {}.{}.{} {}, aof {}{}, {} connected replica(s)",
            self.version.0,
            self.version.1,
            self.version.2,
            self.role,
            if self.aof_enabled { "on" } else { "off" },
            self.appendfsync
                .as_deref()
                .map(|f| format!(" (appendfsync {f})"))
                .unwrap_or_default(),
            self.connected_replicas
        )
    }
}

/// The extra step after the ingest script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitStep {
    /// The script's reply is enough.
    #[default]
    None,
    /// `WAITAOF 1 0 timeout`: this Redis has fsync'd our writes.
    WaitAof { timeout_ms: u64 },
    /// `WAIT n timeout`: `n` replicas have our writes.
    Wait { replicas: u32, timeout_ms: u64 },
}

/// What `hooks.durability` needs from this Redis: the wait step and warnings, or why it cannot
/// be honoured (a start error).
pub fn plan(
    setting: Durability,
    redis: &RedisPersistence,
    timeout_ms: u64,
) -> Result<(WaitStep, Vec<String>), String> {
    let mut warnings = Vec::new();
    let always = redis.aof_enabled && redis.appendfsync.as_deref() == Some("always");
    let step = match setting {
        Durability::Memory => {
            if !redis.aof_enabled && redis.connected_replicas == 0 {
                warnings.push(format!(
                    "hooks.durability = memory and Redis has no AOF and no replica ({}): a Redis \
                     crash or restart loses every acknowledged event it holds; set \
                     `appendonly yes` + `appendfsync always` and hooks.durability = \"aof\"",
                    redis.describe()
                ));
            } else if redis.aof_enabled && !always {
                warnings.push(format!(
                    "hooks.durability = memory with {}: a Redis crash can lose about the last \
                     second of acknowledged events; hooks.durability = \"aof\" closes that",
                    redis.describe()
                ));
            }
            WaitStep::None
        }
        Durability::Aof => {
            if !redis.aof_enabled {
                return Err(format!(
                    "hooks.durability = \"aof\" but Redis has no append-only file ({}): set \
                     `appendonly yes` (and `appendfsync always`) or choose hooks.durability = \
                     \"memory\"",
                    redis.describe()
                ));
            }
            if always {
                WaitStep::None
            } else if redis.has_waitaof() {
                WaitStep::WaitAof { timeout_ms }
            } else {
                return Err(format!(
                    "hooks.durability = \"aof\" needs `appendfsync always`, or Redis >= 7.2 \
                     (WAITAOF) ({})",
                    redis.describe()
                ));
            }
        }
        Durability::Replicas(n) => {
            if redis.connected_replicas < n {
                warnings.push(format!(
                    "hooks.durability = replicas:{n} but only {} replica(s) are connected now: \
                     deliveries are spooled (or refused) until {n} acknowledge",
                    redis.connected_replicas
                ));
            }
            WaitStep::Wait {
                replicas: n,
                timeout_ms,
            }
        }
    };
    Ok((step, warnings))
}

/// Runs the wait step on the connection that wrote `key`. Too few acknowledgements is an error
/// whose kind is I/O, so the handler treats it as "Redis cannot take it" (spool, or 503).
///
/// On a cluster the step goes to the master of `key`'s slot only, the node the script wrote to
/// (`WAIT` counts this connection's writes on that node). redis-rs would otherwise send `WAIT`
/// to every master and take the smallest answer, so a master without a replica — e.g. one just
/// promoted after a failover, holding none of the ingest keys — would refuse every delivery.
pub async fn wait(step: WaitStep, conn: &mut RedisConn, key: &str) -> RedisResult<()> {
    match step {
        WaitStep::None => Ok(()),
        WaitStep::WaitAof { timeout_ms } => {
            let mut cmd = redis::cmd("WAITAOF");
            cmd.arg(1).arg(0).arg(timeout_ms);
            let acks: Vec<i64> = on_key_master(conn, cmd, key).await?;
            if acks.first().copied().unwrap_or(0) < 1 {
                return Err(not_durable("WAITAOF: the write is not yet fsync'd"));
            }
            Ok(())
        }
        WaitStep::Wait {
            replicas,
            timeout_ms,
        } => {
            let mut cmd = redis::cmd("WAIT");
            cmd.arg(replicas).arg(timeout_ms);
            let acked: i64 = on_key_master(conn, cmd, key).await?;
            if acked < i64::from(replicas) {
                return Err(not_durable(&format!(
                    "WAIT: {acked} of {replicas} replicas acknowledged"
                )));
            }
            Ok(())
        }
    }
}

/// `cmd` on the node of `key` (on one Redis: that Redis).
async fn on_key_master<T: redis::FromRedisValue>(
    conn: &mut RedisConn,
    cmd: redis::Cmd,
    key: &str,
) -> RedisResult<T> {
    match conn {
        RedisConn::Single(_) => cmd.query_async(conn).await,
        RedisConn::Cluster(cluster) => {
            use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
            let slot = crate::store::conn::key_slot(key);
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                slot,
                SlotAddr::Master,
            )));
            Ok(redis::from_redis_value(
                cluster.route_command(cmd, route).await?,
            )?)
        }
    }
}

fn not_durable(why: &str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(format!(
        "not durable per hooks.durability: {why}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(version: &str, aof: bool, fsync: Option<&str>, replicas: u32) -> RedisPersistence {
        let info = format!(
            "# Server\r\nredis_version:{version}\r\n# Persistence\r\naof_enabled:{}\r\n# Replication\r\nrole:master\r\nconnected_slaves:{replicas}\r\n",
            u8::from(aof)
        );
        RedisPersistence::parse(&info, fsync.map(str::to_owned))
    }

    #[test]
    fn info_is_read() {
        let r = redis("7.0.15", true, Some("always"), 2);
        assert_eq!(r.version, (7, 0, 15));
        assert!(r.aof_enabled && !r.has_waitaof());
        assert_eq!((r.role.as_str(), r.connected_replicas), ("master", 2));
        assert!(redis("7.2.4", false, None, 0).has_waitaof());
    }

    #[test]
    fn each_setting_is_checked_against_what_redis_offers() {
        use Durability::*;
        let t = 1000;
        // memory: always allowed, warned when a crash loses acknowledged events.
        let (step, warn) = plan(Memory, &redis("7.0.0", false, Some("everysec"), 0), t).unwrap();
        assert_eq!(step, WaitStep::None);
        assert!(warn[0].contains("no AOF"));
        assert!(plan(Memory, &redis("7.0.0", true, Some("always"), 0), t)
            .unwrap()
            .1
            .is_empty());
        // aof: always → nothing to wait for; everysec → WAITAOF on 7.2, refused before.
        assert_eq!(
            plan(Aof, &redis("7.0.0", true, Some("always"), 0), t)
                .unwrap()
                .0,
            WaitStep::None
        );
        assert_eq!(
            plan(Aof, &redis("7.2.0", true, Some("everysec"), 0), t)
                .unwrap()
                .0,
            WaitStep::WaitAof { timeout_ms: t }
        );
        assert!(plan(Aof, &redis("7.0.15", true, Some("everysec"), 0), t)
            .unwrap_err()
            .contains("Redis >= 7.2"));
        assert!(plan(Aof, &redis("7.4.0", false, None, 0), t)
            .unwrap_err()
            .contains("no append-only file"));
        // replicas: WAIT; too few connected now is a warning (they may connect later).
        let (step, warn) = plan(Replicas(2), &redis("7.0.0", false, None, 1), t).unwrap();
        assert_eq!(
            step,
            WaitStep::Wait {
                replicas: 2,
                timeout_ms: t
            }
        );
        assert!(warn[0].contains("only 1 replica"));
    }
}
