//! The admin REST API: register and manage machine clients, read and verify the audit chain.
//!
//! It exists so that operators and the `portcullis` CLI change server state through one
//! authenticated, audited, documented door instead of touching the store. The server nests
//! [`router`] at `/admin/v1`. Every route but `GET /openapi.json` needs a bearer access token
//! of this server with the `portcullis:admin` scope (`auth.rs`); every failure is an RFC 9457
//! problem (`errors.rs`); every change is audited (`clients.rs`, `secrets.rs`).

pub mod audit;
pub mod auth;
pub mod clients;
pub mod devices;
pub mod dto;
pub mod errors;
pub mod extract;
pub mod keys;
pub mod openapi;
pub mod secrets;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};
use portcullis_oauth::AuthServer;

pub use auth::{AdminCaller, ADMIN_SCOPE};
pub use errors::{AdminError, Problem, PROBLEM_JSON};
pub use keys::{KeyAdmin, KeyView, SharedKeyAdmin};
pub use openapi::AdminApi;

/// The admin API's routes, relative to where the server nests them (`/admin/v1`).
/// The admin API. `keys` manages signing keys (`/keys`); without it those routes are absent.
pub fn router(server: Arc<AuthServer>, keys: Option<SharedKeyAdmin>) -> Router {
    router_with_pki(server, keys, None)
}

/// [`router`] plus the device PKI's routes (`/devices`, `/certificates`, `/ca`).
pub fn router_with_pki(
    server: Arc<AuthServer>,
    keys: Option<SharedKeyAdmin>,
    pki: Option<Arc<portcullis_pki::Pki>>,
) -> Router {
    let pki_routes: Router<Arc<AuthServer>> = match pki {
        Some(pki) => Router::new()
            .route(
                "/devices",
                post(devices::register_device).get(devices::list_devices),
            )
            .route(
                "/devices/import",
                post(devices::import_devices)
                    .layer(DefaultBodyLimit::max(devices::IMPORT_BODY_LIMIT)),
            )
            .route(
                "/devices/{id}",
                get(devices::get_device).patch(devices::update_device),
            )
            .route("/devices/{id}/revoke", post(devices::revoke_device))
            .route("/certificates", get(devices::list_certificates))
            .route("/certificates/{serial}", get(devices::get_certificate))
            .route(
                "/certificates/{serial}/revoke",
                post(devices::revoke_certificate),
            )
            .route("/ca", get(devices::get_ca))
            .with_state(pki),
        None => Router::new(),
    };
    let audit_verify: Router<Arc<AuthServer>> = Router::new()
        .route("/audit/verify", post(audit::verify_audit))
        .with_state(audit::AuditVerification {
            server: server.clone(),
            keys: keys.clone(),
        });
    let key_routes: Router<Arc<AuthServer>> = match keys {
        Some(keys) => Router::new()
            .route("/keys", get(keys::list_keys))
            .route("/keys/rotate", post(keys::rotate_keys))
            .route("/keys/{kid}/retire", post(keys::retire_key))
            .with_state(keys),
        None => Router::new(),
    };
    let protected = Router::new()
        .route(
            "/clients",
            post(clients::create_client).get(clients::list_clients),
        )
        .route(
            "/clients/{id}",
            get(clients::get_client)
                .patch(clients::update_client)
                .delete(clients::delete_client),
        )
        .route("/clients/{id}/rotate-secret", post(secrets::rotate_secret))
        .route("/audit", get(audit::list_audit))
        .merge(audit_verify)
        .merge(key_routes)
        .merge(pki_routes)
        // route_layer: only matched routes authenticate, so an unknown path is a plain 404.
        .route_layer(middleware::from_fn_with_state(
            server.clone(),
            auth::require_admin,
        ));
    Router::new()
        .route("/openapi.json", get(openapi::openapi_document))
        .merge(protected)
        .fallback(|| async { AdminError::NoRoute })
        .method_not_allowed_fallback(|| async { AdminError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .with_state(server)
}
