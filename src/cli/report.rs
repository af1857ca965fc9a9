//! `report --month YYYY-MM [--send]`: compiles a month's IAM report, writes a preview and, with
//! `--send`, mails it once.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::tool::{load_for_tool, tool_connection};
use crate::reporting::deliver::{write_preview, Transport};
use crate::reporting::render::count_of;
use crate::reporting::{ReportMonth, Reporter, SendOutcome};
use crate::telemetry;

pub async fn run(config: Option<PathBuf>, month: &str, send: bool) -> anyhow::Result<()> {
    let month = ReportMonth::parse(month).map_err(|e| anyhow::anyhow!("--month: {e}"))?;
    let settings = load_for_tool(config)?;
    telemetry::init_logs(&settings.log);
    let mut conn = tool_connection(&settings).await?;
    let transport = Transport::from_settings(&settings);
    let reporter = Reporter::new(&settings, transport);
    let current = ReportMonth::of(chrono::Utc::now(), reporter.tz);
    if month > current {
        anyhow::bail!(
            "{month} has not started yet (it is {current} in {})",
            reporter.tz
        );
    }
    let started = std::time::Instant::now();
    let report = reporter.compile(&mut conn, month).await?;
    let compiled = started.elapsed();
    for warning in &report.warnings {
        eprintln!("WARNING: {warning}");
    }
    // `preview/` is git-ignored, so previews never end up next to the templates in a commit.
    let dir = PathBuf::from(&settings.report.output_dir).join("preview");
    let paths = write_preview(&dir, &report, &reporter.from, &reporter.to)?;
    eprintln!(
        "compiled {month} in {} ms: {}, {}{}",
        compiled.as_millis(),
        count_of(report.tenants.len() as u64, "tenant", "tenants"),
        count_of(report.overview.active_users, "active user", "active users"),
        if report.complete {
            ""
        } else {
            " (month in progress)"
        }
    );
    for p in &paths {
        eprintln!("  wrote {}", p.display());
    }
    if send {
        let cancel = CancellationToken::new();
        match reporter
            .send_once(&mut conn, month, Some(5), &cancel)
            .await?
        {
            SendOutcome::Sent(r) => eprintln!(
                "sent {month} to {} via {} (Message-ID {})",
                r.recipients.join(", "),
                reporter.transport.describe(),
                r.message_id
            ),
            SendOutcome::AlreadySent(r) => eprintln!(
                "{month} was already sent at {} by {} (Message-ID {}); not sent again",
                r.sent_at, r.instance, r.message_id
            ),
            SendOutcome::Busy => anyhow::bail!("another replica is sending {month} right now"),
            SendOutcome::NoRecipients => {
                anyhow::bail!("report.recipients is empty: nobody to send {month} to")
            }
            SendOutcome::Failed(e) => anyhow::bail!("the {month} report was not sent: {e}"),
        }
    }
    Ok(())
}
