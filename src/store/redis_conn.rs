//! Connections and consumer-group upkeep.
//!
//! Request handlers share one multiplexed [`ConnectionManager`] whose response timeout is set
//! well below Okta's 3 s hook timeout, so a stuck Redis turns into a fast 503 instead of a hung
//! delivery. The manager reconnects by itself once Redis is back.
//!
//! Consumer groups are created at start with `XGROUP CREATE … 0 MKSTREAM` and checked again
//! periodically: a Redis restarted without persistence loses them, and a product service must
//! never be wedged on `NOGROUP`. A group is (re-)created from id `0`, so entries written while it
//! was missing are still delivered to it.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::{AsyncCommands, RedisResult};
use secrecy::{ExposeSecret, SecretString};

use super::conn::RedisConn;
use crate::config::RedisSettings;

/// Opens the shared connection (to one Redis, or with `redis.cluster` to the cluster). Fails
/// (with Redis's own message) when Redis cannot be reached.
pub async fn connect(settings: &RedisSettings) -> RedisResult<RedisConn> {
    connect_with_timeout(
        settings,
        Duration::from_millis(settings.response_timeout_ms),
    )
    .await
}

/// [`connect`] with another response timeout (blocking stream reads need a longer one).
pub async fn connect_with_timeout(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> RedisResult<RedisConn> {
    if settings.cluster {
        let conn = cluster_client(settings, response_timeout)?
            .get_async_connection()
            .await?;
        return Ok(RedisConn::Cluster(conn));
    }
    let client = redis::Client::open(settings.url.expose_secret())?;
    let config = manager_config(settings).set_response_timeout(Some(response_timeout));
    Ok(RedisConn::Single(
        ConnectionManager::new_with_config(client, config).await?,
    ))
}

/// The cluster's seed nodes: `redis.url` and `redis.cluster_nodes`.
fn cluster_client(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> RedisResult<ClusterClient> {
    let nodes: Vec<&str> = std::iter::once(&settings.url)
        .chain(&settings.cluster_nodes)
        .map(|u| u.expose_secret())
        .collect();
    ClusterClient::builder(nodes)
        .connection_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .response_timeout(response_timeout)
        .retries(3)
        .build()
}

/// Like [`connect`], but an error says which Redis did not answer (password hidden) and what to
/// do about it: the one message for every command that needs Redis at start.
pub async fn connect_or_explain(settings: &RedisSettings) -> Result<RedisConn, RedisUnreachable> {
    connect(settings)
        .await
        .map_err(|source| RedisUnreachable::new(&settings.url, source))
}

/// Redis did not answer at start (`serve`, `dev`, the CLI commands).
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot reach Redis at {url} (redis.url): {source}. Start one (`redis-server`), point \
     OKTA_ADAPTER__REDIS__URL at yours, or run `okta-adapter dev`, which starts a private one"
)]
pub struct RedisUnreachable {
    /// The configured URL without its password.
    url: String,
    source: redis::RedisError,
}

impl RedisUnreachable {
    pub fn new(url: &SecretString, source: redis::RedisError) -> Self {
        Self {
            url: redacted_url(url.expose_secret()),
            source,
        }
    }
}

/// The URL without its password, for messages.
pub fn redacted_url(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        None => "<invalid url>".into(),
    }
}

/// Like [`connect`], but connects on first use (for commands that may never touch Redis, such
/// as `openapi`). Always a single-node connection to `redis.url`: redis-rs has no lazy cluster
/// connection, and a command that does use Redis connects with [`connect`].
pub fn connect_lazy(settings: &RedisSettings) -> RedisResult<RedisConn> {
    let client = redis::Client::open(settings.url.expose_secret())?;
    Ok(RedisConn::Single(ConnectionManager::new_lazy_with_config(
        client,
        manager_config(settings),
    )?))
}

fn manager_config(settings: &RedisSettings) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(settings.response_timeout_ms)))
        .set_connection_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

/// Whether a group existed or had to be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStatus {
    Present,
    Created,
}

/// Creates `group` on `stream` (and the stream) unless it exists.
pub async fn ensure_group(
    conn: &mut RedisConn,
    stream: &str,
    group: &str,
) -> RedisResult<GroupStatus> {
    let created: RedisResult<()> = conn.xgroup_create_mkstream(stream, group, "0").await;
    match created {
        Ok(()) => Ok(GroupStatus::Created),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(GroupStatus::Present),
        Err(e) => Err(e),
    }
}
