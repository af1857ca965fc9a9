//! `/api/v1/users`: support lookup and the tenant-scoped client-admin API, answered from the
//! projections (never by calling Okta).
//!
//! Scoping rule: a `client-admin` key sees exactly its tenant. A user of another tenant is
//! answered exactly like a user that does not exist (404 with the same message), so existence
//! does not leak. Every read of a user's record by a `support` key is audited.

use std::sync::Arc;

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::{AuditEntry, Principal, Role};
use crate::domain::tenant::TenantId;
use crate::domain::user_status::UserStatus;
use crate::projection::read::{ListQuery, Reader, TimelineEntry};
use crate::projection::UserRecord;

pub struct UsersApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct UserResponse {
    pub user: UserRecord,
    /// `published` time of the newest event any projection has applied.
    #[oai(nullable)]
    pub projection_freshness: Option<String>,
}

#[derive(Debug, Object)]
pub struct UserList {
    pub users: Vec<UserRecord>,
    /// Pass as `after` for the next page; `null` on the last page. A page may hold fewer than
    /// `limit` users (even none) and still have a `next`: keep following it until `null`.
    #[oai(nullable)]
    pub next: Option<String>,
    /// Users indexed for the tenant (or all users), before the status/prefix filters.
    pub total_indexed: u64,
    /// Index entries this request read (at most `projection.list_scan_budget`, or `limit`
    /// when larger).
    pub scanned: u64,
    #[oai(nullable)]
    pub projection_freshness: Option<String>,
}

#[derive(Debug, Object)]
pub struct TimelineItem {
    pub uuid: String,
    pub published: String,
    pub event_type: String,
    pub actor: String,
    pub outcome: String,
}

impl From<TimelineEntry> for TimelineItem {
    fn from(t: TimelineEntry) -> Self {
        Self {
            uuid: t.uuid,
            published: t.published,
            event_type: t.event_type,
            actor: t.actor,
            outcome: t.outcome,
        }
    }
}

#[derive(Debug, Object)]
pub struct Timeline {
    pub user_id: String,
    /// Newest first.
    pub events: Vec<TimelineItem>,
    #[oai(nullable)]
    pub projection_freshness: Option<String>,
}

const USER_READERS: &[Role] = &[Role::Support, Role::ClientAdmin];

fn no_such_user(id: &str) -> HttpError {
    HttpError::not_found(format!("no user `{id}`"))
}

impl UsersApi {
    /// Finds the user and applies tenant scoping; also returns the projection's freshness.
    async fn visible_user(
        &self,
        who: &Principal,
        id: &str,
        timeline_limit: usize,
    ) -> Result<(UserRecord, Vec<TimelineEntry>, Option<String>), HttpError> {
        find_visible_user(&self.state, who, id, timeline_limit).await
    }

