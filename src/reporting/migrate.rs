//! Moves the report's send record to the `{report}` hash tag (issue 17), at start until it has
//! run once to the end (then `{report}:migrated` is set and later starts skip the scan).
//!
//! Up to now `report:sent:<month>`, `report:attempt:<month>` and `report:last-sent` had no hash
//! tag; the `MULTI` that records a send spans them, which a Redis Cluster refuses (`CROSSSLOT`).
//! They are now `<prefix>:{report}:sent:<month>` etc. Losing a `sent` record would mail that
//! month again, so the new code never relies on this migration alone: [`super::Reporter`] still
//! reads the old names when the new ones are missing. Here, every process at start:
//!
//! - copies each old `sent:<month>` to the new name (`SET NX`: a newer record wins) and keeps the
//!   old one — an older replica still running during a rolling upgrade reads it;
//! - moves each old `attempt:<month>` (its Message-ID is reused if the send is retried) and
//!   `last-sent` (the newer time wins), deleting the old key.
//!
//! A send by this build also writes the old `sent:<month>` name (before its `{report}` MULTI,
//! see [`super::deliver`]): an older replica still running reads only that name and would
//! otherwise mail the month again once the lease is free.
//!
//! Idempotent (a second run finds everything copied and changes nothing) and safe when several
//! processes run it at once. The report lease and `scheduled-since` keep their names (one key
//! per command), so old and new replicas exclude each other while they run side by side.

use redis::{AsyncCommands, RedisResult};

use crate::store::{scan_match, Keys, RedisConn};

/// What one run changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Old `sent:<month>` records copied to the new name.
    pub sent: usize,
    /// Old `attempt:<month>` records moved.
    pub attempts: usize,
    /// Whether the old `last-sent` was moved.
    pub last_sent: bool,
}

impl Migrated {
    pub fn changed(&self) -> bool {
        self.sent > 0 || self.attempts > 0 || self.last_sent
    }
}

/// Runs the migration; logs what it changed.
pub async fn migrate_report_keys(conn: &mut RedisConn, keys: &Keys) -> RedisResult<Migrated> {
    let mut out = Migrated::default();
    // The scan reads the whole keyspace of every master: once is enough. Records an older
    // replica writes under the old names afterwards are still read (the fallback reads).
    let done: bool = conn.exists(keys.report_keys_migrated()).await?;
    if done {
        return Ok(out);
    }
    let [sent_pattern, attempt_pattern] = keys.legacy_report_patterns();
    let sent_prefix = keys.legacy_report_sent("");
    for old in scan_match(conn, &sent_pattern, None).await? {
        let Some(month) = old.strip_prefix(&sent_prefix) else {
            continue;
        };
        let value: Option<String> = conn.get(&old).await?;
        let Some(value) = value else { continue };
        if set_nx(conn, &keys.report_sent(month), &value).await? {
            tracing::info!(
                month,
                "report sent record copied to its {{report}}-tagged name"
            );
            out.sent += 1;
        }
    }
    let attempt_prefix = keys.legacy_report_attempt("");
    for old in scan_match(conn, &attempt_pattern, None).await? {
        let Some(month) = old.strip_prefix(&attempt_prefix) else {
            continue;
        };
        let value: Option<String> = conn.get(&old).await?;
        if let Some(value) = value {
            set_nx(conn, &keys.report_attempt(month), &value).await?;
            out.attempts += 1;
        }
        let _: () = conn.del(&old).await?;
    }
    let old_last = keys.legacy_report_last_sent();
    let last: Option<i64> = conn.get(&old_last).await?;
    if let Some(last) = last {
        let new_last = keys.report_last_sent();
        let current: Option<i64> = conn.get(&new_last).await?;
        if current.is_none_or(|c| c < last) {
            let _: () = conn.set(&new_last, last).await?;
        }
        let _: () = conn.del(&old_last).await?;
        out.last_sent = true;
    }
    let _: () = conn.set(keys.report_keys_migrated(), 1).await?;
    if out.changed() {
        tracing::info!(
            sent = out.sent,
            attempts = out.attempts,
            last_sent = out.last_sent,
            "report send records migrated to the {{report}} hash tag (old sent records kept and still read)"
        );
    }
    Ok(out)
}

/// `SET key value NX`; whether it was set.
async fn set_nx(conn: &mut RedisConn, key: &str, value: &str) -> RedisResult<bool> {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("NX")
        .query_async(conn)
        .await?;
    Ok(set.is_some())
}
