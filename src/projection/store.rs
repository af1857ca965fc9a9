//! Writing and reading user projections in Redis.
//!
//! Writes: one `apply.lua` call per event (the user's hash and timeline share a slot), sent as
//! one pipeline per batch, then one pipeline of index updates. The indexes (login, email,
//! tenant, all users) are hints: every read checks the user's current values, so an index left
//! stale by a crash between the two pipelines can mislead nobody, and the next application of
//! any event of that user rewrites them.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisResult, Script};

use super::update::{field, ProjectionUpdate, STAMP_LEN};
use super::view::{Member, UserRecord, Why};
use crate::domain::user_status::{status_from_evidence, StatusEvidence, UserStatus};
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
        conn: &mut ConnectionManager,
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
        let index_results: Vec<RedisResult<redis::Value>> = index.query_async(conn).await?;
        if let Some(Err(e)) = index_results.into_iter().find(|r| r.is_err()) {
            return Err(e);
        }
        Ok(results)
    }

    async fn run_scripts(
        &self,
        conn: &mut ConnectionManager,
        updates: &[ProjectionUpdate],
    ) -> RedisResult<Vec<RedisResult<Vec<String>>>> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for u in updates {
            let cmd = pipe
                .cmd("EVALSHA")
                .arg(self.script.get_hash())
                .arg(2)
                .arg(self.keys.user(&u.user))
                .arg(self.keys.timeline(&u.user))
                .arg(&u.stamp)
                .arg(u.why())
                .arg(u.published_ms)
                .arg(u.timeline_member())
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
        if !email.is_empty() {
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

/// One stored register, parsed.
struct Register<'a> {
    stamp: &'a str,
    event_type: &'a str,
    actor: &'a str,
    outcome: &'a str,
    value: &'a str,
}

fn parse_register(raw: &str) -> Option<Register<'_>> {
    if raw.len() < STAMP_LEN + 1 || !raw.is_char_boundary(STAMP_LEN) {
        return None;
    }
    let (stamp, rest) = raw.split_at(STAMP_LEN);
    let mut parts = rest.strip_prefix('|')?.splitn(4, '|');
    Some(Register {
        stamp,
        event_type: parts.next()?,
        actor: parts.next()?,
        outcome: parts.next()?,
        value: parts.next().unwrap_or(""),
    })
}

/// RFC 3339 time of a stamp's millis.
pub fn stamp_time(stamp: &str) -> Option<String> {
    let ms: i64 = stamp.get(..13)?.parse().ok()?;
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn why(r: &Register<'_>) -> Why {
    Why {
        event_type: r.event_type.to_owned(),
        published: stamp_time(r.stamp).unwrap_or_default(),
        actor: r.actor.to_owned(),
        outcome: r.outcome.to_owned(),
    }
}

/// One timeline entry, parsed from its sorted-set member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub uuid: String,
    pub published: String,
    pub event_type: String,
    pub actor: String,
    pub outcome: String,
}

fn parse_timeline_member(m: &str) -> Option<TimelineEntry> {
    let (stamp, rest) = m.split_at_checked(STAMP_LEN)?;
    let mut parts = rest.strip_prefix('|')?.splitn(4, '|');
    Some(TimelineEntry {
        published: stamp_time(stamp)?,
        uuid: parts.next()?.to_owned(),
        event_type: parts.next()?.to_owned(),
        actor: parts.next()?.to_owned(),
        outcome: parts.next()?.to_owned(),
    })
}

