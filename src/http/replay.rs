//! `/api/v1/replay` and `/api/v1/dead-letter`: replay firehose entries, list / delete / redrive
//! dead letters (operator keys). See [`crate::replay`].

use super::json_string::JsonString;
use std::sync::Arc;

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::auth::ApiKey;
use super::error::HttpError;
use super::state::AppState;
use super::tags::ApiTags;
use crate::access::Role;
use crate::domain::tenant::TenantResolver;
use crate::projection::write::Applier;
use crate::replay::{self, ReplayFilter, ReplayTarget};

pub struct ReplayApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Object)]
pub struct ReplayRequest {
    /// Range start: a firehose entry id or a time in ms (`XRANGE` form); empty = the oldest.
    #[oai(default)]
    pub from: JsonString,
    /// Range end, likewise; empty = the newest.
    #[oai(default)]
    pub to: JsonString,
    pub event_type: Option<JsonString>,
    pub tenant: Option<JsonString>,
    pub user: Option<JsonString>,
    /// An existing route's name to append to…
    pub route: Option<JsonString>,
    /// …or a new consumer group: entries go to `…:replay:<group>` with that group on it.
    pub group: Option<JsonString>,
    /// Only count what would be replayed.
    #[oai(default)]
    pub dry_run: bool,
}

#[derive(Debug, Object)]
pub struct ReplayResult {
    pub matched: u64,
    pub written: u64,
    pub stream: String,
    pub group: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug, Object)]
pub struct DeadLetterDoc {
    pub id: String,
    pub source: String,
    pub source_id: String,
    pub group: String,
    pub reason: String,
    pub uuid: String,
    pub event_type: String,
}

#[derive(Debug, Object)]
pub struct DeadLetterList {
    /// Records in the dead-letter stream (all reasons).
    pub depth: u64,
    pub records: Vec<DeadLetterDoc>,
}

#[derive(Debug, Object)]
pub struct RedriveRequest {
    /// Dead-letter record ids to redrive…
    #[oai(default)]
    pub ids: Vec<JsonString>,
    /// …or every record with this reason.
    pub reason: Option<JsonString>,
}

#[derive(Debug, Object)]
pub struct RedriveOutcome {
    pub id: String,
    /// `applied`, `skipped`, `failed` (kept) or `missing`.
    pub outcome: String,
    pub reason: Option<String>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Delivery")]
impl ReplayApi {
    /// Replay firehose entries into a route stream or a new consumer group.
    ///
    /// Entries keep every field, `uuid` included, plus `replayed_from`. Use `dry_run` first.
    #[oai(path = "/replay", method = "post", operation_id = "replay_entries")]
    async fn replay_entries(
        &self,
        auth: ApiKey,
        body: Json<ReplayRequest>,
    ) -> Result<Json<ReplayResult>, HttpError> {
        let state = &self.state;
        let principal = state.require(&auth, &[Role::Operator]).await?;
        let b = body.0;
        let text = |v: Option<JsonString>| v.map(JsonString::into_inner);
        let (route, group) = (text(b.route), text(b.group));
        let target = match (&route, &group) {
            (Some(r), None) if state.settings.routes.iter().any(|x| &x.name == r) => {
                ReplayTarget::Route(r.clone())
            }
            (Some(r), None) => {
                return Err(HttpError::bad_request(format!(
                    "route: no route named `{r}`"
                )))
            }
            (None, Some(g)) if valid_name(g) => ReplayTarget::Group(g.clone()),
            (None, Some(_)) => {
                return Err(HttpError::bad_request(
                    "group: letters, digits, - _ . only (at most 100)",
                ))
            }
            _ => {
                return Err(HttpError::bad_request(
                    "give exactly one of `route` and `group`",
                ))
            }
        };
        let range_ok = |s: &str| {
            s.is_empty()
                || s.split('-').count() <= 2 && s.split('-').all(|p| p.parse::<u64>().is_ok())
        };
        let (from, to) = (b.from.into_inner(), b.to.into_inner());
        if !range_ok(&from) || !range_ok(&to) {
            return Err(HttpError::bad_request(
                "from / to: an entry id (1700000000000-0) or a time in ms",
            ));
        }
        let filter = ReplayFilter {
            from,
            to,
            event_type: text(b.event_type),
            tenant: text(b.tenant),
            user: text(b.user),
        };
        let mut conn = state.redis.clone();
        let r = replay::replay(&mut conn, &state.keys, &filter, &target, b.dry_run)
            .await
            .map_err(|e| HttpError::redis("replay", e))?;
        tracing::info!(by = %principal.key_id, stream = %r.stream, matched = r.matched, written = r.written, dry_run = r.dry_run, "replay");
        Ok(Json(ReplayResult {
            matched: r.matched,
            written: r.written,
            stream: r.stream,
            group: r.group,
            dry_run: r.dry_run,
        }))
    }

