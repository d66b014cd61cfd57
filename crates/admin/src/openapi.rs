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
                "An access token of this server carrying the portcullis:admin scope (audit:read to read audit records).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The input rules the domain enforces, stated in the document so that clients (and
/// generators such as schemathesis) know what a valid request is: identifier syntax of path
/// parameters, the page size range, and the answers every protected operation can give
/// besides its own (401 without a valid token, 403 without the scope, 503 when the store or
/// the audit log cannot serve, 500).
struct InputRules;

/// The syntax of client ids and key ids (`portcullis_core::ids`).
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:@-]{1,128}$";
/// The syntax of device ids (`portcullis_core::device::DeviceId`).
pub const DEVICE_ID_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
/// The syntax of device key ids (`portcullis_core::device_key::DeviceKeyId`).
/// A scope token (RFC 6749 §3.3: printable ASCII but space, `"` and `\\`).
pub const SCOPE_PATTERN: &str = "^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,256}$";
pub const KEY_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// A certificate serial as typed: hex digits, optional colons and `0x` prefix.
const SERIAL_PATTERN: &str = "^(0[xX])?:*[0-9A-Fa-f][0-9A-Fa-f:]{0,127}$";
/// Text without control characters (C0, DEL, C1), as names, models and attribute values are.
pub const PRINTABLE_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// A client name: printable, and not only spaces.
const NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// One rule on a property of a request body.
enum Rule {
    /// A string of this syntax, optionally bounded in characters.
    Text {
        pattern: &'static str,
        min: Option<usize>,
        max: Option<usize>,
    },
    /// An integer of at most this.
    AtMost(u32),
}

/// The single-field rules of the request bodies: (schema, property, rule), each the document's
/// statement of a check the domain makes (`Client::validate`, the id types, `Device::validate`,
/// the secret- and device-key-rotation bounds).
fn property_rules() -> [(&'static str, &'static str, Rule); 9] {
    let name = || Rule::Text {
        pattern: NAME_PATTERN,
        min: Some(1),
        max: Some(200),
    };
    let pattern = |pattern| Rule::Text {
        pattern,
        min: None,
        max: None,
    };
    [
        ("CreateClientRequest", "name", name()),
        ("UpdateClientRequest", "name", name()),
        ("CreateClientRequest", "client_id", pattern(ID_PATTERN)),
        ("RotateKeysRequest", "compromised", pattern(ID_PATTERN)),
        (
            "RegisterDeviceRequest",
            "device_id",
            pattern(DEVICE_ID_PATTERN),
        ),
        (
            "RegisterDeviceRequest",
            "model",
            Rule::Text {
                pattern: PRINTABLE_PATTERN,
                min: None,
                max: Some(128),
            },
        ),
        (
            "UpdateDeviceRequest",
            "state",
            pattern("^(suspended|registered|decommissioned)$"),
        ),
        (
            "RotateSecretRequest",
            "overlap_secs",
            Rule::AtMost(crate::secrets::MAX_OVERLAP_SECS),
        ),
        (
            "RotateDeviceKeyRequest",
            "overlap_secs",
            Rule::AtMost(portcullis_core::device_key::MAX_ROTATION_OVERLAP_SECS),
        ),
    ]
}

fn string_with_pattern(pattern: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .into()
}

fn problem(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            crate::errors::PROBLEM_JSON,
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                .build(),
        )
        .into()
}

/// Applies [`property_rules`] to the component schemas.
fn single_field_rules(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    for (schema, property, rule) in property_rules() {
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
            continue;
        };
        let Some(RefOr::T(Schema::Object(field))) = object.properties.get_mut(property) else {
            continue;
        };
        match rule {
            Rule::Text { pattern, min, max } => {
                field.pattern = Some(pattern.to_owned());
                field.min_length = min;
                field.max_length = max;
            }
            Rule::AtMost(max) => field.maximum = Some(max.into()),
        }
    }
}

