//! The write side of user projections: `apply.lua` per event, then the index pipeline, and
//! `rebuild` (replay the firehose into fresh projections).
//!
//! A user is one hash in the compact format of [`super::codec`]. Writes: one `apply.lua` call
//! per event, sent as one pipeline per batch, then one pipeline of index updates: the user's
//! current login, email and tenant are (re-)added for every event, entries for values that just
//! changed are removed. The indexes (login, email, tenant, all users) are hints: every read
//! ([`super::read`]) checks the user's current values, so a stale entry misleads nobody, and the
//! next event of the user re-adds whatever a crash between the two pipelines, or two replicas'
//! index pipelines running in the opposite order of their scripts, left missing.

use crate::store::RedisConn;
use redis::{AsyncCommands, RedisResult, Script};

use super::codec::EVENT_PREFIX;
use super::update::{update_for_entry, ProjectionUpdate};
use crate::domain::tenant::TenantResolver;
use crate::store::consumer::entry_fields;
use crate::store::Keys;

const APPLY_SCRIPT: &str = include_str!("apply.lua");

/// Applies batches of updates.
pub struct Applier {
    keys: Keys,
    script: Script,
    timeline_len: usize,
}

/// The outcome for each update of a batch: `Ok` applied, `Err` the reason it failed.
pub type ApplyResults = Vec<Result<(), String>>;

impl Applier {
    pub fn new(keys: Keys, timeline_len: usize) -> Self {
        Self {
            keys,
            script: Script::new(APPLY_SCRIPT),
            timeline_len,
        }
    }

    /// Applies every update; a failing update does not stop the others.
    pub async fn apply(
        &self,
        conn: &mut RedisConn,
        updates: &[ProjectionUpdate],
    ) -> RedisResult<ApplyResults> {
        if updates.is_empty() {
            return Ok(vec![]);
        }
        let replies = match self.run_scripts(conn, updates).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.script.load_async(conn).await?;
                self.run_scripts(conn, updates).await?
            }
            other => other?,
        };
        let mut results = Vec::with_capacity(updates.len());
        let mut index = redis::pipe();
        index.ignore_errors();
        let mut newest: Option<&str> = None;
        for (u, reply) in updates.iter().zip(replies) {
            match reply {
                Ok(values) => {
                    self.queue_index_updates(&mut index, &u.user, &values);
                    newest = newest.max(Some(u.stamp.as_str()));
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e.to_string())),
            }
        }
        if let Some(stamp) = newest {
            // GREATEST of string stamps: a tiny script would do, but freshness is advisory and
            // a lost race only makes it momentarily older.
            let current: Option<String> = conn.get(self.keys.projection_freshness()).await?;
            if current.as_deref().is_none_or(|c| c < stamp) {
                index.set(self.keys.projection_freshness(), stamp);
            }
        }
        if index.is_empty() {
            return Ok(results);
        }
        let index_results: Vec<RedisResult<redis::Value>> = index.query_async(conn).await?;
        if let Some(Err(e)) = index_results.into_iter().find(|r| r.is_err()) {
            return Err(e);
        }
        Ok(results)
    }

    async fn run_scripts(
        &self,
        conn: &mut RedisConn,
        updates: &[ProjectionUpdate],
    ) -> RedisResult<Vec<RedisResult<Vec<String>>>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for u in updates {
            let cmd = pipe
                .cmd("EVALSHA")
                .arg(self.script.get_hash())
                .arg(1)
                .arg(self.keys.user(&u.user))
                .arg(&u.stamp)
                .arg(u.event_entry())
                .arg(self.timeline_len);
            for (name, value) in &u.fields {
                cmd.arg(name).arg(value);
            }
        }
        let replies: Vec<RedisResult<Vec<String>>> = pipe.query_async(conn).await?;
        if let Some(Err(e)) = replies.iter().find(|r| {
            r.as_ref().is_err_and(|e| {
                e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
            })
        }) {
            return Err(e.clone());
        }
        Ok(replies)
    }

    fn queue_index_updates(&self, pipe: &mut redis::Pipeline, user: &str, v: &[String]) {
        let [prev_login, _prev_email, prev_tenant, login, email, tenant] = v else {
            return;
        };
        let member = |login: &str| format!("{}\0{user}", login.to_lowercase());
        if !login.is_empty() {
            pipe.hset(self.keys.login_index(), login.to_lowercase(), user);
        }
        // An email equal to the login is found through the login index.
        if !email.is_empty() && !email.eq_ignore_ascii_case(login) {
            pipe.hset(self.keys.email_index(), email.to_lowercase(), user);
        }
        pipe.zadd(self.keys.users_index(), member(login), 0);
        if !tenant.is_empty() {
            pipe.zadd(self.keys.tenant_index(tenant), member(login), 0);
        }
        if prev_login != login {
            pipe.zrem(self.keys.users_index(), member(prev_login));
        }
        if !prev_tenant.is_empty() && (prev_tenant != tenant || prev_login != login) {
            pipe.zrem(self.keys.tenant_index(prev_tenant), member(prev_login));
        }
    }
}

/// What `apply.lua` writes for one event into an empty hash: its registers and its event entry.
/// For seeding tests and benchmarks with realistic hashes without running the consumer.
pub fn fields_for_new_user(update: &ProjectionUpdate) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = update
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), format!("{}{value}", update.stamp)))
        .collect();
    fields.push((
        format!("{EVENT_PREFIX}{}", update.stamp),
        update.event_entry(),
    ));
    fields
}

/// Rebuilds every projection from the firehose: drops projection keys, then replays the
/// firehose in order. Safe while consumers run (applying twice changes nothing).
pub async fn rebuild(
    conn: &mut RedisConn,
    keys: &Keys,
    timeline_len: usize,
    tenants: &TenantResolver,
    mut progress: impl FnMut(u64),
) -> RedisResult<u64> {
    for pattern in keys.projection_patterns() {
        // Every master of a cluster (SCAN alone walks one node).
        let found = crate::store::scan_match(conn, &pattern, None).await?;
        for chunk in found.chunks(500) {
            let _: () = conn.unlink(chunk).await?;
        }
    }
    // Recomputed by the replay.
    let _: () = conn.del(keys.projection_freshness()).await?;
    let applier = Applier::new(keys.clone(), timeline_len);
    let mut start = "-".to_string();
    let mut applied = 0u64;
    loop {
        let page: redis::streams::StreamRangeReply = conn
            .xrange_count(keys.firehose(), &start, "+", 1000)
            .await?;
        let Some(last) = page.ids.last() else { break };
        start = format!("({}", last.id);
        let updates: Vec<ProjectionUpdate> = page
            .ids
            .iter()
            .filter_map(|e| update_for_entry(&entry_fields(e), tenants).ok().flatten())
            .collect();
        let results = applier.apply(conn, &updates).await?;
        applied += results.iter().filter(|r| r.is_ok()).count() as u64;
        progress(applied);
    }
    Ok(applied)
}
