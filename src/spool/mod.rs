//! The local spool: when Redis cannot take an event hook delivery, the delivery goes to disk
//! (fsync'd) and Okta gets its 204; a drain task writes it to Redis once Redis is back.
//!
//! Okta retries a failed delivery only once. Without the spool, a Redis outage longer than that
//! retry loses the batch for good. With it, a 204 means "in Redis, or in an fsync'd local file that
//! this process (or the next one started on the same directory) will write to Redis".
//!
//! - One append-only file per process under `spool.dir` (`<start ms>-<pid>-<random>.spool`),
//!   held with an exclusive advisory lock so two processes never share one. Records are
//!   `[len][crc32c][received ms][body]` ([`record`]).
//! - Appends go to one writer thread that commits in groups: it takes every append waiting,
//!   writes them, calls `fsync` once, then answers all of them. A full spool (`spool.max_bytes`)
//!   refuses the append and the handler answers 503 as it would without a spool.
//! - One drain task per process reads records in order and runs each through the normal ingest
//!   step ([`crate::fanout::Ingestor::write`]); de-duplication by uuid makes a replay after a
//!   crash harmless. Once it has drained everything the writer has committed, the writer
//!   truncates the file to zero (only if nothing was appended meanwhile).
//! - At start, files left by a dead process (not locked) are adopted: their torn tail, if any, is
//!   cut off with a log line (it was never acknowledged), and they are drained before the
//!   process's own file, then deleted.
//!
//! Order: spooled deliveries reach the streams after deliveries that went to Redis directly once
//! it was back. Okta itself does not deliver in order; consumers order by `published`.

pub mod record;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::RedisConn;
use chrono::{TimeZone, Utc};
use metrics::{counter, gauge};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::SpoolSettings;
use crate::fanout::{EventOutcome, Ingestor};

/// Appends the writer takes into one group commit at most.
const MAX_GROUP: usize = 256;

/// Why a delivery could not be spooled. The handler then answers 503.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full (spool.max_bytes)")]
    Full,
    #[error("spool write failed: {0}")]
    Io(String),
    #[error("the spool writer has stopped")]
    Closed,
}

/// Why the spool could not be opened at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the spool in {dir} (spool.dir): {source}")]
pub struct SpoolOpenError {
    dir: String,
    source: std::io::Error,
}

/// What `/readyz` shows of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStatus {
    /// Spooled deliveries not yet written to Redis.
    pub pending_batches: u64,
    /// Their bytes on disk (this process's file past the drain position, plus adopted files).
    pub pending_bytes: u64,
    /// Age of the oldest of them, in seconds (0 when none).
    pub oldest_age_secs: u64,
    /// `spool.max_bytes`.
    pub max_bytes: u64,
}

enum Op {
    Append {
        record: Vec<u8>,
        received_ms: i64,
        reply: oneshot::Sender<Result<(), SpoolError>>,
    },
    /// Truncate to 0 if the committed length is still `expected`; answers whether it did.
    Truncate {
        expected: u64,
        reply: oneshot::Sender<bool>,
    },
}

/// Counters shared by the writer thread, the drain task and `/readyz`.
#[derive(Default)]
struct Shared {
    /// Bytes of the active file that are written and fsync'd.
    committed: AtomicU64,
    /// Records in the active file not yet drained.
    pending_batches: AtomicU64,
    /// Received time (ms) of the oldest undrained record anywhere; 0 = none.
    oldest_ms: AtomicI64,
    /// Bytes of adopted files not yet drained.
    adopted_bytes: AtomicU64,
    adopted_batches: AtomicU64,
    /// Drain position in the active file.
    drained: AtomicU64,
}

/// A file left by a process that died, waiting to be drained.
struct Adopted {
    path: PathBuf,
    /// Kept open (and locked) until drained.
    _file: File,
    len: u64,
}

