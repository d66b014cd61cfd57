//! A real `AuthServer` (SQLite store in a temp dir, an ES256 software key, the audit log)
//! behind the OAuth router, driven with `oneshot`.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use aws_lc_rs::hmac;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http_body_util::BodyExt;
use portcullis_audit::AuditLog;
use portcullis_core::client::{AuthMethod, Client};
use portcullis_core::{ClientId, ScopeSet, Secret, SecretHash, UnixTime};
use portcullis_keys::jws::JwtSigner;
use portcullis_keys::software::{self, MasterKey, SoftwareSigner};
use portcullis_keys::{Algorithm, JwkSet, KeyRing, Signer};
use portcullis_oauth::{router, AuthServer, CertificateValidator, OAuthSettings, PeerCertificates};
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::Store;
use serde_json::{json, Value};
use tower::ServiceExt;
use zeroize::Zeroizing;

pub const ISSUER: &str = "https://as.example";
pub const PEPPER: &[u8] = b"test-pepper-test-pepper-test-pep";
pub const API: &str = "https://api.example";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const FORM: &str = "application/x-www-form-urlencoded";

pub struct Harness {
    pub server: Arc<AuthServer>,
    /// The audit log and master key the server was built with.
    pub audit: AuditLog,
    pub master: Arc<MasterKey>,
    pub router: Router,
    pub store: Arc<dyn Store>,
    /// The private key of the `private_key_jwt` client, wrapped to sign assertions.
    pub client_key: JwtSigner,
    /// A key no client registered (unknown kid).
    pub stranger_key: JwtSigner,
    /// The `private_key_jwt` client's public JWK Set, as registered.
    pub client_jwks: String,
    pub now: UnixTime,
    next_addr: AtomicU32,
    _dir: tempfile::TempDir,
}

pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn client(id: &str, method: AuthMethod, now: UnixTime) -> Client {
    Client {
        client_id: ClientId::parse(id).unwrap(),
        name: id.to_owned(),
        auth_method: method,
        scopes: ScopeSet::parse("read write").unwrap(),
        audiences: vec![API.to_owned()],
        token_ttl_secs: 600,
        enabled: true,
        secret_hashes: vec![],
        sealed_secret: None,
        jwks: None,
        jwks_uri: None,
        tls_client_auth: None,
        created_at: now,
        updated_at: now,
        dpop_bound_access_tokens: false,
        token_epoch: 0,
    }
}

fn signer(alg: Algorithm) -> Arc<dyn Signer> {
    Arc::new(SoftwareSigner::generate(alg).unwrap().0)
}

/// What [`Harness::start_with`] varies.
#[derive(Default)]
pub struct Options {
    pub rate_per_client: u32,
    pub rate_per_address: u32,
    /// Registered besides the standard clients.
    pub extra_clients: Vec<Client>,
    /// The RFC 8705 chain validator (`tls_client_auth`).
    pub validator: Option<Arc<dyn CertificateValidator>>,
    /// `OAuthSettings::mtls_base`.
    pub mtls_base: Option<String>,
}

impl Harness {
    pub async fn start(rate_per_client: u32, rate_per_address: u32) -> Harness {
        Self::start_with(Options {
            rate_per_client,
            rate_per_address,
            ..Options::default()
        })
        .await
    }

    pub async fn start_with(options: Options) -> Harness {
        let Options {
            rate_per_client,
            rate_per_address,
            extra_clients,
            validator,
            mtls_base,
        } = options;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db.sqlite"))
                .await
                .unwrap(),
        );
        let master = Arc::new(MasterKey::generate().unwrap());
        let now = now();

        let mut basic = client("svc-basic", AuthMethod::ClientSecretBasic, now);
        basic.secret_hashes = vec![SecretHash::of(PEPPER, &Secret::new("basic-secret"), None)];
        let mut other = client("svc-other", AuthMethod::ClientSecretPost, now);
        other.secret_hashes = vec![SecretHash::of(PEPPER, &Secret::new("other-secret"), None)];
        other.scopes = ScopeSet::default();
        other.audiences = vec![];
        let mut disabled = client("svc-disabled", AuthMethod::ClientSecretBasic, now);
        disabled.secret_hashes = vec![SecretHash::of(
            PEPPER,
            &Secret::new("disabled-secret"),
            None,
        )];
        disabled.enabled = false;

