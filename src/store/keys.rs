//! Every Redis key the adapter writes, in one place.
//!
//! All keys start with `redis.prefix`. Keys that one ingest script writes together (the
//! firehose, the route streams, the de-duplication set and the user → tenant index) share the
//! hash tag `{events}`, so they live in one Redis Cluster slot and the script stays legal on a
//! cluster. Okta caps an org at 400,000 events a day, which one slot carries easily; per-user
//! keys added later carry the user id as their own tag so they spread over the cluster.

/// Builds key names for one deployment (one `redis.prefix`).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Internal stream of `user.import.password` events only, for the credential clean-up
    /// consumer (so it does not read the whole firehose): `<prefix>:{events}:credential-imports`.
    pub fn credential_imports(&self) -> String {
        format!("{}:{{events}}:credential-imports", self.prefix)
    }

    /// Stream that receives every accepted event: `<prefix>:{events}:firehose`.
    pub fn firehose(&self) -> String {
        format!("{}:{{events}}:firehose", self.prefix)
    }

    /// Stream of one configured route: `<prefix>:{events}:route:<name>`.
    pub fn route(&self, name: &str) -> String {
        format!("{}:{{events}}:route:{name}", self.prefix)
    }

    /// Sorted set of the event uuids written, scored by the time they were accepted (ms since
    /// the epoch): `<prefix>:{events}:dedup`. A uuid scored within `hooks.dedup_window_secs` of
    /// now is a duplicate; older members are removed by the maintenance loop.
    pub fn dedup(&self) -> String {
        format!("{}:{{events}}:dedup", self.prefix)
    }

    /// Hash: Okta user id → the tenant learned from an earlier event of that user.
    pub fn user_tenant(&self) -> String {
        format!("{}:{{events}}:user-tenant", self.prefix)
    }

    /// Stream of inline hook decisions (type, user, outcome, latency; never a secret), trimmed
    /// with `MAXLEN ~ inline.decisions_maxlen`: `<prefix>:{events}:inline-decisions`. It sits in
    /// the `{events}` slot with the other streams so reports read all of them from one node.
    pub fn inline_decisions(&self) -> String {
        format!("{}:{{events}}:inline-decisions", self.prefix)
    }

    /// String: the legacy password hash of one login (lower-cased), loaded by
    /// `okta-adapter credentials import` and read by the password import hook. Deleted only
    /// when Okta reports `user.import.password` with outcome SUCCESS for that login. The login
    /// is the hash tag, so a login's hash and failure counter share a cluster slot and spread
    /// over the cluster with the logins.
    pub fn legacy_credential(&self, login: &str) -> String {
        format!("{}:{{cred:{}}}:hash", self.prefix, login.to_lowercase())
    }

    /// Counter of wrong passwords for one login (lower-cased), expiring after
    /// `inline.password_import.failure_window_secs`; at `max_failures` the hook stops hashing.
    pub fn credential_failures(&self, login: &str) -> String {
        format!("{}:{{cred:{}}}:failures", self.prefix, login.to_lowercase())
    }

    /// Hash: one user's projection — registers and recent events, in the compact format of
    /// `projection::codec`. Tagged by the user id so users spread over a cluster. (The key name
    /// is short on purpose: there is one per Okta user.)
    pub fn user(&self, id: &str) -> String {
        format!("{}:u:{{{id}}}", self.prefix)
    }

    /// SCAN patterns of every key the projections own (user hashes and their indexes), for
    /// `projections rebuild`, which drops them before replaying the firehose.
    pub fn projection_patterns(&self) -> [String; 2] {
        [
            format!("{}:u:*", self.prefix),
            format!("{}:idx:*", self.prefix),
        ]
    }

    /// Hash: lower-cased login → user id. A hint: readers check the user's current login.
    pub fn login_index(&self) -> String {
        format!("{}:idx:login", self.prefix)
    }

    /// Hash: lower-cased email → user id (a hint, like the login index).
    pub fn email_index(&self) -> String {
        format!("{}:idx:email", self.prefix)
    }

    /// Sorted set (all scores 0): `login\0id` of every user, for paging in login order.
    pub fn users_index(&self) -> String {
        format!("{}:idx:users", self.prefix)
    }

    /// Sorted set: `login\0id` of one tenant's users.
    pub fn tenant_index(&self, tenant: &str) -> String {
        format!("{}:idx:tenant:{tenant}", self.prefix)
    }

    /// String: `published` stamp of the newest event any projection applied.
    pub fn projection_freshness(&self) -> String {
        format!("{}:projection:fresh", self.prefix)
    }

    /// Stream: firehose entries a consumer could not apply, with the reason.
    pub fn dead_letter(&self) -> String {
        format!("{}:dead-letter", self.prefix)
    }

    /// Stream: who read or changed which user's record, when, and why.
    pub fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }

    /// Stream: one entry per finished bulk-job row (`job`, `line`, `kind`, `tenant`, `outcome` =
    /// `done|failed`, `at`), written by the job runner and counted as migration progress.
    /// In the `{events}` slot with the other streams the report's count-and-acknowledge script
    /// reads, so that script stays legal on Redis Cluster.
    pub fn job_rows(&self) -> String {
        format!("{}:{{events}}:job-rows", self.prefix)
    }

    /// Hash: one tenant's counters for one business month (`new_users`, `sign_ins_ok`, …, and
    /// `day:<dd>:ok|fail` for the daily chart). `tenant` is `-` for events without a tenant.
    /// All report aggregates share the `{events}` tag: the script that counts an entry and
    /// acknowledges it is one atomic step (see `reporting::aggregate`).
    pub fn report_counters(&self, month: &str, tenant: &str) -> String {
        format!("{}:{{events}}:report:{month}:t:{tenant}", self.prefix)
    }

    /// HyperLogLog: distinct users with a successful sign-in, one tenant, one month.
    pub fn report_active(&self, month: &str, tenant: &str) -> String {
        format!("{}:{{events}}:report:{month}:active:{tenant}", self.prefix)
    }

    /// Sorted set: the (at most `reporting::aggregate::MFA_SAMPLE`) active users of a tenant with
    /// the smallest hash — a uniform sample whose projections give the MFA share.
    pub fn report_active_sample(&self, month: &str, tenant: &str) -> String {
        format!("{}:{{events}}:report:{month}:sample:{tenant}", self.prefix)
    }

    /// Set: tenants that have aggregates for a month.
    pub fn report_tenants(&self, month: &str) -> String {
        format!("{}:{{events}}:report:{month}:tenants", self.prefix)
    }

    /// Hash: hook health for a month (events received, duplicates, 503s, latency histograms,
    /// inline decisions by hook and outcome). Not per tenant: a delivery has no single tenant.
    pub fn report_hooks(&self, month: &str) -> String {
        format!("{}:{{events}}:report:{month}:hooks", self.prefix)
    }

    /// String (JSON): the month's report was accepted by the mail server — Message-ID, time,
    /// sender instance. Written once (`SET NX`); its presence is what "sent" means. The send
    /// record (`sent`, `last-sent`, `attempt`) shares the `{report}` tag: it is written in one
    /// `MULTI`, which on a cluster must stay on one slot. Before 0.1.0's cluster support these
    /// keys had no tag ([`Self::legacy_report_sent`]); `reporting::migrate` copies them.
    pub fn report_sent(&self, month: &str) -> String {
        format!("{}:{{report}}:sent:{month}", self.prefix)
    }

    /// The untagged name [`Self::report_sent`] had before (`<prefix>:report:sent:<month>`): still
    /// read, so a month sent before the upgrade is never sent again.
    pub fn legacy_report_sent(&self, month: &str) -> String {
        format!("{}:report:sent:{month}", self.prefix)
    }

    /// String: the instance currently allowed to send a month's report (`SET NX PX`), renewed
    /// while it retries, released when it gives up.
    pub fn report_lease(&self, month: &str) -> String {
        format!("{}:report:lease:{month}", self.prefix)
    }

    /// String (JSON): an attempt to send is in progress or ended without a known outcome; keeps
    /// the Message-ID so a retry after a crash reuses it (mail clients merge equal Message-IDs).
    pub fn report_attempt(&self, month: &str) -> String {
        format!("{}:{{report}}:attempt:{month}", self.prefix)
    }

    /// The untagged name [`Self::report_attempt`] had before.
    pub fn legacy_report_attempt(&self, month: &str) -> String {
        format!("{}:report:attempt:{month}", self.prefix)
    }

    /// String: unix time the report scheduler first ran against this prefix (`SET NX`). A month
    /// without events that ended before it is not mailed by the scheduler (a fresh install).
    pub fn report_scheduled_since(&self) -> String {
        format!("{}:report:scheduled-since", self.prefix)
    }

    /// String: unix time of the newest report accepted by the mail server, for `/metrics`.
    pub fn report_last_sent(&self) -> String {
        format!("{}:{{report}}:last-sent", self.prefix)
    }

    /// Set once the send records were moved to the `{report}` tag (`reporting::migrate`), so
    /// later starts skip the keyspace scan.
    pub fn report_keys_migrated(&self) -> String {
        format!("{}:{{report}}:migrated", self.prefix)
    }

    /// The untagged name [`Self::report_last_sent`] had before.
    pub fn legacy_report_last_sent(&self) -> String {
        format!("{}:report:last-sent", self.prefix)
    }

    /// SCAN patterns of the untagged send-record keys (`sent:<month>`, `attempt:<month>`) for
    /// the migration at start; the lease and `scheduled-since` kept their names.
    pub fn legacy_report_patterns(&self) -> [String; 2] {
        let prefix = super::scan::glob_escape(&self.prefix);
        [
            format!("{prefix}:report:sent:*"),
            format!("{prefix}:report:attempt:*"),
        ]
    }

    /// Hash: one API key (hash of its secret, role, tenant, created, revoked).
    pub fn api_key(&self, id: &str) -> String {
        format!("{}:apikey:{id}", self.prefix)
    }

    /// Hash: the shared schedule of one Okta rate-limit bucket (see `okta::rate`).
    pub fn okta_rate(&self, bucket: &str) -> String {
        format!("{}:okta:rate:{bucket}", self.prefix)
    }

    /// Hash: a bulk job's metadata and counters. Tagged by job id, like its other keys.
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{{{id}}}", self.prefix)
    }

    /// Sorted set: a job's per-row results (score = line number, member = JSON result).
    pub fn job_results(&self, id: &str) -> String {
        format!("{}:job:{{{id}}}:results", self.prefix)
    }

    /// Hash: line → marker set just before a row's Okta call, so a replayed `create` that
    /// meets `E0000001` knows the login was created by this job.
    pub fn job_attempts(&self, id: &str) -> String {
        format!("{}:job:{{{id}}}:attempts", self.prefix)
    }

    /// Sorted set of job ids by creation time (listing).
    pub fn jobs(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// Sorted set: jobs whose file is being read (score = last upload progress, ms), so the
    /// maintenance sweep can cancel uploads a crash cut off.
    pub fn jobs_validating(&self) -> String {
        format!("{}:jobs:validating", self.prefix)
    }

    /// Stream: rows of every job waiting for a worker (consumer group `job-workers`).
    pub fn job_queue(&self) -> String {
        format!("{}:jobs:queue", self.prefix)
    }

    /// Set: ids of all API keys, for listing.
    pub fn api_keys(&self) -> String {
        format!("{}:apikeys", self.prefix)
    }

    /// String: the System Log `next` link continuous backfill polls from (issue 16).
    pub fn backfill_watermark(&self) -> String {
        format!("{}:backfill:watermark", self.prefix)
    }

    /// Stream of entries replayed for a new consumer group of that name (issue 16):
    /// `<prefix>:{events}:replay:<name>`.
    pub fn replay(&self, name: &str) -> String {
        format!("{}:{{events}}:replay:{name}", self.prefix)
    }

    /// String with a TTL: the replica running the current continuous backfill round.
    pub fn backfill_lease(&self) -> String {
        format!("{}:backfill:lease", self.prefix)
    }
}

