//! The OpenAPI 3.1 document of the admin API, generated from the handlers' `#[utoipa::path]`
//! annotations so that it cannot drift from the code it describes.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::dto::{
    AuditPage, AuditRecordView, ChainVerified, ClientPage, ClientView, CreateClientRequest,
    CreatedClient, RotateSecretRequest, RotatedSecret, UpdateClientRequest,
};
use crate::errors::Problem;

/// Name of the bearer security scheme in the document (repeated as a literal in the
/// `#[openapi(security(...))]` attribute, which accepts only literals).
const BEARER: &str = "bearer";

/// Registers the bearer scheme that every operation but this document's own requires.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "An access token of this server carrying the portcullis:admin scope.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The admin API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis admin API",
        description = "Manage machine clients, devices and their certificates, signing keys, and read the audit chain. Errors are RFC 9457 problem+json."
    ),
    servers((url = "/admin/v1")),
    paths(
        crate::clients::create_client,
        crate::clients::list_clients,
        crate::clients::get_client,
        crate::clients::update_client,
        crate::secrets::rotate_secret,
        crate::clients::delete_client,
        crate::audit::list_audit,
        crate::audit::verify_audit,
        crate::keys::list_keys,
                crate::keys::rotate_keys,
        crate::keys::retire_key,
        crate::devices::register_device,
        crate::devices::import_devices,
        crate::devices::list_devices,
        crate::devices::get_device,
        crate::devices::update_device,
        crate::devices::revoke_device,
        crate::devices::list_certificates,
        crate::devices::get_certificate,
        crate::devices::revoke_certificate,
        crate::devices::get_ca,
        openapi_document,
    ),
    components(schemas(
        CreateClientRequest, UpdateClientRequest, RotateSecretRequest, ClientView, CreatedClient,
        RotatedSecret, ClientPage, AuditRecordView, AuditPage, ChainVerified, Problem,
        crate::dto::UnverifiableKey,
        crate::keys::KeyView, crate::keys::RotateKeysRequest,
        crate::devices::DeviceView, crate::devices::RegisterDeviceRequest,
        crate::devices::ImportDevicesRequest, crate::devices::RegisteredDevice,
        crate::devices::RejectedRow, crate::devices::ImportReport, crate::devices::DevicePage,
        crate::devices::UpdateDeviceRequest, crate::devices::RevokeRequest,
        crate::devices::RevokedDevice, crate::devices::CertificateView,
        crate::devices::CertificatePage, crate::devices::CaView,
    )),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    tags(
        (name = "clients", description = "Registered machine clients"),
        (name = "audit", description = "The audit hash chain"),
        (name = "keys", description = "Signing keys and their rotation"),
        (name = "devices", description = "Devices registered at manufacturing and their life cycle"),
        (name = "certificates", description = "Certificates the device CA issued, and the CA itself"),
        (name = "meta", description = "This document"),
    )
)]
pub struct AdminApi;

/// This OpenAPI document; needs no token, so tooling can discover the API.
#[utoipa::path(
    get, path = "/openapi.json", tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_document() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminApi::openapi())
}
