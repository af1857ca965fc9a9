//! The read side of user projections: a record assembled from the user's hash (status derived
//! by `domain::user_status`), the timeline, lookups by id, login or email, and tenant-scoped,
//! cursor-paged lists with a bounded scan per request.
//!
//! The indexes are hints written by [`super::write`]: every read checks the user's current
//! values, so a stale index entry misleads nobody.

use std::collections::HashMap;

use crate::store::RedisConn;
use chrono::{DateTime, SecondsFormat, Utc};
use redis::{AsyncCommands, RedisResult};

use super::codec::{decode_event, type_of_code, EventEntry, EVENT_PREFIX};
use super::update::{field, stamp_millis, STAMP_LEN};
use super::view::{Member, UserRecord, Why, STATUS_UNKNOWN, STATUS_UNKNOWN_REASON};
use crate::domain::user_status::{status_from_evidence, StatusEvidence, UserStatus};
use crate::store::Keys;

/// One stored register, parsed.
struct Register<'a> {
    stamp: &'a str,
    value: &'a str,
}

fn parse_register(raw: &str) -> Option<Register<'_>> {
    let (stamp, value) = raw.split_at_checked(STAMP_LEN)?;
    Some(Register { stamp, value })
}

/// RFC 3339 time of a stamp's millis.
pub fn stamp_time(stamp: &str) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(stamp_millis(stamp)?)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// One timeline entry (an event entry of the user's hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub uuid: String,
    pub published: String,
    pub event_type: String,
    pub actor: String,
    pub outcome: String,
}

/// A user's hash, split into registers (name → register) and events (stamp → entry).
struct Parsed<'a> {
    regs: Vec<(&'a str, Register<'a>)>,
    events: HashMap<&'a str, EventEntry>,
}

impl<'a> Parsed<'a> {
    fn new(id: &str, hash: &'a HashMap<String, String>) -> Self {
        let mut regs = Vec::with_capacity(hash.len());
        let mut events = HashMap::new();
        for (k, v) in hash {
            match k.strip_prefix(EVENT_PREFIX) {
                Some(stamp) => {
                    if let Some(e) = decode_event(id, v) {
                        events.insert(stamp, e);
                    }
                }
                None => {
                    if let Some(r) = parse_register(v) {
                        regs.push((k.as_str(), r));
                    }
                }
            }
        }
        Self { regs, events }
    }

    fn get(&self, name: &str) -> Option<&Register<'a>> {
        self.regs.iter().find(|(k, _)| *k == name).map(|(_, r)| r)
    }

    fn why(&self, stamp: &str) -> Why {
        let e = self.events.get(stamp);
        Why {
            event_type: e.map(|e| e.event_type.clone()).unwrap_or_default(),
            published: stamp_time(stamp).unwrap_or_default(),
            actor: e.map(|e| e.actor.clone()).unwrap_or_default(),
            outcome: e.map(|e| e.outcome.clone()).unwrap_or_default(),
        }
    }

    /// Newest first.
    fn timeline(&self, limit: usize) -> Vec<TimelineEntry> {
        let mut stamps: Vec<&&str> = self.events.keys().collect();
        stamps.sort_unstable_by(|a, b| b.cmp(a));
        stamps
            .into_iter()
            .take(limit)
            .map(|s| {
                let e = &self.events[*s];
                TimelineEntry {
                    uuid: e.uuid.clone(),
                    published: stamp_time(s).unwrap_or_default(),
                    event_type: e.event_type.clone(),
                    actor: e.actor.clone(),
                    outcome: e.outcome.clone(),
                }
            })
            .collect()
    }
}

/// The user's timeline (newest first, at most `limit`) from their hash. Pure.
pub fn timeline_of(id: &str, hash: &HashMap<String, String>, limit: usize) -> Vec<TimelineEntry> {
    Parsed::new(id, hash).timeline(limit)
}

