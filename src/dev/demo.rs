//! `okta-adapter dev`: the whole product on one machine, ready to try.
//!
//! One command starts
//! - a private `redis-server` from `PATH` on a free port, data in `./.okta-adapter-dev/redis`,
//!   emptied on each start (the simulator keeps its users in memory, so older data would describe
//!   users that no longer exist). `dev` never uses a Redis that is already running: on a machine
//!   where a system Redis answers on the default URL, writing the demo into it would be a surprise;
//! - the Okta simulator on a free port, posting its System Log events to the adapter's event hook;
//! - the adapter, with the demo hook secret, its Okta client pointed at the simulator and tenant
//!   rules by email domain (`@acme.example` → `acme`, `@globex.example` → `globex`);
//!
//! then creates demo users through the simulator's HTTP API (so their events flow back into the
//! projections, as they would from Okta), creates an operator, a support and a client-admin key,
//! waits until the projections show the demo users, and prints the keys and curl examples that
//! work at once. It also writes `./.okta-adapter-dev/cli.toml` ([`super::cli_config`]) so CLI
//! commands run in the same directory use this Redis and this simulator.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::cli_config::{self, DevEndpoints, DATA_DIR, REDIS_DIR};
use super::{RedisServer, RedisServerError};
use crate::access::Role;
use crate::config::Settings;
use crate::projection::read::Reader;
use crate::startup::{Application, StartupError};
use crate::store::redacted_url;
use okta_sim::{OktaSim, SimConfig};

/// The simulated org's OIDC app for the console (`dev` only).
const DEV_CONSOLE_CLIENT_ID: &str = "dev-console";
const DEV_CONSOLE_CLIENT_SECRET: &str = "dev-console-secret";
/// The demo's hook secret (Okta's `authorization` header value); any configured secret wins.
pub const DEV_SECRET: &str = "dev-secret-change-me";

/// The simulator's API token; the adapter and the CLI send it as `SSWS sim-token`.
const SIM_TOKEN: &str = "sim-token";

/// A demo user: login (also the email) and the status it is brought to.
struct DemoUser {
    login: &'static str,
    first: &'static str,
    last: &'static str,
    status: &'static str,
}

const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        login: "alice.anders@acme.example",
        first: "Alice",
        last: "Anders",
        status: "ACTIVE",
    },
    DemoUser {
        login: "bob.berg@acme.example",
        first: "Bob",
        last: "Berg",
        status: "ACTIVE",
    },
    DemoUser {
        login: "carol.chen@acme.example",
        first: "Carol",
        last: "Chen",
        status: "STAGED",
    },
    DemoUser {
        login: "dan.diaz@globex.example",
        first: "Dan",
        last: "Diaz",
        status: "ACTIVE",
    },
    DemoUser {
        login: "erin.evans@globex.example",
        first: "Erin",
        last: "Evans",
        status: "SUSPENDED",
    },
];

/// Users for `okta-adapter import .okta-adapter-dev/demo-import.csv --phase create|activate`.
const DEMO_IMPORT_CSV: &str = "login,email,firstName,lastName\n\
    frank.fischer@acme.example,frank.fischer@acme.example,Frank,Fischer\n\
    grace.gomez@globex.example,grace.gomez@globex.example,Grace,Gomez\n";

/// How long `dev` waits for the demo users' events to reach the projections before it prints
/// the examples anyway (with a warning).
const SEED_WAIT: Duration = Duration::from_secs(20);

