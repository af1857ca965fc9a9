//! `compile_monthly_report`: reads one month's aggregates (and the month before, for the change)
//! into a [`MonthlyReport`]. A fixed number of pipelined reads per tenant, whatever the number of
//! events, plus the projections of at most `MFA_SAMPLE` sampled users per tenant.
//!
//! There is always a report: a month in which nothing was counted is exactly the month the event
//! hook broke, so it is compiled (all zeros) with a warning in [`MonthlyReport::warnings`] rather
//! than skipped. Tenants expected to have events — last month's and the configured ones — that
//! have none get a row and a warning of their own.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::store::RedisConn;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use poem_openapi::Object;
use redis::RedisResult;
use serde::Serialize;

use super::aggregate::{counter, hook_field, LATENCY_BUCKETS_MS, NO_TENANT};
use super::month::ReportMonth;
use crate::projection::read::assemble_record;
use crate::store::Keys;

/// Event counts of one tenant (or all) in one month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Object, Serialize)]
pub struct Counts {
    /// Distinct users with at least one successful sign-in (HyperLogLog estimate, ±0.81 %
    /// standard error; exact for small numbers in practice).
    pub active_users: u64,
    /// `user.lifecycle.create`
    pub new_users: u64,
    /// `user.lifecycle.activate`
    pub activations: u64,
    /// `user.lifecycle.deactivate`
    pub deactivations: u64,
    /// `user.lifecycle.suspend`
    pub suspensions: u64,
    /// `user.lifecycle.delete.initiated`
    pub deletions: u64,
    /// `user.session.start` with outcome SUCCESS
    pub sign_ins_ok: u64,
    /// `user.session.start` with outcome FAILURE or DENY
    pub sign_ins_failed: u64,
    /// `user.account.lock`
    pub lockouts: u64,
    /// `user.account.reset_password`
    pub password_resets: u64,
    /// `user.mfa.factor.activate`
    pub mfa_enrolments: u64,
    /// `user.mfa.factor.reset_all`
    pub mfa_resets: u64,
    /// `user.import.password` SUCCESS: legacy password verified, user migrated.
    pub imports_verified: u64,
    /// `user.import.password` FAILURE: legacy password not verified.
    pub imports_unverified: u64,
    /// Bulk-job rows done.
    pub job_rows_done: u64,
    /// Bulk-job rows failed.
    pub job_rows_failed: u64,
}

impl Counts {
    fn from_hash(h: &HashMap<String, u64>, active_users: u64) -> Self {
        let g = |f: &str| h.get(f).copied().unwrap_or(0);
        use counter::*;
        Self {
            active_users,
            new_users: g(NEW_USERS),
            activations: g(ACTIVATIONS),
            deactivations: g(DEACTIVATIONS),
            suspensions: g(SUSPENSIONS),
            deletions: g(DELETIONS),
            sign_ins_ok: g(SIGN_INS_OK),
            sign_ins_failed: g(SIGN_INS_FAILED),
            lockouts: g(LOCKOUTS),
            password_resets: g(PASSWORD_RESETS),
            mfa_enrolments: g(MFA_ENROLMENTS),
            mfa_resets: g(MFA_RESETS),
            imports_verified: g(IMPORTS_VERIFIED),
            imports_unverified: g(IMPORTS_UNVERIFIED),
            job_rows_done: g(JOB_ROWS_DONE),
            job_rows_failed: g(JOB_ROWS_FAILED),
        }
    }

    /// Adds counters (not active users: distinct users are not additive).
    fn add_counters(&mut self, o: &Counts) {
        self.new_users += o.new_users;
        self.activations += o.activations;
        self.deactivations += o.deactivations;
        self.suspensions += o.suspensions;
        self.deletions += o.deletions;
        self.sign_ins_ok += o.sign_ins_ok;
        self.sign_ins_failed += o.sign_ins_failed;
        self.lockouts += o.lockouts;
        self.password_resets += o.password_resets;
        self.mfa_enrolments += o.mfa_enrolments;
        self.mfa_resets += o.mfa_resets;
        self.imports_verified += o.imports_verified;
        self.imports_unverified += o.imports_unverified;
        self.job_rows_done += o.job_rows_done;
        self.job_rows_failed += o.job_rows_failed;
    }