/// The rules between fields of `CreateClientRequest`, as JSON Schema 2020-12 `if`/`then`
/// (OpenAPI 3.1), added as raw keywords since utoipa has no builder for them: a
/// `private_key_jwt` client needs its keys (`jwks` or `jwks_uri`); a `tls_client_auth` client
/// names exactly one certificate attribute, and no other client names any.
fn cross_field_rules(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    const TLS_FIELDS: [&str; 5] = [
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    ];
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(create))) = components.schemas.get_mut("CreateClientRequest")
    else {
        return;
    };
    let method_is = |method: &str| {
        serde_json::json!({
            "properties": {"auth_method": {"const": method}},
            "required": ["auth_method"]
        })
    };
    let one_tls_field: Vec<serde_json::Value> = TLS_FIELDS
        .iter()
        .map(|f| serde_json::json!({"properties": {*f: {"type": "string"}}, "required": [f]}))
        .collect();
    let no_tls_field: serde_json::Map<String, serde_json::Value> = TLS_FIELDS
        .iter()
        .map(|f| ((*f).to_owned(), serde_json::json!({"type": "null"})))
        .collect();
    let rules = serde_json::json!([
        {
            "if": method_is("private_key_jwt"),
            "then": {"anyOf": [
                {"properties": {"jwks": {"type": "object"}}, "required": ["jwks"]},
                {"properties": {"jwks_uri": {"type": "string"}}, "required": ["jwks_uri"]}
            ]}
        },
        {
            "if": method_is("tls_client_auth"),
            "then": {"oneOf": one_tls_field},
            "else": {"properties": no_tls_field}
        }
    ]);
    create
        .extensions
        .get_or_insert_with(Default::default)
        .insert("allOf".to_owned(), rules);
}