/// Runs the demo in the current directory until `shutdown` resolves.
pub async fn run(
    config: Option<&Path>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Stop on the signal from the very start, so Ctrl-C during start-up still kills redis-server
    // (it is killed when `RedisServer` is dropped).
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
    }
    let cwd = std::env::current_dir().context("current directory")?;
    let data_dir = cwd.join(DATA_DIR);
    refuse_if_running(&cwd)?;

    let redis =
        RedisServer::start_own_group(&data_dir.join(REDIS_DIR), false).map_err(|e| match e {
            RedisServerError::NotInstalled(_) => anyhow::anyhow!(
            "`okta-adapter dev` runs its own redis-server, and none was found on PATH. Install \
             it (Debian/Ubuntu: `sudo apt-get install -y redis-server`; macOS: `brew install \
             redis`). dev never uses a Redis that is already running; `serve` uses redis.url"
        ),
            e => e.into(),
        })?;
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the Okta simulator to a free loopback port")?;
    let mut endpoints = DevEndpoints {
        redis_url: redis.url(),
        // The default prefix; a prefix from the user's file or env still wins (read back below).
        prefix: "okta-adapter".into(),
        okta_org_url: format!("http://{}", sim_listener.local_addr()?),
        okta_api_token: SIM_TOKEN.into(),
    };
    let (mut settings, notes) = dev_settings(config, &endpoints)?;
    // The default spool directory is relative; dev keeps its files under its data folder.
    if settings.spool.dir == "spool" {
        settings.spool.dir = data_dir.join("spool").display().to_string();
    }
    endpoints.prefix = settings.redis.prefix.clone();
    crate::telemetry::init_logs(&settings.log);

    let hook_secret = settings
        .hooks
        .secrets
        .first()
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_else(|| DEV_SECRET.into());
    let auth_header = settings.hooks.auth_header.as_str().to_owned();
    let timeline_len = settings.projection.timeline_len;
    let app = Application::build(settings).await.map_err(|e| match e {
        StartupError::Listen { .. } => anyhow::anyhow!(
            "{e}. Something else uses that port (a `serve`?); pick another: \
             OKTA_ADAPTER__HTTP__LISTEN=127.0.0.1:8081 okta-adapter dev"
        ),
        e => e.into(),
    })?;
    let state = app.state();
    let addr = app.local_addr();
    // The simulator and the printed examples need an address to connect to, not 0.0.0.0.
    let reach = if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let base = format!("http://{reach}");
    let sim = OktaSim::start(
        SimConfig {
            token: SIM_TOKEN.into(),
            event_hook: Some((format!("{base}/hooks/okta/events"), hook_secret.clone())),
            // The console's OIDC app, so "Sign in with Okta" works in `dev` too.
            oidc_app: Some(okta_sim::oidc::OidcApp {
                client_id: DEV_CONSOLE_CLIENT_ID.into(),
                client_secret: DEV_CONSOLE_CLIENT_SECRET.into(),
                redirect_uris: vec![],
                users: vec![
                    okta_sim::oidc::OidcUser::new(
                        "support@demo.example",
                        &["okta-adapter-support"],
                    ),
                    okta_sim::oidc::OidcUser::new(
                        "operator@demo.example",
                        &["okta-adapter-operators"],
                    ),
                    okta_sim::oidc::OidcUser::new("admin@acme.example", &["tenant-acme-admins"]),
                ],
            }),
            ..Default::default()
        },
        sim_listener,
    )
    .await?;
    let cli_file = cli_config::write(&data_dir, &endpoints)
        .with_context(|| format!("writing {}", data_dir.join(cli_config::FILE_NAME).display()))?;
    std::fs::write(data_dir.join("demo-import.csv"), DEMO_IMPORT_CSV)?;

    let app_stop = stop.clone();
    let mut running = tokio::spawn(app.run_until_stopped(async move {
        app_stop.cancelled().await;
    }));

    let seeded = tokio::select! {
        seeded = seed(&state, &sim, timeline_len) => Some(seeded?),
        _ = stop.cancelled() => None,
        finished = &mut running => {
            finished??;
            anyhow::bail!("the adapter stopped during start-up");
        }
    };
    if let Some(seeded) = seeded {
        let banner = Banner {
            base: &base,
            redis: &redis,
            sim: &sim,
            data_dir: &data_dir,
            cli_file: &cli_file,
            prefix: &endpoints.prefix,
            hook_secret: &hook_secret,
            auth_header: &auth_header,
            seeded: &seeded,
            notes: &notes,
        };
        let text = banner.to_string();
        // stdout: the keys and examples are this command's output (logs go to stderr).
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .context("printing the demo banner")?;
    }
    running.await??;
    drop(sim);
    drop(redis);
    Ok(())
}

