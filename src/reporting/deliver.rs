//! Building the email and sending each month's report exactly once.
//!
//! Send-once protocol (all replicas, all restarts):
//! 1. `{report}:sent:<month>` (or its name before the hash tag, see [`super::migrate`]) exists →
//!    already sent, stop. It is written (`SET NX`) only after the
//!    mail server accepted the message, with its Message-ID — the old name first, in its own
//!    command, for older replicas of a rolling upgrade (they read only that one).
//! 2. Take the month's lease: `SET report:lease:<month> <instance> NX PX lease`. Another replica
//!    holding it is sending; stop (it will finish, or its lease expires and the next check
//!    takes over).
//! 3. Check `sent` again (a replica may have finished between 1 and 2), compile, render.
//! 4. Record the attempt with its Message-ID (`{report}:attempt:<month>`) — or reuse the one a
//!    crashed attempt left — then send. SMTP failures are retried with exponential back-off
//!    (`report.retry_initial_ms` → `retry_max_ms`), renewing the lease before each try; a lost
//!    lease stops the attempt.
//! 5. Accepted → write `sent`, `last-sent`, drop the attempt, release the lease.
//!
//! No email is sent twice once `sent` is written. The one window left is a crash after the
//! server accepted and before `sent` was written: the next sender then re-sends with the same
//! Message-ID, which mail clients show as one message. (SMTP has no way to ask "did you get
//! it?", so this is the narrowest the window can be.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::RedisConn;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use redis::{AsyncCommands, RedisResult, Script};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::chart::CHART_CONTENT_ID;
use super::compile::{compile_monthly_report, MonthlyReport};
use super::month::ReportMonth;
use super::render::{render_report, ChartRef, RenderedReport};
use crate::config::Settings;
use crate::store::Keys;

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Writes `<id>.eml` files into a folder (no mail server configured).
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

impl Transport {
    /// SMTP when `smtp.url` is set (it was parsed at load), else the file transport.
    pub fn from_settings(settings: &Settings) -> Self {
        let Some(smtp) = settings.smtp.url.smtp() else {
            // The folder is created when the first mail is written, not here: building the
            // state must not touch the disk.
            let dir = Path::new(&settings.report.output_dir).join("outbox");
            return Self::File(AsyncFileTransport::new(&dir), dir);
        };
        let smtp = smtp
            .clone()
            .timeout(Some(Duration::from_secs(settings.smtp.timeout_secs)))
            .build();
        Self::Smtp(smtp)
    }

