//! Process roles: which parts of the one binary this process runs (`process.roles`,
//! `serve --roles hooks,api`), so hook ingress and API replicas scale with traffic, consumers
//! by consumer-group members and job workers by count (docs/deploy.md).
//!
//! | Role | Serves / runs |
//! |---|---|
//! | `hooks` | `/hooks/okta/…` (event and inline hooks), the inline decision writer, hook-health flushes |
//! | `api` | `/api/…`, `/docs`, `/openapi.json` |
//! | `console` | whatever is mounted under `/console` |
//! | `consumers` | the projection, report aggregation and credential clean-up consumer groups |
//! | `workers` | bulk job workers |
//! | `scheduler` | the monthly report schedule (it runs on every such replica; the lease sends once) |
//!
//! `/healthz`, `/readyz` and `/metrics` are served whatever the roles; the maintenance upkeep
//! (dedup trim, lost-group repair) runs in every process.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer};

/// One part of the adapter a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcessRole {
    Hooks,
    Api,
    Console,
    Consumers,
    Workers,
    Scheduler,
}

impl ProcessRole {
    pub const ALL: [ProcessRole; 6] = [
        ProcessRole::Hooks,
        ProcessRole::Api,
        ProcessRole::Console,
        ProcessRole::Consumers,
        ProcessRole::Workers,
        ProcessRole::Scheduler,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProcessRole::Hooks => "hooks",
            ProcessRole::Api => "api",
            ProcessRole::Console => "console",
            ProcessRole::Consumers => "consumers",
            ProcessRole::Workers => "workers",
            ProcessRole::Scheduler => "scheduler",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The role whose requests `path` belongs to; `None` for paths every process serves
    /// (`/healthz`, `/readyz`, `/metrics`, and unknown paths, which get their 404 anyway).
    pub fn of_path(path: &str) -> Option<Self> {
        Self::of_path_in(path, CONSOLE_PATH)
    }

    /// [`Self::of_path`] with the console mounted at `console_path` (`console.path`).
    pub fn of_path_in(path: &str, console_path: &str) -> Option<Self> {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if under("/hooks") {
            Some(ProcessRole::Hooks)
        } else if under("/api") || under("/docs") || path == "/openapi.json" {
            Some(ProcessRole::Api)
        } else if under(console_path) || under("/self-service") {
            Some(ProcessRole::Console)
        } else {
            None
        }
    }
}

/// Where the console is mounted by default; everything under it (and the self-service pages)
/// belongs to the `console` role.
pub const CONSOLE_PATH: &str = "/console";

impl fmt::Display for ProcessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The roles this process runs; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(BTreeSet<ProcessRole>);

impl Default for Roles {
    fn default() -> Self {
        Self::all()
    }
}

impl Roles {
    pub fn all() -> Self {
        Self(ProcessRole::ALL.into_iter().collect())
    }

    /// `hooks,api` (commas and/or spaces; `all` for every role). Unknown or no roles are an
    /// error that lists the known ones.
    pub fn parse(list: &str) -> Result<Self, String> {
        Self::from_names(list.split([',', ' ']).filter(|s| !s.is_empty()))
    }

    fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for name in names {
            let name = name.trim();
            if name == "all" {
                set.extend(ProcessRole::ALL);
                continue;
            }
            match ProcessRole::parse(name) {
                Some(role) => {
                    set.insert(role);
                }
                None => {
                    return Err(format!(
                        "unknown role `{name}`; roles are {} (or all)",
                        Self::all()
                    ))
                }
            }
        }
        if set.is_empty() {
            return Err(format!("no role given; roles are {} (or all)", Self::all()));
        }
        Ok(Self(set))
    }

    /// Whether this process runs `role`.
    pub fn runs(&self, role: ProcessRole) -> bool {
        self.0.contains(&role)
    }

    /// Whether this process answers requests for `path` (see [`ProcessRole::of_path`]).
    pub fn serves_path(&self, path: &str) -> bool {
        ProcessRole::of_path(path).is_none_or(|role| self.runs(role))
    }

    pub fn iter(&self) -> impl Iterator<Item = ProcessRole> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(ProcessRole::name).collect();
        f.write_str(&names.join(","))
    }
}

impl<'de> Deserialize<'de> for Roles {
    /// A list (`["hooks", "api"]`) or, for env vars, one string (`hooks,api`).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let parsed = match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => Roles::parse(&s),
            OneOrMany::Many(v) => Roles::from_names(v.iter().map(String::as_str)),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_a_comma_list_and_all() {
        let r = Roles::parse("hooks, api").unwrap();
        assert!(r.runs(ProcessRole::Hooks) && r.runs(ProcessRole::Api));
        assert!(!r.runs(ProcessRole::Consumers));
        assert_eq!(r.to_string(), "hooks,api");
        assert_eq!(Roles::parse("all").unwrap(), Roles::all());
    }

    #[test]
    fn an_unknown_or_empty_role_list_is_refused_naming_the_known_roles() {
        let e = Roles::parse("hooks,cron").unwrap_err();
        assert!(e.contains("unknown role `cron`"), "{e}");
        assert!(
            e.contains("hooks,api,console,consumers,workers,scheduler"),
            "{e}"
        );
        assert!(Roles::parse(" , ").unwrap_err().contains("no role"));
    }

    #[test]
    fn paths_belong_to_their_role_and_operations_to_every_process() {
        let hooks = Roles::parse("hooks").unwrap();
        assert!(hooks.serves_path("/hooks/okta/events"));
        assert!(!hooks.serves_path("/api/v1/users"));
        assert!(!hooks.serves_path("/openapi.json"));
        assert!(!hooks.serves_path("/console/users"));
        assert!(!hooks.serves_path("/console"));
        assert!(hooks.serves_path("/healthz") && hooks.serves_path("/readyz"));
        assert!(hooks.serves_path("/metrics"));
        // A prefix match is by path segment.
        assert_eq!(ProcessRole::of_path("/hooksx"), None);
        assert_eq!(ProcessRole::of_path("/docs/"), Some(ProcessRole::Api));
        // The self-service pages are the console's; a moved console is gated where it is.
        assert_eq!(
            ProcessRole::of_path("/self-service/mfa"),
            Some(ProcessRole::Console)
        );
        assert_eq!(
            ProcessRole::of_path_in("/admin/users", "/admin"),
            Some(ProcessRole::Console)
        );
        assert_eq!(ProcessRole::of_path_in("/console/users", "/admin"), None);
    }
}
