//! `<key>_file`: any string or list key of `config/default.toml` can be read from a file instead,
//! so secrets come from mounted files (Kubernetes secret volumes, Docker secrets) and never sit
//! in an environment variable or a ConfigMap.
//!
//! `OKTA_ADAPTER__HOOKS__SECRETS_FILE=/run/secrets/hook-secrets` or `[redis] url_file = "…"`:
//! the file's content, trimmed, is the value of `redis.url`; for a list key (`hooks.secrets`)
//! every non-empty line is one element (two lines while a secret is rotated). Within one layer
//! (the config file, the environment) setting both `<key>` and `<key>_file` is an error; across
//! layers the later layer wins as for any key. An empty `<key>_file` means "not set".
//!
//! The rule is generic instead of a list of secret keys so that a secret added to
//! `default.toml` is file-readable at once. Keys whose `_file` twin is itself a documented key
//! (`okta.private_key_file`) keep their own meaning. File contents are never logged or echoed in
//! an error.

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

use super::DEFAULT_TOML;

/// The suffix that turns a key into "read this key from the file named here".
pub const FILE_SUFFIX: &str = "_file";

/// Wraps one configuration layer and replaces its `<key>_file` entries by `<key>` read from
/// the file.
pub struct SecretFiles<P> {
    inner: P,
}

impl<P: Provider> SecretFiles<P> {
    pub fn new(inner: P) -> Self {
        Self { inner }
    }
}

impl<P: Provider> Provider for SecretFiles<P> {
    fn metadata(&self) -> Metadata {
        self.inner.metadata()
    }

    fn profile(&self) -> Option<Profile> {
        self.inner.profile()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let defaults = default_dict();
        let mut data = self.inner.data()?;
        for dict in data.values_mut() {
            resolve(dict, &defaults, &mut Vec::new()).map_err(Error::from)?;
        }
        Ok(data)
    }
}

/// The built-in defaults as one dictionary: which keys exist and whether each is a string or
/// a list.
fn default_dict() -> Dict {
    Toml::string(DEFAULT_TOML)
        .data()
        .ok()
        .and_then(|mut m| m.remove(&Profile::Default))
        .unwrap_or_default()
}

/// Errors are plain messages that lead with the key (figment's error is too large to pass up
/// through the recursion).
fn resolve(dict: &mut Dict, defaults: &Dict, path: &mut Vec<String>) -> Result<(), String> {
    let keys: Vec<String> = dict.keys().cloned().collect();
    for key in keys {
        if let (Some(Value::Dict(_, sub_defaults)), Some(Value::Dict(_, sub))) =
            (defaults.get(&key), dict.get_mut(&key))
        {
            path.push(key.clone());
            resolve(sub, sub_defaults, path)?;
            path.pop();
            continue;
        }
        let Some(base) = key.strip_suffix(FILE_SUFFIX) else {
            continue;
        };
        if defaults.contains_key(&key) {
            continue; // a documented key of its own (okta.private_key_file)
        }
        let as_list = match defaults.get(base) {
            Some(Value::String(..)) => false,
            Some(Value::Array(..)) => true,
            // Not a key that can come from a file: deserialising reports it as unknown.
            _ => continue,
        };
        let dotted = |k: &str| {
            let mut p = path.clone();
            p.push(k.to_owned());
            p.join(".")
        };
        let file = match dict.get(&key) {
            Some(Value::String(_, s)) => s.clone(),
            _ => return Err(format!("{}: must be a file path (a string)", dotted(&key))),
        };
        dict.remove(&key);
        if file.is_empty() {
            continue;
        }
        if dict.contains_key(base) {
            return Err(format!(
                "{} and {} are both set: keep one (the {FILE_SUFFIX} form for secrets)",
                dotted(base),
                dotted(&key)
            ));
        }
        let content = std::fs::read_to_string(&file).map_err(|e| {
            // The path is not secret; the content is never shown.
            format!("{}: cannot read {file}: {e}", dotted(&key))
        })?;
        let value = if as_list {
            Value::from(
                content
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(Value::from)
                    .collect::<Vec<_>>(),
            )
        } else {
            Value::from(content.trim().to_owned())
        };
        dict.insert(base.to_owned(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::config::Settings;

    fn secret_file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn a_secret_key_is_read_trimmed_from_its_file() {
        let url = secret_file("redis://:pw@10.0.0.1:6380\n");
        let token = secret_file("  00abc-token \n");
        let s = Settings::from_toml_overrides(&format!(
            "[hooks]\nsecrets = [\"s1\"]\n[redis]\nurl_file = {:?}\n[okta]\napi_token_file = {:?}\n",
            url.path(),
            token.path()
        ))
        .unwrap();
        assert_eq!(s.redis.url.expose_secret(), "redis://:pw@10.0.0.1:6380");
        assert_eq!(s.okta.api_token.expose_secret(), "00abc-token");
    }

    #[test]
    fn a_list_secret_takes_one_element_per_non_empty_line() {
        let secrets = secret_file("new-secret\n\n  old-secret  \n");
        let s = Settings::from_toml_overrides(&format!(
            "[hooks]\nsecrets_file = {:?}\n",
            secrets.path()
        ))
        .unwrap();
        let got: Vec<&str> = s.hooks.secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(got, ["new-secret", "old-secret"]);
    }

    #[test]
    fn a_key_and_its_file_both_set_are_refused_naming_both() {
        let f = secret_file("from-file");
        let err = Settings::from_toml_overrides(&format!(
            "[hooks]\nsecrets = [\"s1\"]\nsigning_key = \"inline\"\nsigning_key_file = {:?}\n",
            f.path()
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("hooks.signing_key and hooks.signing_key_file are both set"),
            "{err}"
        );
        assert!(!err.contains("from-file"), "the content leaked: {err}");
    }

    #[test]
    fn an_unreadable_file_is_named_by_its_key_and_path() {
        let err = Settings::from_toml_overrides(
            "[hooks]\nsecrets = [\"s1\"]\n[smtp]\nurl_file = \"/nonexistent/smtp-url\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("smtp.url_file: cannot read /nonexistent/smtp-url"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_key_means_not_set_and_the_default_stays() {
        let s =
            Settings::from_toml_overrides("[hooks]\nsecrets = [\"s1\"]\nsigning_key_file = \"\"\n")
                .unwrap();
        assert!(s.signing_key().is_none());
    }

    #[test]
    fn a_file_twin_of_a_key_that_does_not_exist_is_an_unknown_key() {
        let err =
            Settings::from_toml_overrides("[hooks]\nsecrets = [\"s1\"]\nnope_file = \"/x\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("hooks.nope_file: unknown key"), "{err}");
    }

    #[test]
    fn the_private_key_inline_and_as_file_are_refused_together() {
        let err = Settings::from_toml_overrides(
            "[hooks]\nsecrets = [\"s1\"]\n[okta]\nprivate_key = \"pem\"\nprivate_key_file = \"/k.pem\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("okta.private_key and okta.private_key_file are both set"),
            "{err}"
        );
    }
}