    /// `(label, this month's value)` in report order; the templates and tests walk this.
    pub fn rows(&self) -> [(&'static str, u64); 16] {
        [
            ("Active users", self.active_users),
            ("New users", self.new_users),
            ("Activations", self.activations),
            ("Deactivations", self.deactivations),
            ("Suspensions", self.suspensions),
            ("Deletions", self.deletions),
            ("Successful sign-ins", self.sign_ins_ok),
            ("Failed sign-ins", self.sign_ins_failed),
            ("Lockouts", self.lockouts),
            ("Password resets", self.password_resets),
            ("MFA enrolments", self.mfa_enrolments),
            ("MFA resets", self.mfa_resets),
            ("Password imports verified", self.imports_verified),
            ("Password imports not verified", self.imports_unverified),
            ("Job rows done", self.job_rows_done),
            ("Job rows failed", self.job_rows_failed),
        ]
    }
}

/// Share of active users with at least one MFA factor, measured on their projections.
#[derive(Debug, Clone, Default, PartialEq, Object, Serialize)]
pub struct MfaShare {
    /// Active users whose projection was checked (all of them up to 200, else a uniform sample).
    pub checked: u64,
    /// Of those, users with at least one active factor now.
    pub with_factor: u64,
    /// `with_factor / checked`, 0–1; absent without active users.
    pub share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Object, Serialize)]
pub struct TenantReport {
    /// Tenant id; `-` = events whose tenant is not known.
    pub tenant: String,
    pub counts: Counts,
    /// The same counts for the month before.
    pub previous: Counts,
    pub mfa: MfaShare,
    /// No event was recorded for this tenant this month although it had events the month before
    /// or is configured (`inline.tenants`): see the report's warnings.
    pub no_events: bool,
}

/// Inline decisions of one hook with one outcome.
#[derive(Debug, Clone, PartialEq, Eq, Object, Serialize)]
pub struct InlineCount {
    pub hook: String,
    pub outcome: String,
    pub count: u64,
}

/// Whether the Okta integration itself was healthy.
#[derive(Debug, Clone, Default, PartialEq, Object, Serialize)]
pub struct HookHealth {
    /// Events in event hook deliveries (including duplicates and deliveries answered 503).
    pub events_received: u64,
    /// Events Okta delivered again that were recognised and not written twice.
    pub duplicates_dropped: u64,
    /// Event hook deliveries answered 503 (not stored; Okta retries once).
    pub unavailable_503: u64,
    /// 99th percentile of the ingest write, as the upper bound of its histogram bucket (ms);
    /// absent without deliveries; `inf` above 5 s.
    pub ingest_p99_ms: Option<String>,
    /// 99th percentile of inline-hook decisions (ms), same convention.
    pub inline_p99_ms: Option<String>,
    pub inline_decisions: Vec<InlineCount>,
    /// Events System Log backfill wrote that the event hook never delivered (holes).
    pub backfilled: u64,
    /// The same per UTC hour of the events' `published` time; only hours that had any, in order.
    pub backfilled_hours: Vec<BackfilledHour>,
}

/// Events backfill won back in one UTC hour.
#[derive(Debug, Clone, PartialEq, Eq, Object, Serialize)]
pub struct BackfilledHour {
    /// `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
    pub events: u64,
}

/// Sign-ins of one day (business time zone), all tenants.
#[derive(Debug, Clone, PartialEq, Eq, Object, Serialize)]
pub struct DailySignIns {
    pub day: u32,
    pub ok: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Object, Serialize)]
pub struct MonthlyReport {
    /// `YYYY-MM`
    pub month: String,
    /// e.g. `October 2026`
    pub month_name: String,
    pub previous_month: String,
    /// The business time zone the month's boundaries are taken in.
    pub timezone: String,
    pub generated_at: String,
    /// False while the month is still running (numbers will grow).
    pub complete: bool,
    /// All tenants together; active users are distinct across tenants (HyperLogLog union).
    pub overview: Counts,
    pub overview_previous: Counts,
    pub overview_mfa: MfaShare,
    /// Tenants by active users, most first.
    pub tenants: Vec<TenantReport>,
    pub hooks: HookHealth,
    pub hooks_previous: HookHealth,
    pub daily_sign_ins: Vec<DailySignIns>,
    /// No event at all was recorded for the month (org-wide): the event hook should be checked.
    pub no_events: bool,
    /// What the reader must look at first, in the words the email uses: no events org-wide, or
    /// tenants without events. Empty when all is well.
    pub warnings: Vec<String>,
}