/// The web console's keys (`src/console/`). Every secret it hands out (session id, sign-in
/// state, one-time link) is stored only under its SHA-256, so a Redis dump opens no session.
impl Keys {
    /// Hash: one console session (role, tenant, who, CSRF token, created), TTL = idle timeout.
    pub fn console_session(&self, id_digest: &str) -> String {
        format!("{}:console:session:{id_digest}", self.prefix)
    }

    /// Hash: an OIDC sign-in in progress (PKCE verifier, nonce), keyed by its `state`.
    pub fn console_login(&self, state_digest: &str) -> String {
        format!("{}:console:login:{state_digest}", self.prefix)
    }

    /// String: a one-time console form already sent (a secret rotation), keyed by the SHA-256
    /// of the session digest and the form's nonce; TTL one day.
    pub fn console_once(&self, digest: &str) -> String {
        format!("{}:console:once:{digest}", self.prefix)
    }

    /// Hash: an unused one-time sign-in link (tenant, minted by), TTL = `console.link_ttl_secs`.
    pub fn console_link(&self, token_digest: &str) -> String {
        format!("{}:console:link:{token_digest}", self.prefix)
    }
}

/// Self-service MFA reset (`src/selfservice/`). Every key expires on its own.
impl Keys {
    /// Hash: one emailed link, under the SHA-256 of its token (the token itself is never
    /// stored): user id, login, tenant. Expires with the link (`self_service.link_ttl_secs`);
    /// deleted when used or replaced.
    pub fn self_service_token(&self, digest: &str) -> String {
        format!("{}:ss:t:{digest}", self.prefix)
    }