    async fn audit_read(
        &self,
        reason: Option<&str>,
        who: &Principal,
        action: &str,
        subject: &str,
        detail: &str,
    ) {
        audit_user_read(&self.state, reason, who, action, subject, detail).await
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Users")]
impl UsersApi {
    /// Get a user by Okta id, login or email.
    ///
    /// The record comes from the adapter's projection of Okta events; `why` says which event set
    /// each field. `client-admin` keys see only their tenant's users. Reads by `support` keys are
    /// audited (add `X-Audit-Reason` to say why).
    #[oai(path = "/users/:id", method = "get", operation_id = "get_user")]
    async fn get_user(
        &self,
        auth: ApiKey,
        id: Path<String>,
        /// Why you read this record; kept in the audit stream (reads by `support` keys).
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<UserResponse>, HttpError> {
        let who = self.state.require(&auth, USER_READERS).await?;
        let (user, _, projection_freshness) = self.visible_user(&who, &id, 1).await?;
        self.audit_read(
            audit_reason.0.as_deref(),
            &who,
            "read-user",
            &user.id,
            "200",
        )
        .await;
        Ok(Json(UserResponse {
            user,
            projection_freshness,
        }))
    }

    /// A user's recent events, newest first.
    #[oai(
        path = "/users/:id/timeline",
        method = "get",
        operation_id = "get_user_timeline"
    )]
    async fn get_user_timeline(
        &self,
        auth: ApiKey,
        id: Path<String>,
        /// Why you read this timeline; kept in the audit stream (reads by `support` keys).
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
        /// At most this many events (1–500; never more than `projection.timeline_len`).
        #[oai(
            default = "default_timeline_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u32>,
    ) -> Result<Json<Timeline>, HttpError> {
        let who = self.state.require(&auth, USER_READERS).await?;
        // Capped at what is kept per user: beyond it, the stored entries are only those older
        // events a field still refers to, and a page of them would show gaps as if nothing
        // had happened in between.
        let limit = (limit.0 as usize).min(self.state.settings.projection.timeline_len);
        let (user, timeline, projection_freshness) = self.visible_user(&who, &id, limit).await?;
        self.audit_read(
            audit_reason.0.as_deref(),
            &who,
            "read-timeline",
            &user.id,
            "200",
        )
        .await;
        Ok(Json(Timeline {
            user_id: user.id,
            events: timeline.into_iter().map(Into::into).collect(),
            projection_freshness,
        }))
    }

    /// List or search users, in login order, with cursor paging.
    ///
    /// `client-admin` keys always list their own tenant (asking for another tenant is 403).
    ///
    /// Work per request is bounded: one request reads at most `projection.list_scan_budget`
    /// index entries (default 1,000; never fewer than `limit`). With a filter that few users
    /// match (e.g. a rare `status`), a page may therefore hold fewer than `limit` users, or
    /// none, and still carry a `next` cursor: follow `next` until it is `null` to see them all.
    #[oai(path = "/users", method = "get", operation_id = "list_users")]
    #[allow(clippy::too_many_arguments)]
    async fn list_users(
        &self,
        auth: ApiKey,
        /// Only this tenant's users (a tenant id: `[a-z0-9][a-z0-9-]*`, at most 63 characters).
        tenant: Query<Option<String>>,
        /// Only users in this status.
        status: Query<Option<UserStatus>>,
        /// Only logins starting with this (case-insensitive).
        login_prefix: Query<Option<String>>,
        /// The `next` cursor of the previous page.
        after: Query<Option<String>>,
        /// Page size (1–500).
        #[oai(
            default = "default_page_size",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u32>,
        /// Why you list users; kept in the audit stream (lists by `support` keys).
        #[oai(name = "X-Audit-Reason")]
        audit_reason: Header<Option<String>>,
    ) -> Result<Json<UserList>, HttpError> {
        let who = self.state.require(&auth, USER_READERS).await?;
        let list = list_visible_users(
            &self.state,
            &who,
            UserListQuery {
                tenant: tenant.0,
                status: status.0,
                login_prefix: login_prefix.0,
                after: after.0,
                limit: limit.0 as usize,
            },
        )
        .await?;
        let detail = format!("{} users", list.users.len());
        self.audit_read(audit_reason.0.as_deref(), &who, "list-users", "", &detail)
            .await;
        Ok(Json(list))
    }
}

/// Finds the user `id` (Okta id, login or email) as `who` may see it: a user of another
/// tenant is answered exactly like a missing one. Also returns the projection's freshness.
/// The JSON API and the console both read users through this.
pub async fn find_visible_user(
    state: &AppState,
    who: &Principal,
    id: &str,
    timeline_limit: usize,
) -> Result<(UserRecord, Vec<TimelineEntry>, Option<String>), HttpError> {
    let mut conn = state.redis.clone();
    let (found, freshness) = Reader::new(state.keys.clone())
        .find_with_freshness(&mut conn, id, timeline_limit)
        .await
        .map_err(|e| HttpError::redis("read-user", e))?;
    match found {
        Some((record, timeline)) if who.can_see_tenant(record.tenant.as_deref()) => {
            Ok((record, timeline, freshness))
        }
        _ => Err(no_such_user(id)),
    }
}

/// Writes a `support` read of user data to the audit stream (other roles' reads are not
/// audited).
pub async fn audit_user_read(
    state: &AppState,
    reason: Option<&str>,
    who: &Principal,
    action: &str,
    subject: &str,
    detail: &str,
) {
    if who.role != Role::Support {
        return;
    }
    state
        .record_audit(AuditEntry {
            who,
            action,
            subject,
            reason,
            detail,
        })
        .await;
}

/// A user search, as the API's `list_users` takes it.
#[derive(Debug, Default, Clone)]
pub struct UserListQuery {
    pub tenant: Option<String>,
    pub status: Option<UserStatus>,
    pub login_prefix: Option<String>,
    /// The `next` cursor of the previous page (hex).
    pub after: Option<String>,
    pub limit: usize,
}

/// Lists users as `who` may see them (a client admin: always and only their tenant; asking
/// for another is 403). The JSON API and the console both list through this.
pub async fn list_visible_users(
    state: &AppState,
    who: &Principal,
    q: UserListQuery,
) -> Result<UserList, HttpError> {
    if let Some(t) = q.tenant.as_deref() {
        // `tenant=` (empty) must not read as "no filter".
        TenantId::parse(t).map_err(|e| HttpError::bad_request(format!("tenant: {e}")))?;
    }
    let tenant = match (who.role, q.tenant) {
        (Role::ClientAdmin, Some(t)) if Some(&t) != who.tenant.as_ref() => {
            return Err(HttpError::forbidden(
                "a client-admin key lists only its own tenant",
            ));
        }
        // `authenticate` gives every client admin a tenant; should one ever lack it, it
        // lists nothing rather than everything.
        (Role::ClientAdmin, _) => match &who.tenant {
            Some(t) => Some(t.clone()),
            None => return Err(HttpError::forbidden("this client-admin key has no tenant")),
        },
        (_, t) => t,
    };
    let cursor = match q.after.as_deref() {
        None => None,
        Some(c) => Some(
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    HttpError::bad_request("`after` is not a cursor from a previous page")
                })?,
        ),
    };
    let mut conn = state.redis.clone();
    let reader = Reader::new(state.keys.clone());
    let page = reader
        .list(
            &mut conn,
            &ListQuery {
                tenant: tenant.as_deref(),
                login_prefix: q.login_prefix.as_deref(),
                status: q.status,
                after: cursor.as_deref(),
                limit: q.limit,
                scan_budget: state.settings.projection.list_scan_budget,
            },
        )
        .await
        .map_err(|e| HttpError::redis("list-users", e))?;
    Ok(UserList {
        users: page.users,
        next: page.next.map(hex::encode),
        total_indexed: page.indexed,
        scanned: page.scanned,
        projection_freshness: reader.freshness(&mut conn).await.ok().flatten(),
    })
}

fn default_timeline_limit() -> u32 {
    50
}

fn default_page_size() -> u32 {
    50
}
