//! The legacy credential store: loaded from a file, read by the password import hook, cleaned
//! up when Okta confirms the import.
//!
//! **Import** (`okta-adapter credentials import FILE`): one login and its legacy hash per row,
//! as CSV (`.csv`: a header row `login,hash`, then one quoted-as-needed row per user — PBKDF2
//! and argon2 PHC strings contain commas) or JSON lines (any other extension:
//! `{"login": "…", "hash": "…"}` per line; blank lines and `#` comments skipped). Every hash is
//! parsed before anything is written; a bad row — including a hash over the [`HashLimits`], too
//! slow to verify within the hook's deadline — is reported with its line number (never its hash)
//! and skipped, the others are loaded. Loading again overwrites.
//!
//! **Clean-up**: Okta's guidance is to delete a legacy password only once the System Log shows
//! `user.import.password` with outcome SUCCESS (HOOKS-SPEC §3.6.1) — a `VERIFIED` answer alone
//! does not prove Okta stored the password (e.g. the org is in read-only mode and will call the
//! hook again). [`Cleanup`] is a consumer group (`inline.password_import.cleanup_group`) on
//! the built-in `credential-imports` stream, which ingest fills with exactly those events (so the
//! clean-up never has to read, and keep up with, the whole firehose). It runs on the shared
//! consumer runner: it deletes the hash of each such SUCCESS event's user and acknowledges only
//! after the delete. Entries read but not acknowledged before a crash (their consumer is gone:
//! names are unique per process) are taken over by any running replica once idle for
//! `inline.password_import.cleanup_claim_idle_secs`.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use crate::store::RedisConn;
use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;

use super::password::{HashLimits, LegacyHash};
use crate::config::RedisSettings;
use crate::okta::event_hook::LogEventSummary;
use crate::store::consumer::{Batch, BatchHandler, GroupConsumer};
use crate::store::Keys;

/// The Okta event that proves a password was imported.
pub const PASSWORD_IMPORTED_EVENT: &str = "user.import.password";

/// One row of a credential file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    pub line: usize,
    pub login: String,
    /// The hash exactly as given (it was parsed successfully).
    pub hash: String,
}

/// What a file held: good rows, and one message per bad row.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub rows: Vec<CredentialRow>,
    pub errors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
}

/// Reads a credential file (format by extension: `.csv`, anything else JSON lines).
pub fn read_credential_file(path: &Path, limits: &HashLimits) -> Result<ParsedFile, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let reader = std::io::BufReader::new(file);
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        parse_csv(reader, limits)
    } else {
        Ok(parse_json_lines(reader, limits))
    }
}

fn check_row(line: usize, login: &str, hash: &str, limits: &HashLimits, out: &mut ParsedFile) {
    let login = login.trim();
    if login.is_empty() {
        out.errors.push(format!("line {line}: the login is empty"));
        return;
    }
    match LegacyHash::parse(hash).and_then(|h| limits.check(&h)) {
        Ok(()) => out.rows.push(CredentialRow {
            line,
            login: login.to_string(),
            hash: hash.trim().to_string(),
        }),
        Err(e) => out.errors.push(format!("line {line} ({login}): {e}")),
    }
}

/// CSV with a `login,hash` header (columns found by name, extra columns ignored).
pub fn parse_csv(
    reader: impl std::io::Read,
    limits: &HashLimits,
) -> Result<ParsedFile, ImportError> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| ImportError::Format(format!("line 1: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(login_col), Some(hash_col)) = (col("login"), col("hash")) else {
        return Err(ImportError::Format(
            "line 1: the header must name the columns `login` and `hash`".into(),
        ));
    };
    let mut out = ParsedFile::default();
    for record in csv.records() {
        match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line() as usize);
                match (r.get(login_col), r.get(hash_col)) {
                    (Some(login), Some(hash)) => check_row(line, login, hash, limits, &mut out),
                    _ => out
                        .errors
                        .push(format!("line {line}: missing the login or hash column")),
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                out.errors.push(format!("line {line}: not valid CSV"));
            }
        }
    }
    Ok(out)
}

