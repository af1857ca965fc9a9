//! `okta-sim`: the Okta simulator as a standalone server, for benchmarks and demos against a
//! separately started adapter (`okta-adapter dev` runs one of its own).
#![forbid(unsafe_code)]

use clap::Parser;
use okta_sim::{OktaSim, SimConfig};

#[derive(Parser)]
#[command(
    name = "okta-sim",
    version,
    about = "A local stand-in for the Okta Management API"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: String,
    /// The `SSWS` token clients must send.
    #[arg(long, default_value = "sim-token")]
    token: String,
    /// Requests per window for the /api/v1/users buckets.
    #[arg(long, default_value_t = 600)]
    limit: u32,
    /// Rate-limit window in ms (Okta: 60000).
    #[arg(long, default_value_t = 60000)]
    window_ms: u64,
    /// Added to every answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests answered with 500.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Event hook URL to post System Log events to, e.g. http://127.0.0.1:8080/hooks/okta/events
    #[arg(long)]
    event_hook: Option<String>,
    /// Header value for the event hook (the adapter's hooks.secrets).
    #[arg(long, default_value = "dev-secret-change-me")]
    event_hook_secret: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = SimConfig {
        token: args.token,
        users_create_list_limit: args.limit,
        users_by_id_limit: args.limit,
        window: std::time::Duration::from_millis(args.window_ms),
        latency: std::time::Duration::from_millis(args.latency_ms),
        fault_rate: args.fault_rate,
        event_hook: args.event_hook.map(|u| (u, args.event_hook_secret)),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let sim = OktaSim::start(config, listener).await?;
    eprintln!(
        "Okta simulator on {url} — point the adapter at it: OKTA_ADAPTER__OKTA__ORG_URL={url} \\\n  OKTA_ADAPTER__OKTA__API_TOKEN=<--token>",
        url = sim.url()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