impl Modify for InputRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        single_field_rules(openapi);
        cross_field_rules(openapi);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let id_pattern = if path.starts_with("/devices") {
                DEVICE_ID_PATTERN
            } else {
                ID_PATTERN
            };
            // Certificate pages continue after a serial.
            let after_pattern = if path.starts_with("/certificates") {
                SERIAL_PATTERN
            } else {
                id_pattern
            };
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.patch.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    let schema = match (&parameter.parameter_in, parameter.name.as_str()) {
                        (ParameterIn::Path, "id") => string_with_pattern(id_pattern),
                        (ParameterIn::Path, "kid") => string_with_pattern(ID_PATTERN),
                        (ParameterIn::Path, "key_id") => string_with_pattern(KEY_ID_PATTERN),
                        (ParameterIn::Path, "serial") => string_with_pattern(SERIAL_PATTERN),
                        (ParameterIn::Query, "after") => string_with_pattern(after_pattern),
                        (ParameterIn::Query, "device_id") => string_with_pattern(DEVICE_ID_PATTERN),
                        (ParameterIn::Query, "limit") => utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::Integer)
                            .minimum(Some(1))
                            .maximum(Some(crate::dto::MAX_PAGE))
                            .into(),
                        _ => continue,
                    };
                    parameter.schema = Some(schema);
                }
                let public = operation
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|r| *r == Default::default()));
                if public {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in [
                    ("400", "The request is malformed or breaks a domain rule"),
                    ("401", "No bearer token, or one that is not active"),
                    ("403", "The token lacks the scope the operation needs (portcullis:admin; audit:read for audit records)"),
                    ("500", "The server could not complete the request"),
                    ("503", "The store or the audit log cannot serve now; retry"),
                ] {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(description));
                }
            }
        }
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
        crate::audit::list_audit_keys,
        crate::audit_stream::stream_audit,
        crate::audit_archive::get_archive,
        crate::audit_archive::purge_archived,
        crate::alerts::list_alerts,
        crate::alerts::get_alert,
        crate::alerts::ack_alert,
        crate::audit::rotate_audit_key,
        crate::keys::list_keys,
                crate::keys::rotate_keys,
        crate::keys::retire_key,
        crate::devices::register_device,
        crate::devices::import_devices,
        crate::devices::list_devices,
        crate::devices::get_device,
        crate::devices::update_device,
        crate::devices::revoke_device,
        crate::device_keys::create_device_key,
        crate::device_keys::list_device_keys,
        crate::device_keys::rotate_device_key,
        crate::device_keys::delete_device_key,
        crate::devices::list_certificates,
        crate::devices::get_certificate,
        crate::devices::revoke_certificate,
        crate::devices::get_ca,
        crate::trust::list_operator_keys,
        crate::trust::create_operator_key,
        crate::trust::retire_operator_key,
        crate::trust::publish_trust_list,
        crate::trust::import_root_key,
        crate::trust::draft_trust_list,
        crate::trust::upload_trust_list,
        crate::command_rules::get_command_rules,
        crate::command_rules::put_command_rules,
        crate::federation::get_federation,
        crate::federation::put_federation,
        openapi_document,
    ),
    components(schemas(
        CreateClientRequest, UpdateClientRequest, RotateSecretRequest, ClientView, CreatedClient,
        RotatedSecret, ClientPage, AuditRecordView, AuditPage, ChainVerified, Problem,
        crate::dto::UnverifiableKey, crate::dto::AuditKeys, crate::dto::AuditKeyView,
        crate::audit_archive::PurgeRequest, crate::audit_archive::Purged,
        crate::alerts::AlertView, crate::alerts::AlertPage,
        crate::keys::KeyView, crate::keys::RotateKeysRequest,
        crate::devices::DeviceView, crate::devices::RegisterDeviceRequest,
        crate::devices::ImportDevicesRequest, crate::devices::RegisteredDevice,
        crate::devices::RejectedRow, crate::devices::ImportReport, crate::devices::DevicePage,
        crate::devices::UpdateDeviceRequest, crate::devices::RevokeRequest,
        crate::devices::RevokedDevice, crate::devices::CertificateView,
        crate::devices::CertificatePage, crate::devices::CaView,
        crate::device_keys::CreatedDeviceKey, crate::device_keys::RotatedDeviceKey,
        crate::device_keys::RotateDeviceKeyRequest, crate::device_keys::DeviceKeyView,
        crate::device_keys::DeviceKeyList,
        crate::trust::OperatorKeyView, crate::trust::CreateOperatorKeyRequest,
        crate::trust::OperatorRole, crate::trust::OperatorAlg,
        crate::trust::PublishTrustRequest, crate::trust::PublishedTrustList,
        crate::trust::ImportRootRequest, crate::trust::ImportRole, crate::trust::DraftTrustList,
        crate::trust::UploadTrustRequest, crate::trust::RootJwk, crate::trust::RootKty,
        crate::trust::RootCurve,
        crate::command_rules::CommandRulesView, crate::command_rules::PutCommandRulesRequest,
        crate::command_rules::CommandRuleSchema,
        crate::federation::FederationView, crate::federation::TrustSetSchema,
    )),
    modifiers(&BearerScheme, &InputRules),
    security(("bearer" = [])),
    tags(
        (name = "clients", description = "Registered machine clients"),
        (name = "audit", description = "The audit hash chain"),
        (name = "keys", description = "Signing keys and their rotation"),
        (name = "devices", description = "Devices registered at manufacturing, their life cycle and their symmetric keys"),
        (name = "certificates", description = "Certificates the device CA issued, and the CA itself"),
        (name = "trust", description = "The gateway's operator keys and the trust list devices verify commands, settings and updates with"),
        (name = "commands", description = "The command policy: which principals may send which commands, with which arguments, to which devices"),
        (name = "federation", description = "Workload federation: the outside token issuers trusted for the JWT bearer grant and the policies mapping their subjects to clients"),
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
