//! Archiving old audit records (`portcullis audit archive`): two calls, so nothing is removed
//! before the segment is safely on the operator's disk.
//!
//! 1. `GET /audit/archive?before=UNIX` (`audit:read`) builds the segment of the oldest live
//!    records up to the newest checkpoint taken before `before`, signed, and returns the file
//!    (nothing changes in the store; the read is audited).
//! 2. `POST /audit/archive/purge` (`portcullis:admin`) names that segment (range, last hash,
//!    the file's SHA-256) once the CLI has written and verified it; the store records the
//!    anchor and removes exactly those records, refusing if the chain no longer matches.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_audit::archive::build_segment;
use portcullis_audit::AuditTrail;
use portcullis_core::audit::AuditAction;
use portcullis_core::time::unix_seconds;
use portcullis_keys::KeyRing;
use portcullis_store::{AuditArchiveAnchor, Store};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AdminCaller;
use crate::errors::{AdminError, Problem};
use crate::extract::{JsonBody, QueryParams};

/// The media type of an archive segment file.
pub const SEGMENT_MEDIA_TYPE: &str = "application/vnd.portcullis.audit-archive";

/// What archiving works with.
#[derive(Clone)]
pub struct ArchiveState {
    pub(crate) trail: AuditTrail,
    pub(crate) store: Arc<dyn Store>,
    /// Signs segment manifests (the token-signing keys, as checkpoints).
    pub(crate) keys: Arc<KeyRing>,
}

/// Which records to archive.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ArchiveQuery {
    /// Unix seconds: archive records up to the newest checkpoint recorded before this time.
    pub before: i64,
}

/// The segment the CLI wrote and verified, to be removed from the live store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    pub first_seq: i64,
    pub last_seq: i64,
    /// Chain hash (hex) of `last_seq`, as the segment's manifest states it.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub last_hash: String,
    pub checkpoint_seq: i64,
    /// SHA-256 (hex) of the segment file.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub segment_sha256: String,
}

/// What a purge removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Purged {
    /// Records removed from the live store.
    pub removed: u64,
    /// The live chain now starts after this record.
    pub archived_through: i64,
}

/// Build the archive segment of the oldest records (the store is not changed).
#[utoipa::path(
    get, path = "/audit/archive", tag = "audit",
    params(ArchiveQuery),
    responses(
        (status = 200, description = "The signed segment file", content_type = "application/vnd.portcullis.audit-archive", body = String),
        (status = 403, description = "The token lacks the audit:read scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No checkpoint was recorded before `before`: nothing can be archived with proof", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_archive(
    State(state): State<ArchiveState>,
    caller: AdminCaller,
    QueryParams(query): QueryParams<ArchiveQuery>,
) -> Result<Response, AdminError> {
    state.trail.flush().await;
    let now = unix_seconds(std::time::SystemTime::now());
    let segment = build_segment(
        state.store.as_ref(),
        &state.keys.active(),
        query.before,
        now,
    )
    .await?
    .ok_or_else(|| {
        AdminError::Conflict(
            "no checkpoint over live records was recorded before that time: nothing can be \
                 archived with proof (checkpoints are taken every [audit] \
                 checkpoint_interval_secs)"
                .into(),
        )
    })?;
    let m = &segment.manifest;
    state
        .trail
        .commit(caller.event(
            now,
            AuditAction::AuditRead,
            "audit",
            serde_json::json!({
                "archive": true,
                "first_seq": m.first_seq,
                "last_seq": m.last_seq,
                "records": m.records,
            }),
        ))
        .await?;
    Ok(([(header::CONTENT_TYPE, SEGMENT_MEDIA_TYPE)], segment.bytes).into_response())
}

/// Remove an archived segment's records from the live store, keeping its anchor.
#[utoipa::path(
    post, path = "/audit/archive/purge", tag = "audit",
    request_body = PurgeRequest,
    responses(
        (status = 200, description = "The records are removed; the chain continues from the anchor", body = Purged),
        (status = 409, description = "The live chain does not start with that segment, or its last record differs", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn purge_archived(
    State(state): State<ArchiveState>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<PurgeRequest>,
) -> Result<Json<Purged>, AdminError> {
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex64(&request.last_hash) || !hex64(&request.segment_sha256) {
        return Err(AdminError::BadRequest(
            "last_hash and segment_sha256 are 64 hex digits".into(),
        ));
    }
    if request.first_seq < 1
        || request.last_seq < request.first_seq
        || request.checkpoint_seq <= request.last_seq
    {
        return Err(AdminError::BadRequest(
            "need 1 <= first_seq <= last_seq < checkpoint_seq".into(),
        ));
    }
    state.trail.flush().await;
    let now = unix_seconds(std::time::SystemTime::now());
    let anchor = AuditArchiveAnchor {
        seq: request.last_seq,
        hash: request.last_hash.to_ascii_lowercase(),
        first_seq: request.first_seq,
        checkpoint_seq: request.checkpoint_seq,
        segment_sha256: request.segment_sha256.to_ascii_lowercase(),
        archived_at: now,
    };
    let removed = portcullis_audit::archive::purge(state.store.as_ref(), &anchor).await?;
    state
        .trail
        .commit(caller.event(
            now,
            AuditAction::AuditArchived,
            format!("{}-{}", anchor.first_seq, anchor.seq),
            serde_json::json!({
                "first_seq": anchor.first_seq,
                "last_seq": anchor.seq,
                "removed": removed,
                "segment_sha256": anchor.segment_sha256,
            }),
        ))
        .await?;
    Ok(Json(Purged {
        removed,
        archived_through: anchor.seq,
    }))
}
