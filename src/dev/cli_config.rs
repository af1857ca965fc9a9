//! What `okta-adapter dev` leaves for the CLI: a config overlay in its data directory.
//!
//! `dev` runs a private `redis-server` and the Okta simulator on free ports that change on every
//! start, so the CLI cannot guess them. `dev` therefore writes `./.okta-adapter-dev/cli.toml`, an
//! ordinary config file with the Redis URL and prefix, the simulator as the Okta org and the demo
//! tenant rules. A CLI command run in that directory without `--config`, `OKTA_ADAPTER_CONFIG` or
//! `OKTA_ADAPTER__REDIS__URL` uses it, says so on stderr, and first checks that the Redis behind
//! it is still dev's ([`verify_dev_redis`]): after `dev` stopped, the command fails with a clear
//! error instead of falling back to whatever Redis answers on the default URL.
//!
//! The file is kept when `dev` stops, on purpose: without it the CLI would silently fall back
//! to the default `redis://127.0.0.1:6379`, which is exactly the mistake this prevents.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The data directory of `okta-adapter dev`, relative to where it runs.
pub const DATA_DIR: &str = ".okta-adapter-dev";

/// The overlay file inside [`DATA_DIR`].
pub const FILE_NAME: &str = "cli.toml";

/// Where dev's `redis-server` keeps its files, inside the data directory. The CLI recognises dev's
/// Redis by this directory (`CONFIG GET dir`), so another server that took the port is refused.
pub const REDIS_DIR: &str = "redis";

/// The demo's tenant rules: users are sorted into `acme` and `globex` by their email domain;
/// the default group rule (`tenant-<id>` groups) still applies after it.
pub const DEMO_TENANT_RULES: &str = r#"[tenants]
rules = [
  { kind = "email_domain", map = { "acme.example" = "acme", "globex.example" = "globex" } },
  { kind = "group", pattern = "^tenant-(?P<tenant>[a-z0-9-]+)$" },
]
"#;

/// What the CLI needs to reach `dev`'s Redis and simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevEndpoints {
    pub redis_url: String,
    pub prefix: String,
    pub okta_org_url: String,
    /// The simulator's token: a demo value, not a real Okta credential.
    pub okta_api_token: String,
}

/// The overlay as TOML: the endpoints and the demo tenant rules.
pub fn overlay_toml(e: &DevEndpoints) -> String {
    format!(
        "# Written by `okta-adapter dev` at each start; CLI commands run in the directory above this\n\
         # one read it when no --config / OKTA_ADAPTER_CONFIG / OKTA_ADAPTER__REDIS__URL is given.\n\
         # Valid only while that `dev` runs (its Redis and simulator ports change on every start).\n\
         [redis]\nurl = {}\nprefix = {}\n\n[okta]\norg_url = {}\napi_token = {}\n\n{DEMO_TENANT_RULES}",
        toml_string(&e.redis_url),
        toml_string(&e.prefix),
        toml_string(&e.okta_org_url),
        toml_string(&e.okta_api_token),
    )
}

/// A TOML basic string. JSON's string escapes (`\"`, `\\`, `\n`, `\uXXXX`, …) are all valid in
/// TOML basic strings, so serde_json does the quoting.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Writes `<data_dir>/cli.toml` (via a temporary file and a rename, so a CLI command never reads
/// half a file); returns its path.
pub fn write(data_dir: &Path, endpoints: &DevEndpoints) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join(FILE_NAME);
    let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
    std::fs::write(&tmp, overlay_toml(endpoints))?;
    // Only this user may change where the CLI goes (see `trusted_file`), whatever the umask.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// `<dir>/.okta-adapter-dev/cli.toml`, if it exists.
pub fn find(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(DATA_DIR).join(FILE_NAME);
    path.is_file().then_some(path)
}

/// Why the Redis named in `cli.toml` is not usable.
#[derive(Debug, thiserror::Error)]
pub enum DevRedisError {
    #[error(
        "{file} names dev's Redis at {url}, but nothing answers there: `okta-adapter dev` is not \
         running. Start it in this directory, or name a Redis yourself (--config FILE or \
         OKTA_ADAPTER__REDIS__URL)"
    )]
    NotRunning { file: String, url: String },
    #[error(
        "{file} names dev's Redis at {url}, but the Redis answering there is not dev's (its data \
         directory is `{found}`, not `{expected}`); nothing was written. Restart `okta-adapter dev`, \
         or name a Redis yourself (--config FILE or OKTA_ADAPTER__REDIS__URL)"
    )]
    NotDevs {
        file: String,
        url: String,
        found: String,
        expected: String,
    },
}

