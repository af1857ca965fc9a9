//! `import`: runs a bulk job from a file on this machine with a progress bar — the same request
//! parser ([`crate::jobs::request`]), queue and workers as `POST /api/v1/jobs`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::tool::{load_for_tool, tool_connection};
use crate::jobs::request::{parse_job_request, FormatHint, JobParams, JobRequest};
use crate::jobs::rows::{JobState, RowOutcome};
use crate::jobs::store::{JobStore, UploadSpec};
use crate::jobs::worker::JobWorker;
use crate::okta::client::OktaClient;
use crate::reporting::render::count_of;
use crate::store::Keys;

#[derive(Args)]
pub struct ImportArgs {
    file: PathBuf,
    /// Migration phase: `create` (STAGED, password import hook) or `activate` (no email).
    #[arg(long)]
    phase: Option<String>,
    /// Any job kind instead of a phase (create, update, activate, deactivate, suspend,
    /// unsuspend, delete, add-to-group, remove-from-group).
    #[arg(long)]
    kind: Option<String>,
    /// Group id for add-to-group / remove-from-group.
    #[arg(long)]
    group_id: Option<String>,
}

/// Failed rows shown at the end; all of them: `GET /api/v1/jobs/{id}/results`.
const FAILURES_SHOWN: usize = 20;

pub async fn run(config: Option<PathBuf>, args: ImportArgs) -> anyhow::Result<()> {
    let settings = load_for_tool(config)?;
    let JobRequest {
        kind,
        options,
        format,
    } = parse_job_request(JobParams {
        kind: args.kind.as_deref(),
        phase: args.phase.as_deref(),
        group_id: args.group_id,
        format_hint: FormatHint::FileName(&args.file),
        ..JobParams::default()
    })
    .map_err(|e| anyhow::anyhow!("{e} (--kind, --phase)"))?;
    let file = args.file;
    let mut conn = tool_connection(&settings).await?;
    let keys = Keys::new(settings.redis.prefix.clone());
    let okta = OktaClient::new(&settings.okta, keys.clone(), conn.clone())
        .ok_or_else(|| anyhow::anyhow!("set okta.org_url and okta.api_token (OKTA_ADAPTER__OKTA__ORG_URL, OKTA_ADAPTER__OKTA__API_TOKEN)"))?;
    let input = tokio::fs::File::open(&file)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let store = JobStore::new(keys.clone());
    let id = store.create(&mut conn, kind, &options, None, "cli").await?;
    let counts = store
        .upload(
            &mut conn,
            &id,
            UploadSpec {
                kind,
                options: &options,
                tenant: None,
                format,
                max_record_bytes: settings.jobs.max_record_bytes,
                groups: None,
            },
            input,
        )
        .await?;
    store.finish_upload(&mut conn, &id, counts).await?;
    eprintln!(
        "job {id}: {}, {} invalid (their reasons are in the results); running {}",
        count_of(counts.total, "row", "rows"),
        counts.invalid,
        count_of(counts.valid, "row", "rows")
    );
    let cancel = CancellationToken::new();
    let worker = JobWorker::new(keys, okta, &settings);
    let running = tokio::spawn(worker.run(settings.redis.clone(), cancel.clone()));
    let bar = indicatif::ProgressBar::new(counts.valid);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}",
        )
        .expect("static template"),
    );
    let interrupted = tokio::select! {
        _ = crate::shutdown::signal() => true,
        _ = async {
            loop {
                if let Ok(Some(info)) = store.info(&mut conn, &id).await {
                    bar.set_position(info.done + info.failed);
                    bar.set_message(format!("{} failed", info.failed));
                    if matches!(info.state, JobState::Done | JobState::Cancelled) && info.pending == 0 {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        } => false,
    };
    cancel.cancel();
    let _ = running.await;
    bar.finish();
    let info = store
        .info(&mut conn, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("job vanished"))?;
    eprintln!(
        "job {id} {}: {} done, {} failed, {} invalid{}",
        info.state,
        info.done,
        info.failed,
        info.invalid,
        if interrupted {
            " — interrupted; the remaining rows stay queued for any worker (`serve`)"
        } else {
            ""
        }
    );
    // The first failures, to act on; all results: GET /api/v1/jobs/{id}/results.
    let (mut after, mut shown) = (0, 0);
    while shown < FAILURES_SHOWN {
        let page = store.results_page(&mut conn, &id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.line;
        for r in page
            .iter()
            .filter(|r| r.outcome != RowOutcome::Done)
            .take(FAILURES_SHOWN - shown)
        {
            eprintln!("  line {}: {}", r.line, r.error.as_deref().unwrap_or(""));
            shown += 1;
        }
    }
    Ok(())
}