    /// String: the digest of a user's current link, so a new request deletes the older link.
    pub fn self_service_user(&self, user_id: &str) -> String {
        format!("{}:ss:u:{{{user_id}}}", self.prefix)
    }

    /// Counter of requests for one login in the current limit window, under the hex SHA-256 of
    /// the lower-cased login (what a visitor typed may be anything, of any length).
    pub fn self_service_login_count(&self, login_digest: &str) -> String {
        format!("{}:ss:rl:login:{login_digest}", self.prefix)
    }

    /// Counter of requests from one client IP in the current limit window.
    pub fn self_service_ip_count(&self, ip: &str) -> String {
        format!("{}:ss:rl:ip:{ip}", self.prefix)
    }
}

/// Tenant provisioning (`crate::tenants`). A tenant's keys share its name as hash tag.
impl Keys {
    /// Hash: a tenant's desired document, state, last apply id, and the current config of each
    /// installation (`config:<installation>`).
    pub fn tenant(&self, tenant: &str) -> String {
        format!("{}:tenant:{{{tenant}}}", self.prefix)
    }

    /// Hash: resource (`group:users`, `group:admins`, `rule`, `app:<installation>`) → the Okta
    /// id it has, recorded by the apply step that found or created it.
    pub fn tenant_ids(&self, tenant: &str) -> String {
        format!("{}:tenant:{{{tenant}}}:ids", self.prefix)
    }

