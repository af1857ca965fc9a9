//! `projections rebuild`: drops every user projection and replays the firehose into them.

use std::path::PathBuf;

use clap::Subcommand;

use super::tool::{load_for_tool, tool_connection};
use crate::domain::tenant::TenantResolver;
use crate::projection::write::rebuild;
use crate::store::Keys;

#[derive(Subcommand)]
pub enum ProjectionsCommand {
    /// Drop every user projection and rebuild them from the firehose.
    Rebuild,
}

pub async fn run(config: Option<PathBuf>, command: ProjectionsCommand) -> anyhow::Result<()> {
    let settings = load_for_tool(config)?;
    let mut conn = tool_connection(&settings).await?;
    match command {
        ProjectionsCommand::Rebuild => {
            let keys = Keys::new(settings.redis.prefix.clone());
            let started = std::time::Instant::now();
            let applied = rebuild(
                &mut conn,
                &keys,
                settings.projection.timeline_len,
                &TenantResolver::from_settings(&settings.tenants.rules),
                |n| eprint!("\rapplied {n} events"),
            )
            .await?;
            eprintln!(
                "\rrebuilt projections from {applied} events in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
