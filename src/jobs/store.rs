//! Jobs in Redis: metadata and counters, the shared row queue, per-row results.
//!
//! Rows wait in one stream (`<prefix>:jobs:queue`, consumer group `job-workers`); each row's
//! result is written by `record.lua` — once per line, with the counters — *before* the queue
//! entry is acknowledged, so a crash replays at most the rows in flight, and a replayed row
//! whose result exists is simply acknowledged.
//!
//! An upload reads its file record by record (each at most `jobs.max_record_bytes`, see
//! [`super::records`]) and writes valid rows to the queue and invalid rows' results in batched
//! pipelines, so a file of a million bad rows costs a few thousand round trips, not a million.
//! While it reads, the job is `validating` and listed in `<prefix>:jobs:validating` with the time
//! of its last progress; an upload that ends any other way than complete (error, client gone,
//! process stopping) cancels its job with a reason, and [`JobStore::settle_stale_uploads`]
//! cancels those a crash left behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::store::RedisConn;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use redis::{AsyncCommands, RedisResult, Script};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use super::groups::GroupScope;
use super::records::{Record, RecordReader, Split};
use super::rows::{validate_row, ClientScope, JobKind, JobOptions, JobState, RowOutcome};
use crate::store::Keys;

/// Consumer group of the workers on the queue.
pub const WORKER_GROUP: &str = "job-workers";
/// Rows (valid or not) written per pipeline while a file is read.
const ENQUEUE_BATCH: usize = 500;
/// ... or fewer, once they hold this many bytes (rows may be up to `max_record_bytes` each).
const ENQUEUE_BATCH_BYTES: usize = 1 << 20;
/// A batch is written at least this often, which is also the upload's sign of life for the sweep.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Longest login kept in an invalid row's result.
const MAX_RESULT_LOGIN: usize = 256;
const JOB_ROWS_MAXLEN: usize = 1_000_000;

/// One row's outcome, as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowResult {
    pub line: u64,
    pub login: Option<String>,
    pub okta_id: Option<String>,
    pub outcome: RowOutcome,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, poem_openapi::Object, Serialize)]
pub struct JobInfo {
    pub id: String,
    pub kind: String,
    pub state: JobState,
    pub tenant: Option<String>,
    pub created_by: String,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// Rows in the file.
    pub total: u64,
    /// Rows refused by validation (they are in the results with their reason).
    pub invalid: u64,
    /// Rows queued for Okta.
    pub valid: u64,
    pub done: u64,
    pub failed: u64,
    /// Valid rows not finished yet.
    pub pending: u64,
    /// Rows finished per second since the first one started.
    pub rows_per_second: Option<f64>,
    /// Seconds until the pending rows are done at that rate.
    pub eta_seconds: Option<u64>,
    /// How the rows run (as given at upload).
    pub options: JobOptions,
    /// Why a job was cancelled (e.g. its upload was cut off), when known.
    pub reason: Option<String>,
}

/// What the file upload produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadCounts {
    pub total: u64,
    pub valid: u64,
    pub invalid: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file could not be read: {0}")]
    Read(String),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// What a file upload is for.
#[derive(Clone, Copy)]
pub struct UploadSpec<'a> {
    pub kind: JobKind,
    pub options: &'a JobOptions,
    /// Set for a client admin's job.
    pub tenant: Option<ClientScope<'a>>,
    pub format: FileFormat,
    /// Longest record, in bytes (`jobs.max_record_bytes`).
    pub max_record_bytes: usize,
    /// A client admin's group jobs: every row's group must pass this check.
    pub groups: Option<&'a GroupScope<'a>>,
}

/// Rows read but not yet written, flushed in one pipeline.
#[derive(Default)]
struct Pending {
    valid: Vec<String>,
    failed: Vec<(u64, String)>,
    bytes: usize,
}

impl Pending {
    fn full(&self) -> bool {
        self.valid.len() + self.failed.len() >= ENQUEUE_BATCH || self.bytes >= ENQUEUE_BATCH_BYTES
    }
}

