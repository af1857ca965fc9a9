//! Settings and the Redis connection for the commands that only touch Redis.

use std::path::PathBuf;

use crate::store::RedisConn;
use secrecy::ExposeSecret;

use crate::config::{Settings, ENV_CONFIG_FILE};
use crate::dev::cli_config;
use crate::store::{self, redacted_url, RedisUnreachable};

/// Loads the settings: defaults → `config` (or `OKTA_ADAPTER_CONFIG`) → env, with
/// `dev_overrides` layered between the defaults and the file.
pub fn load(config: Option<PathBuf>, dev_overrides: Option<&str>) -> anyhow::Result<Settings> {
    Settings::load_with(config.as_deref(), dev_overrides)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))
}

/// Settings for commands that never answer Okta, so a missing hook secret is no error. Says on
/// stderr which Redis the command will use.
///
/// Without `--config`, `OKTA_ADAPTER_CONFIG` and `OKTA_ADAPTER__REDIS__URL`, the overlay that
/// `okta-adapter dev` writes into `./.okta-adapter-dev/` is used when present, and its Redis must
/// still be dev's: when dev has stopped this is an error, never a silent fallback to whatever
/// Redis answers on the default URL.
pub fn load_for_tool(config: Option<PathBuf>) -> anyhow::Result<Settings> {
    let env_set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    const REDIS_URL_ENV: &str = "OKTA_ADAPTER__REDIS__URL";
    let explicit = config.is_some() || env_set(ENV_CONFIG_FILE) || env_set(REDIS_URL_ENV);
    let dev_file = if explicit {
        None
    } else {
        std::env::current_dir()
            .ok()
            .and_then(|dir| cli_config::find(&dir))
    };
    let origin = match (&dev_file, &config) {
        (Some(file), _) => format!("dev's, from {}", file.display()),
        _ if env_set(REDIS_URL_ENV) => REDIS_URL_ENV.to_string(),
        (None, Some(file)) => format!("redis.url of {} or the default", file.display()),
        (None, None) => match std::env::var_os(ENV_CONFIG_FILE) {
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
        cli_config::verify_dev_redis(url, file)?;
    }
    eprintln!(
        "using Redis {} (prefix `{}`; {origin})",
        redacted_url(url),
        settings.redis.prefix
    );
    Ok(settings)
}

/// The command's Redis connection, or the one "cannot reach Redis" message.
pub async fn tool_connection(settings: &Settings) -> Result<RedisConn, RedisUnreachable> {
    store::connect_or_explain(&settings.redis).await
}
