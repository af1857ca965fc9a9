//! The `okta-adapter` binary: CLI → settings → telemetry → Application. Every command but
//! `serve` is library code in `okta_adapter::cli`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use okta_adapter::cli::{self, Cli, Command, ServeArgs};
use okta_adapter::startup::Application;
use okta_adapter::{shutdown, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(cli.config, args).await,
        command => cli::run(cli.config, command).await,
    };
    cli::exit_code(result)
}

async fn serve(config: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = cli::tool::load(config, None)?;
    if let Some(roles) = args.roles {
        settings.process.roles = roles;
    }
    telemetry::init_logs(&settings.log);
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown::signal()).await?;
    Ok(())
}
