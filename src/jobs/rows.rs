//! Bulk job kinds, options, states, row outcomes and row validation (pure).
//!
//! Every row is validated before anything runs: a bad row fails with its line number and
//! reason, the good rows still run.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::tenant_fields::TenantFields;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "kebab-case")]
#[oai(rename_all = "kebab-case")]
pub enum JobKind {
    Create,
    Update,
    Activate,
    Deactivate,
    Suspend,
    Unsuspend,
    Delete,
    AddToGroup,
    RemoveFromGroup,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Create => "create",
            JobKind::Update => "update",
            JobKind::Activate => "activate",
            JobKind::Deactivate => "deactivate",
            JobKind::Suspend => "suspend",
            JobKind::Unsuspend => "unsuspend",
            JobKind::Delete => "delete",
            JobKind::AddToGroup => "add-to-group",
            JobKind::RemoveFromGroup => "remove-from-group",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            JobKind::Create,
            JobKind::Update,
            JobKind::Activate,
            JobKind::Deactivate,
            JobKind::Suspend,
            JobKind::Unsuspend,
            JobKind::Delete,
            JobKind::AddToGroup,
            JobKind::RemoveFromGroup,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Where a job is in its life: `validating` (its file is being read), `queued`, `running`,
/// `done`, `cancelled`.
// The lower-case names are also the stored format (the job hash's `state`, written by
// `record.lua` and the upload scripts too): never rename a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum JobState {
    /// The file is being read.
    Validating,
    Queued,
    Running,
    Done,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Validating,
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Validating => "validating",
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the job may still run rows (and so may be cancelled).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            JobState::Validating | JobState::Queued | JobState::Running
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one row ended: `done` or `failed`.
// The names are also the stored format (results JSON, job counters, the job-rows stream the
// reports count): never rename a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Enum)]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum RowOutcome {
    Done,
    Failed,
}

impl RowOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RowOutcome::Done => "done",
            RowOutcome::Failed => "failed",
        }
    }
}

/// How rows of a job run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
#[serde(default)]
pub struct JobOptions {
    /// create: `activate=true` (Okta's default is true; jobs default to STAGED).
    pub activate: bool,
    /// create: `credentials.password.hook.type = "default"` (password import inline hook).
    pub password_hook: bool,
    /// activate: whether Okta emails an activation link (never for password-hook users).
    pub send_email: bool,
    /// add-to-group / remove-from-group: the group, unless a row names its own `group_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub group_id: Option<String>,
}

/// Migration phases of SPEC "Migration engineers": create STAGED with the password import
/// hook, later activate without any mail.
pub fn phase(name: &str) -> Option<(JobKind, JobOptions)> {
    match name {
        "create" => Some((
            JobKind::Create,
            JobOptions {
                activate: false,
                password_hook: true,
                ..JobOptions::default()
            },
        )),
        "activate" => Some((
            JobKind::Activate,
            JobOptions {
                send_email: false,
                ..JobOptions::default()
            },
        )),
        _ => None,
    }
}

/// A validated row, as queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub profile: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<Value>,
}

/// Columns that are not profile attributes.
const CONTROL_COLUMNS: &[&str] = &["id", "group_id", "password_hash"];

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// A client admin's job: its tenant, the attribute a create sets to it, and what in a profile
/// decides a tenant (which such a row may not set).
#[derive(Debug, Clone, Copy)]
pub struct ClientScope<'a> {
    pub tenant: &'a str,
    /// `jobs.tenant_profile_attribute`: set to `tenant` on create.
    pub create_attribute: &'a str,
    pub fields: &'a TenantFields,
}