/// A second `dev` in the same directory would start another Redis and overwrite `cli.toml`
/// under the first one's CLI users; refuse instead.
fn refuse_if_running(cwd: &Path) -> anyhow::Result<()> {
    let Some(file) = cli_config::find(cwd) else {
        return Ok(());
    };
    let Ok(previous) = Settings::load_with(Some(&file), Some(TOOL_SECRET)) else {
        return Ok(());
    };
    let url = previous.redis.url.expose_secret().to_owned();
    if cli_config::verify_dev_redis(&url, &file).is_ok() {
        anyhow::bail!(
            "another `okta-adapter dev` is running in this directory (its Redis answers at {}). \
             Stop it first (Ctrl-C). If it crashed and left its redis-server behind: \
             `redis-cli -u {} shutdown nosave`",
            redacted_url(&url),
            redacted_url(&url)
        );
    }
    Ok(())
}

/// The adapter's own info lines, without the libraries' start-up chatter that would push the
/// banner off the screen.
const DEV_LOG_LEVEL: &str = "level = \"info,poem=warn,tokio_cron_scheduler=warn\"\n";

/// Placeholder secret for loading a config only to read its Redis settings.
const TOOL_SECRET: &str = "[hooks]\nsecrets = [\"not-used-by-this-command\"]\n";

/// Settings for `dev`: defaults → the demo overlay → the user's file and env, then the private
/// Redis and the simulator forced in (each override the user had configured is reported).
fn dev_settings(
    config: Option<&Path>,
    endpoints: &DevEndpoints,
) -> anyhow::Result<(Settings, Vec<String>)> {
    let overlay = format!(
        "{}\n[log]\nformat = \"pretty\"\n{DEV_LOG_LEVEL}\n[hooks]\nsecrets = [\"{DEV_SECRET}\"]\n",
        cli_config::overlay_toml(endpoints)
    );
    let mut settings = Settings::load_with(config, Some(&overlay))
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    // The console's one-click local sign-in (docs/console.md); never on outside `dev`.
    settings.console.dev_sign_in = true;
    settings.console.client_id = DEV_CONSOLE_CLIENT_ID.into();
    settings.console.client_secret = DEV_CONSOLE_CLIENT_SECRET.into();
    settings.console.client_secret_file = String::new();
    let mut notes = Vec::new();
    let configured = settings.redis.url.expose_secret().to_owned();
    if configured != endpoints.redis_url {
        notes.push(format!(
            "redis.url {} from your configuration is NOT used: dev always runs its own \
             redis-server (use `serve` for your Redis)",
            redacted_url(&configured)
        ));
        settings.redis.url = endpoints.redis_url.clone().into();
    }
    let okta = &mut settings.okta;
    if okta.org_url != endpoints.okta_org_url
        || okta.auth != "ssws"
        || okta.api_token.expose_secret() != endpoints.okta_api_token
    {
        notes.push(format!(
            "okta.* from your configuration (org {}) is NOT used: dev's Okta is the simulator",
            okta.org_url
        ));
        okta.org_url = endpoints.okta_org_url.clone();
        okta.auth = "ssws".into();
        okta.api_token = endpoints.okta_api_token.clone().into();
    }
    if settings.hooks.auth_header != poem::http::header::AUTHORIZATION {
        notes.push(format!(
            "hooks.auth_header is `{}`: the simulator sends its events with `authorization`, \
             so they will be refused",
            settings.hooks.auth_header
        ));
    }
    Ok((settings, notes))
}

/// What seeding produced, for the banner.
struct Seeded {
    operator: String,
    support: String,
    acme_admin: String,
    /// Demo users whose projection did not show the expected status in time.
    missing: Vec<&'static str>,
}

