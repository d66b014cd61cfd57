//! A device's symmetric keys (issue #12), for sensors that cannot do public-key cryptography:
//! create one, rotate with an overlap, list them (never their material), delete one. Drawing,
//! sealing, limits and auditing are the device registry's (`DeviceRegistry::create_device_key`
//! and friends, implemented by the device PKI); this module is the authenticated, documented
//! door to them. An answer that carries a key is sent with `Cache-Control: no-store`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::Json;
use portcullis_core::device_key::{DeviceKeyId, DeviceKeyInfo, MAX_ROTATION_OVERLAP_SECS};
use portcullis_core::Secret;
use portcullis_ports::DeviceRegistry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AdminCaller;
use crate::devices::device_path;
use crate::dto::expose_secret;
use crate::errors::{AdminError, Problem};
use crate::extract::JsonBody;

/// The device registry as the routes hold it.
type Devices = Arc<dyn DeviceRegistry>;

/// Default overlap of a key rotation: one day, as for client secrets, so a fleet can pick up
/// the new key on its next configuration pull.
pub const DEFAULT_OVERLAP_SECS: u32 = 86_400;

/// The headers of an answer that carries key material (RFC 9111 §5.2.2.5).
type NoStore = [(HeaderName, HeaderValue); 2];

/// `201` answer to `POST /devices/{id}/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedDeviceKey {
    pub device_id: String,
    pub key_id: String,
    /// The key: 32 random bytes, base64url without padding. Shown this once: the server keeps
    /// it only sealed. Redacted in `Debug`.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String)]
    pub key: Secret,
    pub created_at: i64,
}

/// Answer to `POST /devices/{id}/keys/rotate`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedDeviceKey {
    pub device_id: String,
    pub key_id: String,
    /// The new key, base64url without padding, shown this once.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String)]
    pub key: Secret,
    pub created_at: i64,
    /// Unix time at which the device's older keys stop being accepted (unless they ended
    /// earlier already).
    pub others_expire_at: i64,
}

/// `POST /devices/{id}/keys/rotate` body; may be omitted.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateDeviceKeyRequest {
    /// How long the older keys stay valid, in seconds; default 86400 (one day), at most
    /// 2592000 (30 days); 0 ends them at once.
    pub overlap_secs: Option<u32>,
}

/// One key as listed: never its material.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceKeyView {
    pub key_id: String,
    pub created_at: i64,
    /// When the key stops being accepted (set by a rotation); `null`: no deadline.
    pub expires_at: Option<i64>,
}

impl DeviceKeyView {
    fn of(info: &DeviceKeyInfo) -> Self {
        Self {
            key_id: info.key_id.to_string(),
            created_at: info.created_at,
            expires_at: info.expires_at,
        }
    }
}

/// Answer to `GET /devices/{id}/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceKeyList {
    pub device_id: String,
    /// Oldest first, expired keys included.
    pub keys: Vec<DeviceKeyView>,
}