/// Validates one row's fields. `tenant` is set for a client admin's job.
pub fn validate_row(
    kind: JobKind,
    options: &JobOptions,
    line: u64,
    fields: Map<String, Value>,
    tenant: Option<ClientScope<'_>>,
) -> Result<JobRow, String> {
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(|v| match v {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .filter(|s| !s.is_empty())
    };
    let id = text("id");
    let login = text("login");
    let group_id = text("group_id").or_else(|| options.group_id.clone());
    let password_hash = fields
        .get("password_hash")
        .filter(|v| !v.is_null())
        .cloned();
    let mut profile: Map<String, Value> = fields
        .iter()
        .filter(|(k, v)| {
            !CONTROL_COLUMNS.contains(&k.as_str())
                && !matches!(v, Value::Null)
                && v.as_str() != Some("")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match kind {
        JobKind::Create => {
            for required in ["login", "email", "firstName", "lastName"] {
                if text(required).is_none() {
                    return Err(format!("missing {required}"));
                }
            }
            for field in ["login", "email"] {
                let v = text(field).unwrap_or_default();
                if !looks_like_email(&v) {
                    return Err(format!("{field} `{v}` is not an email address"));
                }
            }
            if let Some(h) = &password_hash {
                if options.password_hook {
                    return Err(
                        "password_hash and the password import hook exclude each other".into(),
                    );
                }
                if h.get("algorithm").and_then(Value::as_str).is_none() || h.get("value").is_none()
                {
                    return Err("password_hash needs at least `algorithm` and `value`".into());
                }
            }
            if let Some(scope) = tenant {
                let attribute = scope.create_attribute;
                match profile.get(attribute).and_then(Value::as_str) {
                    Some(t) if t != scope.tenant => {
                        return Err(format!("{attribute} `{t}` is not your tenant"));
                    }
                    _ => {
                        profile
                            .insert(attribute.to_owned(), Value::String(scope.tenant.to_owned()));
                    }
                }
                scope
                    .fields
                    .check(scope.tenant, &profile, Some(attribute))?;
            }
        }
        _ => {
            if id.is_none() && login.is_none() {
                return Err("needs an `id` or a `login`".into());
            }
            profile.remove("login");
            match kind {
                JobKind::Update if profile.is_empty() => {
                    return Err("no profile attribute to update".into());
                }
                JobKind::AddToGroup | JobKind::RemoveFromGroup if group_id.is_none() => {
                    return Err("needs a `group_id` (column or job option)".into());
                }
                JobKind::Update => {
                    if let Some(scope) = tenant {
                        if profile.contains_key(scope.create_attribute) {
                            return Err(format!(
                                "{} cannot be changed by a client admin",
                                scope.create_attribute
                            ));
                        }
                        scope.fields.check(scope.tenant, &profile, None)?;
                    }
                }
                _ => profile.clear(),
            }
        }
    }
    Ok(JobRow {
        line,
        id,
        login,
        profile,
        group_id,
        password_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_and_row_outcomes_keep_their_wire_names() {
        for state in JobState::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(
            JobState::ALL.map(JobState::as_str),
            ["validating", "queued", "running", "done", "cancelled"]
        );
        assert_eq!(JobState::parse("Done"), None);
        assert_eq!(
            serde_json::to_string(&RowOutcome::Done).unwrap(),
            "\"done\""
        );
        assert_eq!(
            serde_json::to_string(&RowOutcome::Failed).unwrap(),
            "\"failed\""
        );
        assert!(serde_json::from_str::<RowOutcome>("\"skipped\"").is_err());
    }
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_create_row_needs_okta_required_attributes() {
        let opts = JobOptions::default();
        let ok = validate_row(
            JobKind::Create,
            &opts,
            2,
            fields(json!({"login":"a@b.co","email":"a@b.co","firstName":"A","lastName":"B","costCenter":""})),
            None,
        )
        .unwrap();
        assert_eq!(ok.profile.len(), 4, "empty columns are not sent");
        let err = |v| validate_row(JobKind::Create, &opts, 3, fields(v), None).unwrap_err();
        assert_eq!(
            err(json!({"login":"a@b.co","firstName":"A","lastName":"B"})),
            "missing email"
        );
        assert!(
            err(json!({"login":"nope","email":"a@b.co","firstName":"A","lastName":"B"}))
                .contains("not an email")
        );
    }

    #[test]
    fn a_client_admin_creates_only_in_its_tenant() {
        let opts = JobOptions::default();
        let fields_of_tenants = TenantFields::default();
        let acme = ClientScope {
            tenant: "acme",
            create_attribute: "tenantId",
            fields: &fields_of_tenants,
        };
        let row = json!({"login":"a@b.co","email":"a@b.co","firstName":"A","lastName":"B"});
        let ok = validate_row(JobKind::Create, &opts, 2, fields(row.clone()), Some(acme)).unwrap();
        assert_eq!(ok.profile["tenantId"], "acme");
        let mut other = row;
        other["tenantId"] = json!("globex");
        assert!(validate_row(JobKind::Create, &opts, 2, fields(other), Some(acme)).is_err());
    }

    #[test]
    fn lifecycle_rows_need_a_user_and_group_rows_a_group() {
        let opts = JobOptions::default();
        assert!(validate_row(
            JobKind::Suspend,
            &opts,
            2,
            fields(json!({"firstName":"x"})),
            None
        )
        .is_err());
        let r = validate_row(
            JobKind::Suspend,
            &opts,
            2,
            fields(json!({"login":"a@b.co","firstName":"x"})),
            None,
        )
        .unwrap();
        assert!(r.profile.is_empty());
        assert!(validate_row(
            JobKind::AddToGroup,
            &opts,
            2,
            fields(json!({"id":"00u1"})),
            None
        )
        .is_err());
        let with_group = JobOptions {
            group_id: Some("00g1".into()),
            ..opts.clone()
        };
        assert!(validate_row(
            JobKind::AddToGroup,
            &with_group,
            2,
            fields(json!({"id":"00u1"})),
            None
        )
        .is_ok());
        assert!(validate_row(
            JobKind::Update,
            &opts,
            2,
            fields(json!({"id":"00u1"})),
            None
        )
        .is_err());
    }

    #[test]
    fn phases_set_the_migration_options() {
        let (kind, opts) = phase("create").unwrap();
        assert_eq!(kind, JobKind::Create);
        assert!(opts.password_hook && !opts.activate);
        let (kind, opts) = phase("activate").unwrap();
        assert_eq!(kind, JobKind::Activate);
        assert!(!opts.send_email);
        assert!(phase("later").is_none());
    }
}
