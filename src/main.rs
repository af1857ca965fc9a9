//! The `okta-adapter` binary: CLI → settings → telemetry → Application.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use okta_adapter::config::Settings;
use okta_adapter::startup::{AppState, Application};
use okta_adapter::{dev, shutdown, store, telemetry};

#[derive(Parser)]
#[command(
    version,
    about = "Okta event/inline hooks into Redis Streams, and the management API"
)]
struct Cli {
    /// A TOML file layered over the built-in defaults (env: OKTA_ADAPTER_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// First run on a laptop: uses the configured Redis if it answers, otherwise starts a private
    /// `redis-server` (data in ./.okta-adapter-dev), sets a demo hook secret, prints a curl.
    Dev,
    /// Validate the configuration and print every problem, one line each.
    CheckConfig,
    /// Print the OpenAPI document.
    Openapi,
    /// The legacy credential store read by the password import inline hook.
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// Load legacy password hashes: a `.csv` file with a `login,hash` header, or JSON lines
    /// (`{"login": "…", "hash": "…"}`). Bad rows are reported by line and skipped; the rest are
    /// stored (an existing login is overwritten). Hashes: bcrypt, PBKDF2-SHA256/512 and argon2
    /// PHC strings, `$sha256-salted$…`/`$sha512-salted$…` (see docs/inline-hooks.md).
    Import {
        /// The file to load.
        file: PathBuf,
        /// Check the file and report, without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Dev => run_dev(cli.config).await,
        Command::CheckConfig => check_config(cli.config),
        Command::Openapi => print_openapi(),
        Command::Credentials {
            command: CredentialsCommand::Import { file, dry_run },
        } => import_credentials(cli.config, &file, dry_run).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(config: Option<PathBuf>, dev_overrides: Option<&str>) -> anyhow::Result<Settings> {
    Settings::load_with(config.as_deref(), dev_overrides)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = load(config, None)?;
    telemetry::init_logs(&settings.log);
    let app = Application::build(settings).await?;
    app.run_until_stopped(shutdown::signal()).await?;
    Ok(())
}

fn check_config(config: Option<PathBuf>) -> anyhow::Result<()> {
    let s = load(config, None)?;
    println!(
        "configuration is valid: listen {}, redis {}, prefix `{}`, {} hook secret(s), {} route(s)",
        s.http.listen,
        okta_adapter::startup::redacted_url(secrecy::ExposeSecret::expose_secret(&s.redis.url)),
        s.redis.prefix,
        s.hooks.secrets.len(),
        s.routes.len()
    );
    Ok(())
}

fn print_openapi() -> anyhow::Result<()> {
    let settings = Settings::from_toml_overrides("[hooks]\nsecrets = [\"unused\"]\n")?;
    let redis = store::connect_lazy(&settings.redis)?;
    let state = AppState::new(settings, redis);
    println!("{}", okta_adapter::http::api_service(state).spec());
    Ok(())
}

async fn import_credentials(
    config: Option<PathBuf>,
    file: &std::path::Path,
    dry_run: bool,
) -> anyhow::Result<()> {
    use okta_adapter::inline::credentials::{read_credential_file, store_credentials};
    let settings = load(config, None)?;
    let parsed = read_credential_file(file)?;
    for problem in &parsed.errors {
        eprintln!("skipped: {problem}");
    }
    if dry_run {
        println!(
            "{}: {} valid row(s), {} skipped; nothing written (--dry-run)",
            file.display(),
            parsed.rows.len(),
            parsed.errors.len()
        );
        return Ok(());
    }
    let mut redis = store::connect(&settings.redis).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach Redis at {} (redis.url): {e}",
            okta_adapter::startup::redacted_url(secrecy::ExposeSecret::expose_secret(
                &settings.redis.url
            ))
        )
    })?;
    let keys = store::Keys::new(settings.redis.prefix.clone());
    let written = store_credentials(&mut redis, &keys, &parsed.rows).await?;
    println!(
        "{}: {written} legacy credential(s) stored under `{}:{{cred:<login>}}:hash`, {} row(s) skipped",
        file.display(),
        settings.redis.prefix,
        parsed.errors.len()
    );
    if !parsed.errors.is_empty() {
        anyhow::bail!("{} row(s) could not be imported", parsed.errors.len());
    }
    Ok(())
}

const DEV_SECRET: &str = "dev-secret-change-me";

async fn run_dev(config: Option<PathBuf>) -> anyhow::Result<()> {
    let overrides = format!("[log]\nformat = \"pretty\"\n[hooks]\nsecrets = [\"{DEV_SECRET}\"]\n");
    let mut settings = load(config, Some(&overrides))?;
    telemetry::init_logs(&settings.log);
    let configured = secrecy::ExposeSecret::expose_secret(&settings.redis.url).to_string();
    let mut _private = None;
    if store::connect(&settings.redis).await.is_err() {
        let dir = PathBuf::from(".okta-adapter-dev/redis");
        let server = dev::RedisServer::start(&dir, true)?;
        eprintln!(
            "Redis at {} did not answer; started a private redis-server on {} (data in {})",
            okta_adapter::startup::redacted_url(&configured),
            server.url(),
            dir.display()
        );
        settings.redis.url = server.url().into();
        _private = Some(server);
    }
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    let secret = app.state().settings.hooks.secrets.len();
    eprintln!(
        "\nokta-adapter dev is up on http://{addr}  (docs: http://{addr}/docs)\n\
         {secret} hook secret(s); unless you configured your own, Okta's header value is `{DEV_SECRET}`.\n\
         Try Okta's own sample delivery:\n\n  \
         curl -i -X POST http://{addr}/hooks/okta/events -H 'authorization: {DEV_SECRET}' \\\n    \
         -H 'content-type: application/json' --data @hooks/event-hook-user-session-start.json\n\n\
         then read it back: redis-cli -u <redis url> XRANGE okta-adapter:{{events}}:firehose - +\n"
    );
    app.run_until_stopped(shutdown::signal()).await?;
    Ok(())
}