/// The spool of this process. Cheap to share (`Arc`).
pub struct Spool {
    tx: mpsc::UnboundedSender<Op>,
    shared: Arc<Shared>,
    /// Wakes the drain task after an append.
    appended: Arc<Notify>,
    active: PathBuf,
    adopted: Mutex<Vec<Adopted>>,
    max_bytes: u64,
    drain_interval: Duration,
    drain_pause: Duration,
    /// Set by the first spooled delivery of an outage, cleared when the spool is drained: one
    /// log line each way instead of one per delivery.
    spooling: std::sync::atomic::AtomicBool,
}

impl Spool {
    /// Creates `dir` if needed, adopts files of dead processes (cutting torn tails), and starts
    /// the writer thread on a new, locked file of this process.
    pub fn open(settings: &SpoolSettings) -> Result<Arc<Self>, SpoolOpenError> {
        let dir = Path::new(&settings.dir);
        let err = |source| SpoolOpenError {
            dir: settings.dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let adopted = adopt_leftovers(dir).map_err(err)?;
        let name = format!(
            "{:013}-{}-{:08x}.spool",
            Utc::now().timestamp_millis(),
            std::process::id(),
            rand::random::<u32>()
        );
        let active = dir.join(name);
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .open(&active)
            .map_err(err)?;
        fs4::FileExt::try_lock(&file).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        // The new file's directory entry must survive a crash too.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        let shared = Arc::new(Shared::default());
        let mut oldest = 0;
        for a in &adopted {
            shared.adopted_bytes.fetch_add(a.len, Ordering::Relaxed);
        }
        let mut batches = 0;
        for a in &adopted {
            if let Ok(buf) = std::fs::read(&a.path) {
                let s = record::scan(&buf);
                batches += s.records.len() as u64;
                if let Some(first) = s.records.first() {
                    if oldest == 0 || first.received_ms < oldest {
                        oldest = first.received_ms;
                    }
                }
            }
        }
        shared.adopted_batches.store(batches, Ordering::Relaxed);
        shared.oldest_ms.store(oldest, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_shared = shared.clone();
        let max_bytes = settings.max_bytes;
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || write_loop(file, rx, writer_shared, max_bytes))
            .map_err(err)?;
        let spool = Arc::new(Self {
            tx,
            shared,
            appended: Arc::new(Notify::new()),
            active,
            adopted: Mutex::new(adopted),
            max_bytes,
            drain_interval: Duration::from_millis(settings.drain_interval_ms),
            drain_pause: Duration::from_millis(settings.drain_pause_ms),
            spooling: std::sync::atomic::AtomicBool::new(false),
        });
        spool.publish_gauges();
        Ok(spool)
    }

    /// This process's spool file.
    pub fn active_path(&self) -> &Path {
        &self.active
    }

    /// Appends one delivery and returns once it is fsync'd (grouped with concurrent appends).
    pub async fn append(&self, received_ms: i64, body: &[u8]) -> Result<(), SpoolError> {
        let record = record::encode(received_ms, body);
        let bytes = record.len() as u64;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Op::Append {
                record,
                received_ms,
                reply,
            })
            .map_err(|_| SpoolError::Closed)?;
        let result = answer.await.unwrap_or(Err(SpoolError::Closed));
        match &result {
            Ok(()) => {
                if !self.spooling.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        file = %self.active.display(),
                        "Redis cannot take event hook deliveries: spooling them to disk (answered 204; written to Redis when it is back)"
                    );
                }
                counter!("okta_adapter_spool_batches_total").increment(1);
                counter!("okta_adapter_spool_bytes_total").increment(bytes);
                self.appended.notify_one();
            }
            Err(SpoolError::Full) => counter!("okta_adapter_spool_full_total").increment(1),
            Err(_) => counter!("okta_adapter_spool_write_errors_total").increment(1),
        }
        self.publish_gauges();
        result
    }

    /// What is waiting to be drained.
    pub fn status(&self) -> SpoolStatus {
        let s = &self.shared;
        let active = s
            .committed
            .load(Ordering::Acquire)
            .saturating_sub(s.drained.load(Ordering::Acquire));
        let oldest = s.oldest_ms.load(Ordering::Acquire);
        let pending_batches =
            s.pending_batches.load(Ordering::Acquire) + s.adopted_batches.load(Ordering::Acquire);
        let oldest_age_secs = if oldest == 0 || pending_batches == 0 {
            0
        } else {
            (Utc::now().timestamp_millis() - oldest).max(0) as u64 / 1000
        };
        SpoolStatus {
            pending_batches,
            pending_bytes: active + s.adopted_bytes.load(Ordering::Acquire),
            oldest_age_secs,
            max_bytes: self.max_bytes,
        }
    }

    fn publish_gauges(&self) {
        let st = self.status();
        gauge!("okta_adapter_spool_pending_batches").set(st.pending_batches as f64);
        gauge!("okta_adapter_spool_pending_bytes").set(st.pending_bytes as f64);
        gauge!("okta_adapter_spool_oldest_age_seconds").set(st.oldest_age_secs as f64);
    }

    /// The drain task: until cancelled, writes every spooled delivery to Redis in order, then
    /// truncates (own file) or deletes (adopted files) what it drained. Stops between records.
    /// `owner` holds the ingestor (`ingestor` picks it out), so the task shares the handler's.
    pub async fn run_drain<S: Send + Sync + 'static>(
        self: Arc<Self>,
        owner: Arc<S>,
        ingestor: fn(&S) -> &Ingestor,
        mut conn: RedisConn,
        cancel: CancellationToken,
    ) {
        let ingestor = ingestor(&owner);
        let mut logged_waiting = false;
        loop {
            if self.status().pending_batches > 0 {
                match self.drain_all(ingestor, &mut conn, &cancel).await {
                    Ok(()) => {
                        if self.spooling.swap(false, Ordering::AcqRel) || logged_waiting {
                            tracing::info!("Redis is back; every spooled delivery is written");
                        }
                        logged_waiting = false;
                    }
                    Err(e) => {
                        if !logged_waiting {
                            tracing::warn!(error = %e, "spool drain waits for Redis");
                            logged_waiting = true;
                        }
                    }
                }
            }
            self.publish_gauges();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.appended.notified() => {
                    // Let Redis recover a little before the first attempt after an append.
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(self.drain_interval) => {}
                    }
                }
                _ = tokio::time::sleep(self.drain_interval) => {}
            }
        }
    }

    async fn drain_all(
        &self,
        ingestor: &Ingestor,
        conn: &mut RedisConn,
        cancel: &CancellationToken,
    ) -> Result<(), redis::RedisError> {
        // Files of dead processes first: they hold the oldest deliveries.
        loop {
            let next = self
                .adopted
                .lock()
                .expect("not poisoned")
                .first()
                .map(|a| a.path.clone());
            let Some(path) = next else { break };
            let buf = match tokio::fs::read(&path).await {
                Ok(buf) => buf,
                Err(e) => {
                    // Never delete what could not be read: try again next round.
                    tracing::error!(error = %e, path = %path.display(), "spool file unreadable; retrying later");
                    return Ok(());
                }
            };
            let scan = record::scan(&buf);
            for batch in &scan.records {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                self.drain_one(ingestor, conn, batch).await?;
                self.shared.adopted_batches.fetch_sub(1, Ordering::AcqRel);
                self.pause().await;
            }
            let adopted = self.adopted.lock().expect("not poisoned").remove(0);
            self.shared
                .adopted_bytes
                .fetch_sub(adopted.len, Ordering::AcqRel);
            if let Err(e) = std::fs::remove_file(&adopted.path) {
                tracing::warn!(error = %e, path = %adopted.path.display(), "drained spool file not removed");
            }
            tracing::info!(path = %adopted.path.display(), batches = scan.records.len(), "spool file of an earlier process drained");
        }
        // This process's file: from the drain position to what the writer has committed.
        loop {
            let committed = self.shared.committed.load(Ordering::Acquire);
            let from = self.shared.drained.load(Ordering::Acquire);
            if from < committed {
                let buf = read_range(&self.active, from, committed).await;
                if buf.is_empty() {
                    tracing::error!(path = %self.active.display(), "spool file unreadable; retrying later");
                    return Ok(());
                }
                let scan = record::scan(&buf);
                let mut offset = from;
                for batch in &scan.records {
                    if cancel.is_cancelled() {
                        return Ok(());
                    }
                    self.drain_one(ingestor, conn, batch).await?;
                    offset += (record::HEADER_LEN + 8 + batch.body.len()) as u64;
                    self.shared.drained.store(offset, Ordering::Release);
                    self.shared.pending_batches.fetch_sub(1, Ordering::AcqRel);
                    self.pause().await;
                }
                if scan.torn.is_some() {
                    // Cannot happen for committed bytes unless the disk lies; do not loop on it.
                    tracing::error!(path = %self.active.display(), "spool file unreadable past the drain position; skipping to its end");
                    self.shared.drained.store(committed, Ordering::Release);
                }
                continue;
            }
            // Everything committed is drained: ask the writer to truncate, unless it appended.
            let (reply, answer) = oneshot::channel();
            if self
                .tx
                .send(Op::Truncate {
                    expected: committed,
                    reply,
                })
                .is_err()
            {
                return Ok(());
            }
            if answer.await.unwrap_or(false) {
                return Ok(());
            }
        }
    }

    async fn drain_one(
        &self,
        ingestor: &Ingestor,
        conn: &mut RedisConn,
        batch: &record::SpooledBatch<'_>,
    ) -> Result<(), redis::RedisError> {
        let events = match ingestor.prepare(batch.body) {
            Ok(events) => events,
            Err(e) => {
                // It parsed when it was spooled; only a changed parser could refuse it now.
                counter!("okta_adapter_spool_unreadable_total").increment(1);
                tracing::error!(reason = %e, "spooled delivery no longer parses; dropped");
                return Ok(());
            }
        };
        let received = Utc
            .timestamp_millis_opt(batch.received_ms)
            .single()
            .unwrap_or_else(Utc::now);
        let outcomes = ingestor.write(conn, &events, received).await?;
        let written = outcomes
            .iter()
            .filter(|o| **o == EventOutcome::Written)
            .count() as u64;
        counter!("okta_adapter_spool_drained_batches_total").increment(1);
        counter!("okta_adapter_spool_drained_events_total", "outcome" => "written")
            .increment(written);
        counter!("okta_adapter_spool_drained_events_total", "outcome" => "duplicate")
            .increment(outcomes.len() as u64 - written);
        // The next record's age is not known without reading it: the drained one's is a close
        // upper bound on the lag.
        self.shared
            .oldest_ms
            .store(batch.received_ms, Ordering::Release);
        let lag = (Utc::now().timestamp_millis() - batch.received_ms).max(0) as f64 / 1000.0;
        gauge!("okta_adapter_spool_drain_lag_seconds").set(lag);
        Ok(())
    }

    async fn pause(&self) {
        if !self.drain_pause.is_zero() {
            tokio::time::sleep(self.drain_pause).await;
        }
    }
}

