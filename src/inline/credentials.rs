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
//! hook again). [`run_cleanup`] is a consumer group (`inline.password_import.cleanup_group`) on
//! the built-in `credential-imports` stream, which ingest fills with exactly those events (so the
//! clean-up never has to read, and keep up with, the whole firehose): it reads with
//! `XREADGROUP … BLOCK` on its own connection (no response timeout — the shared connection's
//! timeout would cut every blocking read), deletes the hash of each such
//! SUCCESS event's user, and acknowledges only after the delete. Entries read but not
//! acknowledged before a crash (their consumer is gone: names are unique per process) are taken
//! over by any running replica with `XAUTOCLAIM` once idle for
//! `inline.password_import.cleanup_claim_idle_secs` — at start and then every half of that.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult};
use tokio_util::sync::CancellationToken;

use super::password::{HashLimits, LegacyHash};
use crate::okta::event_hook::LogEventSummary;
use crate::store::{ensure_group, Keys};

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
    conn: &mut ConnectionManager,
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

/// Settings of the clean-up consumer.
#[derive(Debug, Clone)]
pub struct Cleanup {
    pub client: redis::Client,
    pub keys: Keys,
    pub group: String,
    pub consumer: String,
    /// How long one XREADGROUP blocks; bounds how late a cancellation is noticed by Redis.
    pub block: Duration,
    /// Pending entries idle this long belong to a dead consumer and are taken over.
    pub claim_idle: Duration,
}

/// Runs the clean-up consumer until `cancel`.
pub async fn run_cleanup(cleanup: Cleanup, manager: ConnectionManager, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = cleanup_session(&cleanup, manager.clone()) => r,
        };
        if let Err(e) = result {
            metrics::counter!("okta_adapter_redis_errors_total", "op" => "credential_cleanup")
                .increment(1);
            tracing::warn!(error = %e, "credential clean-up consumer: redis error; retrying");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's worth of work: own pending entries first, then new ones, forever.
async fn cleanup_session(cleanup: &Cleanup, mut manager: ConnectionManager) -> RedisResult<()> {
    // No response timeout: a blocking read legitimately waits `block` for an answer.
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(Duration::from_secs(2)));
    let mut conn = cleanup
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let stream = cleanup.keys.credential_imports();
    ensure_group(&mut manager, &stream, &cleanup.group).await?;
    let mut pending = true;
    let mut last_reclaim: Option<std::time::Instant> = None;
    loop {
        if last_reclaim.is_none_or(|at| at.elapsed() >= cleanup.claim_idle / 2) {
            reclaim(&mut conn, cleanup).await?;
            last_reclaim = Some(std::time::Instant::now());
        }
        let mut opts = StreamReadOptions::default()
            .group(&cleanup.group, &cleanup.consumer)
            .count(1000);
        if !pending {
            opts = opts.block(cleanup.block.as_millis() as usize);
        }
        let id = if pending { "0" } else { ">" };
        let reply: RedisResult<Option<StreamReadReply>> =
            conn.xread_options(&[&stream], &[id], &opts).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) if e.code() == Some("NOGROUP") => {
                // The stream or group was lost (Redis restarted without persistence).
                ensure_group(&mut manager, &stream, &cleanup.group).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let entries: Vec<_> = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        if entries.is_empty() {
            pending = false;
            continue;
        }
        // Almost every entry is not a password import; apply what is, then acknowledge the
        // whole batch at once (after applying, so a crash replays rather than loses).
        for entry in &entries {
            apply_entry(&mut conn, &cleanup.keys, entry).await?;
        }
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let _: () = conn.xack(&stream, &cleanup.group, &ids).await?;
    }
}

/// Takes over and applies entries a dead consumer left pending.
async fn reclaim(conn: &mut MultiplexedConnection, cleanup: &Cleanup) -> RedisResult<()> {
    let stream = cleanup.keys.credential_imports();
    let mut start = "0-0".to_string();
    loop {
        let reply: StreamAutoClaimReply = conn
            .xautoclaim_options(
                &stream,
                &cleanup.group,
                &cleanup.consumer,
                cleanup.claim_idle.as_millis() as usize,
                &start,
                StreamAutoClaimOptions::default().count(100),
            )
            .await?;
        for entry in &reply.claimed {
            apply_entry(conn, &cleanup.keys, entry).await?;
        }
        if !reply.claimed.is_empty() {
            let ids: Vec<&str> = reply.claimed.iter().map(|e| e.id.as_str()).collect();
            let _: () = conn.xack(&stream, &cleanup.group, &ids).await?;
        }
        if !reply.claimed.is_empty() {
            metrics::counter!("okta_adapter_credential_cleanup_reclaimed_total")
                .increment(reply.claimed.len() as u64);
        }
        if reply.next_stream_id == "0-0" {
            return Ok(());
        }
        start = reply.next_stream_id;
    }
}

async fn apply_entry(
    conn: &mut MultiplexedConnection,
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
