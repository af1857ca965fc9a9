//! Loading: the layers, and every problem as one line that leads with its key.
//!
//! Serde stops at the first value it cannot parse, but an operator fixing a config wants every
//! problem at once. So when reading fails at a key that has a default, that key's problem is
//! kept, the default stands in for it, and the config is read again, until it reads; then the
//! rules that span keys are checked on the result. Each key stands in at most once, so this ends.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

use super::secret_files::SecretFiles;
use super::{Settings, DEFAULT_TOML, ENV_CONFIG_FILE, ENV_PREFIX};

/// What went wrong while loading configuration: one message per problem, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(msg: impl Into<String>) -> Self {
        Self {
            problems: vec![msg.into()],
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` (or the file named by `OKTA_ADAPTER_CONFIG`), then env vars.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, None)
    }

    /// Like [`Settings::load`], with `overrides` (TOML) between the defaults and the file; `dev`
    /// mode uses it for a demo secret that any real setting still replaces.
    pub fn load_with(file: Option<&Path>, overrides: Option<&str>) -> Result<Self, ConfigError> {
        let env_file = std::env::var_os(ENV_CONFIG_FILE).map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(env_file);
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(toml) = overrides {
            figment = figment.merge(SecretFiles::new(Toml::string(toml)));
        }
        if let Some(path) = &file {
            if !path.exists() {
                return Err(ConfigError::one(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(SecretFiles::new(Toml::file(path)));
        }
        Self::from_figment(figment.merge(SecretFiles::new(Env::prefixed(ENV_PREFIX).split("__"))))
    }

    /// Loads defaults overlaid with a TOML string (tests and tools use this).
    pub fn from_toml_overrides(toml: &str) -> Result<Self, ConfigError> {
        Self::from_figment(
            Figment::from(Toml::string(DEFAULT_TOML)).merge(SecretFiles::new(Toml::string(toml))),
        )
    }

    fn from_figment(mut figment: Figment) -> Result<Self, ConfigError> {
        let defaults = Figment::from(Toml::string(DEFAULT_TOML));
        let mut problems = Vec::new();
        let mut stood_in = Vec::new();
        let settings = loop {
            let e = match figment.extract::<Settings>() {
                Ok(settings) => break settings,
                Err(e) => e,
            };
            for problem in e.clone().into_iter().map(|e| describe_figment_error(&e)) {
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
            // An unknown or missing key has no value a default could replace.
            if matches!(
                e.kind,
                figment::error::Kind::UnknownField(..) | figment::error::Kind::MissingField(_)
            ) {
                return Err(ConfigError { problems });
            }
            // The key to stand a default in for: the path up to the first list index (a bad
            // list element replaces the list), if it has a default and did not stand in yet.
            let key: Vec<&str> = e
                .path
                .iter()
                .map(String::as_str)
                .take_while(|k| k.parse::<usize>().is_err())
                .collect();
            let key = key.join(".");
            let default = (!key.is_empty() && !stood_in.contains(&key))
                .then(|| defaults.find_value(&key).ok())
                .flatten();
            match default {
                Some(value) => {
                    figment = figment.merge(Serialized::default(&key, value));
                    stood_in.push(key);
                }
                None => return Err(ConfigError { problems }),
            }
        };
        if let Err(e) = settings.validate() {
            problems.extend(e.problems);
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// Turns figment's error into one line that leads with the dotted key (list elements as
/// `key[i]`).
fn describe_figment_error(e: &figment::Error) -> String {
    use figment::error::Kind;
    let key = dotted(&e.path);
    let what = match &e.kind {
        Kind::UnknownField(field, _) => {
            return format!(
                "{}: unknown key (check the spelling against config/default.toml)",
                full_key(&e.path, field)
            );
        }
        Kind::MissingField(field) => return format!("{}: missing", full_key(&e.path, field)),
        other => other.to_string(),
    };
    let source = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    if key.is_empty() {
        format!("{what}{source}")
    } else if what.starts_with('.') {
        // A parser that names its own field (see `values`): `tenants.rules[0].pattern: …`.
        format!("{key}{what}{source}")
    } else {
        format!("{key}: {what}{source}")
    }
}

/// `["report", "recipients", "0"]` → `report.recipients[0]`.
fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// figment's path sometimes already ends with the offending field, sometimes not.
fn full_key(path: &[String], field: &str) -> String {
    match path.last() {
        Some(last) if last == field => dotted(path),
        Some(_) => format!("{}.{field}", dotted(path)),
        None => field.to_string(),
    }
}
