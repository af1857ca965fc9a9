//! The rules types cannot express: ranges, non-empty names, and rules that span several keys.
//! Every problem is reported, not just the first, each as one line that leads with its key.

use std::collections::{HashMap, HashSet};

use secrecy::ExposeSecret;

use super::{
    ConfigError, InlineSettings, Settings, TenantRuleSettings, CREDENTIAL_IMPORTS_ROUTE,
    RESERVED_TOKEN_CLAIMS,
};
use crate::domain::hash_cost::HashLimits;
use crate::domain::tenant_id::TenantId;

impl Settings {
    /// Checks everything that types alone cannot; every problem is reported, not just the first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.http.max_body_bytes == 0 {
            problems.push("http.max_body_bytes: must be greater than 0".into());
        }
        if self.http.header_read_timeout_ms == 0 {
            problems.push("http.header_read_timeout_ms: must be greater than 0".into());
        }
        if let Err(e) = redis::parse_redis_url(self.redis.url.expose_secret())
            .ok_or("not a redis:// or rediss:// URL")
        {
            problems.push(format!("redis.url: {e}"));
        }
        if self.redis.prefix.is_empty() || self.redis.prefix.contains(['{', '}', ' ']) {
            problems.push("redis.prefix: must be non-empty, without spaces or braces".into());
        }
        if self.redis.response_timeout_ms == 0 || self.redis.connect_timeout_ms == 0 {
            problems.push("redis.response_timeout_ms / connect_timeout_ms: must be > 0".into());
        }
        if self.redis.maintenance_interval_secs == 0 {
            problems.push("redis.maintenance_interval_secs: must be > 0".into());
        }
        if self.hooks.secrets.is_empty() {
            problems.push(
                "hooks.secrets: empty — set at least one, e.g. OKTA_ADAPTER__HOOKS__SECRETS='[\"a-long-random-value\"]'"
                    .into(),
            );
        }
        if self
            .hooks
            .secrets
            .iter()
            .any(|s| s.expose_secret().is_empty())
        {
            problems.push("hooks.secrets: contains an empty secret".into());
        }
        if self.hooks.dedup_window_secs == 0 {
            problems.push("hooks.dedup_window_secs: must be > 0".into());
        }
        // The ingest script unpacks per-slice lists into one Redis call (Lua's limit is ~8000).
        if !(1..=5000).contains(&self.hooks.max_events_per_write) {
            problems.push("hooks.max_events_per_write: must be between 1 and 5000".into());
        }
        let mut names = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let valid_name = !route.name.is_empty()
                && route
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid_name {
                problems.push(format!(
                    "routes[{i}].name: `{}` must be non-empty and use only letters, digits, - _ .",
                    route.name
                ));
            }
            if route.name == CREDENTIAL_IMPORTS_ROUTE {
                problems.push(format!(
                    "routes[{i}].name: `{}` is the name of a built-in route",
                    route.name
                ));
            }
            if !names.insert(route.name.clone()) {
                problems.push(format!("routes[{i}].name: `{}` is used twice", route.name));
            }
            if route.event_types.is_empty() {
                problems.push(format!(
                    "routes[{i}].event_types: must list at least one pattern"
                ));
            }
        }
        for (i, rule) in self.tenants.rules.iter().enumerate() {
            match rule {
                // Compiled at load (`values::group_pattern`).
                TenantRuleSettings::Group { .. } => {}
                // A map value is a tenant as written: a typo must stop the start, not silently
                // name no tenant for every matching event.
                TenantRuleSettings::App { map } | TenantRuleSettings::EmailDomain { map } => {
                    for (k, t) in map {
                        if let Err(e) = TenantId::parse(t) {
                            problems.push(format!("tenants.rules[{i}].map.{k}: {e}"));
                        }
                    }
                }
                TenantRuleSettings::Attribute { .. } => {}
            }
        }
        for (t, groups) in &self.tenants.groups {
            if let Err(e) = TenantId::parse(t) {
                problems.push(format!("tenants.groups.{t}: {e}"));
            }
            if groups.iter().any(|g| g.trim().is_empty()) {
                problems.push(format!("tenants.groups.{t}: a group id is empty"));
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            for t in &route.tenants {
                if let Err(e) = TenantId::parse(t) {
                    problems.push(format!("routes[{i}].tenants: {e}"));
                }
            }
        }
        self.inline.validate(&mut problems);
        let p = &self.projection;
        if p.list_scan_budget == 0 {
            problems.push("projection.list_scan_budget: must be greater than 0".into());
        }
        if p.group.is_empty() || p.batch == 0 || p.block_ms == 0 || p.max_deliveries == 0 {
            problems.push(
                "projection: group must be set and batch, block_ms, max_deliveries > 0".into(),
            );
        }
        let o = &self.okta;
        let url_ok = o.org_url.is_empty()
            || o.org_url.starts_with("https://")
            || o.org_url.starts_with("http://");
        if !o.private_key.expose_secret().is_empty() && !o.private_key_file.is_empty() {
            problems
                .push("okta.private_key and okta.private_key_file are both set: keep one".into());
        }
        if o.auth == "private_key_jwt" {
            if o.client_id.is_empty() {
                problems.push("okta.client_id: required with auth = \"private_key_jwt\"".into());
            }
            if let Err(e) = o.private_key_pem().and_then(|pem| {
                jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())
            }) {
                problems.push(format!("okta.private_key / okta.private_key_file: {e}"));
            }
        } else if o.auth != "ssws" {
            problems.push(format!(
                "okta.auth: `{}` is not ssws or private_key_jwt",
                o.auth
            ));
        }
        if !url_ok {
            problems.push(format!(
                "okta.org_url: `{}` is not an http(s) URL",
                o.org_url
            ));
        }
        if !(0.0..=0.9).contains(&o.headroom) || !(0.0..=0.5).contains(&o.interactive_reserve) {
            problems
                .push("okta.headroom must be 0.0–0.9 and okta.interactive_reserve 0.0–0.5".into());
        }
        if o.rate_window_ms == 0
            || o.default_limit == 0
            || o.max_concurrency == 0
            || o.max_attempts == 0
        {
            problems.push(
                "okta.rate_window_ms, default_limit, max_concurrency, max_attempts: must be > 0"
                    .into(),
            );
        }
        if self.jobs.concurrency == 0 || self.jobs.export_page == 0 {
            problems.push("jobs.concurrency and jobs.export_page: must be > 0".into());
        }
        if self.jobs.max_record_bytes == 0 || self.jobs.stale_upload_secs == 0 {
            problems.push("jobs.max_record_bytes and jobs.stale_upload_secs: must be > 0".into());
        }
        self.validate_report(&mut problems);
        problems.extend(self.console.problems());
        self.validate_delivery(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    fn validate_report(&self, problems: &mut Vec<String>) {
        let r = &self.report;
        if r.group.is_empty() || r.batch == 0 || r.block_ms == 0 {
            problems.push("report: group must be set and batch, block_ms > 0".into());
        }
        if r.check_interval_secs == 0 || r.lease_secs == 0 || r.retry_initial_ms == 0 {
            problems.push(
                "report.check_interval_secs / lease_secs / retry_initial_ms: must be > 0".into(),
            );
        }
        if r.retry_max_ms < r.retry_initial_ms {
            problems.push("report.retry_max_ms: must be >= report.retry_initial_ms".into());
        }
        if self.smtp.timeout_secs == 0 {
            problems.push("smtp.timeout_secs: must be > 0".into());
        }
    }
}

