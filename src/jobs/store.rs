//! Jobs in Redis: metadata and counters, the shared row queue, per-row results.
//!
//! Rows wait in one stream (`<prefix>:jobs:queue`, consumer group `job-workers`); each row's
//! result is written by `record.lua` — once per line, with the counters — *before* the queue
//! entry is acknowledged, so a crash replays at most the rows in flight, and a replayed row
//! whose result exists is simply acknowledged.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisResult, Script};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use super::rows::{validate_row, JobKind, JobOptions, JobRow};
use crate::store::Keys;

/// Consumer group of the workers on the queue.
pub const WORKER_GROUP: &str = "job-workers";
/// Rows written to the queue per pipeline while a file is read.
const ENQUEUE_BATCH: usize = 500;
const JOB_ROWS_MAXLEN: usize = 1_000_000;

/// One row's outcome, as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowResult {
    pub line: u64,
    pub login: Option<String>,
    pub okta_id: Option<String>,
    /// `done` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, poem_openapi::Object, Serialize)]
pub struct JobInfo {
    pub id: String,
    pub kind: String,
    /// `validating` (file being read), `queued`, `running`, `done`, `cancelled`.
    pub state: String,
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
    pub options: String,
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
#[derive(Debug, Clone, Copy)]
pub struct UploadSpec<'a> {
    pub kind: JobKind,
    pub options: &'a JobOptions,
    /// (profile attribute, tenant) of a client-admin job.
    pub tenant: Option<(&'a str, &'a str)>,
    pub format: FileFormat,
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
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl JobStore {
    pub fn new(keys: Keys) -> Self {
        Self {
            keys,
            record: Script::new(include_str!("record.lua")),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Creates a job in state `validating`.
    pub async fn create(
        &self,
        conn: &mut ConnectionManager,
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
        redis::pipe()
            .hset_multiple(
                self.keys.job(&id),
                &[
                    ("kind", kind.as_str()),
                    ("state", "validating"),
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

    /// Reads a job file row by row (never whole), queues valid rows and records invalid ones.
    pub async fn upload<R: AsyncRead + Unpin + Send>(
        &self,
        conn: &mut ConnectionManager,
        id: &str,
        spec: UploadSpec<'_>,
        input: R,
    ) -> Result<UploadCounts, UploadError> {
        let UploadSpec {
            kind,
            options,
            tenant,
            format,
        } = spec;
        let mut counts = UploadCounts::default();
        let mut batch: Vec<JobRow> = Vec::with_capacity(ENQUEUE_BATCH);
        let mut handle =
            |line: u64, fields: Result<serde_json::Map<String, serde_json::Value>, String>| {
                counts.total += 1;
                match fields.and_then(|f| validate_row(kind, options, line, f, tenant)) {
                    Ok(row) => {
                        counts.valid += 1;
                        Ok(row)
                    }
                    Err(reason) => {
                        counts.invalid += 1;
                        Err((line, reason))
                    }
                }
            };
        match format {
            FileFormat::Csv => {
                let mut reader = csv_async::AsyncReaderBuilder::new()
                    .flexible(true)
                    .trim(csv_async::Trim::All)
                    .create_reader(input);
                let headers = reader
                    .headers()
                    .await
                    .map_err(|e| UploadError::Read(e.to_string()))?
                    .clone();
                let mut record = csv_async::StringRecord::new();
                loop {
                    match reader.read_record(&mut record).await {
                        Ok(false) => break,
                        Ok(true) => {
                            let line = record.position().map(|p| p.line()).unwrap_or(0);
                            let fields = if record.len() != headers.len() {
                                Err(format!(
                                    "has {} fields, the header has {}",
                                    record.len(),
                                    headers.len()
                                ))
                            } else {
                                Ok(headers
                                    .iter()
                                    .zip(record.iter())
                                    .map(|(h, v)| {
                                        (h.to_owned(), serde_json::Value::String(v.to_owned()))
                                    })
                                    .collect())
                            };
                            self.take(conn, id, handle(line, fields), &mut batch)
                                .await?;
                        }
                        Err(e) => {
                            let line = e.position().map(|p| p.line()).unwrap_or(0);
                            let broken = handle(line, Err(format!("is not valid CSV: {e}")));
                            self.take(conn, id, broken, &mut batch).await?;
                            if !matches!(
                                e.kind(),
                                csv_async::ErrorKind::Utf8 { .. }
                                    | csv_async::ErrorKind::UnequalLengths { .. }
                            ) {
                                return Err(UploadError::Read(e.to_string()));
                            }
                        }
                    }
                }
            }
            FileFormat::JsonLines => {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(input).lines();
                let mut line = 0u64;
                while let Some(text) = lines
                    .next_line()
                    .await
                    .map_err(|e| UploadError::Read(e.to_string()))?
                {
                    line += 1;
                    if text.trim().is_empty() {
                        continue;
                    }
                    let fields = match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(serde_json::Value::Object(m)) => Ok(m),
                        Ok(_) => Err("is not a JSON object".to_string()),
                        Err(e) => Err(format!("is not valid JSON: {e}")),
                    };
                    self.take(conn, id, handle(line, fields), &mut batch)
                        .await?;
                }
            }
        }
        self.flush(conn, id, &mut batch).await?;
        Ok(counts)
    }

    async fn take(
        &self,
        conn: &mut ConnectionManager,
        id: &str,
        row: Result<JobRow, (u64, String)>,
        batch: &mut Vec<JobRow>,
    ) -> RedisResult<()> {
        match row {
            Ok(row) => {
                batch.push(row);
                if batch.len() >= ENQUEUE_BATCH {
                    self.flush(conn, id, batch).await?;
                }
            }
            Err((line, reason)) => {
                let result = RowResult {
                    line,
                    login: None,
                    okta_id: None,
                    outcome: "failed".into(),
                    error: Some(format!("line {line} {reason}")),
                };
                self.record(conn, id, &result, "invalid").await?;
            }
        }
        Ok(())
    }

    async fn flush(
        &self,
        conn: &mut ConnectionManager,
        id: &str,
        batch: &mut Vec<JobRow>,
    ) -> RedisResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for row in batch.iter() {
            let json = serde_json::to_string(row).expect("rows serialise");
            pipe.xadd(
                self.keys.job_queue(),
                "*",
                &[("job", id), ("row", json.as_str())],
            )
            .ignore();
        }
        pipe.hincr(self.keys.job(id), "valid", batch.len()).ignore();
        pipe.query_async::<()>(conn).await?;
        batch.clear();
        Ok(())
    }

    /// Marks the upload complete: `queued`, or `done` when nothing is left to run.
    pub async fn finish_upload(
        &self,
        conn: &mut ConnectionManager,
        id: &str,
        counts: UploadCounts,
    ) -> RedisResult<()> {
        let key = self.keys.job(id);
        let _: () = conn.hset(&key, "total", counts.total).await?;
        let (done, failed): (u64, u64) = redis::pipe()
            .hget(&key, "done")
            .hget(&key, "failed")
            .query_async(conn)
            .await?;
        let state = if done + failed >= counts.valid {
            "done"
        } else {
            "queued"
        };
        let mut fields = vec![("state", state.to_string())];
        if state == "done" {
            fields.push(("finished", now()));
        }
        conn.hset_multiple(&key, &fields).await
    }

    /// Stops a job: its remaining rows fail with `cancelled`. `false` if it already ended.
    pub async fn cancel(&self, conn: &mut ConnectionManager, id: &str) -> RedisResult<bool> {
        let state: Option<String> = conn.hget(self.keys.job(id), "state").await?;
        match state.as_deref() {
            Some("validating" | "queued" | "running") => {
                let _: () = conn.hset(self.keys.job(id), "state", "cancelled").await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records a row's result once; `false` when it had one already.
    pub async fn record(
        &self,
        conn: &mut ConnectionManager,
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

    pub async fn has_result(
        &self,
        conn: &mut ConnectionManager,
        id: &str,
        line: u64,
    ) -> RedisResult<bool> {
        let n: u64 = conn.zcount(self.keys.job_results(id), line, line).await?;
        Ok(n > 0)
    }

    /// Raw job fields (kind, state, tenant, options, counters…).
    pub async fn fields(
        &self,
        conn: &mut ConnectionManager,
        id: &str,
    ) -> RedisResult<HashMap<String, String>> {
        conn.hgetall(self.keys.job(id)).await
    }

    pub async fn info(
        &self,
        conn: &mut ConnectionManager,
        id: &str,
    ) -> RedisResult<Option<JobInfo>> {
        let f = self.fields(conn, id).await?;
        Ok(job_info(id, &f))
    }

    /// Recent jobs, newest first.
    pub async fn list(
        &self,
        conn: &mut ConnectionManager,
        limit: isize,
    ) -> RedisResult<Vec<JobInfo>> {
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
        conn: &mut ConnectionManager,
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
        conn: &mut ConnectionManager,
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
                ("outcome", &result.outcome),
                ("at", &now()),
            ])
            .query_async(conn)
            .await
    }
}

/// Builds the status view from the job hash (pure).
pub fn job_info(id: &str, f: &HashMap<String, String>) -> Option<JobInfo> {
    let kind = f.get("kind")?.clone();
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
        state: s("state").unwrap_or_default(),
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
        options: s("options").unwrap_or_default(),
    })
}