/// Builds the record from the user's hash and timeline (newest first). Pure.
pub fn assemble_record(
    id: &str,
    hash: &HashMap<String, String>,
    timeline: &[TimelineEntry],
) -> Option<UserRecord> {
    if hash.is_empty() {
        return None;
    }
    let regs: Vec<(&str, Register<'_>)> = hash
        .iter()
        .filter_map(|(k, v)| parse_register(v).map(|r| (k.as_str(), r)))
        .collect();
    let get = |name: &str| regs.iter().find(|(k, _)| *k == name).map(|(_, r)| r);
    let scalar = |name: &str| {
        get(name)
            .map(|r| r.value.to_owned())
            .filter(|v| !v.is_empty())
    };

    let evidence: Vec<StatusEvidence<'_>> = regs
        .iter()
        .filter(|(k, _)| k.starts_with(field::STATUS_PREFIX))
        .map(|(_, r)| StatusEvidence {
            stamp: r.stamp,
            event_type: r.event_type,
            outcome: r.outcome,
        })
        .collect();
    let status = status_from_evidence(&evidence);
    let status_why = status.map(|(_, i)| {
        let e = &evidence[i];
        regs.iter()
            .find(|(_, r)| r.stamp == e.stamp && r.event_type == e.event_type)
            .map(|(_, r)| why(r))
            .expect("evidence comes from the registers")
    });

    let factors_reset = get(field::FACTORS_RESET).map(|r| r.stamp);
    let members = |prefix: &str, cutoff: Option<&str>| -> Vec<Member> {
        let mut out: Vec<Member> = regs
            .iter()
            .filter(|(k, r)| {
                k.starts_with(prefix)
                    && r.value.starts_with('+')
                    && cutoff.is_none_or(|c| r.stamp > c)
            })
            .map(|(k, r)| Member {
                id: k[prefix.len()..].to_owned(),
                name: r.value[1..].to_owned(),
                why: why(r),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        out
    };

    let last_ok = get(field::SIGN_IN_OK);
    let last_fail = get(field::SIGN_IN_FAILED);
    let recent_failures = timeline
        .iter()
        .filter(|t| {
            t.event_type == "user.session.start"
                && t.outcome.eq_ignore_ascii_case("FAILURE")
                && last_ok.is_none_or(|ok| stamp_time(ok.stamp).is_some_and(|ok| t.published > ok))
        })
        .count() as u32;
    let mut field_why: Vec<super::view::FieldWhy> = [
        field::LOGIN,
        field::EMAIL,
        field::NAME,
        field::TENANT,
        field::SIGN_IN_OK,
        field::SIGN_IN_FAILED,
    ]
    .iter()
    .filter_map(|f| {
        get(f).map(|r| super::view::FieldWhy {
            field: match *f {
                field::NAME => "display_name",
                field::SIGN_IN_OK => "last_sign_in",
                field::SIGN_IN_FAILED => "last_failed_sign_in",
                other => other,
            }
            .to_owned(),
            why: why(r),
        })
    })
    .collect();
    if let Some(w) = &status_why {
        field_why.push(super::view::FieldWhy {
            field: "status".into(),
            why: w.clone(),
        });
    }
    let newest = regs.iter().map(|(_, r)| r.stamp).max();
    Some(UserRecord {
        id: id.to_owned(),
        login: scalar(field::LOGIN),
        email: scalar(field::EMAIL).or_else(|| scalar(field::LOGIN).filter(|l| l.contains('@'))),
        display_name: scalar(field::NAME),
        tenant: scalar(field::TENANT),
        status: status.map(|(s, _)| s.as_str().to_owned()),
        can_sign_in: status.is_some_and(|(s, _)| s.can_sign_in()),
        last_sign_in: last_ok.and_then(|r| stamp_time(r.stamp)),
        last_failed_sign_in: last_fail.and_then(|r| stamp_time(r.stamp)),
        recent_failed_sign_ins: recent_failures,
        factors: members(field::FACTOR_PREFIX, factors_reset),
        groups: members(field::GROUP_PREFIX, None),
        apps: members(field::APP_PREFIX, None),
        why: field_why,
        freshness: newest.and_then(stamp_time),
    })
}

/// Reads projections.
#[derive(Clone)]
pub struct Reader {
    keys: Keys,
}

impl Reader {
    pub fn new(keys: Keys) -> Self {
        Self { keys }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The user with this Okta id, with their timeline (newest first, at most `limit`).
    pub async fn get_by_id(
        &self,
        conn: &mut ConnectionManager,
        id: &str,
        timeline_limit: isize,
    ) -> RedisResult<Option<(UserRecord, Vec<TimelineEntry>)>> {
        let (hash, members): (HashMap<String, String>, Vec<String>) = redis::pipe()
            .hgetall(self.keys.user(id))
            .zrevrange(self.keys.timeline(id), 0, timeline_limit.max(1) - 1)
            .query_async(conn)
            .await?;
        let timeline: Vec<TimelineEntry> = members
            .iter()
            .filter_map(|m| parse_timeline_member(m))
            .collect();
        Ok(assemble_record(id, &hash, &timeline).map(|r| (r, timeline)))
    }

    /// Finds a user by Okta id, login or email (case-insensitive for login and email).
    pub async fn find(
        &self,
        conn: &mut ConnectionManager,
        id_login_or_email: &str,
        timeline_limit: isize,
    ) -> RedisResult<Option<(UserRecord, Vec<TimelineEntry>)>> {
        // Okta ids never contain `@`; logins and emails (nearly) always do: skip a sure miss.
        if !id_login_or_email.contains('@') {
            if let Some(found) = self
                .get_by_id(conn, id_login_or_email, timeline_limit)
                .await?
            {
                return Ok(Some(found));
            }
        }
        let wanted = id_login_or_email.to_lowercase();
        for index in [self.keys.login_index(), self.keys.email_index()] {
            let id: Option<String> = conn.hget(&index, &wanted).await?;
            let Some(id) = id else { continue };
            if let Some((record, timeline)) = self.get_by_id(conn, &id, timeline_limit).await? {
                let matches =
                    |v: &Option<String>| v.as_deref().is_some_and(|v| v.to_lowercase() == wanted);
                if matches(&record.login) || matches(&record.email) {
                    return Ok(Some((record, timeline)));
                }
            }
        }
        Ok(None)
    }

    /// A page of users in login order, optionally one tenant's, a login prefix, a status.
    /// `after` is the cursor returned by the previous page.
    pub async fn list(
        &self,
        conn: &mut ConnectionManager,
        query: &ListQuery<'_>,
    ) -> RedisResult<ListPage> {
        let index = match query.tenant {
            Some(t) => self.keys.tenant_index(t),
            None => self.keys.users_index(),
        };
        let prefix = query.login_prefix.unwrap_or("").to_lowercase();
        let mut start = match query.after {
            Some(cursor) => format!("({cursor}"),
            None => format!("[{prefix}"),
        };
        let end = if prefix.is_empty() {
            "+".to_string()
        } else {
            format!("({prefix}\u{10FFFF}")
        };
        let mut users = Vec::new();
        let mut next = None;
        let mut scanned = 0usize;
        // Stale index members and status filtering may need several rounds; bounded.
        'rounds: while users.len() < query.limit && scanned < query.limit * 20 + 100 {
            let members: Vec<String> = conn
                .zrangebylex_limit(&index, &start, &end, 0, query.limit as isize)
                .await?;
            if members.is_empty() {
                break;
            }
            scanned += members.len();
            let mut pipe = redis::pipe();
            for m in &members {
                let id = m.rsplit_once('\0').map(|(_, id)| id).unwrap_or(m);
                pipe.hgetall(self.keys.user(id));
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
            for (m, hash) in members.iter().zip(hashes) {
                start = format!("({m}");
                let Some((login, id)) = m.rsplit_once('\0') else {
                    continue;
                };
                let Some(record) = assemble_record(id, &hash, &[]) else {
                    continue;
                };
                let current_login = record.login.clone().unwrap_or_default().to_lowercase();
                let tenant_ok = query
                    .tenant
                    .is_none_or(|t| record.tenant.as_deref() == Some(t));
                let status_ok = query
                    .status
                    .is_none_or(|s| record.status.as_deref() == Some(s.as_str()));
                if current_login == login && tenant_ok && status_ok {
                    users.push(record);
                    if users.len() == query.limit {
                        next = Some(m.clone());
                        break 'rounds;
                    }
                }
            }
        }
        let total: u64 = conn.zcard(&index).await?;
        Ok(ListPage {
            users,
            next,
            indexed: total,
        })
    }

    /// Time of the newest event any projection applied.
    pub async fn freshness(&self, conn: &mut ConnectionManager) -> RedisResult<Option<String>> {
        let stamp: Option<String> = conn.get(self.keys.projection_freshness()).await?;
        Ok(stamp.as_deref().and_then(stamp_time))
    }
}

pub struct ListQuery<'a> {
    pub tenant: Option<&'a str>,
    pub login_prefix: Option<&'a str>,
    pub status: Option<UserStatus>,
    pub after: Option<&'a str>,
    pub limit: usize,
}

pub struct ListPage {
    pub users: Vec<UserRecord>,
    /// Cursor for the next page; `None` at the end.
    pub next: Option<String>,
    /// Users in the index that was paged (before status/prefix filters).
    pub indexed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(stamp_ms: i64, uuid: &str, ty: &str, value: &str) -> String {
        format!(
            "{}|{ty}|00uadmin|SUCCESS|{value}",
            super::super::update::stamp(stamp_ms, uuid)
        )
    }

    #[test]
    fn a_record_is_assembled_with_status_and_why() {
        let hash: HashMap<String, String> = [
            (
                "login",
                reg(1000, "a", "user.lifecycle.create", "jane@acme.com"),
            ),
            ("tenant", reg(1000, "a", "user.lifecycle.create", "acme")),
            (
                "st:user.lifecycle.create",
                reg(1000, "a", "user.lifecycle.create", ""),
            ),
            (
                "st:user.lifecycle.activate",
                reg(2000, "b", "user.lifecycle.activate", ""),
            ),
            (
                "st:user.lifecycle.suspend",
                reg(3000, "c", "user.lifecycle.suspend", ""),
            ),
            (
                "g:00g1",
                reg(1500, "d", "group.user_membership.add", "+tenant-acme"),
            ),
            (
                "g:00g2",
                reg(1600, "e", "group.user_membership.remove", "-old|group"),
            ),
            (
                "f:mbl1",
                reg(1200, "f", "user.mfa.factor.activate", "+Okta Verify"),
            ),
            ("fr", reg(1300, "g", "user.mfa.factor.reset_all", "")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let r = assemble_record("00u1", &hash, &[]).unwrap();
        assert_eq!(r.status.as_deref(), Some("SUSPENDED"));
        assert!(!r.can_sign_in);
        assert_eq!(r.login.as_deref(), Some("jane@acme.com"));
        assert_eq!(r.email.as_deref(), Some("jane@acme.com"));
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].name, "tenant-acme");
        assert!(
            r.factors.is_empty(),
            "reset_all after the enrolment removes it"
        );
        let status_why = r.why.iter().find(|w| w.field == "status").unwrap();
        assert_eq!(status_why.why.event_type, "user.lifecycle.suspend");
        assert_eq!(status_why.why.published, "1970-01-01T00:00:03.000Z");
        assert_eq!(r.freshness.as_deref(), Some("1970-01-01T00:00:03.000Z"));
    }

    #[test]
    fn values_may_contain_the_separator() {
        let raw = reg(1, "x", "group.user_membership.add", "+a|b|c");
        assert_eq!(parse_register(&raw).unwrap().value, "+a|b|c");
        assert!(parse_register("short").is_none());
    }
}