        let client_signer = signer(Algorithm::ES256);
        let client_jwks = serde_json::to_string(&JwkSet {
            keys: vec![client_signer.public_jwk()],
        })
        .unwrap();
        let mut pk = client("svc-pkjwt", AuthMethod::PrivateKeyJwt, now);
        pk.jwks = Some(client_jwks.clone());

        let mut cs = client("svc-csjwt", AuthMethod::ClientSecretJwt, now);
        cs.sealed_secret = Some(
            software::seal(&master, b"hmac-secret-hmac-secret-hmac-sec", b"svc-csjwt").unwrap(),
        );

        let mut clients = vec![basic, other, disabled, pk, cs];
        clients.extend(extra_clients);
        store.insert_clients(&clients).await.unwrap();

        let keys = Arc::new(KeyRing::new(signer(Algorithm::ES256), vec![]));
        let audit = AuditLog::start(store.clone());
        let settings = OAuthSettings {
            issuer: ISSUER.to_owned(),
            rate_per_client,
            rate_per_address,
            auth_failures_per_minute: 10,
            assertion_algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
            mtls_base,
            jwks_uri_allow_private: true,
            dpop: Default::default(),
        };
        let mut server = AuthServer::new(
            settings,
            store.clone(),
            keys,
            audit.clone(),
            Zeroizing::new(PEPPER.to_vec()),
            master.clone(),
        )
        .with_clock(move || now);
        if let Some(validator) = validator {
            server = server.with_certificate_validator(validator);
        }
        let server = Arc::new(server);
        Harness {
            router: router(server.clone()),
            server,
            audit,
            master,
            store,
            client_key: JwtSigner::new(client_signer, "JWT"),
            stranger_key: JwtSigner::new(signer(Algorithm::ES256), "JWT"),
            client_jwks,
            now,
            next_addr: AtomicU32::new(1),
            _dir: dir,
        }
    }

    /// A fresh source address, so failure lock-outs of one case do not leak into the next.
    pub fn fresh_addr(&self) -> IpAddr {
        let n = self.next_addr.fetch_add(1, Ordering::Relaxed);
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    /// Sends a request and returns status, headers and the JSON body (Null if empty).
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, headers, body)
    }

    /// POSTs a form from `addr` with an optional `Authorization` header.
    pub async fn post_from(
        &self,
        addr: IpAddr,
        path: &str,
        auth: Option<&str>,
        body: impl Into<String>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, FORM);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let mut request = request.body(Body::from(body.into())).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(addr, 40000)));
        self.send(request).await
    }

    /// POSTs a form over a "TLS connection" that presented `chain` (leaf first), as the TLS
    /// listener would: a [`PeerCertificates`] request extension. `None`: no certificate.
    pub async fn post_tls(
        &self,
        addr: IpAddr,
        path: &str,
        auth: Option<&str>,
        body: impl Into<String>,
        chain: Option<Vec<Vec<u8>>>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, FORM);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let mut request = request.body(Body::from(body.into())).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(addr, 40000)));
        if let Some(chain) = chain {
            request
                .extensions_mut()
                .insert(PeerCertificates(Arc::new(chain)));
        }
        self.send(request).await
    }

    pub async fn post(
        &self,
        path: &str,
        auth: Option<&str>,
        body: impl Into<String>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.post_from(self.fresh_addr(), path, auth, body).await
    }

    /// Issues a token to `svc-basic` and returns it.
    pub async fn token_for(&self, id: &str, secret: &str) -> String {
        let (status, _, body) = self
            .post(
                "/oauth2/token",
                Some(&basic(id, secret)),
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Standard assertion claims for `sub` with `jti`.
    pub fn assertion_claims(&self, sub: &str, jti: &str) -> Value {
        json!({"iss": sub, "sub": sub, "aud": format!("{ISSUER}/oauth2/token"), "exp": self.now + 60, "iat": self.now, "jti": jti})
    }
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// A compact JWS with an arbitrary header, HMAC-signed with `key` (HS256), or unsigned when
/// `key` is None (`alg: none`).
pub fn hand_made_jwt(header: &Value, claims: &Value, key: Option<&[u8]>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    match key {
        Some(key) => {
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
        }
        None => format!("{input}."),
    }
}

pub fn assertion_form(assertion: &str) -> String {
    format!("grant_type=client_credentials&client_assertion_type={JWT_BEARER}&client_assertion={assertion}")
}
