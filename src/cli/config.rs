//! `check-config` and `openapi`: what the configuration and the API look like, without serving.

use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::tool::load;
use crate::config::Settings;
use crate::http::state::AppState;
use crate::store::{self, redacted_url};

/// Loads the configuration (every problem, one line each) and prints a summary without secrets.
pub fn check_config(config: Option<PathBuf>) -> anyhow::Result<()> {
    let s = load(config, None)?;
    out!(
        "configuration is valid: listen {}, redis {}, prefix `{}`, {} hook secret(s), {} route(s)",
        s.http.listen,
        redacted_url(s.redis.url.expose_secret()),
        s.redis.prefix,
        s.hooks.secrets.len(),
        s.routes.len()
    )?;
    Ok(())
}

/// Prints the OpenAPI document of the defaults (Redis is never contacted).
pub fn print_openapi() -> anyhow::Result<()> {
    let settings = Settings::from_toml_overrides("[hooks]\nsecrets = [\"unused\"]\n")?;
    let redis = store::connect_lazy(&settings.redis)?;
    let state = AppState::new(settings, redis);
    out!("{}", crate::http::openapi_document(state))?;
    Ok(())
}