type Hash = HashMap<String, u64>;

/// Compiles the report of `month`, also when nothing was recorded for it (then with warnings).
/// `expected_tenants` (the configured tenant ids) get a row, and a warning, even without events.
pub async fn compile_monthly_report(
    conn: &mut RedisConn,
    keys: &Keys,
    tz: Tz,
    month: ReportMonth,
    now: DateTime<Utc>,
    expected_tenants: &[String],
) -> RedisResult<MonthlyReport> {
    let (m, p) = (month.to_string(), month.previous().to_string());
    let (mut tenants, tenants_before, hooks, hooks_prev): (Vec<String>, Vec<String>, Hash, Hash) =
        redis::pipe()
            .smembers(keys.report_tenants(&m))
            .smembers(keys.report_tenants(&p))
            .hgetall(keys.report_hooks(&m))
            .hgetall(keys.report_hooks(&p))
            .query_async(conn)
            .await?;
    let no_events = tenants.is_empty();
    // Tenants that should have had events and had none: the silence a report must not keep.
    // Events without a known tenant are not a tenant that went quiet.
    let silent: BTreeSet<String> = tenants_before
        .iter()
        .chain(expected_tenants)
        .filter(|t| t.as_str() != NO_TENANT && !tenants.contains(t))
        .cloned()
        .collect();
    tenants.extend(silent.iter().cloned());
    let mut pipe = redis::pipe();
    for t in &tenants {
        pipe.hgetall(keys.report_counters(&m, t))
            .pfcount(keys.report_active(&m, t))
            .hgetall(keys.report_counters(&p, t))
            .pfcount(keys.report_active(&p, t))
            .zrange(keys.report_active_sample(&m, t), 0, -1);
    }
    let active = |month: &str| -> Vec<String> {
        tenants
            .iter()
            .map(|t| keys.report_active(month, t))
            .collect()
    };
    // PFCOUNT of several keys counts their union: a user active in two tenants is one user.
    if !tenants.is_empty() {
        pipe.pfcount(active(&m)).pfcount(active(&p));
    }
    let mut values: Vec<redis::Value> = if tenants.is_empty() {
        Vec::new() // only hook health this month; an empty pipeline is not sent
    } else {
        pipe.query_async(conn).await?
    };
    let (union, union_prev): (u64, u64) = if tenants.is_empty() {
        (0, 0)
    } else {
        let up = redis::from_redis_value(values.pop().expect("union prev"))?;
        let u = redis::from_redis_value(values.pop().expect("union"))?;
        (u, up)
    };
    let mut rows = Vec::with_capacity(tenants.len());
    let mut samples: Vec<Vec<String>> = Vec::with_capacity(tenants.len());
    let mut it = values.into_iter();
    for t in &tenants {
        let mut next = || it.next().expect("five replies per tenant");
        let cur: Hash = redis::from_redis_value(next())?;
        let cur_active: u64 = redis::from_redis_value(next())?;
        let prev: Hash = redis::from_redis_value(next())?;
        let prev_active: u64 = redis::from_redis_value(next())?;
        let sample: Vec<String> = redis::from_redis_value(next())?;
        samples.push(sample);
        rows.push((t.clone(), cur, cur_active, prev, prev_active));
    }
    let with_factor = users_with_factors(conn, keys, &samples).await?;

    let mut overview = Counts::default();
    let mut overview_prev = Counts::default();
    let mut daily: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let mut tenant_reports = Vec::with_capacity(rows.len());
    let (mut mfa_weighted, mut mfa_weight) = (0.0, 0u64);
    let mut overview_mfa = MfaShare::default();
    for ((tenant, cur, cur_active, prev, prev_active), sample) in rows.into_iter().zip(&samples) {
        for (field, n) in &cur {
            if let Some(rest) = field.strip_prefix("day:") {
                if let Some((d, what)) = rest.split_once(':') {
                    let e = daily.entry(d.parse().unwrap_or(0)).or_default();
                    if what == "ok" {
                        e.0 += n;
                    } else {
                        e.1 += n;
                    }
                }
            }
        }
        let counts = Counts::from_hash(&cur, cur_active);
        let previous = Counts::from_hash(&prev, prev_active);
        overview.add_counters(&counts);
        overview_prev.add_counters(&previous);
        let ok = sample.iter().filter(|u| with_factor.contains(*u)).count() as u64;
        let mfa = MfaShare {
            checked: sample.len() as u64,
            with_factor: ok,
            share: (!sample.is_empty()).then(|| ok as f64 / sample.len() as f64),
        };
        if let Some(s) = mfa.share {
            // Weighted by the tenant's active users, so a big tenant's sample counts for more.
            mfa_weighted += s * counts.active_users as f64;
            mfa_weight += counts.active_users;
        }
        overview_mfa.checked += mfa.checked;
        overview_mfa.with_factor += mfa.with_factor;
        tenant_reports.push(TenantReport {
            no_events: silent.contains(&tenant),
            tenant,
            counts,
            previous,
            mfa,
        });
    }
    overview.active_users = union;
    overview_prev.active_users = union_prev;
    overview_mfa.share = (mfa_weight > 0).then(|| mfa_weighted / mfa_weight as f64);
    tenant_reports.sort_by(|a, b| {
        b.counts
            .active_users
            .cmp(&a.counts.active_users)
            .then_with(|| (a.tenant == NO_TENANT).cmp(&(b.tenant == NO_TENANT)))
            .then_with(|| a.tenant.cmp(&b.tenant))
    });
    let daily_sign_ins = (1..=month.days())
        .map(|day| {
            let (ok, failed) = daily.get(&day).copied().unwrap_or_default();
            DailySignIns { day, ok, failed }
        })
        .collect();
    let complete = month.next().start(tz) <= now;
    let hooks = hook_health(&hooks);
    let warnings = warnings(month, complete, no_events, &hooks, &tenant_reports);
    Ok(MonthlyReport {
        month: m,
        month_name: month.long_name(),
        previous_month: p,
        timezone: tz.name().to_string(),
        generated_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        complete,
        overview,
        overview_previous: overview_prev,
        overview_mfa,
        tenants: tenant_reports,
        hooks,
        hooks_previous: hook_health(&hooks_prev),
        daily_sign_ins,
        no_events,
        warnings,
    })
}

