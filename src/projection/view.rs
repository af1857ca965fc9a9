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

/// `status` of a user whose status no event has revealed yet.
pub const STATUS_UNKNOWN: &str = "UNKNOWN";

/// Why a status is [`STATUS_UNKNOWN`]: said in the record, so a reader does not take it for a
/// state Okta reported.
pub const STATUS_UNKNOWN_REASON: &str = "no lifecycle, lock or password event of this user has \
     been received yet; the adapter knows the user only from other events (Okta has the status)";

/// One user's Okta state as projected from events (never fetched from Okta). Fields the events
/// have not revealed are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize)]
pub struct UserRecord {
    /// Okta user id.
    pub id: String,
    #[oai(nullable)]
    pub login: Option<String>,
    #[oai(nullable)]
    pub email: Option<String>,
    #[oai(nullable)]
    pub display_name: Option<String>,
    #[oai(nullable)]
    pub tenant: Option<String>,
    /// `STAGED`, `PROVISIONED`, `ACTIVE`, `RECOVERY`, `PASSWORD_EXPIRED`, `LOCKED_OUT`,
    /// `SUSPENDED`, `DEPROVISIONED`, `DELETED`, or `UNKNOWN` when no status event was seen yet
    /// (then `status_reason` says so).
    pub status: String,
    /// Set when `status` is `UNKNOWN`: why the adapter cannot tell.
    #[oai(nullable)]
    pub status_reason: Option<String>,
    /// Whether the status lets the user sign in (`false` while it is `UNKNOWN`).
    pub can_sign_in: bool,
    #[oai(nullable)]
    pub last_sign_in: Option<String>,
    #[oai(nullable)]
    pub last_failed_sign_in: Option<String>,
    /// Failed sign-ins since the last successful one (within the timeline).
    pub recent_failed_sign_ins: u32,
    pub factors: Vec<Member>,
    pub groups: Vec<Member>,
    pub apps: Vec<Member>,
    /// Why each scalar field has its value.
    pub why: Vec<FieldWhy>,
    /// `published` of the newest event applied to this user.
    #[oai(nullable)]
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
            // Inline hooks decide on known statuses only.
            status: Some(r.status).filter(|s| s != STATUS_UNKNOWN),
            groups: names(r.groups),
            apps: names(r.apps),
            factors: names(r.factors),
            freshness: r.freshness,
        }
    }
}
