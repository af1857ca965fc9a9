//! The `okta-adapter` binary: CLI → settings → telemetry → Application.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use okta_adapter::config::Settings;
use okta_adapter::http::state::AppState;
use okta_adapter::reporting::render::count_of;
use okta_adapter::startup::Application;
use okta_adapter::{dev, shutdown, store, telemetry};
use secrecy::ExposeSecret;

/// `println!` that returns the write error instead of panicking: stdout may be a pipe whose
/// reader is gone (`okta-adapter openapi | head`). `main` then exits quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

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
        command: CredentialsCommand,
    },
    /// Manage API keys for the management API.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
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
        command: ProjectionsCommand,
    },
    /// Run a bulk job from a file (CSV with a header row, or JSON lines) with a progress bar:
    /// the same queue and workers as POST /api/v1/jobs.
    Import {
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

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it once (only its hash is stored).
    Create {
        /// support | client-admin | operator
        #[arg(long)]
        role: String,
        /// The tenant of a client-admin key.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List keys (ids, roles, tenants; never secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Drop every user projection and rebuild them from the firehose.
    Rebuild,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config).await,
        Command::Dev => run_dev(cli.config.as_deref()).await,
        Command::CheckConfig => check_config(cli.config),
        Command::Openapi => print_openapi(),
        Command::Credentials {
            command: CredentialsCommand::Import { file, dry_run },
        } => import_credentials(cli.config, &file, dry_run).await,
        Command::Keys { command } => keys(cli.config, command).await,
        Command::Projections { command } => projections(cli.config, command).await,
        Command::Import {
            file,
            phase,
            kind,
            group_id,
        } => import(cli.config, file, phase, kind, group_id).await,
        Command::Report { month, send } => report(cli.config, &month, send).await,
    };
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

#[cfg(feature = "demo")]
async fn run_dev(config: Option<&std::path::Path>) -> anyhow::Result<()> {
    dev::demo::run(config, shutdown::signal()).await
}

#[cfg(not(feature = "demo"))]
async fn run_dev(_config: Option<&std::path::Path>) -> anyhow::Result<()> {
    anyhow::bail!("this build has no demo (built with --no-default-features); build with the default `demo` feature to use `dev`")
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
    out!(
        "configuration is valid: listen {}, redis {}, prefix `{}`, {} hook secret(s), {} route(s)",
        s.http.listen,
        okta_adapter::store::redacted_url(secrecy::ExposeSecret::expose_secret(&s.redis.url)),
        s.redis.prefix,
        s.hooks.secrets.len(),
        s.routes.len()
    )?;
    Ok(())
}

fn print_openapi() -> anyhow::Result<()> {
    let settings = Settings::from_toml_overrides("[hooks]\nsecrets = [\"unused\"]\n")?;
    let redis = store::connect_lazy(&settings.redis)?;
    let state = AppState::new(settings, redis);
    out!("{}", okta_adapter::http::openapi_document(state))?;
    Ok(())
}

async fn import_credentials(
    config: Option<PathBuf>,
    file: &std::path::Path,
    dry_run: bool,
) -> anyhow::Result<()> {
    use okta_adapter::inline::credentials::{read_credential_file, store_credentials};
    let settings = load_for_tool(config)?;
    let limits =
        okta_adapter::inline::password::HashLimits::from_settings(&settings.inline.password_import);
    let parsed = read_credential_file(file, &limits)?;
    for problem in &parsed.errors {
        eprintln!("skipped: {problem}");
    }
    if dry_run {
        out!(
            "{}: {} valid row(s), {} skipped; nothing written (--dry-run)",
            file.display(),
            parsed.rows.len(),
            parsed.errors.len()
        )?;
        return Ok(());
    }
    let mut redis = store::connect(&settings.redis).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach Redis at {} (redis.url): {e}",
            okta_adapter::store::redacted_url(secrecy::ExposeSecret::expose_secret(
                &settings.redis.url
            ))
        )
    })?;
    let keys = store::Keys::new(settings.redis.prefix.clone());
    let written = store_credentials(&mut redis, &keys, &parsed.rows).await?;
    out!(
        "{}: {written} legacy credential(s) stored under `{}:{{cred:<login>}}:hash`, {} row(s) skipped",
        file.display(),
        settings.redis.prefix,
        parsed.errors.len()
    )?;
    if !parsed.errors.is_empty() {
        anyhow::bail!("{} row(s) could not be imported", parsed.errors.len());
    }
    Ok(())
}

