//! Discovery: the RFC 8414 authorization server metadata and the OpenID Connect Discovery
//! 1.0 §3 document, so a client needs nothing but the issuer URL.
//!
//! Both documents depend only on configuration, so they are encoded once at start-up and
//! served as shared bytes.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use portcullis_core::client::AuthMethod;
use portcullis_keys::Algorithm;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::{AuthServer, OAuthSettings};

/// The HMAC algorithms `client_secret_jwt` assertions can use. RFC 7518 §3.2 requires a key
/// at least as long as the hash: secrets of `client_secret_jwt` clients are generated with 512
/// bits (86 characters), enough for all three; an older client's shorter secret is refused
/// for the algorithms it is too short for.
pub const HMAC_ASSERTION_ALGORITHMS: [&str; 3] = ["HS256", "HS384", "HS512"];

/// The two encoded documents.
#[derive(Debug, Clone)]
pub struct Discovery {
    oauth: Bytes,
    openid: Bytes,
}

/// RFC 8414 §2 metadata common to both documents.
fn metadata(settings: &OAuthSettings) -> serde_json::Map<String, Value> {
    let issuer = settings.issuer.as_str();
    // The RFC 8705 methods need a TLS listener that asks for client certificates; without
    // one no client could use them, so they are not advertised.
    let mtls = settings.mtls_base.as_deref();
    let methods: Vec<&str> = AuthMethod::ALL
        .iter()
        .filter(|m| mtls.is_some() || !m.uses_certificate())
        .map(|m| m.as_str())
        .collect();
    let mut signing_algs: Vec<&str> = settings
        .assertion_algorithms
        .iter()
        .map(|a| a.as_str())
        .collect();
    signing_algs.extend(HMAC_ASSERTION_ALGORITHMS);
    let mut doc = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "grant_types_supported": grant_types(),
        // RFC 8414 §2 makes this REQUIRED; a server without an authorization endpoint
        // supports no response type.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": signing_algs,
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": signing_algs,
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
        // RFC 9207 §3: no authorization responses are ever sent.
        "authorization_response_iss_parameter_supported": false,
        // RFC 9449 §5.1: the algorithms a DPoP proof may be signed with.
        "dpop_signing_alg_values_supported": dpop_algorithms(settings),
    });
    if let (Some(base), Value::Object(map)) = (mtls, &mut doc) {
        // RFC 8705 §3.3 and §5: tokens requested over mTLS are certificate-bound, and the
        // endpoints that accept client certificates live under the TLS listener.
        map.insert(
            "tls_client_certificate_bound_access_tokens".into(),
            Value::Bool(true),
        );
        map.insert(
            "mtls_endpoint_aliases".into(),
            json!({
                "token_endpoint": format!("{base}/oauth2/token"),
                "introspection_endpoint": format!("{base}/oauth2/introspect"),
                "revocation_endpoint": format!("{base}/oauth2/revoke"),
            }),
        );
    }
    match doc {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The grant types: the core's, and the SAML 2.0 bearer grant in builds that verify SAML.
fn grant_types() -> Vec<&'static str> {
    let mut types = portcullis_core::token::SUPPORTED_GRANT_TYPES.to_vec();
    if portcullis_saml::SUPPORTED {
        types.push(portcullis_core::saml::SAML2_BEARER_GRANT_TYPE);
    }
    types
}

/// RFC 9449 §5.1 `dpop_signing_alg_values_supported`: EdDSA under both its names, the
/// polymorphic `EdDSA` and RFC 9864's fully-specified `Ed25519`, since clients write either.
fn dpop_algorithms(settings: &OAuthSettings) -> Vec<&'static str> {
    let mut names = Vec::new();
    for alg in &settings.dpop.algorithms {
        names.push(alg.as_str());
        if *alg == Algorithm::EdDSA {
            names.push("Ed25519");
        }
    }
    names
}

impl Discovery {
    /// Encodes both documents; `signing_algorithm` is the algorithm tokens are signed with.
    pub fn build(settings: &OAuthSettings, signing_algorithm: Algorithm) -> Discovery {
        let oauth = metadata(settings);
        let mut openid = oauth.clone();
        // OpenID Connect Discovery 1.0 §3 makes these REQUIRED; no ID tokens are issued, but
        // the access tokens' algorithm is the honest answer for relying-party libraries.
        openid.insert("subject_types_supported".into(), json!(["public"]));
        openid.insert(
            "id_token_signing_alg_values_supported".into(),
            json!([signing_algorithm.as_str()]),
        );
        Discovery {
            oauth: Bytes::from(Value::Object(oauth).to_string()),
            openid: Bytes::from(Value::Object(openid).to_string()),
        }
    }
}