    /// Hash: one apply (`meta` JSON, and one field per finished step with its JSON result).
    pub fn tenant_apply(&self, tenant: &str, apply: &str) -> String {
        format!("{}:tenant:{{{tenant}}}:apply:{apply}", self.prefix)
    }

    /// Sorted set of tenant ids (score 0), for listing.
    pub fn tenants(&self) -> String {
        format!("{}:tenants", self.prefix)
    }

    /// Stream: applies waiting for a worker (consumer group `tenant-workers`).
    pub fn tenant_queue(&self) -> String {
        format!("{}:tenants:queue", self.prefix)
    }

    /// Stream: one entry per change of an installation's configuration, for products.
    pub fn config_stream(&self) -> String {
        format!("{}:config", self.prefix)
    }

    /// Pub/sub channel on which an apply hands a new app's client secret to the request that
    /// waits for it (never stored).
    pub fn tenant_secret_channel(&self, apply: &str) -> String {
        format!("{}:tenants:secrets:{apply}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis Cluster hashes only the part between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = key[open..].find('}').unwrap() + open;
        &key[open + 1..close]
    }

    #[test]
    fn keys_written_by_one_ingest_script_share_a_hash_tag() {
        let k = Keys::new("okta-adapter");
        let tags = [
            k.firehose(),
            k.route("lifecycle"),
            k.dedup(),
            k.user_tenant(),
        ]
        .map(|key| hash_tag(&key).to_string());
        assert!(tags.iter().all(|t| t == "events"), "{tags:?}");
        assert_eq!(k.firehose(), "okta-adapter:{events}:firehose");
        assert_eq!(hash_tag(&k.inline_decisions()), "events");
    }

    #[test]
    fn a_login_s_hash_and_failure_counter_share_a_slot_whatever_its_case() {
        let k = Keys::new("p");
        assert_eq!(
            k.legacy_credential("Jane@Acme.com"),
            "p:{cred:jane@acme.com}:hash"
        );
        assert_eq!(
            hash_tag(&k.legacy_credential("Jane@Acme.com")),
            hash_tag(&k.credential_failures("jane@acme.com"))
        );
    }
}