/// Settings for commands that never answer Okta, so a missing hook secret is no error. Says on
/// stderr which Redis the command will use.
///
/// Without `--config`, `OKTA_ADAPTER_CONFIG` and `OKTA_ADAPTER__REDIS__URL`, the overlay that
/// `okta-adapter dev` writes into `./.okta-adapter-dev/` is used when present, and its Redis must
/// still be dev's: when dev has stopped this is an error, never a silent fallback to whatever
/// Redis answers on the default URL.
fn load_for_tool(config: Option<PathBuf>) -> anyhow::Result<Settings> {
    let env_set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    const REDIS_URL_ENV: &str = "OKTA_ADAPTER__REDIS__URL";
    let explicit = config.is_some()
        || env_set(okta_adapter::config::ENV_CONFIG_FILE)
        || env_set(REDIS_URL_ENV);
    let dev_file = if explicit {
        None
    } else {
        std::env::current_dir()
            .ok()
            .and_then(|dir| dev::cli_config::find(&dir))
    };
    let origin = match (&dev_file, &config) {
        (Some(file), _) => format!("dev's, from {}", file.display()),
        _ if env_set(REDIS_URL_ENV) => REDIS_URL_ENV.to_string(),
        (None, Some(file)) => format!("redis.url of {} or the default", file.display()),
        (None, None) => match std::env::var_os(okta_adapter::config::ENV_CONFIG_FILE) {
            Some(file) => format!(
                "redis.url of {} or the default",
                PathBuf::from(file).display()
            ),
            None => "the default redis.url; no --config given and no `okta-adapter dev` in this \
                     directory"
                .to_string(),
        },
    };
    let settings = load(
        config.or(dev_file.clone()),
        Some("[hooks]\nsecrets = [\"not-used-by-this-command\"]\n"),
    )?;
    let url = settings.redis.url.expose_secret();
    if let Some(file) = &dev_file {
        dev::cli_config::verify_dev_redis(url, file)?;
    }
    eprintln!(
        "using Redis {} (prefix `{}`; {origin})",
        okta_adapter::store::redacted_url(url),
        settings.redis.prefix
    );
    Ok(settings)
}

async fn tool_connection(settings: &Settings) -> anyhow::Result<redis::aio::ConnectionManager> {
    store::connect(&settings.redis).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach Redis at {} (redis.url): {e}",
            okta_adapter::store::redacted_url(secrecy::ExposeSecret::expose_secret(
                &settings.redis.url
            ))
        )
    })
}