/// A public metadata response (discovery, JWKS): cacheable for five minutes.
pub(crate) fn public_json(bytes: Bytes) -> Response {
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §3).
pub async fn oauth_metadata(State(server): State<Arc<AuthServer>>) -> Response {
    public_json(server.discovery.oauth.clone())
}

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4).
pub async fn openid_configuration(State(server): State<Arc<AuthServer>>) -> Response {
    public_json(server.discovery.openid.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OAuthSettings {
        OAuthSettings {
            issuer: "https://as.example".into(),
            rate_per_client: 0,
            rate_per_address: 0,
            auth_failures_per_minute: 0,
            assertion_algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
            mtls_base: None,
            jwks_uri_allow_private: false,
            dpop: crate::DpopSettings::default(),
        }
    }

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn metadata_lists_every_endpoint_under_the_issuer() {
        let d = Discovery::build(&settings(), Algorithm::ES256);
        let v = parse(&d.oauth);
        assert_eq!(v["issuer"], "https://as.example");
        assert_eq!(v["token_endpoint"], "https://as.example/oauth2/token");
        assert_eq!(v["jwks_uri"], "https://as.example/jwks.json");
        assert_eq!(
            v["introspection_endpoint"],
            "https://as.example/oauth2/introspect"
        );
        assert_eq!(v["revocation_endpoint"], "https://as.example/oauth2/revoke");
        let mut grants = vec![
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ];
        if cfg!(feature = "saml") {
            grants.push("urn:ietf:params:oauth:grant-type:saml2-bearer");
        }
        assert_eq!(v["grant_types_supported"], json!(grants));
        assert_eq!(v["response_types_supported"], json!([]));
        assert_eq!(
            v["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            v["token_endpoint_auth_signing_alg_values_supported"],
            json!(["ES256", "EdDSA", "HS256", "HS384", "HS512"])
        );
        assert_eq!(
            v["dpop_signing_alg_values_supported"],
            json!(["EdDSA", "Ed25519", "ES256", "ES384", "PS256", "RS256"])
        );
        assert!(v.get("subject_types_supported").is_none());
        assert!(v
            .get("tls_client_certificate_bound_access_tokens")
            .is_none());
        assert!(v.get("mtls_endpoint_aliases").is_none());
    }

    #[test]
    fn mtls_listener_adds_the_rfc_8705_metadata() {
        let settings = OAuthSettings {
            mtls_base: Some("https://127.0.0.1:8443".into()),
            ..settings()
        };
        let d = Discovery::build(&settings, Algorithm::ES256);
        for v in [parse(&d.oauth), parse(&d.openid)] {
            assert_eq!(v["tls_client_certificate_bound_access_tokens"], true);
            for key in [
                "token_endpoint_auth_methods_supported",
                "introspection_endpoint_auth_methods_supported",
                "revocation_endpoint_auth_methods_supported",
            ] {
                let methods = v[key].as_array().unwrap();
                assert_eq!(methods.len(), 6, "{key}");
                assert!(methods.contains(&json!("tls_client_auth")), "{key}");
                assert!(
                    methods.contains(&json!("self_signed_tls_client_auth")),
                    "{key}"
                );
            }
            assert_eq!(
                v["mtls_endpoint_aliases"],
                json!({
                    "token_endpoint": "https://127.0.0.1:8443/oauth2/token",
                    "introspection_endpoint": "https://127.0.0.1:8443/oauth2/introspect",
                    "revocation_endpoint": "https://127.0.0.1:8443/oauth2/revoke",
                })
            );
            // The plain endpoints stay under the issuer.
            assert_eq!(v["token_endpoint"], "https://as.example/oauth2/token");
        }
    }

    #[test]
    fn openid_configuration_adds_the_oidc_required_members() {
        let v = parse(&Discovery::build(&settings(), Algorithm::ES256).openid);
        assert_eq!(v["subject_types_supported"], json!(["public"]));
        assert_eq!(v["id_token_signing_alg_values_supported"], json!(["ES256"]));
        assert_eq!(v["issuer"], "https://as.example");
    }
}