impl InlineSettings {
    fn validate(&self, problems: &mut Vec<String>) {
        if self.deadline_ms == 0 || self.deadline_ms >= 3000 {
            problems.push(format!(
                "inline.deadline_ms: {} must be between 1 and 2999 (Okta waits 3000 ms)",
                self.deadline_ms
            ));
        }
        if self.max_body_bytes == 0 {
            problems.push("inline.max_body_bytes: must be greater than 0".into());
        }
        let mut ids = HashSet::new();
        let mut domains = HashMap::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if let Err(e) = TenantId::parse(&t.id) {
                problems.push(format!("inline.tenants[{i}].id: {e}"));
            }
            if !ids.insert(t.id.as_str()) {
                problems.push(format!("inline.tenants[{i}].id: `{}` is used twice", t.id));
            }
            for d in &t.email_domains {
                let d = d.to_ascii_lowercase();
                if d.is_empty() || d.contains('@') {
                    problems.push(format!(
                        "inline.tenants[{i}].email_domains: `{d}` is not a domain like example.com"
                    ));
                }
                if let Some(other) = domains.insert(d.clone(), t.id.clone()) {
                    problems.push(format!(
                        "inline.tenants[{i}].email_domains: `{d}` also belongs to tenant `{other}`"
                    ));
                }
            }
        }
        let o = &self.oauth;
        if o.enabled {
            for (key, value) in [
                ("issuer", &o.issuer),
                ("audience", &o.audience),
                ("client_id", &o.client_id),
                ("jwks_url", &o.jwks_url),
            ] {
                if value.is_empty() {
                    problems.push(format!(
                        "inline.oauth.{key}: must be set when inline.oauth.enabled = true"
                    ));
                }
            }
            let http_url = o.jwks_url.starts_with("https://") || o.jwks_url.starts_with("http://");
            if !o.jwks_url.is_empty() && !http_url {
                problems.push(format!(
                    "inline.oauth.jwks_url: `{}` is not an http(s) URL",
                    o.jwks_url
                ));
            }
            if o.jwks_timeout_ms == 0 {
                problems.push("inline.oauth.jwks_timeout_ms: must be > 0".into());
            }
        }
        let p = &self.password_import;
        if p.max_failures == 0 || p.failure_window_secs == 0 {
            problems.push(
                "inline.password_import.max_failures / failure_window_secs: must be > 0".into(),
            );
        }
        problems.extend(
            HashLimits {
                max_bcrypt_cost: p.max_bcrypt_cost,
                max_pbkdf2_iterations: p.max_pbkdf2_iterations,
                max_argon2_kib_passes: p.max_argon2_kib_passes,
            }
            .problems(std::time::Duration::from_millis(self.deadline_ms)),
        );
        if p.cleanup_group.is_empty() {
            problems.push("inline.password_import.cleanup_group: must not be empty".into());
        }
        if p.cleanup_claim_idle_secs == 0 {
            problems.push("inline.password_import.cleanup_claim_idle_secs: must be > 0".into());
        }
        for (key, claim) in [
            ("tenant_claim", &self.token.tenant_claim),
            ("roles_claim", &self.token.roles_claim),
        ] {
            if RESERVED_TOKEN_CLAIMS.contains(&claim.as_str()) {
                problems.push(format!(
                    "inline.token.{key}: `{claim}` is a claim Okta reserves; a token hook may not set it"
                ));
            }
        }
        if !self.token.tenant_claim.is_empty() && self.token.tenant_claim == self.token.roles_claim
        {
            problems.push("inline.token.roles_claim: must differ from tenant_claim".into());
        }
        if !self.saml.tenant_attribute.is_empty()
            && self.saml.tenant_attribute == self.saml.roles_attribute
        {
            problems.push("inline.saml.roles_attribute: must differ from tenant_attribute".into());
        }
    }
}