/// The warnings at the top of the report: nothing recorded at all (then that one alone), or one
/// per tenant that went silent.
fn warnings(
    month: ReportMonth,
    complete: bool,
    no_events: bool,
    hooks: &HookHealth,
    tenants: &[TenantReport],
) -> Vec<String> {
    let when = format!(
        "{}{}",
        month.long_name(),
        if complete { "" } else { " so far" }
    );
    if no_events {
        let received = match hooks.events_received {
            0 => "The event hook delivered no events either.".to_string(),
            n => format!(
                "The event hook delivered {n} event{} but none was counted: check the adapter's \
                 log for the report consumer (report.group).",
                if n == 1 { "" } else { "s" }
            ),
        };
        return vec![format!(
            "No events were recorded for {when}, so every number below is zero. {received} \
             Check the Okta event hook: is it active and verified in the Okta Admin Console \
             (Workflow → Event Hooks), subscribed to the sign-in and lifecycle events, and \
             does it reach this adapter's /hooks/okta/events?"
        )];
    }
    tenants
        .iter()
        .filter(|t| t.no_events)
        .map(|t| {
            let before = match t.previous.active_users {
                0 if t.previous == Counts::default() => "it is a configured tenant".to_string(),
                0 => format!("it had events in {}", month.previous()),
                n => format!(
                    "it had {} in {}",
                    super::words::count_of(n, "active user", "active users"),
                    month.previous()
                ),
            };
            format!(
                "No events were recorded for tenant {} in {when} ({before}). Check that its \
                 users' events still reach the event hook and that the tenant rules ([tenants]) \
                 still match them.",
                t.tenant
            )
        })
        .collect()
}

