//! What readers get: a user's projected record, every field with the event that set it.

use poem_openapi::Object;

/// The event that gave a field its value.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize)]
pub struct Why {
    /// Okta event type, e.g. `user.lifecycle.suspend`.
    pub event_type: String,
    /// The event's `published` time (RFC 3339).
    pub published: String,
    /// Okta id of who did it.
    pub actor: String,
    /// `SUCCESS`, `FAILURE`, …
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize)]
pub struct FieldWhy {
    /// Field name in the record (`status`, `login`, `tenant`, `last_sign_in`, …).
    pub field: String,
    pub why: Why,
}

/// A group, app or MFA factor the user currently has.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub why: Why,
}

/// One user's Okta state as projected from events (never fetched from Okta).
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize)]
pub struct UserRecord {
    /// Okta user id.
    pub id: String,
    pub login: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub tenant: Option<String>,
    /// `STAGED`, `PROVISIONED`, `ACTIVE`, `RECOVERY`, `PASSWORD_EXPIRED`, `LOCKED_OUT`,
    /// `SUSPENDED`, `DEPROVISIONED` or `DELETED`; absent when no status event was seen.
    pub status: Option<String>,
    /// Whether the status lets the user sign in.
    pub can_sign_in: bool,
    pub last_sign_in: Option<String>,
    pub last_failed_sign_in: Option<String>,
    /// Failed sign-ins since the last successful one (within the timeline).
    pub recent_failed_sign_ins: u32,
    pub factors: Vec<Member>,
    pub groups: Vec<Member>,
    pub apps: Vec<Member>,
    /// Why each scalar field has its value.
    pub why: Vec<FieldWhy>,
    /// `published` of the newest event applied to this user.
    pub freshness: Option<String>,
}

/// The compact view inline hooks use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: String,
    pub login: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub tenant: Option<String>,
    pub status: Option<String>,
    /// Group display names.
    pub groups: Vec<String>,
    pub apps: Vec<String>,
    pub factors: Vec<String>,
    pub freshness: Option<String>,
}

impl From<UserRecord> for UserView {
    fn from(r: UserRecord) -> Self {
        let names = |m: Vec<Member>| m.into_iter().map(|m| m.name).collect();
        Self {
            id: r.id,
            login: r.login,
            email: r.email,
            display_name: r.display_name,
            tenant: r.tenant,
            status: r.status,
            groups: names(r.groups),
            apps: names(r.apps),
            factors: names(r.factors),
            freshness: r.freshness,
        }
    }
}