/// Whether `e` means Redis cannot take writes right now (down, unreachable, slow, read-only,
/// loading, out of memory…), so a delivery should be spooled; other errors (a script bug, a
/// wrong key type) would fail the same way when drained, so they stay 503.
pub fn redis_unavailable(e: &redis::RedisError) -> bool {
    const UNAVAILABLE: &[&str] = &[
        "READONLY",
        "LOADING",
        "MASTERDOWN",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "MISCONF",
        "OOM",
        "NOREPLICAS",
        "NOT_DURABLE",
    ];
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.code().is_some_and(|c| UNAVAILABLE.contains(&c))
}

async fn read_range(path: &Path, from: u64, to: u64) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut buf = vec![0; (to - from) as usize];
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(from)).await.is_err() || f.read_exact(&mut buf).await.is_err() {
        return Vec::new();
    }
    buf
}

/// Finds `*.spool` files no live process holds, cuts their torn tails and keeps them locked.
fn adopt_leftovers(dir: &Path) -> std::io::Result<Vec<Adopted>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "spool"))
        .collect();
    paths.sort(); // names start with the start time: oldest first
    let mut adopted = Vec::new();
    for path in paths {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        if fs4::FileExt::try_lock(&file).is_err() {
            continue; // a live process's own file
        }
        let buf = std::fs::read(&path)?;
        let scan = record::scan(&buf);
        if let Some(reason) = scan.torn {
            counter!("okta_adapter_spool_torn_records_total").increment(1);
            tracing::warn!(
                path = %path.display(),
                reason,
                dropped_bytes = buf.len() - scan.valid_len,
                kept_batches = scan.records.len(),
                "spool file ends in a torn record (a crash during a write; never acknowledged): dropped"
            );
            file.set_len(scan.valid_len as u64)?;
            file.sync_all()?;
        }
        if scan.records.is_empty() {
            drop(file);
            std::fs::remove_file(&path)?;
            continue;
        }
        adopted.push(Adopted {
            path,
            _file: file,
            len: scan.valid_len as u64,
        });
    }
    Ok(adopted)
}

