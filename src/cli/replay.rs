//! `replay …` and `dead-letter …`: the operator API's replay and redrive from a shell
//! (see [`crate::replay`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::tool::{load_for_tool, tool_connection};
use crate::domain::tenant::TenantResolver;
use crate::projection::write::Applier;
use crate::replay::{self, ReplayFilter, ReplayTarget};
use crate::store::Keys;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A new consumer group: entries go to `<prefix>:{events}:replay:<GROUP>` with that group.
    #[arg(long, conflicts_with = "route", required_unless_present = "route")]
    pub group: Option<String>,
    /// Or an existing route stream, by route name.
    #[arg(long)]
    pub route: Option<String>,
    /// Range start: a firehose entry id or a time in ms (default: the oldest).
    #[arg(long, default_value = "")]
    pub from: String,
    /// Range end (default: the newest).
    #[arg(long, default_value = "")]
    pub to: String,
    #[arg(long = "type")]
    pub event_type: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    /// Only count.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// Records with their reasons (oldest first).
    List {
        #[arg(long)]
        reason: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Hand records back to their consumer: the given ids, or every record of --reason.
    Redrive {
        #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
        reason: Option<String>,
        ids: Vec<String>,
    },
    /// Delete records.
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

pub async fn run_replay(config: Option<PathBuf>, a: ReplayArgs) -> anyhow::Result<()> {
    let settings = load_for_tool(config)?;
    let mut conn = tool_connection(&settings).await?;
    let keys = Keys::new(settings.redis.prefix.clone());
    let target = match (a.group, a.route) {
        (Some(g), None) => ReplayTarget::Group(g),
        (None, Some(r)) if settings.routes.iter().any(|x| x.name == r) => ReplayTarget::Route(r),
        (None, Some(r)) => anyhow::bail!("--route: no route named `{r}`"),
        _ => anyhow::bail!("give exactly one of --group and --route"),
    };
    let filter = ReplayFilter {
        from: a.from,
        to: a.to,
        event_type: a.event_type,
        tenant: a.tenant,
        user: a.user,
    };
    let r = replay::replay(&mut conn, &keys, &filter, &target, a.dry_run).await?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

pub async fn run_dead_letter(config: Option<PathBuf>, c: DeadLetterCommand) -> anyhow::Result<()> {
    let settings = load_for_tool(config)?;
    let mut conn = tool_connection(&settings).await?;
    let keys = Keys::new(settings.redis.prefix.clone());
    match c {
        DeadLetterCommand::List { reason, limit } => {
            let (depth, records) =
                replay::list_dead_letters(&mut conn, &keys, reason.as_deref(), limit).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"depth": depth, "records": records})
                )?
            );
        }
        DeadLetterCommand::Redrive { reason, ids } => {
            let applier = Applier::new(keys.clone(), settings.projection.timeline_len);
            let tenants = TenantResolver::from_settings(&settings.tenants.rules);
            let out = replay::redrive(
                &mut conn,
                &keys,
                &applier,
                &tenants,
                &settings.projection.group,
                &ids,
                reason.as_deref(),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        DeadLetterCommand::Delete { ids } => {
            let n = replay::delete_dead_letters(&mut conn, &keys, &ids).await?;
            eprintln!("deleted {n} of {} record(s)", ids.len());
        }
    }
    Ok(())
}