/// Creates the demo users in the simulator (their events flow to the event hook), creates the
/// three keys, and waits for the projections to show the users.
async fn seed(
    state: &crate::http::state::AppState,
    sim: &OktaSim,
    timeline_len: usize,
) -> anyhow::Result<Seeded> {
    let http = reqwest::Client::new();
    let sim_url = sim.url();
    for u in DEMO_USERS {
        let activate = u.status != "STAGED";
        let created: serde_json::Value = http
            .post(format!("{sim_url}/api/v1/users?activate={activate}"))
            .header("authorization", format!("SSWS {SIM_TOKEN}"))
            .json(&json!({
                "profile": {"login": u.login, "email": u.login, "firstName": u.first, "lastName": u.last},
                "credentials": {"password": {"value": "Demo-passw0rd-2026"}},
            }))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("creating demo user {} in the simulator", u.login))?
            .json()
            .await?;
        if activate {
            // A factor to look at and reset (helpdesk endpoints, self-service MFA reset).
            sim.enroll_factor(u.login, "push", "OKTA");
        }
        if u.status == "SUSPENDED" {
            let id = created["id"].as_str().unwrap_or_default();
            http.post(format!("{sim_url}/api/v1/users/{id}/lifecycle/suspend"))
                .header("authorization", format!("SSWS {SIM_TOKEN}"))
                .send()
                .await?
                .error_for_status()
                .with_context(|| format!("suspending demo user {}", u.login))?;
        }
    }

    let mut conn = state.redis.clone();
    let key = |role, tenant: Option<&'static str>| {
        let store = state.key_store.clone();
        let mut conn = conn.clone();
        async move {
            let (token, _) = store
                .create(&mut conn, role, tenant)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))??;
            anyhow::Ok(token)
        }
    };
    let operator = key(Role::Operator, None).await?;
    let support = key(Role::Support, None).await?;
    let acme_admin = key(Role::ClientAdmin, Some("acme")).await?;

    let reader = Reader::new(state.keys.clone());
    let started = Instant::now();
    let mut missing: Vec<&'static str> = DEMO_USERS.iter().map(|u| u.login).collect();
    while !missing.is_empty() && started.elapsed() < SEED_WAIT {
        let mut still = Vec::new();
        for login in missing {
            let status = reader
                .find(&mut conn, login, timeline_len.min(1))
                .await?
                .map(|(user, _)| user.status);
            let wanted = DEMO_USERS
                .iter()
                .find(|u| u.login == login)
                .map(|u| u.status);
            if status.as_deref() != wanted {
                still.push(login);
            }
        }
        missing = still;
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(Seeded {
        operator,
        support,
        acme_admin,
        missing,
    })
}

/// The start-up banner: where everything runs, the keys, and examples to paste.
struct Banner<'a> {
    base: &'a str,
    redis: &'a RedisServer,
    sim: &'a OktaSim,
    data_dir: &'a Path,
    cli_file: &'a PathBuf,
    prefix: &'a str,
    hook_secret: &'a str,
    auth_header: &'a str,
    seeded: &'a Seeded,
    notes: &'a [String],
}

