//! `SCAN MATCH` over the whole keyspace, on one Redis or on every master of a Redis Cluster.
//!
//! On a cluster `SCAN` walks one node's keys only (and redis-rs routes it to any one node), so a
//! plain `SCAN` loop would see about a third of a 3-master cluster. [`scan_match`] asks the
//! cluster for its masters (`CLUSTER SLOTS`: one slot each master serves) and runs the cursor
//! loop on each of them, routed by that slot to its master. Keys of a slot migrating during the
//! scan may be seen twice or missed, as with `SCAN` on one node during a rehash: callers use it
//! for upkeep (rebuild, census), never for a promise.

use std::collections::BTreeMap;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{RedisResult, Value};

use super::RedisConn;

/// Keys returned per `SCAN` round trip (a hint to Redis).
const SCAN_COUNT: usize = 1000;

/// Every key matching the glob `pattern` (on a cluster: on every master), at most `limit` of
/// them when given. Unordered; a key may appear twice if it moved slots meanwhile.
pub async fn scan_match(
    conn: &mut RedisConn,
    pattern: &str,
    limit: Option<usize>,
) -> RedisResult<Vec<String>> {
    let mut found = Vec::new();
    let full = |found: &Vec<String>| limit.is_some_and(|l| found.len() >= l);
    match conn {
        RedisConn::Single(_) => {
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) =
                    scan_cmd(cursor, pattern).query_async(conn).await?;
                found.extend(batch);
                cursor = next;
                if cursor == 0 || full(&found) {
                    break;
                }
            }
        }
        RedisConn::Cluster(cluster) => {
            for slot in master_slots(cluster).await? {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                let mut cursor = 0u64;
                loop {
                    let reply = cluster
                        .route_command(scan_cmd(cursor, pattern), route.clone())
                        .await?;
                    let (next, batch): (u64, Vec<String>) = redis::from_redis_value(reply)?;
                    found.extend(batch);
                    cursor = next;
                    if cursor == 0 || full(&found) {
                        break;
                    }
                }
                if full(&found) {
                    break;
                }
            }
        }
    }
    if let Some(l) = limit {
        found.truncate(l);
    }
    Ok(found)
}

/// `*`, `?`, `[`, `]` and `\\` escaped for `SCAN MATCH`.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn scan_cmd(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    cmd
}

/// One slot served by each master (the first of its ranges), from `CLUSTER SLOTS`; routing a
/// command by that slot reaches that master.
async fn master_slots(
    cluster: &mut redis::cluster_async::ClusterConnection,
) -> RedisResult<Vec<u16>> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(cluster)
        .await?;
    Ok(masters_of(&reply).into_values().collect())
}

/// master node (id, or `host:port` when the reply has no id) → the lowest slot it serves.
fn masters_of(reply: &Value) -> BTreeMap<String, u16> {
    let mut masters: BTreeMap<String, u16> = BTreeMap::new();
    let Value::Array(ranges) = reply else {
        return masters;
    };
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        let (Some(Value::Int(start)), Some(Value::Array(master))) = (parts.first(), parts.get(2))
        else {
            continue;
        };
        let text = |v: Option<&Value>| match v {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            Some(Value::Int(i)) => i.to_string(),
            _ => String::new(),
        };
        let id = match text(master.get(2)) {
            id if !id.is_empty() => id,
            _ => format!("{}:{}", text(master.first()), text(master.get(1))),
        };
        let Ok(start) = u16::try_from(*start) else {
            continue;
        };
        masters
            .entry(id)
            .and_modify(|s| *s = (*s).min(start))
            .or_insert(start);
    }
    masters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn one_slot_per_master_from_cluster_slots() {
        // Two ranges on master a (with a replica), one on master b.
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7002), bulk("a")]),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7005), bulk("r")]),
            ]),
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7000), bulk("b")]),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(5470),
                Value::Array(vec![bulk("127.0.0.1"), Value::Int(7002), bulk("a")]),
            ]),
        ]);
        let m = masters_of(&reply);
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"], 5461);
        assert_eq!(m["b"], 0);
        assert!(masters_of(&Value::Nil).is_empty());
    }
}