/// Checks that the Redis at `url` is the one `dev` started for `cli_file` (the `cli.toml` path):
/// it must answer, and its data directory must be `<data dir>/redis`. Blocking, with short
/// timeouts: it runs once before a CLI command starts.
pub fn verify_dev_redis(url: &str, cli_file: &Path) -> Result<(), DevRedisError> {
    let file = cli_file.display().to_string();
    let shown = crate::store::redacted_url(url);
    let not_running = || DevRedisError::NotRunning {
        file: file.clone(),
        url: shown.clone(),
    };
    if let Err(why) = trusted_file(cli_file) {
        return Err(DevRedisError::NotDevs {
            file,
            url: shown,
            found: why,
            expected: "a file of your own that no one else may write".into(),
        });
    }
    let data_dir = cli_file.parent().unwrap_or(Path::new("."));
    let expected = data_dir.join(REDIS_DIR);
    let expected = std::fs::canonicalize(&expected).unwrap_or(expected);
    let found = (|| -> redis::RedisResult<String> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("dir")
            .query(&mut conn)?;
        Ok(reply.into_iter().nth(1).unwrap_or_default())
    })()
    .map_err(|_| not_running())?;
    // `dev` always gives its Redis an absolute directory; a relative answer would be resolved
    // against *our* working directory, which is how a fake server could pass this check.
    let found_path = std::fs::canonicalize(&found).unwrap_or_else(|_| PathBuf::from(&found));
    if Path::new(&found).is_absolute() && found_path == expected {
        Ok(())
    } else {
        Err(DevRedisError::NotDevs {
            file,
            url: shown,
            found,
            expected: expected.display().to_string(),
        })
    }
}

/// A `cli.toml` is followed only when this user owns it and no one else may write it: a file
/// planted in a shared directory must not send the CLI (and what it writes, e.g. password
/// hashes) to another Redis. Ownership is compared with the owner of `/proc/self` (this
/// process's user) where `/proc` exists.
fn trusted_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "{} may be written by other users (mode {:o})",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    if let Ok(me) = std::fs::metadata("/proc/self") {
        if me.uid() != meta.uid() {
            return Err(format!(
                "{} belongs to another user (uid {})",
                path.display(),
                meta.uid()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Settings, TenantRuleSettings};

    fn endpoints() -> DevEndpoints {
        DevEndpoints {
            redis_url: "redis://127.0.0.1:41234".into(),
            prefix: "okta-adapter".into(),
            okta_org_url: "http://127.0.0.1:41235".into(),
            okta_api_token: "sim-token".into(),
        }
    }

    #[test]
    fn the_overlay_is_a_valid_config_that_names_devs_redis_and_simulator() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &endpoints()).unwrap();
        assert_eq!(
            find(dir.path()),
            None,
            "found only under .okta-adapter-dev/"
        );
        let s = Settings::load_with(
            Some(&path),
            Some("[hooks]\nsecrets = [\"not-used-by-this-test\"]\n"),
        )
        .unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(s.redis.url.expose_secret(), "redis://127.0.0.1:41234");
        assert_eq!(s.redis.prefix, "okta-adapter");
        assert_eq!(s.okta.org_url, "http://127.0.0.1:41235");
        assert_eq!(s.okta.api_token.expose_secret(), "sim-token");
        assert!(matches!(
            &s.tenants.rules[0],
            TenantRuleSettings::EmailDomain { map } if map["acme.example"] == "acme"
        ));
    }

    #[test]
    fn odd_characters_are_quoted_not_injected() {
        let mut e = endpoints();
        e.prefix = "a\"b\\c\nd".into();
        let parsed = Settings::from_toml_overrides(&format!(
            "{}\n[hooks]\nsecrets = [\"x\"]\n",
            overlay_toml(&e)
        ));
        // The prefix is refused by validation or parsed back verbatim; never a TOML error
        // that would mean the value escaped its string.
        match parsed {
            Ok(s) => assert_eq!(s.redis.prefix, e.prefix),
            Err(err) => assert!(err.to_string().contains("redis.prefix"), "{err}"),
        }
    }

    #[test]
    fn a_cli_file_others_may_write_is_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &endpoints()).unwrap();
        assert_eq!(trusted_file(&path), Ok(()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = verify_dev_redis("redis://127.0.0.1:1", &path).unwrap_err();
        assert!(matches!(err, DevRedisError::NotDevs { .. }), "{err}");
        assert!(
            err.to_string().contains("may be written by other users"),
            "{err}"
        );
    }

    #[test]
    fn nothing_answering_is_reported_as_dev_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let file = write(&dir.path().join(DATA_DIR), &endpoints()).unwrap();
        let err = verify_dev_redis(&format!("redis://127.0.0.1:{port}"), &file).unwrap_err();
        assert!(matches!(err, DevRedisError::NotRunning { .. }));
        assert!(err
            .to_string()
            .contains("`okta-adapter dev` is not running"));
    }
}
