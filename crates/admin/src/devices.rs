//! Devices and their certificates (issue #4): registration at manufacturing (one device, or
//! a whole manufacturing list), life-cycle changes, revocation, and the CA's certificates.
//! The work is done by the device registry (`portcullis_ports::DeviceRegistry`, implemented
//! by the device PKI); this module is the authenticated, documented door to it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::pem::armor;
use portcullis_core::serial::parse_serial;
use portcullis_core::Secret;
use portcullis_ports::{DeviceRegistry, NewDevice};
use portcullis_store::{CertificateFilter, IssuedCertificate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AdminCaller;
use crate::dto::{end_page, expose_optional_secret, expose_secret, page_size};
use crate::errors::{AdminError, Problem};
use crate::extract::{JsonBody, QueryParams};

/// Bulk registration takes larger bodies than the rest of the API: the CLI sends a
/// manufacturing list in chunks of 5 000 rows.
pub const IMPORT_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Most rows in one import request.
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// The device registry as the routes hold it.
type Devices = Arc<dyn DeviceRegistry>;

/// A device as the admin API shows it (never its enrollment secret's hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceView {
    pub device_id: String,
    pub model: Option<String>,
    pub attrs: BTreeMap<String, String>,
    /// `registered`, `enrolled`, `suspended`, `revoked` or `decommissioned`.
    pub state: String,
    /// Whether an unused enrollment secret exists.
    pub enrollment_pending: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Shown once: when the device is registered, or resumed from suspension. A `Secret`, so
    /// `Debug` (logs, panics) never prints it; only the JSON answer carries it.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_optional_secret"
    )]
    #[schema(value_type = Option<String>)]
    pub enrollment_secret: Option<Secret>,
}

impl DeviceView {
    fn of(d: &Device) -> Self {
        Self {
            device_id: d.device_id.to_string(),
            model: d.model.clone(),
            attrs: d.attrs.clone(),
            state: d.state.as_str().to_owned(),
            enrollment_pending: d.enrollment_secret.is_some(),
            created_at: d.created_at,
            updated_at: d.updated_at,
            enrollment_secret: None,
        }
    }
}

/// `POST /devices` body (and one row of `POST /devices/import`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDeviceRequest {
    pub device_id: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    #[schema(schema_with = attrs_schema)]
    pub attrs: BTreeMap<String, String>,
}

/// Attribute names as `portcullis_core::device` allows them, at most 32 (values are checked
/// there too).
fn attrs_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .property_names(Some(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .pattern(Some("^[A-Za-z0-9._-]{1,64}$")),
        ))
        .additional_properties(Some(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String)
                .max_length(Some(256))
                .pattern(Some(crate::openapi::PRINTABLE_PATTERN)),
        ))
        .max_properties(Some(32))
        .build()
}

impl RegisterDeviceRequest {
    fn into_new(self) -> Result<NewDevice, AdminError> {
        let new = NewDevice {
            device_id: DeviceId::parse(self.device_id)?,
            model: self.model,
            attrs: self.attrs,
        };
        // The same checks the store insert runs, so a bad row is reported, not fatal.
        Device {
            device_id: new.device_id.clone(),
            model: new.model.clone(),
            attrs: new.attrs.clone(),
            state: DeviceState::Registered,
            enrollment_secret: None,
            created_at: 0,
            updated_at: 0,
        }
        .validate()?;
        Ok(new)
    }
}

