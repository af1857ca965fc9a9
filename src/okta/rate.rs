//! The Okta rate scheduler, shared by every replica through Redis.
//!
//! Okta counts requests per bucket per minute for the whole org (HOOKS-SPEC §4.2): the
//! `/api/v1/users` bucket's 600/min is shared with every other integration. Each bucket's
//! schedule lives in one Redis hash driven by `rate.lua` (GCRA): requests are spaced at
//! `limit × (1 − headroom)` per window, interactive requests may run ahead by
//! `interactive_reserve` of the budget (so a support action never queues behind a bulk job),
//! and responses feed back: `X-Rate-Limit-Limit` replaces the assumed limit, a low
//! `X-Rate-Limit-Remaining` (someone else is using the bucket) pauses bulk work until
//! `X-Rate-Limit-Reset`, and a 429 pauses everyone until then (plus jitter).

use std::time::Duration;

use crate::store::RedisConn;
use rand::Rng;
use redis::{AsyncCommands, RedisResult, Script};

use crate::config::OktaSettings;
use crate::store::Keys;

/// Which queue a request stands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A person is waiting (lifecycle actions).
    Interactive,
    /// Bulk job rows.
    Bulk,
}

/// Okta's rate-limit buckets for the endpoints the adapter calls (HOOKS-SPEC §4.2).
pub fn bucket_for(method: &str, path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    let rest = path.strip_prefix("/api/v1/users");
    match (method, rest) {
        ("GET" | "POST", Some("")) => "users-create-list",
        ("GET", Some(r)) if r.matches('/').count() == 1 => "users-get",
        (_, Some(r)) if r.starts_with('/') => "users-by-id",
        _ if path.starts_with("/api/v1/groups") => "groups",
        _ if path.starts_with("/api/v1/apps") => "apps",
        _ if path.starts_with("/api/v1/logs") => "logs",
        _ => "other",
    }
}

/// What a response said about its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// Epoch seconds.
    pub reset: Option<u64>,
}

impl RateHeaders {
    pub fn from_headers(h: &reqwest::header::HeaderMap) -> Self {
        let num = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Self {
            limit: num("x-rate-limit-limit").map(|v| v as u32),
            remaining: num("x-rate-limit-remaining").map(|v| v as u32),
            reset: num("x-rate-limit-reset"),
        }
    }
}

#[derive(Clone)]
pub struct RateLimiter {
    keys: Keys,
    script: Script,
    window_ms: u64,
    default_limit: u32,
    headroom: f64,
    reserve: f64,
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

impl RateLimiter {
    pub fn new(keys: Keys, s: &OktaSettings) -> Self {
        Self {
            keys,
            script: Script::new(include_str!("rate.lua")),
            window_ms: s.rate_window_ms,
            default_limit: s.default_limit,
            headroom: s.headroom,
            reserve: s.interactive_reserve,
        }
    }

    /// Waits until `bucket` has room for one request in `lane`, and books it.
    pub async fn acquire(&self, conn: &mut RedisConn, bucket: &str, lane: Lane) -> RedisResult<()> {
        let key = self.keys.okta_rate(bucket);
        loop {
            let wait: u64 = self
                .script
                .key(&key)
                .arg(now_ms())
                .arg(match lane {
                    Lane::Interactive => "i",
                    Lane::Bulk => "b",
                })
                .arg(self.window_ms)
                .arg(self.default_limit)
                .arg(self.headroom)
                .arg(self.reserve)
                .arg(2)
                .invoke_async(conn)
                .await?;
            if wait == 0 {
                return Ok(());
            }
            metrics::counter!("okta_adapter_okta_rate_waits_total", "bucket" => bucket.to_owned())
                .increment(1);
            tokio::time::sleep(Duration::from_millis(wait.min(self.window_ms))).await;
        }
    }

    /// Feeds a response's rate headers back into the shared schedule.
    pub async fn observe(
        &self,
        conn: &mut RedisConn,
        bucket: &str,
        h: RateHeaders,
        too_many: bool,
    ) -> RedisResult<()> {
        let key = self.keys.okta_rate(bucket);
        let reset_ms = h.reset.map(|s| s * 1000);
        let mut pipe = redis::pipe();
        if let Some(limit) = h.limit.filter(|l| *l > 0) {
            pipe.hset(&key, "limit", limit).ignore();
        }
        let jitter = rand::rng().random_range(0..=self.window_ms / 20 + 1);
        if too_many {
            // Okta: rejected "until the counter resets". Without a usable Reset, one window.
            let until = reset_ms.unwrap_or(now_ms() + self.window_ms).max(now_ms()) + jitter;
            pipe.cmd("HSET")
                .arg(&key)
                .arg("blocked")
                .arg(until)
                .ignore();
            metrics::counter!("okta_adapter_okta_429_total", "bucket" => bucket.to_owned())
                .increment(1);
        } else if let (Some(limit), Some(remaining)) = (h.limit, h.remaining) {
            // Someone else is eating the bucket: leave what is left to interactive requests.
            let floor = (f64::from(limit) * self.headroom / 2.0).ceil() as u32;
            if limit > 0 && remaining <= floor {
                let until = reset_ms.unwrap_or(now_ms() + self.window_ms) + jitter;
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg("bulk_blocked")
                    .arg(until)
                    .ignore();
            }
        }
        pipe.pexpire(&key, (self.window_ms * 10) as i64).ignore();
        pipe.query_async::<()>(conn).await?;
        if let Some(r) = h.remaining {
            metrics::gauge!("okta_adapter_okta_rate_remaining", "bucket" => bucket.to_owned())
                .set(f64::from(r));
        }
        Ok(())
    }

    /// Clears a bucket's schedule (tests).
    pub async fn reset(&self, conn: &mut RedisConn, bucket: &str) -> RedisResult<()> {
        conn.del(self.keys.okta_rate(bucket)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_fall_into_okta_buckets() {
        assert_eq!(
            bucket_for("POST", "/api/v1/users?activate=false"),
            "users-create-list"
        );
        assert_eq!(bucket_for("GET", "/api/v1/users"), "users-create-list");
        assert_eq!(bucket_for("GET", "/api/v1/users/00u1"), "users-get");
        assert_eq!(bucket_for("POST", "/api/v1/users/00u1"), "users-by-id");
        assert_eq!(
            bucket_for("POST", "/api/v1/users/00u1/lifecycle/suspend"),
            "users-by-id"
        );
        assert_eq!(
            bucket_for("DELETE", "/api/v1/users/00u1/sessions"),
            "users-by-id"
        );
        assert_eq!(
            bucket_for("PUT", "/api/v1/groups/00g1/users/00u1"),
            "groups"
        );
        assert_eq!(bucket_for("POST", "/api/v1/apps/0oa1/users"), "apps");
    }
}