/// Builds the record from the user's hash. Pure.
pub fn assemble_record(id: &str, hash: &HashMap<String, String>) -> Option<UserRecord> {
    if hash.is_empty() {
        return None;
    }
    let p = Parsed::new(id, hash);
    let scalar = |name: &str| {
        p.get(name)
            .map(|r| r.value.to_owned())
            .filter(|v| !v.is_empty())
    };

    // The type comes from the register's name (`s:<type code>`), so it is right even in the
    // (one in 16.7 million) case of two same-millisecond events sharing a stamp and an entry.
    let status_regs: Vec<(&Register<'_>, String, &EventEntry)> = p
        .regs
        .iter()
        .filter_map(|(k, r)| {
            let code = k.strip_prefix(field::STATUS_PREFIX)?;
            Some((r, type_of_code(code), p.events.get(r.stamp)?))
        })
        .collect();
    let evidence: Vec<StatusEvidence<'_>> = status_regs
        .iter()
        .map(|(r, event_type, e)| StatusEvidence {
            stamp: r.stamp,
            event_type,
            outcome: &e.outcome,
        })
        .collect();
    let status = status_from_evidence(&evidence);
    let status_why = status.map(|(_, i)| p.why(evidence[i].stamp));

    let factors_reset = p.get(field::FACTORS_RESET).map(|r| r.stamp);
    let members = |prefix: &str, cutoff: Option<&str>| -> Vec<Member> {
        let mut out: Vec<Member> = p
            .regs
            .iter()
            .filter(|(k, r)| {
                k.starts_with(prefix)
                    && r.value.starts_with('+')
                    && cutoff.is_none_or(|c| r.stamp > c)
            })
            .map(|(k, r)| Member {
                id: k[prefix.len()..].to_owned(),
                name: r.value[1..].to_owned(),
                why: p.why(r.stamp),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        out
    };

    let last_ok = p.get(field::SIGN_IN_OK);
    let last_fail = p.get(field::SIGN_IN_FAILED);
    let recent_failures = p
        .events
        .iter()
        .filter(|(stamp, e)| {
            e.event_type == "user.session.start"
                && e.outcome.eq_ignore_ascii_case("FAILURE")
                && last_ok.is_none_or(|ok| **stamp > ok.stamp)
        })
        .count() as u32;
    let mut field_why: Vec<super::view::FieldWhy> = [
        (field::LOGIN, "login"),
        (field::EMAIL, "email"),
        (field::NAME, "display_name"),
        (field::TENANT, "tenant"),
        (field::SIGN_IN_OK, "last_sign_in"),
        (field::SIGN_IN_FAILED, "last_failed_sign_in"),
    ]
    .iter()
    .filter_map(|(f, name)| {
        p.get(f).map(|r| super::view::FieldWhy {
            field: (*name).to_owned(),
            why: p.why(r.stamp),
        })
    })
    .collect();
    if let Some(w) = &status_why {
        field_why.push(super::view::FieldWhy {
            field: "status".into(),
            why: w.clone(),
        });
    }
    let newest = p
        .regs
        .iter()
        .map(|(_, r)| r.stamp)
        .chain(p.events.keys().copied())
        .max();
    Some(UserRecord {
        id: id.to_owned(),
        login: scalar(field::LOGIN),
        email: scalar(field::EMAIL).or_else(|| scalar(field::LOGIN).filter(|l| l.contains('@'))),
        display_name: scalar(field::NAME),
        tenant: scalar(field::TENANT),
        status: status
            .map_or(STATUS_UNKNOWN, |(s, _)| s.as_str())
            .to_owned(),
        status_reason: status.is_none().then(|| STATUS_UNKNOWN_REASON.to_owned()),
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
        conn: &mut RedisConn,
        id: &str,
        timeline_limit: usize,
    ) -> RedisResult<Option<(UserRecord, Vec<TimelineEntry>)>> {
        let hash: HashMap<String, String> = conn.hgetall(self.keys.user(id)).await?;
        Ok(assemble_record(id, &hash).map(|r| (r, timeline_of(id, &hash, timeline_limit))))
    }

    /// Finds a user by Okta id, login or email (case-insensitive for login and email).
    pub async fn find(
        &self,
        conn: &mut RedisConn,
        id_login_or_email: &str,
        timeline_limit: usize,
    ) -> RedisResult<Option<(UserRecord, Vec<TimelineEntry>)>> {
        Ok(self
            .find_inner(conn, id_login_or_email, timeline_limit, false)
            .await?
            .0)
    }

    /// [`Self::find`], and the projection's freshness read in the same round trip.
    pub async fn find_with_freshness(
        &self,
        conn: &mut RedisConn,
        id_login_or_email: &str,
        timeline_limit: usize,
    ) -> RedisResult<(Option<(UserRecord, Vec<TimelineEntry>)>, Option<String>)> {
        self.find_inner(conn, id_login_or_email, timeline_limit, true)
            .await
    }

    /// Round trips: an Okta id is one `HGETALL`; a login or email is both index lookups, then
    /// the `HGETALL` of the candidate. The freshness `GET`, when wanted, rides along with the
    /// first round trip.
    async fn find_inner(
        &self,
        conn: &mut RedisConn,
        q: &str,
        timeline_limit: usize,
        freshness: bool,
    ) -> RedisResult<(Option<(UserRecord, Vec<TimelineEntry>)>, Option<String>)> {
        // `Some(_)` once known (or not wanted): later round trips do not read it again.
        let mut fresh: Option<Option<String>> = (!freshness).then_some(None);
        // Okta ids never contain `@`; logins and emails (nearly) always do: skip a sure miss.
        if !q.contains('@') {
            let replies = self
                .round_trip(conn, &mut fresh, |p| {
                    p.hgetall(self.keys.user(q));
                })
                .await?;
            let hash: HashMap<String, String> = redis::from_redis_value_ref(&replies[0])?;
            if let Some(record) = assemble_record(q, &hash) {
                let timeline = timeline_of(q, &hash, timeline_limit);
                return Ok((Some((record, timeline)), fresh.flatten()));
            }
        }
        let wanted = q.to_lowercase();
        let replies = self
            .round_trip(conn, &mut fresh, |p| {
                p.hget(self.keys.login_index(), &wanted)
                    .hget(self.keys.email_index(), &wanted);
            })
            .await?;
        let mut candidates: Vec<String> = Vec::with_capacity(2);
        for v in &replies {
            if let Some(id) = redis::from_redis_value_ref::<Option<String>>(v)? {
                if !candidates.contains(&id) {
                    candidates.push(id);
                }
            }
        }
        for id in candidates {
            if let Some((record, timeline)) = self.get_by_id(conn, &id, timeline_limit).await? {
                let matches =
                    |v: &Option<String>| v.as_deref().is_some_and(|v| v.to_lowercase() == wanted);
                if matches(&record.login) || matches(&record.email) {
                    return Ok((Some((record, timeline)), fresh.flatten()));
                }
            }
        }
        Ok((None, fresh.flatten()))
    }

    /// One pipeline of the commands `add` queues, led by the freshness `GET` while `fresh` is
    /// still `None` (it is then filled in). Returns the replies to `add`'s commands.
    async fn round_trip(
        &self,
        conn: &mut RedisConn,
        fresh: &mut Option<Option<String>>,
        add: impl FnOnce(&mut redis::Pipeline),
    ) -> RedisResult<Vec<redis::Value>> {
        let mut pipe = redis::pipe();
        let with_fresh = fresh.is_none();
        if with_fresh {
            pipe.get(self.keys.projection_freshness());
        }
        add(&mut pipe);
        let mut replies: Vec<redis::Value> = pipe.query_async(conn).await?;
        if with_fresh {
            let stamp: Option<String> = redis::from_redis_value_ref(&replies.remove(0))
                .ok()
                .flatten();
            *fresh = Some(stamp.as_deref().and_then(stamp_time));
        }
        Ok(replies)
    }

    /// A page of users in login order, optionally one tenant's, a login prefix, a status.
    /// `after` is the cursor returned by the previous page.
    pub async fn list(&self, conn: &mut RedisConn, query: &ListQuery<'_>) -> RedisResult<ListPage> {
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
        let mut at_end = false;
        let mut last_scanned: Option<String> = None;
        // Stale index members and the status filter may need several rounds. The budget bounds
        // one request's work (a rare status could otherwise read the whole index); when it runs
        // out first, the page ends early and `next` continues after the last entry read.
        let budget = query.scan_budget.max(query.limit);
        'rounds: while users.len() < query.limit && scanned < budget {
            let chunk = (budget - scanned).min(query.limit.max(100));
            let members: Vec<String> = conn
                .zrangebylex_limit(&index, &start, &end, 0, chunk as isize)
                .await?;
            at_end = members.len() < chunk;
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
                last_scanned = Some(m.clone());
                let Some((login, id)) = m.rsplit_once('\0') else {
                    continue;
                };
                let Some(record) = assemble_record(id, &hash) else {
                    continue;
                };
                let current_login = record.login.clone().unwrap_or_default().to_lowercase();
                let tenant_ok = query
                    .tenant
                    .is_none_or(|t| record.tenant.as_deref() == Some(t));
                let status_ok = query.status.is_none_or(|s| record.status == s.as_str());
                if current_login == login && tenant_ok && status_ok {
                    users.push(record);
                    if users.len() == query.limit {
                        next = Some(m.clone());
                        break 'rounds;
                    }
                }
            }
            if at_end {
                break;
            }
        }
        if next.is_none() && !at_end {
            next = last_scanned;
        }
        let total: u64 = conn.zcard(&index).await?;
        Ok(ListPage {
            users,
            next,
            indexed: total,
            scanned: scanned as u64,
        })
    }

    /// Time of the newest event any projection applied.
    pub async fn freshness(&self, conn: &mut RedisConn) -> RedisResult<Option<String>> {
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
    /// Index entries read at most (`projection.list_scan_budget`; never below `limit`).
    pub scan_budget: usize,
}

pub struct ListPage {
    pub users: Vec<UserRecord>,
    /// Cursor for the next page; `None` at the end.
    pub next: Option<String>,
    /// Users in the index that was paged (before status/prefix filters).
    pub indexed: u64,
    /// Index entries read for this page.
    pub scanned: u64,
}

#[cfg(test)]
mod tests {
    use super::super::update::{stamp, ProjectionUpdate};
    use super::super::write::fields_for_new_user;
    use super::*;

    /// The hash after applying `events` (time ms, uuid, type, actor, fields) in order, as the
    /// script does when every event is newer than the last.
    /// (time ms, uuid, type, actor, register name/value pairs)
    type TestEvent<'a> = (i64, &'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

    fn hash(events: &[TestEvent<'_>]) -> HashMap<String, String> {
        let mut h = HashMap::new();
        for (ms, uuid, ty, actor, fields) in events {
            let u = ProjectionUpdate {
                user: "00u1".into(),
                stamp: stamp(*ms, uuid),
                event_type: (*ty).into(),
                actor: (*actor).into(),
                outcome: "SUCCESS".into(),
                uuid: (*uuid).into(),
                fields: fields
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            };
            h.extend(fields_for_new_user(&u));
        }
        h
    }

    #[test]
    fn a_record_is_assembled_with_status_and_why() {
        let st = field::status;
        let (create, activate, suspend) = (
            st("user.lifecycle.create"),
            st("user.lifecycle.activate"),
            st("user.lifecycle.suspend"),
        );
        let h = hash(&[
            (
                1000,
                "a",
                "user.lifecycle.create",
                "00uadmin",
                &[("l", "jane@acme.com"), ("t", "acme"), (&create, "")],
            ),
            (
                1200,
                "f",
                "user.mfa.factor.activate",
                "00u1",
                &[("f:mbl1", "+Okta Verify")],
            ),
            (
                1300,
                "g",
                "user.mfa.factor.reset_all",
                "00u1",
                &[("fr", "")],
            ),
            (
                1500,
                "d",
                "group.user_membership.add",
                "00uadmin",
                &[("g:00g1", "+tenant-acme")],
            ),
            (
                1600,
                "e",
                "group.user_membership.remove",
                "00uadmin",
                &[("g:00g2", "-old|group")],
            ),
            (
                2000,
                "b",
                "user.lifecycle.activate",
                "00uadmin",
                &[(&activate, "")],
            ),
            (
                3000,
                "c",
                "user.lifecycle.suspend",
                "00uadmin",
                &[(&suspend, "")],
            ),
        ]);
        let r = assemble_record("00u1", &h).unwrap();
        assert_eq!(r.status, "SUSPENDED");
        assert!(!r.can_sign_in);
        assert_eq!(r.login.as_deref(), Some("jane@acme.com"));
        assert_eq!(r.email.as_deref(), Some("jane@acme.com"));
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].name, "tenant-acme");
        assert_eq!(r.groups[0].why.event_type, "group.user_membership.add");
        assert!(
            r.factors.is_empty(),
            "reset_all after the enrolment removes it"
        );
        let status_why = r.why.iter().find(|w| w.field == "status").unwrap();
        assert_eq!(status_why.why.event_type, "user.lifecycle.suspend");
        assert_eq!(status_why.why.published, "1970-01-01T00:00:03.000Z");
        assert_eq!(status_why.why.actor, "00uadmin");
        assert_eq!(status_why.why.outcome, "SUCCESS");
        let login_why = r.why.iter().find(|w| w.field == "login").unwrap();
        assert_eq!(login_why.why.event_type, "user.lifecycle.create");
        assert_eq!(r.freshness.as_deref(), Some("1970-01-01T00:00:03.000Z"));

        let timeline = timeline_of("00u1", &h, 2);
        assert_eq!(timeline.len(), 2);
        assert_eq!(timeline[0].event_type, "user.lifecycle.suspend");
        assert_eq!(timeline[0].uuid, "c");
        assert_eq!(timeline[1].event_type, "user.lifecycle.activate");
        assert_eq!(
            timeline_of("00u1", &h, 100)[6].actor,
            "00uadmin",
            "oldest last"
        );
    }

    #[test]
    fn failed_sign_ins_since_the_last_success_are_counted() {
        let h = hash(&[
            (1000, "a", "user.session.start", "00u1", &[("x", "")]),
            (2000, "b", "user.session.start", "00u1", &[("ok", "")]),
        ]);
        let mut h2 = h.clone();
        for (ms, uuid) in [(3000, "c"), (4000, "d")] {
            let u = ProjectionUpdate {
                user: "00u1".into(),
                stamp: stamp(ms, uuid),
                event_type: "user.session.start".into(),
                actor: "00u1".into(),
                outcome: "FAILURE".into(),
                uuid: uuid.into(),
                fields: vec![("x".into(), String::new())],
            };
            h2.extend(fields_for_new_user(&u));
        }
        assert_eq!(
            assemble_record("00u1", &h).unwrap().recent_failed_sign_ins,
            0
        );
        let r = assemble_record("00u1", &h2).unwrap();
        assert_eq!(r.recent_failed_sign_ins, 2);
        assert_eq!(
            r.last_failed_sign_in.as_deref(),
            Some("1970-01-01T00:00:04.000Z")
        );
        assert_eq!(r.last_sign_in.as_deref(), Some("1970-01-01T00:00:02.000Z"));
    }

    #[test]
    fn values_may_contain_any_character_and_short_values_are_no_register() {
        let raw = format!("{}+a|b|c", stamp(1, "x"));
        assert_eq!(parse_register(&raw).unwrap().value, "+a|b|c");
        assert!(parse_register("short").is_none());
        assert!(assemble_record("00u1", &HashMap::new()).is_none());
    }
}
