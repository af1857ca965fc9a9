//! `tenant apply FILE`: declare a tenant from a TOML (or JSON) file — the same document and the
//! same queued, resumable apply as `PUT /api/v1/tenants/{tenant}`. `--dry-run` prints the plan.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use super::tool::{load_for_tool, tool_connection};
use crate::domain::tenant::TenantId;
use crate::okta::client::OktaClient;
use crate::okta::rate::Lane;
use crate::store::Keys;
use crate::tenants::doc::TenantDoc;
use crate::tenants::engine::{Engine, PlanSink};
use crate::tenants::store::{new_apply_id, TenantStore, MODE_APPLY};
use crate::tenants::worker::TenantWorker;

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Apply a tenant document (TOML, or JSON when the file ends in .json).
    Apply {
        file: PathBuf,
        /// The tenant; default: the document's `tenant`.
        #[arg(long)]
        tenant: Option<String>,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(config: Option<PathBuf>, command: TenantCommand) -> anyhow::Result<()> {
    let TenantCommand::Apply {
        file,
        tenant,
        dry_run,
    } = command;
    let settings = load_for_tool(config)?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let doc = if file.extension().is_some_and(|e| e == "json") {
        TenantDoc::from_json(serde_json::from_str(&text)?)
    } else {
        TenantDoc::from_toml(&text)
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let tenant = tenant.or_else(|| doc.tenant.clone()).ok_or_else(|| {
        anyhow::anyhow!("name the tenant: --tenant, or `tenant = \"…\"` in the file")
    })?;
    let tenant = TenantId::parse(&tenant).map_err(|e| anyhow::anyhow!("tenant: {e}"))?;
    doc.check(&tenant, &settings.provisioning.kinds)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let t = tenant.as_str();
    let mut conn = tool_connection(&settings).await?;
    let keys = Keys::new(settings.redis.prefix.clone());
    let okta = OktaClient::new(&settings.okta, keys.clone(), conn.clone())
        .ok_or_else(|| anyhow::anyhow!("set okta.org_url and okta.api_token (OKTA_ADAPTER__OKTA__ORG_URL, OKTA_ADAPTER__OKTA__API_TOKEN)"))?;
    let store = TenantStore::new(keys.clone());
    if dry_run {
        let known = store.ids(&mut conn, t).await?;
        let engine = Engine {
            okta: &okta,
            lane: Lane::Interactive,
            dry_run: true,
            profile_attribute: &settings.provisioning.profile_attribute,
        };
        let (steps, _) = engine.converge(t, &doc, &known, &mut PlanSink).await?;
        for s in steps {
            out!(
                "{:<24} {:<10} {}",
                s.key,
                format!("{:?}", s.action).to_lowercase(),
                s.resource
            )?;
        }
        return Ok(());
    }
    let id = new_apply_id();
    if !store
        .queue(&mut conn, t, &id, MODE_APPLY, &doc, "cli")
        .await?
    {
        anyhow::bail!("an apply of tenant `{t}` is in progress; retry when it has finished");
    }
    eprintln!("apply {id} of tenant {t} queued");
    // Run a worker here too (the consumer group gives the apply to exactly one worker).
    let cancel = CancellationToken::new();
    let worker = TenantWorker::new(keys, okta, &settings);
    let running = tokio::spawn(worker.run(settings.redis.clone(), cancel.clone()));
    let apply = loop {
        if let Some(a) = store.apply(&mut conn, t, &id).await? {
            if a.finished() {
                break a;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    cancel.cancel();
    let _ = running.await;
    for s in &apply.steps {
        out!(
            "{:<24} {:<10} {:<32} {}",
            s.key,
            format!("{:?}", s.action).to_lowercase(),
            s.okta_id.as_deref().unwrap_or("-"),
            s.detail.as_deref().unwrap_or("")
        )?;
    }
    match apply.error {
        Some(e) => anyhow::bail!("apply {id} failed: {e}"),
        None => {
            eprintln!("apply {id} succeeded; client secrets of new apps are not kept: POST …/rotate-secret to get one");
            Ok(())
        }
    }
}