impl std::fmt::Display for Banner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Banner {
            base,
            redis,
            sim,
            data_dir,
            cli_file,
            prefix,
            hook_secret,
            auth_header,
            seeded,
            notes,
        } = self;
        let rule = "=".repeat(78);
        writeln!(f, "\n{rule}\nokta-adapter dev is up: the adapter, a private Redis and a simulated Okta org\n{rule}")?;
        writeln!(f, "Adapter   {base}   (Swagger UI: {base}/docs)")?;
        writeln!(
            f,
            "Console   {base}/console/   (one-click local sign-in, or \"Sign in with Okta\" as \
             support@demo.example, operator@demo.example or admin@acme.example)"
        )?;
        writeln!(
            f,
            "Redis     {}   <- dev's own redis-server, NOT any Redis already running\n          \
             (data in {}, emptied on each start)",
            redis.url(),
            data_dir.join(REDIS_DIR).display()
        )?;
        writeln!(
            f,
            "Okta      {}   <- the Okta simulator (API token `{SIM_TOKEN}`); its System Log\n          \
             events go to {base}/hooks/okta/events",
            sim.url()
        )?;
        writeln!(
            f,
            "Tenants   acme (@acme.example), globex (@globex.example): tenant rules by email domain"
        )?;
        writeln!(
            f,
            "Users     (created in the simulator; projected from their events)"
        )?;
        for u in DEMO_USERS {
            writeln!(f, "          {:<28} {}", u.login, u.status)?;
        }
        for note in *notes {
            writeln!(f, "NOTE      {note}")?;
        }
        if !seeded.missing.is_empty() {
            writeln!(
                f,
                "WARNING   not yet projected after {} s: {} (events still in flight? see the log)",
                SEED_WAIT.as_secs(),
                seeded.missing.join(", ")
            )?;
        }
        writeln!(f, "\nAPI keys (new on every start, shown only here):")?;
        writeln!(
            f,
            "  operator           {}   jobs, keys, reports",
            seeded.operator
        )?;
        writeln!(
            f,
            "  support            {}   any tenant's users and actions (reads audited)",
            seeded.support
        )?;
        writeln!(
            f,
            "  client-admin acme  {}   acme's users only",
            seeded.acme_admin
        )?;
        writeln!(f, "\nTry it (paste into a shell):\n")?;
        writeln!(
            f,
            "  export OPERATOR={} SUPPORT={} ACME_ADMIN={}",
            seeded.operator, seeded.support, seeded.acme_admin
        )?;
        writeln!(
            f,
            "  # look a user up (support; the reason goes to the audit stream)"
        )?;
        writeln!(
            f,
            "  curl -s {base}/api/v1/users/alice.anders@acme.example \\\n    \
             -H \"authorization: Bearer $SUPPORT\" -H 'x-audit-reason: demo'"
        )?;
        writeln!(
            f,
            "  # acme's users, as acme's client admin (globex's stay invisible)"
        )?;
        writeln!(
            f,
            "  curl -s {base}/api/v1/users -H \"authorization: Bearer $ACME_ADMIN\""
        )?;
        writeln!(
            f,
            "  # suspend Bob in the simulated Okta; its event flows back (unsuspend undoes it)"
        )?;
        writeln!(
            f,
            "  curl -s -X POST {base}/api/v1/users/bob.berg@acme.example/actions/suspend \\\n    \
             -H \"authorization: Bearer $ACME_ADMIN\""
        )?;
        writeln!(f, "  # the jobs list (operator)")?;
        writeln!(
            f,
            "  curl -s {base}/api/v1/jobs -H \"authorization: Bearer $OPERATOR\""
        )?;
        writeln!(
            f,
            "  # Okta's own sample event hook delivery (run from the repository root)"
        )?;
        writeln!(
            f,
            "  curl -i -X POST {base}/hooks/okta/events -H '{auth_header}: {hook_secret}' \\\n    \
             -H 'content-type: application/json' --data-binary @hooks/event-hook-user-session-start.json"
        )?;
        writeln!(
            f,
            "\nThe CLI, run in this directory, uses this Redis and simulator\n({}; the binary on\n\
             PATH: `cargo install --path .`, or call ./target/release/okta-adapter):",
            cli_file.display()
        )?;
        writeln!(f, "  okta-adapter keys list")?;
        writeln!(
            f,
            "  okta-adapter import {}/demo-import.csv --phase create",
            DATA_DIR
        )?;
        writeln!(
            f,
            "  redis-cli -u {} XRANGE '{}:{{events}}:firehose' - + COUNT 5",
            redis.url(),
            prefix
        )?;
        writeln!(f, "\nCtrl-C stops everything.\n{rule}")
    }
}