    /// List dead-letter records (oldest first), optionally of one reason.
    #[oai(
        path = "/dead-letter",
        method = "get",
        operation_id = "list_dead_letters"
    )]
    async fn list_dead_letters(
        &self,
        auth: ApiKey,
        reason: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> Result<Json<DeadLetterList>, HttpError> {
        self.state.require(&auth, &[Role::Operator]).await?;
        let mut conn = self.state.redis.clone();
        let limit = limit.0.unwrap_or(100).min(1000) as usize;
        let (depth, records) =
            replay::list_dead_letters(&mut conn, &self.state.keys, reason.0.as_deref(), limit)
                .await
                .map_err(|e| HttpError::redis("dead-letter", e))?;
        Ok(Json(DeadLetterList {
            depth,
            records: records
                .into_iter()
                .map(|d| DeadLetterDoc {
                    id: d.id,
                    source: d.source,
                    source_id: d.source_id,
                    group: d.group,
                    reason: d.reason,
                    uuid: d.uuid,
                    event_type: d.event_type,
                })
                .collect(),
        }))
    }

    /// Redrive dead-letter records (by id, or all of one reason) to their consumer.
    #[oai(
        path = "/dead-letter/redrive",
        method = "post",
        operation_id = "redrive_dead_letters"
    )]
    async fn redrive_dead_letters(
        &self,
        auth: ApiKey,
        body: Json<RedriveRequest>,
    ) -> Result<Json<Vec<RedriveOutcome>>, HttpError> {
        let state = &self.state;
        let principal = state.require(&auth, &[Role::Operator]).await?;
        if body.ids.is_empty() == body.reason.is_none() {
            return Err(HttpError::bad_request("give either `ids` or `reason`"));
        }
        let applier = Applier::new(state.keys.clone(), state.settings.projection.timeline_len);
        let tenants = TenantResolver::from_settings(&state.settings.tenants.rules);
        let ids: Vec<String> = body.0.ids.into_iter().map(JsonString::into_inner).collect();
        let reason = body.0.reason.map(JsonString::into_inner);
        let mut conn = state.redis.clone();
        let out = replay::redrive(
            &mut conn,
            &state.keys,
            &applier,
            &tenants,
            &state.settings.projection.group,
            &ids,
            reason.as_deref(),
        )
        .await
        .map_err(|e| HttpError::redis("redrive", e))?;
        tracing::info!(by = %principal.key_id, records = out.len(), "dead-letter redrive");
        Ok(Json(
            out.into_iter()
                .map(|r| RedriveOutcome {
                    id: r.id,
                    outcome: r.outcome,
                    reason: r.reason,
                })
                .collect(),
        ))
    }

    /// Delete one dead-letter record.
    #[oai(
        path = "/dead-letter/:id",
        method = "delete",
        operation_id = "delete_dead_letter"
    )]
    async fn delete_dead_letter(
        &self,
        auth: ApiKey,
        id: Path<String>,
    ) -> Result<Json<serde_json::Value>, HttpError> {
        let state = &self.state;
        state.require(&auth, &[Role::Operator]).await?;
        let mut conn = state.redis.clone();
        let n = replay::delete_dead_letters(&mut conn, &state.keys, std::slice::from_ref(&id.0))
            .await
            .map_err(|_| HttpError::not_found(format!("no dead-letter record {}", id.0)))?;
        if n == 0 {
            return Err(HttpError::not_found(format!(
                "no dead-letter record {}",
                id.0
            )));
        }
        Ok(Json(serde_json::json!({ "deleted": id.0 })))
    }
}