/// `POST /devices/import` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportDevicesRequest {
    /// One object per device, each like the body of `POST /devices`. A row that breaks a
    /// rule does not fail the import: it is reported in `rejected`, with its reason.
    #[schema(value_type = Vec<Object>)]
    pub devices: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredDevice {
    pub device_id: String,
    /// Shown once; redacted in `Debug`.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String)]
    pub enrollment_secret: Secret,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedRow {
    /// Position of the row in the request (0-based).
    pub index: usize,
    pub device_id: String,
    pub reason: String,
}

/// What an import did: idempotent, so `existing` rows were left untouched.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    pub registered: Vec<RegisteredDevice>,
    pub existing: Vec<String>,
    pub rejected: Vec<RejectedRow>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DevicePageQuery {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DevicePage {
    pub devices: Vec<DeviceView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// `PATCH /devices/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDeviceRequest {
    /// `suspended`, `registered` (resume a suspended device: a new enrollment secret is
    /// returned) or `decommissioned`. Revocation has its own endpoint.
    pub state: String,
}

/// `POST /devices/{id}/revoke` and `POST /certificates/{serial}/revoke` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// RFC 5280 reason name, e.g. `keyCompromise`. Default `unspecified` (certificates) or
    /// `privilegeWithdrawn` (devices).
    #[serde(default)]
    #[schema(schema_with = revocation_reason_schema)]
    pub reason: Option<String>,
}

/// The reason names `RevokeRequest::reason` accepts (RFC 5280 §5.3.1 CRLReason).
fn revocation_reason_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(
            portcullis_core::device::RevocationReason::ALL.map(|r| r.as_str()),
        ))
        .build()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedDevice {
    pub device: DeviceView,
    /// Serials revoked by this call.
    pub revoked: Vec<String>,
}

/// A certificate as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    pub serial: String,
    pub device_id: Option<String>,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    /// `valid`, `expired` or `revoked`.
    pub status: String,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    /// Only on `GET /certificates/{serial}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
}