/// Which of the sampled users have at least one factor in their projection now.
async fn users_with_factors(
    conn: &mut RedisConn,
    keys: &Keys,
    samples: &[Vec<String>],
) -> RedisResult<HashSet<String>> {
    let users: Vec<&String> = samples
        .iter()
        .flatten()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut found = HashSet::new();
    for chunk in users.chunks(1000) {
        let mut pipe = redis::pipe();
        for u in chunk {
            pipe.hgetall(keys.user(u));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
        for (u, h) in chunk.iter().zip(hashes) {
            if assemble_record(u, &h).is_some_and(|r| !r.factors.is_empty()) {
                found.insert((*u).clone());
            }
        }
    }
    Ok(found)
}

fn p99(hist: &Hash, prefix: &str) -> Option<String> {
    let labels: Vec<String> = LATENCY_BUCKETS_MS
        .iter()
        .map(|b| b.to_string())
        .chain(std::iter::once("inf".to_string()))
        .collect();
    let counts: Vec<u64> = labels
        .iter()
        .map(|l| hist.get(&format!("{prefix}{l}")).copied().unwrap_or(0))
        .collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The smallest bucket bound below which at least 99 % of the observations fall.
    let need = (total * 99).div_ceil(100);
    let mut seen = 0;
    for (label, n) in labels.iter().zip(&counts) {
        seen += n;
        if seen >= need {
            return Some(label.clone());
        }
    }
    Some("inf".into())
}

fn hook_health(h: &Hash) -> HookHealth {
    let g = |f: &str| h.get(f).copied().unwrap_or(0);
    let mut inline: Vec<InlineCount> = h
        .iter()
        .filter_map(|(k, n)| {
            let rest = k.strip_prefix(hook_field::INLINE)?;
            let (hook, outcome) = rest.rsplit_once(':')?;
            Some(InlineCount {
                hook: hook.to_string(),
                outcome: outcome.to_string(),
                count: *n,
            })
        })
        .collect();
    inline.sort_by(|a, b| (&a.hook, &a.outcome).cmp(&(&b.hook, &b.outcome)));
    let mut backfilled_hours: Vec<BackfilledHour> = h
        .iter()
        .filter(|(_, n)| **n > 0)
        .filter_map(|(k, n)| {
            Some(BackfilledHour {
                hour: k.strip_prefix(hook_field::BACKFILLED_HOUR)?.to_string(),
                events: *n,
            })
        })
        .collect();
    backfilled_hours.sort_by(|a, b| a.hour.cmp(&b.hour));
    HookHealth {
        events_received: g(hook_field::RECEIVED),
        duplicates_dropped: g(hook_field::DUPLICATES),
        unavailable_503: g(hook_field::UNAVAILABLE),
        ingest_p99_ms: p99(h, hook_field::INGEST_LATENCY),
        inline_p99_ms: p99(h, hook_field::INLINE_LATENCY),
        inline_decisions: inline,
        backfilled: g(hook_field::BACKFILLED),
        backfilled_hours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_is_the_bucket_that_holds_the_99th_percentile() {
        let mut h = Hash::new();
        h.insert("lat:ingest:2".into(), 98);
        h.insert("lat:ingest:10".into(), 1);
        h.insert("lat:ingest:500".into(), 1);
        assert_eq!(p99(&h, "lat:ingest:").as_deref(), Some("10"));
        h.insert("lat:ingest:2".into(), 990);
        assert_eq!(p99(&h, "lat:ingest:").as_deref(), Some("2"));
        assert_eq!(p99(&Hash::new(), "lat:ingest:"), None);
    }

    #[test]
    fn inline_decisions_are_split_by_hook_and_outcome() {
        let mut h = Hash::new();
        h.insert("inline:password-import:verified".into(), 3);
        h.insert("inline:password-import:unverified".into(), 1);
        h.insert("received".into(), 7);
        let hh = hook_health(&h);
        assert_eq!(hh.events_received, 7);
        assert_eq!(hh.inline_decisions.len(), 2);
        assert_eq!(hh.inline_decisions[1].outcome, "verified");
    }
}
