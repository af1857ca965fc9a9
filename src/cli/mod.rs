//! The `okta-adapter` commands other than `serve`, as library code: `main.rs` parses the command
//! line into [`Cli`] and runs `serve` itself or hands the rest to [`run`].
//!
//! One file per command group. Commands that only touch Redis (keys, credentials, projections,
//! import, report) load their settings through [`tool::load_for_tool`], which never needs a
//! hook secret and says on stderr which Redis it uses. Everything a command prints goes through
//! `out!`, so `okta-adapter … | head` ends quietly instead of panicking.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` that returns the write error instead of panicking: stdout may be a pipe whose
/// reader is gone (`okta-adapter openapi | head`). [`exit_code`] then exits quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub mod backfill;
pub mod config;
pub mod credentials;
pub mod dev;
pub mod healthcheck;
pub mod import;
pub mod keys;
pub mod projections;
pub mod replay;
pub mod report;
pub mod tenant;
pub mod tool;

#[derive(Parser)]
#[command(
    name = "okta-adapter",
    version,
    about = "Okta event/inline hooks into Redis Streams, and the management API"
)]
pub struct Cli {
    /// A TOML file layered over the built-in defaults (env: OKTA_ADAPTER_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve(ServeArgs),
    /// A working demo on this machine: its own private `redis-server` (never one already
    /// running; data in ./.okta-adapter-dev), the Okta simulator with demo users in two tenants,
    /// and the adapter wired to both; prints an operator, a support and a client-admin key and
    /// curl examples. CLI commands run in the same directory then use dev's Redis.
    Dev,
    /// Validate the configuration and print every problem, one line each.
    CheckConfig,
    /// Print the OpenAPI document.
    Openapi,
    /// The legacy credential store read by the password import inline hook.
    Credentials {
        #[command(subcommand)]
        command: credentials::CredentialsCommand,
    },
    /// Manage API keys for the management API.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Compile a month's IAM report and write a preview (HTML, text, chart, .eml) under
    /// `<report.output_dir>/preview/`; with --send, also mail it (once: a month already sent is not re-sent).
    Report {
        /// The month, YYYY-MM, in the business time zone (`report.timezone`).
        #[arg(long)]
        month: String,
        /// Send it to `report.recipients` (SMTP, or the file transport when smtp.url is empty).
        #[arg(long)]
        send: bool,
    },
    /// User projections.
    Projections {
        #[command(subcommand)]
        command: projections::ProjectionsCommand,
    },
    /// Run a bulk job from a file (CSV with a header row, or JSON lines) with a progress bar:
    /// the same queue and workers as POST /api/v1/jobs.
    Import(import::ImportArgs),
    /// Tenant provisioning: `tenant apply FILE` (the document of PUT /api/v1/tenants/{tenant}).
    Tenant {
        #[command(subcommand)]
        command: tenant::TenantCommand,
    },
    /// Run Okta's System Log since a time through the ingest step (after an outage): events the
    /// event hook missed are written once, the rest are recognised as duplicates.
    Backfill {
        /// Start of the range: `2026-12-01T00:00Z` (UTC), RFC 3339, or a date.
        #[arg(long)]
        since: String,
    },
    /// Replay firehose entries (by range, type, tenant, user) into a route stream or a new
    /// consumer group; `--dry-run` counts first. Entries keep their uuid.
    Replay(replay::ReplayArgs),
    /// The dead-letter stream: list with reasons, redrive to the consumer, delete.
    DeadLetter {
        #[command(subcommand)]
        command: replay::DeadLetterCommand,
    },
    /// Exit 0 when this machine's adapter answers `GET /healthz` (the container HEALTHCHECK;
    /// the image has no curl). Asks the address `http.listen` names, 0.0.0.0 as 127.0.0.1.
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// `serve`'s options.
#[derive(clap::Args, Default)]
pub struct ServeArgs {
    /// The roles this process runs, e.g. `hooks,api` (default: `process.roles`, which is all of
    /// hooks,api,console,consumers,workers,scheduler).
    #[arg(long, value_parser = crate::config::roles::Roles::parse)]
    pub roles: Option<crate::config::roles::Roles>,
}

/// Runs every command but `serve` (which `main` runs: it is the service, not a tool).
pub async fn run(config: Option<PathBuf>, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) => anyhow::bail!("`serve` is run by main"),
        Command::Healthcheck(args) => healthcheck::run(config, args).await,
        Command::Dev => dev::run(config.as_deref()).await,
        Command::CheckConfig => config::check_config(config),
        Command::Openapi => config::print_openapi(),
        Command::Credentials { command } => credentials::run(config, command).await,
        Command::Keys { command } => keys::run(config, command).await,
        Command::Projections { command } => projections::run(config, command).await,
        Command::Import(args) => import::run(config, args).await,
        Command::Report { month, send } => report::run(config, &month, send).await,
        Command::Backfill { since } => backfill::run(config, &since).await,
        Command::Replay(args) => replay::run_replay(config, args).await,
        Command::DeadLetter { command } => replay::run_dead_letter(config, command).await,
        Command::Tenant { command } => tenant::run(config, command).await,
    }
}

/// The process's exit: success, quietly also when stdout's reader went away; otherwise the
/// error with its causes on stderr.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our stdout went away (`| head`): it has what it wanted; no message.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether writing to stdout failed because its reader closed the pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_success_and_other_errors_are_not() {
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the document");
        assert!(is_broken_pipe(&pipe));
        assert_eq!(exit_code(Err(pipe)), ExitCode::SUCCESS);
        assert_eq!(exit_code(Err(anyhow::anyhow!("no"))), ExitCode::FAILURE);
    }
}