    /// For logs and answers: never the URL (it may carry the password).
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(_) => "SMTP (smtp.url)".into(),
            Transport::File(_, dir) => format!("file transport ({})", dir.display()),
        }
    }

    async fn send(&self, message: &Message) -> Result<(), String> {
        match self {
            Transport::Smtp(t) => t
                .send(message.clone())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Transport::File(t, dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                t.send(message.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The email: multipart/alternative of text and (multipart/related) HTML with the inline chart.
pub fn build_message(
    rendered: &RenderedReport,
    from: &Mailbox,
    to: &[Mailbox],
    message_id: &str,
) -> Result<Message, lettre::error::Error> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(&rendered.subject)
        .message_id(Some(message_id.to_string()));
    for m in to {
        builder = builder.to(m.clone());
    }
    let mut related = MultiPart::related().singlepart(SinglePart::html(rendered.html.clone()));
    if !rendered.chart_png.is_empty() {
        related = related.singlepart(Attachment::new_inline(CHART_CONTENT_ID.to_string()).body(
            rendered.chart_png.clone(),
            ContentType::parse("image/png").expect("valid"),
        ));
    }
    builder.multipart(
        MultiPart::alternative()
            .singlepart(SinglePart::plain(rendered.text.clone()))
            .multipart(related),
    )
}

/// What `sent` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, poem_openapi::Object)]
pub struct SentRecord {
    pub month: String,
    pub message_id: String,
    /// When the mail server accepted it (RFC 3339).
    pub sent_at: String,
    /// The replica that sent it.
    pub instance: String,
    pub recipients: Vec<String>,
}

/// How a send request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent(SentRecord),
    AlreadySent(SentRecord),
    /// Another replica holds the lease and is sending.
    Busy,
    NoRecipients,
    /// The transport kept failing; the lease was released so a later check retries.
    Failed(String),
}

/// Everything needed to compile and deliver reports; shared by the scheduler, HTTP and CLI.
#[derive(Clone)]
pub struct Reporter {
    pub keys: Keys,
    pub tz: Tz,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub transport: Transport,
    /// Tenants that should have events every month (`inline.tenants`): a month without any for
    /// one of them is called out in the report.
    pub expected_tenants: Vec<String>,
    /// Identifies this replica in leases and records.
    pub instance: String,
    lease: Duration,
    retry_initial: Duration,
    retry_max: Duration,
}

const RENEW_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

impl Reporter {
    pub fn new(settings: &Settings, transport: Transport) -> Self {
        Self {
            keys: Keys::new(settings.redis.prefix.clone()),
            tz: settings.report_timezone(),
            from: settings.report.from.clone(),
            to: settings.report.recipients.clone(),
            transport,
            expected_tenants: settings
                .inline
                .tenants
                .iter()
                .map(|t| t.id.clone())
                .collect(),
            instance: format!(
                "{}-{}-{:08x}",
                super::consumer::hostname(),
                std::process::id(),
                rand::random::<u32>()
            ),
            lease: Duration::from_secs(settings.report.lease_secs),
            retry_initial: Duration::from_millis(settings.report.retry_initial_ms),
            retry_max: Duration::from_millis(settings.report.retry_max_ms),
        }
    }

    pub async fn compile(
        &self,
        conn: &mut RedisConn,
        month: ReportMonth,
    ) -> RedisResult<MonthlyReport> {
        compile_monthly_report(
            conn,
            &self.keys,
            self.tz,
            month,
            Utc::now(),
            &self.expected_tenants,
        )
        .await
    }

    pub async fn sent_record(
        &self,
        conn: &mut RedisConn,
        month: ReportMonth,
    ) -> RedisResult<Option<SentRecord>> {
        let m = month.to_string();
        let raw = get_or_legacy(
            conn,
            &self.keys.report_sent(&m),
            &self.keys.legacy_report_sent(&m),
        )
        .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Unix time of the newest report any replica sent.
    pub async fn last_sent(&self, conn: &mut RedisConn) -> RedisResult<Option<i64>> {
        let raw = get_or_legacy(
            conn,
            &self.keys.report_last_sent(),
            &self.keys.legacy_report_last_sent(),
        )
        .await?;
        Ok(raw.and_then(|t| t.parse().ok()))
    }

    /// Whether the scheduler mails `month`: always when events were recorded; a month without
    /// any only when the scheduler already ran here before the month ended — that silence means
    /// the event hook broke and must be reported, while the months before a fresh installation
    /// are not mailed (they can still be previewed and sent by hand). Records the scheduler's
    /// first run (`SET NX`).
    pub async fn scheduler_should_send(
        &self,
        conn: &mut RedisConn,
        month: ReportMonth,
    ) -> RedisResult<bool> {
        let since_key = self.keys.report_scheduled_since();
        let (since, recorded): (i64, u64) = redis::pipe()
            .cmd("SET")
            .arg(&since_key)
            .arg(Utc::now().timestamp())
            .arg("NX")
            .ignore()
            .get(&since_key)
            .scard(self.keys.report_tenants(&month.to_string()))
            .query_async(conn)
            .await?;
        Ok(recorded > 0 || since < month.next().start(self.tz).timestamp())
    }

    /// Sends `month` unless it was sent; `max_attempts` = None retries until `cancel`.
    pub async fn send_once(
        &self,
        conn: &mut RedisConn,
        month: ReportMonth,
        max_attempts: Option<u32>,
        cancel: &CancellationToken,
    ) -> RedisResult<SendOutcome> {
        let m = month.to_string();
        if let Some(sent) = self.sent_record(conn, month).await? {
            return Ok(SendOutcome::AlreadySent(sent));
        }
        if self.to.is_empty() {
            return Ok(SendOutcome::NoRecipients);
        }
        let lease_key = self.keys.report_lease(&m);
        let taken: Option<String> = redis::cmd("SET")
            .arg(&lease_key)
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(self.lease.as_millis() as u64)
            .query_async(conn)
            .await?;
        if taken.is_none() {
            return Ok(SendOutcome::Busy);
        }
        let result = self
            .send_holding_lease(conn, month, max_attempts, cancel)
            .await;
        let released: RedisResult<i64> = Script::new(RELEASE_LEASE)
            .key(&lease_key)
            .arg(&self.instance)
            .invoke_async(conn)
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, month = %m, "report lease not released; it expires by itself");
        }
        result
    }

    async fn send_holding_lease(
        &self,
        conn: &mut RedisConn,
        month: ReportMonth,
        max_attempts: Option<u32>,
        cancel: &CancellationToken,
    ) -> RedisResult<SendOutcome> {
        let m = month.to_string();
        if let Some(sent) = self.sent_record(conn, month).await? {
            return Ok(SendOutcome::AlreadySent(sent));
        }
        // A month without events is sent too, with its warning: silence is the one failure a
        // monthly report must not hide.
        let report = self.compile(conn, month).await?;
        let rendered = render_report(&report, ChartRef::ContentId);
        let attempt_key = self.keys.report_attempt(&m);
        let legacy_attempt_key = self.keys.legacy_report_attempt(&m);
        let previous_id = get_or_legacy(conn, &attempt_key, &legacy_attempt_key).await?;
        let message_id = match previous_id {
            Some(id) => {
                tracing::warn!(month = %m, message_id = %id, "an earlier attempt ended without a known outcome; re-sending with its Message-ID");
                id
            }
            None => {
                let id = format!(
                    "<iam-report-{m}-{:016x}@okta-adapter>",
                    rand::random::<u64>()
                );
                let _: () = conn.set(&attempt_key, &id).await?;
                // Under the old name too (its own command, another slot): an older replica
                // taking over after a crash mid-send then re-sends with this Message-ID, so mail
                // clients merge the two. Cleared with the new one once the month is recorded.
                let _: () = conn.set(&legacy_attempt_key, &id).await?;
                id
            }
        };
        let message = match build_message(&rendered, &self.from, &self.to, &message_id) {
            Ok(msg) => msg,
            Err(e) => return Ok(SendOutcome::Failed(format!("message cannot be built: {e}"))),
        };
        let mut delay = self.retry_initial;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let renewed: i64 = Script::new(RENEW_LEASE)
                .key(self.keys.report_lease(&m))
                .arg(&self.instance)
                .arg(self.lease.as_millis() as u64)
                .invoke_async(conn)
                .await?;
            if renewed == 0 {
                tracing::warn!(month = %m, "report lease lost (expired); another replica may send");
                return Ok(SendOutcome::Busy);
            }
            match self.transport.send(&message).await {
                Ok(()) => break,
                Err(e) => {
                    metrics::counter!("okta_adapter_report_send_failures_total").increment(1);
                    tracing::warn!(month = %m, attempt, transport = %self.transport.describe(), error = %e, retry_in_ms = delay.as_millis() as u64, "report email not accepted; retrying");
                    if max_attempts.is_some_and(|max| attempt >= max) || cancel.is_cancelled() {
                        return Ok(SendOutcome::Failed(e));
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(SendOutcome::Failed(e)),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        }
        let now = Utc::now();
        let record = SentRecord {
            month: m.clone(),
            message_id,
            sent_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            instance: self.instance.clone(),
            recipients: self.to.iter().map(|t| t.email.to_string()).collect(),
        };
        // Retried: once the server accepted, losing this record is what would cause a second
        // email, so a Redis hiccup here must not end the attempt.
        let json = serde_json::to_string(&record).expect("serialisable");
        let legacy_sent_key = self.keys.legacy_report_sent(&m);
        let mut wait = Duration::from_millis(100);
        loop {
            // The name before the `{report}` tag first (another cluster slot, its own command):
            // an older replica still running in a rolling upgrade reads only that one, takes the
            // free lease and would mail the month again. Before the MULTI, so a crash between
            // still leaves the month sent for both builds (this one falls back to the old name).
            let legacy: RedisResult<Option<String>> = redis::cmd("SET")
                .arg(&legacy_sent_key)
                .arg(&json)
                .arg("NX")
                .query_async(conn)
                .await;
            let written: RedisResult<()> = match legacy {
                Err(e) => Err(e),
                Ok(_) => {
                    redis::pipe()
                        .atomic()
                        .cmd("SET")
                        .arg(self.keys.report_sent(&m))
                        .arg(&json)
                        .arg("NX")
                        .ignore()
                        .set(self.keys.report_last_sent(), now.timestamp())
                        .ignore()
                        .del(&attempt_key)
                        .ignore()
                        .query_async(conn)
                        .await
                }
            };
            match written {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(month = %m, error = %e, "report sent but its record not yet written; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        // An attempt left under the old name (`reporting::migrate`) is done with too; best
        // effort: it is read only while this month is unsent.
        let cleared: RedisResult<()> = conn.del(&legacy_attempt_key).await;
        if let Err(e) = cleared {
            tracing::warn!(month = %m, error = %e, "old-named report attempt not deleted");
        }
        metrics::gauge!("okta_adapter_report_last_sent_timestamp_seconds")
            .set(now.timestamp() as f64);
        metrics::counter!("okta_adapter_reports_sent_total").increment(1);
        tracing::info!(month = %m, message_id = %record.message_id, recipients = record.recipients.len(), transport = %self.transport.describe(), "monthly report sent");
        Ok(SendOutcome::Sent(record))
    }
}

/// `key`, or when it is missing the same record under its name from before the `{report}`
/// hash tag (`reporting::migrate`): a month sent before an upgrade stays sent.
async fn get_or_legacy(
    conn: &mut RedisConn,
    key: &str,
    legacy: &str,
) -> RedisResult<Option<String>> {
    let value: Option<String> = conn.get(key).await?;
    match value {
        Some(v) => Ok(Some(v)),
        None => conn.get(legacy).await,
    }
}

/// Writes the preview files for `report`: `<dir>/<month>.html`, `.txt`, `-chart.png`, `.eml`.
pub fn write_preview(
    dir: &Path,
    report: &MonthlyReport,
    from: &Mailbox,
    to: &[Mailbox],
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let m = &report.month;
    let chart_name = format!("{m}-chart.png");
    let preview = render_report(report, ChartRef::File(&chart_name));
    let email = render_report(report, ChartRef::ContentId);
    let paths = [
        dir.join(format!("{m}.html")),
        dir.join(format!("{m}.txt")),
        dir.join(&chart_name),
        dir.join(format!("{m}.eml")),
    ];
    std::fs::write(&paths[0], &preview.html)?;
    std::fs::write(&paths[1], &preview.text)?;
    std::fs::write(&paths[2], &preview.chart_png)?;
    let to: Vec<Mailbox> = if to.is_empty() {
        vec!["preview <preview@localhost>".parse().expect("valid")]
    } else {
        to.to_vec()
    };
    let message = build_message(
        &email,
        from,
        &to,
        &format!("<iam-report-{m}-preview@okta-adapter>"),
    )
    .map_err(std::io::Error::other)?;
    std::fs::write(&paths[3], message.formatted())?;
    Ok(paths.to_vec())
}

/// Unix time → RFC 3339, for answers.
pub fn unix_to_rfc3339(t: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(t, 0).map(|d| d.to_rfc3339())
}