/// The writer thread: group commits until every sender is gone.
fn write_loop(
    mut file: File,
    mut rx: mpsc::UnboundedReceiver<Op>,
    shared: Arc<Shared>,
    max_bytes: u64,
) {
    let mut len: u64 = 0;
    while let Some(first) = rx.blocking_recv() {
        let mut ops = vec![first];
        while ops.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let mut accepted: Vec<(oneshot::Sender<Result<(), SpoolError>>, i64)> = Vec::new();
        let mut buf = Vec::new();
        let mut truncates = Vec::new();
        for op in ops {
            match op {
                Op::Append {
                    record,
                    received_ms,
                    reply,
                } => {
                    if len + buf.len() as u64 + record.len() as u64 > max_bytes {
                        let _ = reply.send(Err(SpoolError::Full));
                    } else {
                        buf.extend_from_slice(&record);
                        accepted.push((reply, received_ms));
                    }
                }
                Op::Truncate { expected, reply } => truncates.push((expected, reply)),
            }
        }
        if !buf.is_empty() {
            let result = file.write_all(&buf).and_then(|()| file.sync_data());
            match result {
                Ok(()) => {
                    // Nothing was pending (0): the first of these is now the oldest.
                    if let Some((_, ms)) = accepted.first() {
                        let _ = shared.oldest_ms.compare_exchange(
                            0,
                            *ms,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                    }
                    len += buf.len() as u64;
                    shared
                        .pending_batches
                        .fetch_add(accepted.len() as u64, Ordering::AcqRel);
                    shared.committed.store(len, Ordering::Release);
                    for (reply, _) in accepted {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool write failed; answering 503");
                    // Cut whatever part of the group reached the file: it is not acknowledged.
                    let _ = file.set_len(len);
                    let _ = file.seek(SeekFrom::End(0));
                    for (reply, _) in accepted {
                        let _ = reply.send(Err(SpoolError::Io(e.to_string())));
                    }
                }
            }
        }
        for (expected, reply) in truncates {
            let done = expected == len
                && file.set_len(0).is_ok()
                && file.seek(SeekFrom::Start(0)).is_ok()
                && file.sync_data().is_ok();
            if done {
                len = 0;
                shared.committed.store(0, Ordering::Release);
                shared.drained.store(0, Ordering::Release);
                shared.oldest_ms.store(0, Ordering::Release);
            }
            let _ = reply.send(done);
        }
    }
}