#[utoipa::path(
    post, path = "/devices/{id}/keys", tag = "devices",
    params(("id" = String, Path, description = "The device id")),
    responses(
        (status = 201, description = "A new key; its material is shown only here", body = CreatedDeviceKey,
         headers(("Cache-Control" = String, description = "no-store"))),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The device is revoked or decommissioned, or holds the most usable keys it may", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_device_key(
    State(devices): State<Devices>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<(StatusCode, NoStore, Json<CreatedDeviceKey>), AdminError> {
    let id = device_path(id)?;
    let (info, key) = devices.create_device_key(&caller.actor(), &id).await?;
    Ok((
        StatusCode::CREATED,
        portcullis_http::NO_STORE,
        Json(CreatedDeviceKey {
            device_id: info.device_id.to_string(),
            key_id: info.key_id.to_string(),
            key,
            created_at: info.created_at,
        }),
    ))
}

#[utoipa::path(
    post, path = "/devices/{id}/keys/rotate", tag = "devices",
    params(("id" = String, Path, description = "The device id")),
    request_body(content = Option<RotateDeviceKeyRequest>, description = "May be omitted"),
    responses(
        (status = 200, description = "A new key, shown only here; the older keys expire after the overlap", body = RotatedDeviceKey,
         headers(("Cache-Control" = String, description = "no-store"))),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The device is revoked or decommissioned, or would hold more usable keys than it may", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_device_key(
    State(devices): State<Devices>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RotateDeviceKeyRequest>,
) -> Result<(NoStore, Json<RotatedDeviceKey>), AdminError> {
    let id = device_path(id)?;
    let overlap = request.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_ROTATION_OVERLAP_SECS {
        return Err(AdminError::BadRequest(format!(
            "overlap_secs must be at most {MAX_ROTATION_OVERLAP_SECS} (30 days)"
        )));
    }
    let (info, key) = devices
        .rotate_device_key(&caller.actor(), &id, overlap)
        .await?;
    Ok((
        portcullis_http::NO_STORE,
        Json(RotatedDeviceKey {
            device_id: info.device_id.to_string(),
            key_id: info.key_id.to_string(),
            key,
            // The registry ends the older keys `overlap` after the moment it creates the new.
            others_expire_at: info.created_at + i64::from(overlap),
            created_at: info.created_at,
        }),
    ))
}

#[utoipa::path(
    get, path = "/devices/{id}/keys", tag = "devices",
    params(("id" = String, Path, description = "The device id")),
    responses(
        (status = 200, description = "The device's keys, oldest first, without their material", body = DeviceKeyList),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_device_keys(
    State(devices): State<Devices>,
    _caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<DeviceKeyList>, AdminError> {
    let id = device_path(id)?;
    let keys = devices.device_keys(&id).await?;
    Ok(Json(DeviceKeyList {
        device_id: id.to_string(),
        keys: keys.iter().map(DeviceKeyView::of).collect(),
    }))
}

#[utoipa::path(
    delete, path = "/devices/{id}/keys/{key_id}", tag = "devices",
    params(
        ("id" = String, Path, description = "The device id"),
        ("key_id" = String, Path, description = "The key id"),
    ),
    responses(
        (status = 204, description = "Deleted: the device can no longer use the key"),
        (status = 404, description = "No such device, or it has no such key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_device_key(
    State(devices): State<Devices>,
    caller: AdminCaller,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let id = device_path(id)?;
    let key_id = DeviceKeyId::parse(key_id)?;
    if devices
        .delete_device_key(&caller.actor(), &id, &key_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::NotFound(format!(
            "device {id} has no key {key_id}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    fn secret() -> Secret {
        Secret::new("s3cr3t-device-key")
    }

    #[test]
    fn keys_are_in_the_json_but_never_in_debug() {
        let created = CreatedDeviceKey {
            device_id: "meter-7".into(),
            key_id: "k0011aabb".into(),
            key: secret(),
            created_at: 1,
        };
        assert!(!format!("{created:?}").contains("s3cr3t"));
        let json = serde_json::to_value(&created).unwrap();
        assert_eq!(json["key"], "s3cr3t-device-key");
        assert_eq!(json["key_id"], "k0011aabb");
        let rotated = RotatedDeviceKey {
            device_id: "meter-7".into(),
            key_id: "k0011aabb".into(),
            key: secret(),
            created_at: 1,
            others_expire_at: 2,
        };
        assert!(!format!("{rotated:?}").contains("s3cr3t"));
        assert_eq!(
            serde_json::to_value(&rotated).unwrap()["others_expire_at"],
            2
        );
    }

    #[test]
    fn a_listed_key_shows_its_deadline_as_null_or_a_time() {
        let info = DeviceKeyInfo {
            device_id: portcullis_core::device::DeviceId::parse("d").unwrap(),
            key_id: DeviceKeyId::parse("k1").unwrap(),
            created_at: 10,
            expires_at: None,
        };
        let json = serde_json::to_value(DeviceKeyView::of(&info)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"key_id": "k1", "created_at": 10, "expires_at": null})
        );
    }

    #[test]
    fn answers_with_a_key_are_not_stored_by_caches() {
        let created = CreatedDeviceKey {
            device_id: "d".into(),
            key_id: "k1".into(),
            key: secret(),
            created_at: 1,
        };
        let response = (
            StatusCode::CREATED,
            portcullis_http::NO_STORE,
            Json(created),
        )
            .into_response();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["pragma"], "no-cache");
    }

    #[test]
    fn the_rotation_body_may_be_empty_and_refuses_unknown_fields() {
        let empty: RotateDeviceKeyRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.overlap_secs, None);
        assert!(serde_json::from_str::<RotateDeviceKeyRequest>(r#"{"overlap":5}"#).is_err());
        assert!(serde_json::from_str::<RotateDeviceKeyRequest>(r#"{"overlap_secs":-1}"#).is_err());
    }
}