/// JSON lines: `{"login": "…", "hash": "…"}`.
pub fn parse_json_lines(reader: impl BufRead, limits: &HashLimits) -> ParsedFile {
    #[derive(serde::Deserialize)]
    struct Row {
        login: String,
        hash: String,
    }
    let mut out = ParsedFile::default();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let Ok(line) = line else {
            out.errors.push(format!("line {n}: not UTF-8 text"));
            continue;
        };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match serde_json::from_str::<Row>(trimmed) {
            Ok(row) => check_row(n, &row.login, &row.hash, limits, &mut out),
            // serde's message may quote the input; keep only where it went wrong.
            Err(e) => out.errors.push(format!(
                "line {n}: expected {{\"login\": \"…\", \"hash\": \"…\"}} (column {})",
                e.column()
            )),
        }
    }
    out
}

/// Writes the rows (SET, pipelined 1,000 at a time); returns how many were written.
pub async fn store_credentials(
    conn: &mut RedisConn,
    keys: &Keys,
    rows: &[CredentialRow],
) -> RedisResult<usize> {
    for chunk in rows.chunks(1000) {
        let mut pipe = redis::pipe();
        for row in chunk {
            pipe.set(keys.legacy_credential(&row.login), &row.hash)
                .ignore();
        }
        let _: () = pipe.query_async(conn).await?;
    }
    Ok(rows.len())
}

