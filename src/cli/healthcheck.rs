//! `okta-adapter healthcheck`: the container's `HEALTHCHECK` (distroless images have no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Settings;

#[derive(clap::Args)]
pub struct HealthcheckArgs {
    /// The URL to ask instead of `/healthz` on the address `http.listen` names.
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
}

/// Succeeds when the URL answers 2xx; the error says what it got instead.
pub async fn run(config: Option<PathBuf>, args: HealthcheckArgs) -> anyhow::Result<()> {
    let url = match args.url {
        Some(url) => url,
        None => {
            // The hook secret is not needed to ask; the listen address is.
            let settings = Settings::load_with(
                config.as_deref(),
                Some("[hooks]\nsecrets = [\"not-used-by-this-command\"]\n"),
            )
            .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
            format!("http://{}/healthz", local_target(settings.http.listen))
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()?;
    let status = client
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?
        .status();
    anyhow::ensure!(status.is_success(), "{url}: answered {status}");
    Ok(())
}

/// The address to connect to for a listen address: a wildcard becomes loopback.
fn local_target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}