async fn keys(config: Option<PathBuf>, command: KeysCommand) -> anyhow::Result<()> {
    use okta_adapter::access::{KeyStore, Role};
    let settings = load_for_tool(config)?;
    let mut conn = tool_connection(&settings).await?;
    let store = KeyStore::new(store::Keys::new(settings.redis.prefix.clone()));
    match command {
        KeysCommand::Create { role, tenant } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("--role must be support, client-admin or operator, not `{role}`")
            })?;
            let (token, info) = store.create(&mut conn, role, tenant.as_deref()).await??;
            eprintln!(
                "created {} key {}{} — store the token now, it is not shown again:",
                info.role,
                info.id,
                info.tenant
                    .map(|t| format!(" for tenant {t}"))
                    .unwrap_or_default()
            );
            out!("{token}")?;
        }
        KeysCommand::List => {
            for k in store.list(&mut conn).await? {
                out!(
                    "{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.role,
                    k.tenant.unwrap_or_else(|| "-".into()),
                    k.created,
                    if k.revoked { "revoked" } else { "active" }
                )?;
            }
        }
        KeysCommand::Revoke { id } => {
            if !store.revoke(&mut conn, &id).await? {
                anyhow::bail!("no key with id `{id}`");
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

async fn projections(config: Option<PathBuf>, command: ProjectionsCommand) -> anyhow::Result<()> {
    let settings = load_for_tool(config)?;
    let mut conn = tool_connection(&settings).await?;
    match command {
        ProjectionsCommand::Rebuild => {
            let keys = store::Keys::new(settings.redis.prefix.clone());
            let started = std::time::Instant::now();
            let applied = okta_adapter::projection::consumer::rebuild(
                &mut conn,
                &keys,
                settings.projection.timeline_len,
                &okta_adapter::domain::tenant::TenantResolver::from_settings(
                    &settings.tenants.rules,
                ),
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

async fn import(
    config: Option<PathBuf>,
    file: PathBuf,
    phase: Option<String>,
    kind: Option<String>,
    group_id: Option<String>,
) -> anyhow::Result<()> {
    use okta_adapter::jobs::rows::{phase as migration_phase, JobKind, JobOptions};
    use okta_adapter::jobs::store::{FileFormat, JobStore};
    let settings = load_for_tool(config)?;
    let (kind, mut options) = match (phase.as_deref(), kind.as_deref()) {
        (Some(p), _) => migration_phase(p)
            .ok_or_else(|| anyhow::anyhow!("--phase must be create or activate"))?,
        (None, Some(k)) => (
            JobKind::parse(k).ok_or_else(|| anyhow::anyhow!("unknown --kind `{k}`"))?,
            JobOptions::default(),
        ),
        (None, None) => anyhow::bail!("give --phase create|activate or --kind"),
    };
    options.group_id = group_id;
    let format = match file.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson" | "json") => FileFormat::JsonLines,
        _ => FileFormat::Csv,
    };
    let mut conn = tool_connection(&settings).await?;
    let keys = store::Keys::new(settings.redis.prefix.clone());
    let okta = okta_adapter::okta::client::OktaClient::new(&settings.okta, keys.clone(), conn.clone())
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
            okta_adapter::jobs::store::UploadSpec {
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
    let cancel = tokio_util::sync::CancellationToken::new();
    let worker = okta_adapter::jobs::worker::JobWorker::new(keys, okta, settings.jobs.clone());
    let running = tokio::spawn(worker.run(settings.redis.clone(), cancel.clone()));
    let bar = indicatif::ProgressBar::new(counts.valid);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}",
        )
        .expect("static template"),
    );
    let interrupted = tokio::select! {
        _ = shutdown::signal() => true,
        _ = async {
            loop {
                if let Ok(Some(info)) = store.info(&mut conn, &id).await {
                    bar.set_position(info.done + info.failed);
                    bar.set_message(format!("{} failed", info.failed));
                    if matches!(info.state.as_str(), "done" | "cancelled") && info.pending == 0 {
                        break;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
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
    while shown < 20 {
        let page = store.results_page(&mut conn, &id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.line;
        for r in page.iter().filter(|r| r.outcome != "done").take(20 - shown) {
            eprintln!("  line {}: {}", r.line, r.error.as_deref().unwrap_or(""));
            shown += 1;
        }
    }
    Ok(())
}

async fn report(config: Option<PathBuf>, month: &str, send: bool) -> anyhow::Result<()> {
    use okta_adapter::reporting::deliver::{write_preview, Transport};
    use okta_adapter::reporting::{ReportMonth, Reporter, SendOutcome};
    let month = ReportMonth::parse(month).map_err(|e| anyhow::anyhow!("--month: {e}"))?;
    let settings = load_for_tool(config)?;
    telemetry::init_logs(&settings.log);
    let mut conn = tool_connection(&settings).await?;
    let transport = Transport::from_settings(&settings).map_err(|e| anyhow::anyhow!(e))?;
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
        let cancel = tokio_util::sync::CancellationToken::new();
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