/// The login whose legacy hash a firehose entry allows deleting: a `user.import.password` event
/// with outcome SUCCESS, about a user with a login.
pub fn imported_login(event_type: &str, outcome: &str, event_json: &str) -> Option<String> {
    if event_type != PASSWORD_IMPORTED_EVENT || outcome != "SUCCESS" {
        return None;
    }
    let event: LogEventSummary = serde_json::from_str(event_json).ok()?;
    event
        .subject_user()
        .and_then(|u| u.login)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

/// The clean-up consumer: a group on the `credential-imports` stream, run by the shared
/// [`GroupConsumer`] (connect, reclaim, `NOGROUP`, back-off).
pub struct Cleanup {
    pub keys: Keys,
    pub group: GroupConsumer,
}

impl Cleanup {
    /// `consumer` must be unique per process, so replicas never share a pending list.
    pub fn new(keys: Keys, group: String, consumer: String, claim_idle: Duration) -> Self {
        let group = GroupConsumer {
            label: "credential_cleanup",
            streams: vec![keys.credential_imports()],
            group,
            consumer,
            batch: 1000,
            block_ms: 5000,
            claim_idle_ms: claim_idle.as_millis() as u64,
            export_lag: false,
        };
        Self { keys, group }
    }

    /// Runs until cancelled.
    pub async fn run(self, redis: RedisSettings, cancel: CancellationToken) {
        self.group.run(&self, &redis, &cancel).await
    }
}

impl BatchHandler for Cleanup {
    /// Almost every entry is not a password import; apply what is, then acknowledge the whole
    /// batch at once (after applying, so a crash replays rather than loses).
    async fn handle(&self, conn: &mut RedisConn, batch: Batch) -> RedisResult<()> {
        for entry in &batch.entries {
            apply_entry(conn, &self.keys, entry).await?;
        }
        if batch.reclaimed {
            metrics::counter!("okta_adapter_credential_cleanup_reclaimed_total")
                .increment(batch.entries.len() as u64);
        }
        let ids: Vec<&str> = batch.entries.iter().map(|e| e.id.as_str()).collect();
        let _: () = conn.xack(&batch.stream, &self.group.group, &ids).await?;
        Ok(())
    }
}

async fn apply_entry(
    conn: &mut RedisConn,
    keys: &Keys,
    entry: &redis::streams::StreamId,
) -> RedisResult<()> {
    let field = |name: &str| -> String { entry.get(name).unwrap_or_default() };
    let Some(login) = imported_login(&field("type"), &field("outcome"), &field("event")) else {
        return Ok(());
    };
    let deleted: u64 = redis::cmd("DEL")
        .arg(keys.legacy_credential(&login))
        .arg(keys.credential_failures(&login))
        .query_async(conn)
        .await?;
    metrics::counter!("okta_adapter_legacy_credentials_deleted_total").increment(deleted.min(1));
    tracing::info!(%login, "password imported by Okta; legacy hash deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inline::password::{salted_sha_string, Sha};

    const LIMITS: HashLimits = HashLimits {
        max_bcrypt_cost: 12,
        max_pbkdf2_iterations: 2_000_000,
        max_argon2_kib_passes: 262_144,
    };

    fn good() -> String {
        salted_sha_string(Sha::Sha256, b"salt", b"pw")
    }

    #[test]
    fn csv_rows_with_commas_in_quoted_phc_hashes_are_read_and_bad_rows_named() {
        let pbkdf2 = crate::inline::password::pbkdf2_string(Sha::Sha256, 10, b"saltsalt", b"pw");
        let file = format!(
            "login,hash\njane@acme.com,{}\n\"bob@acme.com\",\"{pbkdf2}\"\n,{}\neve@acme.com,$md5$x$y\n",
            good(),
            good()
        );
        let parsed = parse_csv(file.as_bytes(), &LIMITS).unwrap();
        assert_eq!(
            parsed
                .rows
                .iter()
                .map(|r| (r.line, r.login.as_str()))
                .collect::<Vec<_>>(),
            [(2, "jane@acme.com"), (3, "bob@acme.com")]
        );
        assert_eq!(parsed.rows[1].hash, pbkdf2);
        assert_eq!(parsed.errors.len(), 2, "{:?}", parsed.errors);
        assert!(parsed.errors[0].starts_with("line 4: the login is empty"));
        assert!(parsed.errors[1].starts_with("line 5 (eve@acme.com): unsupported hash scheme"));
    }

    #[test]
    fn hashes_too_slow_for_the_deadline_are_refused_with_their_line_and_the_limit() {
        let slow = "$2b$14$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        let fine = "$2b$12$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        let file = format!(
            "{{\"login\":\"ok@acme.com\",\"hash\":\"{fine}\"}}\n{{\"login\":\"slow@acme.com\",\"hash\":\"{slow}\"}}\n"
        );
        let parsed = parse_json_lines(file.as_bytes(), &LIMITS);
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].login, "ok@acme.com");
        assert_eq!(parsed.errors.len(), 1);
        let e = &parsed.errors[0];
        assert!(
            e.starts_with("line 2 (slow@acme.com): bcrypt cost 14 exceeds the limit 12"),
            "{e}"
        );
        assert!(!e.contains(slow), "the hash is not echoed");
    }

    #[test]
    fn a_csv_without_the_header_is_refused() {
        let err = parse_csv(format!("jane@acme.com,{}\n", good()).as_bytes(), &LIMITS).unwrap_err();
        assert!(err.to_string().contains("`login` and `hash`"));
    }

    #[test]
    fn json_lines_skip_comments_and_report_bad_lines_without_their_content() {
        let file = format!(
            "# exported 2026-11-01\n{{\"login\":\"jane@acme.com\",\"hash\":\"{}\"}}\n\n{{\"login\":\"x\"}}\nnot json secret-ish\n",
            good()
        );
        let parsed = parse_json_lines(file.as_bytes(), &LIMITS);
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].line, 2);
        assert_eq!(parsed.errors.len(), 2);
        assert!(parsed.errors[0].starts_with("line 4:"));
        assert!(!parsed.errors[1].contains("secret-ish"));
    }

    #[test]
    fn only_a_successful_password_import_event_names_a_login() {
        let event = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/hooks/events/user.import.password.json"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&event).unwrap();
        let raw = v["data"]["events"][0].to_string();
        assert_eq!(
            imported_login("user.import.password", "SUCCESS", &raw).as_deref(),
            Some("jane.doe@acme.com")
        );
        assert_eq!(
            imported_login("user.import.password", "FAILURE", &raw),
            None
        );
        assert_eq!(imported_login("user.session.start", "SUCCESS", &raw), None);
        assert_eq!(imported_login("user.import.password", "SUCCESS", "{"), None);
    }
}