/// `id` and `login` of a row, as far as they can be read, for its result.
fn identity(
    fields: &serde_json::Map<String, serde_json::Value>,
) -> (Option<String>, Option<String>) {
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.len() <= MAX_RESULT_LOGIN {
                    s.to_owned()
                } else {
                    let mut end = MAX_RESULT_LOGIN;
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    format!("{}…", &s[..end])
                }
            })
    };
    (text("id"), text("login"))
}

/// Input format of a job file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// CSV with a header row; line numbers count the header as line 1.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

#[derive(Clone)]
pub struct JobStore {
    keys: Keys,
    record: Script,
    cancel: Script,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl JobStore {
    pub fn new(keys: Keys) -> Self {
        Self {
            keys,
            record: Script::new(include_str!("record.lua")),
            cancel: Self::cancel_script(),
        }
    }

    /// Cancels a job only while it is open (`validating`, `queued`, `running`), in one step on
    /// the job's hash: a read-then-write let a job that finished in between end up `cancelled`.
    fn cancel_script() -> Script {
        Script::new(
            r"
            -- KEYS[1] job hash  ARGV[1] reason
            local s = redis.call('HGET', KEYS[1], 'state')
            if s == 'validating' or s == 'queued' or s == 'running' then
              redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', ARGV[1])
              return 1
            end
            return 0
            ",
        )
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The finish of an upload and the cancel of a cut-off one: each acts only on a job that is
    /// still `validating`, so neither overwrites the other (or an operator's cancel). It touches
    /// the job's hash only (one cluster slot, `job:{id}`); the caller then drops the id from
    /// `jobs:validating` (another slot). A crash between the two leaves the id listed, and the
    /// maintenance sweep ([`Self::settle_stale_uploads`]) later runs this again on the job,
    /// which is no longer `validating`, so it changes nothing and only un-lists it.
    fn end_upload_script() -> Script {
        Script::new(
            r"
            -- KEYS[1] job hash
            -- ARGV[1] id  ARGV[2] now  ARGV[3] 'finish' | 'abandon'  ARGV[4] total | reason
            local h = redis.call('HMGET', KEYS[1], 'state', 'valid', 'done', 'failed')
            if not h[1] then return false end
            local finished = tonumber(h[3] or 0) + tonumber(h[4] or 0) >= tonumber(h[2] or 0)
            if ARGV[3] == 'finish' then
              redis.call('HSET', KEYS[1], 'total', ARGV[4])
              if h[1] == 'validating' then
                if finished then
                  redis.call('HSET', KEYS[1], 'state', 'done', 'finished', ARGV[2])
                else
                  redis.call('HSET', KEYS[1], 'state', 'queued')
                end
              elseif h[1] == 'cancelled' and finished then
                redis.call('HSETNX', KEYS[1], 'finished', ARGV[2])
              end
            elseif h[1] == 'validating' then
              redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', ARGV[4])
              if finished then redis.call('HSETNX', KEYS[1], 'finished', ARGV[2]) end
            end
            return h[1]
            ",
        )
    }

    /// Creates a job in state `validating`. It is listed in `jobs:validating` first, in its own
    /// step: the hash and that set are on different cluster slots, and a job whose hash says
    /// `validating` must never exist unlisted (the sweep would never settle it). A crash after
    /// the listing leaves an id without a hash, which the sweep simply un-lists.
    pub async fn create(
        &self,
        conn: &mut RedisConn,
        kind: JobKind,
        options: &JobOptions,
        tenant: Option<&str>,
        created_by: &str,
    ) -> RedisResult<String> {
        let mut id = [0u8; 8];
        rand::rng().fill_bytes(&mut id);
        let id = hex::encode(id);
        let created = now();
        let options = serde_json::to_string(options).expect("options serialise");
        let _: () = conn
            .zadd(
                self.keys.jobs_validating(),
                &id,
                Utc::now().timestamp_millis(),
            )
            .await?;
        redis::pipe()
            .hset_multiple(
                self.keys.job(&id),
                &[
                    ("kind", kind.as_str()),
                    ("state", JobState::Validating.as_str()),
                    ("tenant", tenant.unwrap_or("")),
                    ("created_by", created_by),
                    ("created", created.as_str()),
                    ("options", options.as_str()),
                    ("total", "0"),
                    ("valid", "0"),
                    ("invalid", "0"),
                    ("done", "0"),
                    ("failed", "0"),
                ],
            )
            .ignore()
            .zadd(self.keys.jobs(), &id, Utc::now().timestamp_millis())
            .ignore()
            .query_async::<()>(conn)
            .await?;
        Ok(id)
    }

    /// Reads a job file record by record (never whole, no record longer than
    /// `spec.max_record_bytes` held), queues valid rows and records invalid ones, in batches.
    pub async fn upload<R: AsyncRead + Unpin + Send>(
        &self,
        conn: &mut RedisConn,
        id: &str,
        spec: UploadSpec<'_>,
        input: R,
    ) -> Result<UploadCounts, UploadError> {
        let split = match spec.format {
            FileFormat::Csv => Split::Csv,
            FileFormat::JsonLines => Split::Lines,
        };
        let cap = spec.max_record_bytes;
        let mut reader = RecordReader::new(tokio::io::BufReader::new(input), split, cap);
        let mut buf = Vec::new();
        let mut counts = UploadCounts::default();
        let mut pending = Pending::default();
        let mut last_write = Instant::now();
        let read = |e: std::io::Error| UploadError::Read(e.to_string());
        let mut headers: Option<Vec<String>> = None;
        while let Some(record) = reader.next_record(&mut buf).await.map_err(read)? {
            let blank = buf.iter().all(u8::is_ascii_whitespace);
            if record.oversized.is_none() && blank {
                continue;
            }
            let fields = match (spec.format, &headers) {
                (FileFormat::Csv, None) => {
                    if record.oversized.is_some() {
                        return Err(UploadError::Read(format!(
                            "the header row is longer than {cap} bytes"
                        )));
                    }
                    headers = Some(
                        csv_fields(&buf)
                            .map_err(|e| UploadError::Read(format!("the header row {e}")))?,
                    );
                    continue;
                }
                _ if record.oversized.is_some() => Err(oversized(record, cap)),
                (FileFormat::Csv, Some(headers)) => csv_fields(&buf).and_then(|values| {
                    if values.len() != headers.len() {
                        return Err(format!(
                            "has {} fields, the header has {}",
                            values.len(),
                            headers.len()
                        ));
                    }
                    Ok(headers
                        .iter()
                        .cloned()
                        .zip(values.into_iter().map(serde_json::Value::String))
                        .collect())
                }),
                (FileFormat::JsonLines, _) => {
                    match serde_json::from_slice::<serde_json::Value>(&buf) {
                        Ok(serde_json::Value::Object(m)) => Ok(m),
                        Ok(_) => Err("is not a JSON object".to_string()),
                        Err(e) => Err(format!("is not valid JSON: {e}")),
                    }
                }
            };
            counts.total += 1;
            let line = record.line;
            let (row_id, login) = fields.as_ref().map(identity).unwrap_or_default();
            let row = match fields
                .and_then(|f| validate_row(spec.kind, spec.options, line, f, spec.tenant))
            {
                Ok(row) => match (spec.groups, row.group_id.as_deref()) {
                    (Some(scope), Some(group)) => match scope.check(group).await {
                        Ok(()) => Ok(row),
                        Err(refusal) => Err(refusal.message(group)),
                    },
                    _ => Ok(row),
                },
                Err(reason) => Err(reason),
            };
            match row {
                Ok(row) => {
                    counts.valid += 1;
                    let json = serde_json::to_string(&row).expect("rows serialise");
                    pending.bytes += json.len();
                    pending.valid.push(json);
                }
                Err(reason) => {
                    counts.invalid += 1;
                    let result = RowResult {
                        line,
                        login,
                        okta_id: row_id,
                        outcome: RowOutcome::Failed,
                        error: Some(format!("line {line} {reason}")),
                    };
                    let json = serde_json::to_string(&result).expect("results serialise");
                    pending.bytes += json.len();
                    pending.failed.push((line, json));
                }
            }
            if pending.full() || last_write.elapsed() >= PROGRESS_EVERY {
                self.flush(conn, id, &mut pending).await?;
                last_write = Instant::now();
            }
        }
        if spec.format == FileFormat::Csv && headers.is_none() {
            return Err(UploadError::Read("the file has no header row".into()));
        }
        self.flush(conn, id, &mut pending).await?;
        Ok(counts)
    }

    /// Writes pending rows in one pipeline: valid rows to the queue, invalid rows' results (each
    /// line once; the upload is the only writer of its invalid lines), the counters, and the
    /// upload's sign of life.
    async fn flush(
        &self,
        conn: &mut RedisConn,
        id: &str,
        pending: &mut Pending,
    ) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for json in &pending.valid {
            pipe.xadd(
                self.keys.job_queue(),
                "*",
                &[("job", id), ("row", json.as_str())],
            )
            .ignore();
        }
        if !pending.valid.is_empty() {
            pipe.hincr(self.keys.job(id), "valid", pending.valid.len())
                .ignore();
        }
        if !pending.failed.is_empty() {
            let members: Vec<(u64, &str)> = pending
                .failed
                .iter()
                .map(|(line, json)| (*line, json.as_str()))
                .collect();
            pipe.cmd("ZADD")
                .arg(self.keys.job_results(id))
                .arg("NX")
                .arg(members)
                .ignore();
            pipe.hincr(self.keys.job(id), "invalid", pending.failed.len())
                .ignore();
        }
        pipe.cmd("ZADD")
            .arg(self.keys.jobs_validating())
            .arg("XX")
            .arg(Utc::now().timestamp_millis())
            .arg(id)
            .ignore();
        pipe.query_async::<()>(conn).await?;
        pending.valid.clear();
        pending.failed.clear();
        pending.bytes = 0;
        Ok(())
    }

    /// Marks the upload complete: `queued`, or `done` when nothing is left to run. A job
    /// cancelled meanwhile stays cancelled.
    pub async fn finish_upload(
        &self,
        conn: &mut RedisConn,
        id: &str,
        counts: UploadCounts,
    ) -> RedisResult<()> {
        let _: Option<String> = Self::end_upload_script()
            .key(self.keys.job(id))
            .arg(id)
            .arg(now())
            .arg("finish")
            .arg(counts.total)
            .invoke_async(conn)
            .await?;
        self.unlist_validating(conn, id).await
    }

    /// Cancels a job whose upload did not complete, with the reason; a job no longer
    /// `validating` is left alone. `true` when it was cancelled.
    pub async fn abandon_upload(
        &self,
        conn: &mut RedisConn,
        id: &str,
        reason: &str,
    ) -> RedisResult<bool> {
        let before: Option<String> = Self::end_upload_script()
            .key(self.keys.job(id))
            .arg(id)
            .arg(now())
            .arg("abandon")
            .arg(reason)
            .invoke_async(conn)
            .await?;
        self.unlist_validating(conn, id).await?;
        Ok(before.as_deref() == Some("validating"))
    }

    /// Drops a job from `jobs:validating`, after its hash says it no longer is (never before:
    /// a job that is `validating` but not listed would never be settled by the sweep).
    async fn unlist_validating(&self, conn: &mut RedisConn, id: &str) -> RedisResult<()> {
        conn.zrem(self.keys.jobs_validating(), id).await
    }

    /// Cancels jobs whose upload made no progress for `stale` (the process reading it died);
    /// at most 100 per call. Returns how many were cancelled.
    pub async fn settle_stale_uploads(
        &self,
        conn: &mut RedisConn,
        stale: Duration,
    ) -> RedisResult<usize> {
        let cutoff = Utc::now().timestamp_millis() - stale.as_millis() as i64;
        let ids: Vec<String> = conn
            .zrangebyscore_limit(self.keys.jobs_validating(), "-inf", cutoff, 0, 100)
            .await?;
        let mut settled = 0;
        for id in ids {
            let reason = format!(
                "the upload was cut off: no progress for {} s (the process reading it stopped)",
                stale.as_secs()
            );
            if self.abandon_upload(conn, &id, &reason).await? {
                tracing::warn!(job = %id, "cancelled a job whose upload was cut off");
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Stops a job: its remaining rows fail with `cancelled`. `false` if it already ended.
    pub async fn cancel(&self, conn: &mut RedisConn, id: &str) -> RedisResult<bool> {
        let cancelled: i64 = self
            .cancel
            .key(self.keys.job(id))
            .arg("cancelled by request")
            .invoke_async(conn)
            .await?;
        if cancelled == 1 {
            // The hash first, then the listing (another cluster slot): see `create`.
            self.unlist_validating(conn, id).await?;
        }
        Ok(cancelled == 1)
    }

    /// Records a row's result once; `false` when it had one already.
    pub async fn record(
        &self,
        conn: &mut RedisConn,
        id: &str,
        result: &RowResult,
        counter: &str,
    ) -> RedisResult<bool> {
        let json = serde_json::to_string(result).expect("results serialise");
        let recorded: i64 = self
            .record
            .key(self.keys.job(id))
            .key(self.keys.job_results(id))
            .arg(result.line)
            .arg(json)
            .arg(counter)
            .arg(now())
            .invoke_async(conn)
            .await?;
        Ok(recorded == 1)
    }

    pub async fn has_result(&self, conn: &mut RedisConn, id: &str, line: u64) -> RedisResult<bool> {
        let n: u64 = conn.zcount(self.keys.job_results(id), line, line).await?;
        Ok(n > 0)
    }

    /// Raw job fields (kind, state, tenant, options, counters…).
    pub async fn fields(
        &self,
        conn: &mut RedisConn,
        id: &str,
    ) -> RedisResult<HashMap<String, String>> {
        conn.hgetall(self.keys.job(id)).await
    }

    pub async fn info(&self, conn: &mut RedisConn, id: &str) -> RedisResult<Option<JobInfo>> {
        let f = self.fields(conn, id).await?;
        Ok(job_info(id, &f))
    }

    /// Recent jobs, newest first.
    pub async fn list(&self, conn: &mut RedisConn, limit: isize) -> RedisResult<Vec<JobInfo>> {
        let ids: Vec<String> = conn.zrevrange(self.keys.jobs(), 0, limit - 1).await?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(info) = self.info(conn, &id).await? {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Results with line > `after`, in line order, at most `n`.
    pub async fn results_page(
        &self,
        conn: &mut RedisConn,
        id: &str,
        after: u64,
        n: usize,
    ) -> RedisResult<Vec<RowResult>> {
        let page: Vec<String> = conn
            .zrangebyscore_limit(
                self.keys.job_results(id),
                format!("({after}"),
                "+inf",
                0,
                n as isize,
            )
            .await?;
        Ok(page
            .iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect())
    }

    /// Appends a finished row to the stream reports read.
    pub async fn publish_row(
        &self,
        conn: &mut RedisConn,
        id: &str,
        kind: &str,
        tenant: &str,
        result: &RowResult,
    ) -> RedisResult<()> {
        redis::cmd("XADD")
            .arg(self.keys.job_rows())
            .arg("MAXLEN")
            .arg("~")
            .arg(JOB_ROWS_MAXLEN)
            .arg("*")
            .arg(&[
                ("job", id),
                ("line", &result.line.to_string()),
                ("kind", kind),
                ("tenant", tenant),
                ("outcome", result.outcome.as_str()),
                ("at", &now()),
            ])
            .query_async(conn)
            .await
    }
}

/// Builds the status view from the job hash (pure); `None` when the hash is no job (no kind, or
/// a state this version never writes).
pub fn job_info(id: &str, f: &HashMap<String, String>) -> Option<JobInfo> {
    let kind = f.get("kind")?.clone();
    let state = JobState::parse(f.get("state")?)?;
    let n = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let s = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    let (valid, done, failed) = (n("valid"), n("done"), n("failed"));
    let pending = valid.saturating_sub(done + failed);
    let end = s("finished")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let rate = s("started")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|start| (end - start.with_timezone(&Utc)).num_milliseconds().max(1) as f64 / 1000.0)
        .map(|secs| (done + failed) as f64 / secs)
        .filter(|r| *r > 0.0);
    Some(JobInfo {
        id: id.to_owned(),
        kind,
        state,
        tenant: s("tenant"),
        created_by: s("created_by").unwrap_or_default(),
        created: s("created").unwrap_or_default(),
        started: s("started"),
        finished: s("finished"),
        total: n("total"),
        invalid: n("invalid"),
        valid,
        done,
        failed,
        pending,
        rows_per_second: rate.map(|r| (r * 100.0).round() / 100.0),
        eta_seconds: rate
            .filter(|_| pending > 0)
            .map(|r| (pending as f64 / r).ceil() as u64),
        // Old jobs and unreadable values show the defaults rather than failing the listing.
        options: s("options")
            .and_then(|o| serde_json::from_str(&o).ok())
            .unwrap_or_default(),
        reason: s("reason"),
    })
}

fn oversized(record: Record, cap: usize) -> String {
    format!(
        "is longer than the limit of {cap} bytes ({} bytes); skipped",
        record.oversized.unwrap_or_default()
    )
}

/// The fields of one CSV record (trimmed, as a CSV job file's cells are).
fn csv_fields(record: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(record);
    let mut fields = csv::ByteRecord::new();
    let mut more = csv::ByteRecord::new();
    match reader.read_byte_record(&mut fields) {
        // The record splitter ends records at `\n` only; the csv reader also at a bare `\r`.
        // A second record here would be silently dropped: fail the row instead.
        Ok(_) if matches!(reader.read_byte_record(&mut more), Ok(true)) => {
            Err("holds more than one CSV record (a carriage return without a line feed?)".into())
        }
        Ok(_) => fields
            .iter()
            .map(|f| {
                std::str::from_utf8(f)
                    .map(str::to_owned)
                    .map_err(|_| "is not valid UTF-8".to_string())
            })
            .collect(),
        Err(e) => Err(format!("is not valid CSV: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::{csv_fields, JobState};

    /// The cancel script names the open states itself; it must name exactly `is_open`'s.
    #[test]
    fn the_cancel_script_cancels_exactly_the_open_states() {
        let source = include_str!("store.rs");
        let body = source
            .split("fn cancel_script()")
            .nth(1)
            .and_then(|s| s.split("return 0").next())
            .expect("the cancel script");
        for state in JobState::ALL {
            assert_eq!(
                body.contains(&format!("s == '{}'", state.as_str())),
                state.is_open(),
                "{state}"
            );
        }
    }

    #[test]
    fn a_record_is_one_csv_row_whatever_its_line_ending() {
        assert_eq!(csv_fields(b"a, b ,\"c,d\"\r\n").unwrap(), ["a", "b", "c,d"]);
        assert_eq!(csv_fields(b"a,b\n").unwrap(), ["a", "b"]);
        // A bare CR ends a row for the csv reader but not for the record splitter.
        let err = csv_fields(b"a,b\rc,d\n").unwrap_err();
        assert!(err.contains("more than one CSV record"), "{err}");
    }
}
