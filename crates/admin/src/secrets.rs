//! The life of a client secret: drawn at random (never chosen), HMACed under the server
//! pepper for storage, sealed under the master key for `client_secret_jwt`, and rotated with
//! an overlap so a fleet can switch secrets without an outage.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use portcullis_core::client::{AuthMethod, Client};
use portcullis_core::{Secret, SecretHash, UnixTime};
use portcullis_keys::random::random_array;
use portcullis_keys::software::seal;
use portcullis_oauth::AuthServer;

use crate::auth::AdminCaller;
use crate::clients::{audit_change, load_client, store_update};
use crate::dto::{RotateSecretRequest, RotatedSecret};
use crate::errors::{AdminError, Problem};
use crate::extract::{ClientIdPath, JsonBody};

/// Default overlap during which a rotated-out secret is still accepted: one day, long enough
/// for a fleet to pick up the new secret on its next configuration pull.
pub const DEFAULT_OVERLAP_SECS: u32 = 86_400;
/// Longest overlap an operator may ask for: 30 days.
pub const MAX_OVERLAP_SECS: u32 = 30 * 86_400;

/// Draws a fresh 256-bit secret.
pub(crate) fn generate_secret() -> Result<Secret, AdminError> {
    Ok(Secret::from_random_bytes(&random_array::<32>()?))
}

/// Seals the secret of a `client_secret_jwt` client under the master key, bound to its id
/// (as AAD) so a sealed secret copied onto another client does not open.
pub(crate) fn seal_secret(
    server: &AuthServer,
    client: &Client,
    secret: &Secret,
) -> Result<Option<Vec<u8>>, AdminError> {
    if client.auth_method != AuthMethod::ClientSecretJwt {
        return Ok(None);
    }
    Ok(Some(seal(
        &server.master,
        secret.expose().as_bytes(),
        client.client_id.as_str().as_bytes(),
    )?))
}

/// The hashes to keep after a rotation at `now`: every earlier hash gets a deadline no later
/// than `now + overlap` (an overlap of 0 thus ends all of them at once), hashes whose
/// deadline has passed are dropped, and the new hash comes first with no deadline.
fn rotated_hashes(
    old: &[SecretHash],
    new: SecretHash,
    now: UnixTime,
    overlap: u32,
) -> Vec<SecretHash> {
    let deadline = now + i64::from(overlap);
    let mut hashes = vec![new];
    for h in old {
        let expires_at = h.expires_at.map_or(deadline, |t| t.min(deadline));
        if expires_at > now {
            hashes.push(SecretHash {
                mac: h.mac.clone(),
                expires_at: Some(expires_at),
            });
        }
    }
    hashes
}

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
    State(server): State<Arc<AuthServer>>,
    caller: AdminCaller,
    ClientIdPath(id): ClientIdPath,
    JsonBody(request): JsonBody<RotateSecretRequest>,
) -> Result<Json<RotatedSecret>, AdminError> {
    let mut overlap = request.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(AdminError::BadRequest(format!(
            "overlap_secs must be at most {MAX_OVERLAP_SECS} (30 days)"
        )));
    }
    let mut client = load_client(&server, &id).await?;
    if !client.auth_method.uses_secret() {
        return Err(AdminError::Conflict(format!(
            "client '{id}' uses {} and has no secret; update its jwks, jwks_uri or certificate match instead",
            client.auth_method.as_str()
        )));
    }
    if client.auth_method == AuthMethod::ClientSecretJwt {
        overlap = 0;
    }
    let now = server.now();
    let secret = generate_secret()?;
    let new_hash = SecretHash::of(&server.pepper, &secret, None);
    client.secret_hashes = rotated_hashes(&client.secret_hashes, new_hash, now, overlap);
    client.sealed_secret = seal_secret(&server, &client, &secret)?;
    client.updated_at = now;
    store_update(&server, &client).await?;
    audit_change(
        &server,
        &caller,
        "client.secret_rotated",
        &id,
        &["client_secret"],
    );
    Ok(Json(RotatedSecret {
        client_id: id.to_string(),
        client_secret: secret,
        old_secret_expires_at: now + i64::from(overlap),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(mac: &str, expires_at: Option<UnixTime>) -> SecretHash {
        SecretHash {
            mac: mac.into(),
            expires_at,
        }
    }

    #[test]
    fn rotation_gives_the_current_hash_a_deadline_and_the_new_one_none() {
        let out = rotated_hashes(&[hash("old", None)], hash("new", None), 100, 50);
        assert_eq!(out, vec![hash("new", None), hash("old", Some(150))]);
    }

    #[test]
    fn rotation_drops_expired_hashes_and_caps_pending_ones() {
        let old = [
            hash("cur", None),
            hash("prev", Some(500)),
            hash("dead", Some(90)),
        ];
        let out = rotated_hashes(&old, hash("new", None), 100, 50);
        assert_eq!(
            out,
            vec![
                hash("new", None),
                hash("cur", Some(150)),
                hash("prev", Some(150))
            ]
        );
    }

    #[test]
    fn zero_overlap_leaves_only_the_new_hash() {
        let out = rotated_hashes(
            &[hash("cur", None), hash("prev", Some(500))],
            hash("new", None),
            100,
            0,
        );
        assert_eq!(out, vec![hash("new", None)]);
    }

    #[test]
    fn generated_secrets_carry_256_bits_in_base64url() {
        assert_eq!(generate_secret().unwrap().expose().len(), 43);
    }
}
