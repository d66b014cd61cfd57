//! Reading and verifying the audit hash chain (through `portcullis_audit::AuditTrail`, which
//! flushes the pending batch first, so a change made by the previous call is listed and
//! covered).

use axum::extract::State;
use axum::Json;
use portcullis_audit::AuditTrail;

use crate::auth::AdminCaller;
use portcullis_core::audit::AuditAction;
use portcullis_core::time::unix_seconds;

use crate::dto::{
    end_page, page_size, AuditKeys, AuditPage, AuditPageQuery, AuditRecordView, ChainVerified,
    UnverifiableKey,
};
use crate::errors::{AdminError, Problem};
use crate::extract::QueryParams;
use crate::keys::SharedKeyAdmin;

/// What `POST /audit/verify` needs: the trail and the keys checkpoints are verified with.
#[derive(Clone)]
pub struct AuditVerification {
    pub(crate) trail: AuditTrail,
    /// Without a key manager (admin API tests) checkpoints are reported unverifiable.
    pub(crate) keys: Option<SharedKeyAdmin>,
}

/// List audit records, newest first, decrypted. Needs scope `audit:read`; the read itself
/// is recorded (who read which range) before the records are returned.
#[utoipa::path(
    get, path = "/audit", tag = "audit",
    params(AuditPageQuery),
    responses(
        (status = 200, description = "One page of records, newest first", body = AuditPage),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the audit:read scope", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The read could not be audited, so it is refused", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_audit(
    State(trail): State<AuditTrail>,
    caller: AdminCaller,
    QueryParams(query): QueryParams<AuditPageQuery>,
) -> Result<Json<AuditPage>, AdminError> {
    let limit = page_size(query.limit)?;
    let before = query.before.unwrap_or(i64::MAX);
    let mut records = trail.records_desc(before, limit + 1).await?;
    let next = end_page(&mut records, limit, |r| r.record.seq);
    let seqs = || records.iter().map(|r| r.record.seq);
    trail
        .commit(caller.event(
            unix_seconds(std::time::SystemTime::now()),
            AuditAction::AuditRead,
            "audit",
            serde_json::json!({
                "before": query.before,
                "limit": limit,
                "records": records.len(),
                "first_seq": seqs().min(),
                "last_seq": seqs().max(),
            }),
        ))
        .await?;
    Ok(Json(AuditPage {
        records: records.into_iter().map(AuditRecordView::from).collect(),
        next,
    }))
}

/// The audit data keys records are encrypted with (never key material).
#[utoipa::path(
    get, path = "/audit/keys", tag = "audit",
    responses(
        (status = 200, description = "The keys, oldest first; `active` seals new records", body = AuditKeys),
    )
)]
pub async fn list_audit_keys(
    State(trail): State<AuditTrail>,
    _caller: AdminCaller,
) -> Json<AuditKeys> {
    Json(AuditKeys::from(trail.data_keys()))
}

/// Create a new audit data key and seal new records with it; older keys stay to read older
/// records. Other nodes switch when they see the change.
#[utoipa::path(
    post, path = "/audit/keys/rotate", tag = "audit",
    responses(
        (status = 200, description = "The keys after the rotation", body = AuditKeys),
        (status = 409, description = "Records are not encrypted on this node (`[audit] encrypt = false`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_audit_key(
    State(trail): State<AuditTrail>,
    caller: AdminCaller,
) -> Result<Json<AuditKeys>, AdminError> {
    let Some(kid) = trail
        .rotate_data_key(unix_seconds(std::time::SystemTime::now()))
        .await?
    else {
        return Err(AdminError::Conflict(
            "audit records are not encrypted on this node ([audit] encrypt = false)".into(),
        ));
    };
    trail
        .commit(caller.event(
            unix_seconds(std::time::SystemTime::now()),
            AuditAction::AuditKeyRotated,
            kid,
            serde_json::json!({}),
        ))
        .await?;
    Ok(Json(AuditKeys::from(trail.data_keys())))
}

/// Check the whole chain: every record linked to the one before and unedited, and every
/// signed checkpoint genuine and still matching the record it covers.
#[utoipa::path(
    post, path = "/audit/verify", tag = "audit",
    responses(
        (status = 200, description = "The chain is intact", body = ChainVerified),
        (status = 409, description = "The chain is broken or a checkpoint is forged; detail names the first bad record", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_audit(
    State(state): State<AuditVerification>,
    _caller: AdminCaller,
) -> Result<Json<ChainVerified>, AdminError> {
    state.trail.flush().await;
    // Keys before records: verify_chain stops at the head it sees first, so every checkpoint
    // it checks was signed by a key already in the table when the keys were loaded.
    let keys = match &state.keys {
        Some(keys) => keys.checkpoint_keys().await?,
        None => portcullis_audit::CheckpointKeys::none("this server has no key manager"),
    };
    let report = state.trail.verify(&keys).await?;
    let records_after_checkpoint = report.records_after_checkpoint();
    let checkpoints = report.checkpoints;
    Ok(Json(ChainVerified {
        ok: true,
        records: report.records,
        last_seq: report.last_seq,
        checkpoints_verified: checkpoints.verified,
        checkpoints_unverifiable: checkpoints.unverifiable,
        unverifiable_keys: checkpoints
            .unverifiable_keys
            .into_iter()
            .map(|(kid, reason)| UnverifiableKey { kid, reason })
            .collect(),
        last_checkpoint_seq: checkpoints.last_seq,
        records_after_checkpoint,
        archived_through: report.archived_through,
        anchor_verified: report.anchor_verified,
    }))
}
