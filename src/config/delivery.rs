//! `[spool]`, `[backfill]` and `hooks.durability`: what a 204 to Okta promises and how holes are
//! filled (see `docs/delivery.md`).

use serde::{Deserialize, Deserializer};

/// `[spool]`: the local disk spool used while Redis cannot take deliveries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSettings {
    /// Spool deliveries to disk when Redis is unreachable or read-only (else: 503).
    pub enabled: bool,
    /// Directory of the spool files; one file per process, never shared by two live processes.
    pub dir: String,
    /// Bytes of one process's spool file at most; a delivery that does not fit gets 503.
    pub max_bytes: u64,
    /// How often the drain task retries Redis while deliveries wait, in ms.
    pub drain_interval_ms: u64,
    /// Pause after each drained delivery, in ms (0 = none): spreads a large drain.
    pub drain_pause_ms: u64,
}

/// `[backfill]`: System Log polling that fills what event hooks missed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillSettings {
    /// Poll continuously (needs `okta.org_url` and credentials).
    pub enabled: bool,
    /// Seconds between continuous rounds.
    pub interval_secs: u64,
    /// Events per System Log page (`limit`, 1–1000).
    pub page_limit: u32,
    /// Pages one round reads at most; the next round continues from the stored `next` link.
    pub max_pages_per_round: u32,
    /// With no stored watermark, the first round starts this many minutes back.
    pub initial_lookback_mins: u64,
}

/// `hooks.durability`: what a 204 waits for besides the ingest script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The script's reply: the events are in Redis's memory.
    #[default]
    Memory,
    /// The events are in Redis's append-only file on disk (`appendfsync always`, or `WAITAOF`
    /// on Redis ≥ 7.2).
    Aof,
    /// The events reached this many replicas (`WAIT n timeout`).
    Replicas(u32),
}

impl Durability {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "memory" => Ok(Self::Memory),
            "aof" => Ok(Self::Aof),
            _ => match s.strip_prefix("replicas:").map(str::parse::<u32>) {
                Some(Ok(n)) if n >= 1 => Ok(Self::Replicas(n)),
                _ => Err(format!(
                    "`{s}` is not one of memory, aof, replicas:N (N ≥ 1)"
                )),
            },
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Aof => f.write_str("aof"),
            Self::Replicas(n) => write!(f, "replicas:{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Durability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl super::Settings {
    /// `[spool]` (and later `[backfill]`) rules; called by `validate`.
    pub(super) fn validate_delivery(&self, problems: &mut Vec<String>) {
        let spool = &self.spool;
        if spool.enabled && spool.dir.trim().is_empty() {
            problems.push("spool.dir: must not be empty while spool.enabled".into());
        }
        // A record needs room for one whole delivery, or every spooled delivery would be refused.
        if spool.enabled && spool.max_bytes < self.http.max_body_bytes as u64 + 16 {
            problems.push(
                "spool.max_bytes: must be at least http.max_body_bytes + 16 (one delivery)".into(),
            );
        }
        if spool.drain_interval_ms == 0 {
            problems.push("spool.drain_interval_ms: must be > 0".into());
        }
        let backfill = &self.backfill;
        if !(1..=1000).contains(&backfill.page_limit) {
            problems
                .push("backfill.page_limit: must be between 1 and 1000 (Okta's maximum)".into());
        }
        if backfill.interval_secs == 0 || backfill.max_pages_per_round == 0 {
            problems.push(
                "backfill.interval_secs and backfill.max_pages_per_round: must be > 0".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_settings_parse_and_print_back() {
        for s in ["memory", "aof", "replicas:2"] {
            assert_eq!(Durability::parse(s).unwrap().to_string(), s);
        }
        for bad in ["", "disk", "replicas:", "replicas:0", "replicas:x"] {
            assert!(Durability::parse(bad).is_err(), "{bad}");
        }
    }
}