impl CertificateView {
    fn of(c: &IssuedCertificate, now: i64, with_pem: bool) -> Self {
        let status = if c.revoked_at.is_some() {
            "revoked"
        } else if now > c.not_after {
            "expired"
        } else {
            "valid"
        };
        Self {
            serial: c.serial.clone(),
            device_id: c.device_id.as_ref().map(ToString::to_string),
            subject: c.subject.clone(),
            not_before: c.not_before,
            not_after: c.not_after,
            sha256: c.sha256.clone(),
            status: status.to_owned(),
            revoked_at: c.revoked_at,
            revocation_reason: c.revocation_reason.map(|r| r.as_str().to_owned()),
            pem: with_pem.then(|| armor("CERTIFICATE", &c.der)),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CertificatePageQuery {
    pub device_id: Option<String>,
    pub revoked: Option<bool>,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CertificatePage {
    pub certificates: Vec<CertificateView>,
    pub next: Option<String>,
}

/// The CA as `GET /ca` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaView {
    /// `generated` or `imported`.
    pub origin: String,
    /// Issuing CA then root, PEM.
    pub chain_pem: String,
    pub issuing_pem: String,
    pub root_pem: String,
    pub crl_url: String,
    pub ocsp_url: String,
}

/// A `{id}` path segment as a device id.
pub(crate) fn device_path(raw: String) -> Result<DeviceId, AdminError> {
    Ok(DeviceId::parse(raw)?)
}

fn reason(raw: Option<String>, default: RevocationReason) -> Result<RevocationReason, AdminError> {
    match raw {
        Some(r) => Ok(RevocationReason::parse(&r)?),
        None => Ok(default),
    }
}

#[utoipa::path(
    post, path = "/devices", tag = "devices",
    request_body = RegisterDeviceRequest,
    responses(
        (status = 201, description = "Registered; the enrollment secret is shown only here", body = DeviceView),
        (status = 400, description = "Invalid id, model or attributes", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The device id is taken", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register_device(
    State(devices): State<Devices>,
    caller: AdminCaller,
    JsonBody(body): JsonBody<RegisterDeviceRequest>,
) -> Result<(StatusCode, Json<DeviceView>), AdminError> {
    let (device, secret) = devices.register(&caller.actor(), body.into_new()?).await?;
    let mut view = DeviceView::of(&device);
    view.enrollment_secret = Some(secret);
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(
    post, path = "/devices/import", tag = "devices",
    request_body = ImportDevicesRequest,
    responses(
        (status = 200, description = "What was registered, what existed, what was rejected", body = ImportReport),
        (status = 400, description = "Not a device list, or too many rows", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn import_devices(
    State(devices): State<Devices>,
    caller: AdminCaller,
    JsonBody(body): JsonBody<ImportDevicesRequest>,
) -> Result<Json<ImportReport>, AdminError> {
    if body.devices.len() > MAX_IMPORT_ROWS {
        return Err(AdminError::BadRequest(format!(
            "at most {MAX_IMPORT_ROWS} devices per request"
        )));
    }
    if !body.devices.iter().all(serde_json::Value::is_object) {
        return Err(AdminError::BadRequest(
            "every row of devices must be a JSON object".into(),
        ));
    }
    let mut rows = Vec::with_capacity(body.devices.len());
    let mut rejected = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, row) in body.devices.into_iter().enumerate() {
        let device_id = row
            .get("device_id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let parsed = serde_json::from_value::<RegisterDeviceRequest>(row)
            .map_err(|e| AdminError::BadRequest(format!("not a device: {e}")))
            .and_then(RegisterDeviceRequest::into_new);
        match parsed {
            Ok(new) if seen.insert(new.device_id.clone()) => rows.push(new),
            Ok(_) => rejected.push(RejectedRow {
                index,
                device_id,
                reason: "duplicate device id in this list".into(),
            }),
            Err(e) => rejected.push(RejectedRow {
                index,
                device_id,
                reason: e.to_string(),
            }),
        }
    }
    let outcome = devices.import(&caller.actor(), rows).await?;
    Ok(Json(ImportReport {
        registered: outcome
            .registered
            .into_iter()
            .map(|(id, secret)| RegisteredDevice {
                device_id: id.to_string(),
                enrollment_secret: secret,
            })
            .collect(),
        existing: outcome.existing.iter().map(ToString::to_string).collect(),
        rejected,
    }))
}

#[utoipa::path(
    get, path = "/devices", tag = "devices", params(DevicePageQuery),
    responses((status = 200, description = "Devices ordered by id", body = DevicePage))
)]
pub async fn list_devices(
    State(devices): State<Devices>,
    _caller: AdminCaller,
    QueryParams(q): QueryParams<DevicePageQuery>,
) -> Result<Json<DevicePage>, AdminError> {
    let limit = page_size(q.limit)?;
    let after = q.after.map(device_path).transpose()?;
    let mut rows = devices.devices(after.as_ref(), limit + 1).await?;
    let next = end_page(&mut rows, limit, |d| d.device_id.to_string());
    Ok(Json(DevicePage {
        devices: rows.iter().map(DeviceView::of).collect(),
        next,
    }))
}

#[utoipa::path(
    get, path = "/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "The device id")),
    responses(
        (status = 200, description = "The device", body = DeviceView),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_device(
    State(devices): State<Devices>,
    _caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<DeviceView>, AdminError> {
    let device = devices.device(&device_path(id)?).await?;
    Ok(Json(DeviceView::of(&device)))
}

#[utoipa::path(
    patch, path = "/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "The device id")),
    request_body(content = Option<UpdateDeviceRequest>, description = "Fields to change; may be omitted"),
    responses(
        (status = 200, description = "The device after the change", body = DeviceView),
        (status = 400, description = "A transition the life cycle does not allow", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_device(
    State(devices): State<Devices>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateDeviceRequest>,
) -> Result<Json<DeviceView>, AdminError> {
    let state = DeviceState::parse(&body.state)?;
    if state == DeviceState::Revoked {
        return Err(AdminError::BadRequest(
            "revoke a device with POST /devices/{id}/revoke".into(),
        ));
    }
    let (device, secret) = devices
        .set_state(&caller.actor(), &device_path(id)?, state)
        .await?;
    let mut view = DeviceView::of(&device);
    view.enrollment_secret = secret;
    Ok(Json(view))
}

#[utoipa::path(
    post, path = "/devices/{id}/revoke", tag = "devices",
    params(("id" = String, Path, description = "The device id")),
    request_body(content = Option<RevokeRequest>, description = "May be omitted"),
    responses(
        (status = 200, description = "The device is revoked with all its certificates", body = RevokedDevice),
        (status = 404, description = "No such device", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_device(
    State(devices): State<Devices>,
    caller: AdminCaller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Result<Json<RevokedDevice>, AdminError> {
    let id = device_path(id)?;
    let reason = reason(body.reason, RevocationReason::PrivilegeWithdrawn)?;
    let revoked = devices.revoke_device(&caller.actor(), &id, reason).await?;
    let device = devices.device(&id).await?;
    Ok(Json(RevokedDevice {
        device: DeviceView::of(&device),
        revoked,
    }))
}

#[utoipa::path(
    get, path = "/certificates", tag = "certificates", params(CertificatePageQuery),
    responses((status = 200, description = "Certificates ordered by serial", body = CertificatePage))
)]
pub async fn list_certificates(
    State(devices): State<Devices>,
    _caller: AdminCaller,
    QueryParams(q): QueryParams<CertificatePageQuery>,
) -> Result<Json<CertificatePage>, AdminError> {
    let limit = page_size(q.limit)?;
    let filter = CertificateFilter {
        device_id: q.device_id.map(device_path).transpose()?,
        after_serial: q
            .after
            .map(|s| {
                parse_serial(&s)
                    .ok_or_else(|| AdminError::BadRequest("after must be a hex serial".into()))
            })
            .transpose()?,
        revoked: q.revoked,
    };
    let mut rows = devices.certificates(&filter, limit + 1).await?;
    let next = end_page(&mut rows, limit, |c| c.serial.clone());
    let now = devices.now();
    Ok(Json(CertificatePage {
        certificates: rows
            .iter()
            .map(|c| CertificateView::of(c, now, false))
            .collect(),
        next,
    }))
}

fn serial_path(raw: &str) -> Result<String, AdminError> {
    parse_serial(raw).ok_or_else(|| {
        AdminError::BadRequest("the serial must be hexadecimal (colons allowed)".into())
    })
}

#[utoipa::path(
    get, path = "/certificates/{serial}", tag = "certificates",
    params(("serial" = String, Path, description = "The serial number in hex (colons allowed)")),
    responses(
        (status = 200, description = "The certificate, with its PEM", body = CertificateView),
        (status = 404, description = "No such certificate", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_certificate(
    State(devices): State<Devices>,
    _caller: AdminCaller,
    Path(serial): Path<String>,
) -> Result<Json<CertificateView>, AdminError> {
    let cert = devices.certificate(&serial_path(&serial)?).await?;
    Ok(Json(CertificateView::of(&cert, devices.now(), true)))
}

#[utoipa::path(
    post, path = "/certificates/{serial}/revoke", tag = "certificates",
    params(("serial" = String, Path, description = "The serial number in hex (colons allowed)")),
    request_body(content = Option<RevokeRequest>, description = "May be omitted"),
    responses(
        (status = 200, description = "The certificate after revocation (a repeated revocation keeps the first)", body = CertificateView),
        (status = 404, description = "No such certificate", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_certificate(
    State(devices): State<Devices>,
    caller: AdminCaller,
    Path(serial): Path<String>,
    JsonBody(body): JsonBody<RevokeRequest>,
) -> Result<Json<CertificateView>, AdminError> {
    let serial = serial_path(&serial)?;
    let reason = reason(body.reason, RevocationReason::Unspecified)?;
    let cert = devices
        .revoke_certificate(&caller.actor(), &serial, reason)
        .await?;
    Ok(Json(CertificateView::of(&cert, devices.now(), false)))
}

#[utoipa::path(
    get, path = "/ca", tag = "certificates",
    responses((status = 200, description = "The CA certificates and revocation URLs", body = CaView))
)]
pub async fn get_ca(State(devices): State<Devices>, _caller: AdminCaller) -> Json<CaView> {
    let ca = devices.ca();
    Json(CaView {
        origin: ca.origin,
        chain_pem: ca.chain_pem,
        issuing_pem: ca.issuing_pem,
        root_pem: ca.root_pem,
        crl_url: ca.crl_url,
        ocsp_url: ca.ocsp_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_secrets_are_in_the_json_but_never_in_debug() {
        let registered = RegisteredDevice {
            device_id: "meter-7".into(),
            enrollment_secret: Secret::new("s3cr3t-enrol"),
        };
        assert!(!format!("{registered:?}").contains("s3cr3t-enrol"));
        let json = serde_json::to_value(&registered).unwrap();
        assert_eq!(json["enrollment_secret"], "s3cr3t-enrol");

        let view = DeviceView {
            device_id: "meter-7".into(),
            model: None,
            attrs: BTreeMap::new(),
            state: "registered".into(),
            enrollment_pending: true,
            created_at: 0,
            updated_at: 0,
            enrollment_secret: Some(Secret::new("s3cr3t-enrol")),
        };
        assert!(!format!("{view:?}").contains("s3cr3t-enrol"));
        assert_eq!(
            serde_json::to_value(&view).unwrap()["enrollment_secret"],
            "s3cr3t-enrol"
        );
    }
}
