//! Rotating a client secret with an overlap, so a fleet can switch secrets without an
//! outage. Drawing, hashing and sealing the secret are the registry's
//! (`ClientRegistry::rotate_secret`); this module bounds the overlap and audits the change.

use axum::extract::State;
use axum::Json;
use portcullis_core::audit::AuditAction;

use crate::auth::AdminCaller;
use crate::clients::audit_change;
use crate::dto::{RotateSecretRequest, RotatedSecret};
use crate::errors::{AdminError, Problem};
use crate::extract::{ClientIdPath, JsonBody};
use crate::ClientsState;

/// Default overlap during which a rotated-out secret is still accepted: one day, long enough
/// for a fleet to pick up the new secret on its next configuration pull.
pub const DEFAULT_OVERLAP_SECS: u32 = 86_400;
/// Longest overlap an operator may ask for: 30 days.
pub const MAX_OVERLAP_SECS: u32 = 30 * 86_400;

/// Issue a new secret; the previous one keeps working for `overlap_secs`.
///
/// `client_secret_jwt` clients get no overlap: their assertions are checked against the one
/// sealed copy of the secret, which is replaced here, so the old secret stops working for JWT
/// authentication at once. The answer says so (`old_secret_expires_at` = now) rather than
/// promising an overlap that cannot be honoured.
#[utoipa::path(
    post, path = "/clients/{id}/rotate-secret", tag = "clients",
    params(("id" = String, Path, description = "The client id")),
    request_body(content = Option<RotateSecretRequest>, description = "May be omitted"),
    responses(
        (status = 200, description = "The new secret, shown this once", body = RotatedSecret),
        (status = 400, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The client authenticates with a key and has no secret", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_secret(
    State(state): State<ClientsState>,
    caller: AdminCaller,
    ClientIdPath(id): ClientIdPath,
    JsonBody(request): JsonBody<RotateSecretRequest>,
) -> Result<Json<RotatedSecret>, AdminError> {
    let overlap = request.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(AdminError::BadRequest(format!(
            "overlap_secs must be at most {MAX_OVERLAP_SECS} (30 days)"
        )));
    }
    let rotated = state.clients.rotate_secret(&id, overlap).await?;
    audit_change(
        &state,
        &caller,
        AuditAction::ClientSecretRotated,
        &id,
        &["client_secret"],
    )
    .await?;
    Ok(Json(RotatedSecret {
        client_id: id.to_string(),
        client_secret: rotated.secret,
        old_secret_expires_at: rotated.old_secret_expires_at,
    }))
}
