//! Archiving old audit records (`portcullis audit archive`): two calls, so nothing is removed
//! before the segment is safely on the operator's disk.
//!
//! 1. `GET /audit/archive?before=UNIX` (`audit:read`) builds the segment of the oldest live
//!    records up to the newest checkpoint taken before `before`, signed, and returns the file
//!    (nothing changes in the store; the read is audited).
//! 2. `POST /audit/archive/purge` (`portcullis:admin`) names that segment by its signed
//!    manifest once the CLI has written and verified it; the node checks the manifest's
//!    signature and that the live records hash to what it signed, records the anchor, and
//!    removes exactly those records. Nothing in the request is believed: without a segment
//!    this deployment built (step 1, `audit:read`), an administrator cannot remove records.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_audit::archive::{anchor_for_purge, build_segment};
use portcullis_audit::export::{delivered_through, StartAt};
use portcullis_audit::{AuditError, AuditTrail, CheckpointKeys};
use portcullis_core::audit::AuditAction;
use portcullis_core::time::unix_seconds;
use portcullis_keys::KeyRing;
use portcullis_store::Store;
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
    /// The node's `[[audit.export]]`s: records they have not delivered stay live.
    pub(crate) exports: Arc<[(String, StartAt)]>,
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
    /// The segment file's second line: its manifest, a JWS this deployment signed over the
    /// range, the last hash and the records' SHA-256.
    #[schema(max_length = 8192)]
    pub manifest: String,
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
    let held = delivered_through(state.store.as_ref(), &state.exports)
        .await
        .map_err(AuditError::from)?;
    let through = held.as_ref().map_or(i64::MAX, |(seq, _)| *seq);
    let segment = build_segment(
        state.store.as_ref(),
        &state.keys.active(),
        query.before,
        through,
        now,
    )
    .await?
    .ok_or_else(|| {
        AdminError::Conflict(match &held {
            Some((seq, export)) => format!(
                "no checkpoint over live records up to record {seq} was recorded before that \
                 time: the audit export '{export}' has delivered only that far, and records \
                 it has not sent stay live (checkpoints are taken every [audit] \
                 checkpoint_interval_secs)"
            ),
            None => "no checkpoint over live records was recorded before that time: nothing \
                     can be archived with proof (checkpoints are taken every [audit] \
                     checkpoint_interval_secs)"
                .into(),
        })
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
        (status = 409, description = "The manifest is not one this deployment signed, or the live chain does not start with that segment's records", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn purge_archived(
    State(state): State<ArchiveState>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<PurgeRequest>,
) -> Result<Json<Purged>, AdminError> {
    if request.manifest.is_empty() || request.manifest.len() > 8192 {
        return Err(AdminError::BadRequest(
            "manifest is the segment file's second line (a JWS of at most 8 KiB)".into(),
        ));
    }
    state.trail.flush().await;
    let now = unix_seconds(std::time::SystemTime::now());
    let keys = CheckpointKeys::from_jwks(state.keys.jwks_json().as_bytes(), "the node's JWKS")
        .map_err(AdminError::Internal)?;
    let anchor = anchor_for_purge(state.store.as_ref(), &request.manifest, &keys, now).await?;
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
