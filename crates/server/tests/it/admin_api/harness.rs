//! The shared harness: builds an `AuthServer` on real backends, mints tokens, sends requests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use portcullis_core::client::Client;
use portcullis_core::token::{AccessTokenClaims, Audience};
use portcullis_core::ClientId;
use portcullis_oauth::{AuthServer, OAuthSettings};
use serde_json::Value;
use tower::ServiceExt;

/// Fixed start of the test clock, so deadlines in assertions are exact.
pub const T0: i64 = 1_700_000_000;
pub const ISSUER: &str = "https://as.test";
const DB_FILE: &str = "portcullis.db";

pub struct Harness {
    pub server: Arc<AuthServer>,
    /// The master key the server seals `client_secret_jwt` secrets under.
    pub master: Arc<portcullis_keys::software::MasterKey>,
    pub router: Router,
    pub clock: Arc<AtomicI64>,
    pub admin_token: String,
    /// The SQLite file behind the store, for tests that tamper with it.
    pub db_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    pub body: Value,
}

impl Harness {
    pub async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (server, clock, master) = crate::admin_api::harness::backends::build(dir.path()).await;
        Self::assemble(server, clock, master, dir)
    }

    /// A harness over `store` (e.g. a PostgreSQL test schema) instead of a fresh SQLite file.
    pub async fn with_store(store: Arc<dyn portcullis_store::Store>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let (server, clock, master) = crate::admin_api::harness::backends::build_on(store).await;
        Self::assemble(server, clock, master, dir)
    }

    fn assemble(
        server: AuthServer,
        clock: Arc<AtomicI64>,
        master: Arc<portcullis_keys::software::MasterKey>,
        dir: tempfile::TempDir,
    ) -> Harness {
        let server = Arc::new(server);
        let router = portcullis_admin::router(portcullis_admin::AdminPorts::new(
            server.clone(),
            server.clone(),
            server.audit_trail(),
        ));
        let mut h = Harness {
            server,
            master,
            router,
            clock,
            admin_token: String::new(),
            db_path: dir.path().join(DB_FILE),
            _dir: dir,
        };
        // As the bootstrap credential: administers and reads the audit trail.
        h.admin_token = h.token("admin-cli", Some("portcullis:admin audit:read"), 300);
        h
    }

    pub fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    /// Mints an access token of this server for `client_id`, valid for `ttl` seconds from now
    /// (negative: already expired).
    pub fn token(&self, client_id: &str, scope: Option<&str>, ttl: i64) -> String {
        let now = self.now();
        let claims = AccessTokenClaims {
            iss: ISSUER.into(),
            sub: client_id.into(),
            aud: Audience::One(ISSUER.into()),
            exp: now + ttl,
            iat: now - 1,
            jti: format!("jti-{client_id}-{ttl}-{}", scope.unwrap_or("")),
            client_id: client_id.into(),
            scope: scope.map(str::to_owned),
            cnf: None,
            client_epoch: None,
            federated: None,
            act: None,
            exchanged_from: Vec::new(),
        };
        self.server.keys().active().sign(&claims).unwrap()
    }

    /// Sends a request with the admin token and, if given, a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_with(&self.admin_token, method, path, body).await
    }

    /// Sends a request with bearer `token` and, if given, a JSON body.
    pub async fn call_with(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    /// Sends an arbitrary request.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        // Read before the body is awaited, so no borrow of the response (whose body is not
        // `Sync`) lives across an await and the future stays `Send`.
        let (status, content_type, www_authenticate) = {
            let header_text = |name| {
                res.headers()
                    .get(name)
                    .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
            };
            (
                res.status(),
                header_text(header::CONTENT_TYPE),
                header_text(header::WWW_AUTHENTICATE),
            )
        };
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Reply {
            status,
            content_type,
            www_authenticate,
            body,
        }
    }

    /// The client as stored, for checks on what the API never shows (hashes, sealed secret).
    pub async fn stored(&self, id: &str) -> Option<Client> {
        use portcullis_ports::{ClientRegistry, PortError};
        match self.server.client(&ClientId::parse(id).unwrap()).await {
            Ok(client) => Some(client),
            Err(PortError::UnknownClient(_)) => None,
            Err(e) => panic!("reading client {id}: {e}"),
        }
    }

    /// Creates a client from `body` and returns the 201 body.
    pub async fn create(&self, body: Value) -> Value {
        let r = self.call(Method::POST, "/clients", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }
}

impl Reply {
    /// Asserts an RFC 9457 problem with `status` and returns its detail.
    pub fn assert_problem(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json")
        );
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:portcullis:problem:"));
        assert!(self.body["title"].is_string());
        self.body["detail"].as_str().unwrap()
    }
}

pub mod backends {
    //! The constructors of the real backends, apart so a change in theirs touches one place.
    use super::*;
    use portcullis_audit::AuditLog;
    use portcullis_keys::software::{MasterKey, SoftwareSigner};
    use portcullis_keys::{Algorithm, KeyRing};
    use zeroize::Zeroizing;

    /// The server, its clock and its master key.
    pub type Backends = (AuthServer, Arc<AtomicI64>, Arc<MasterKey>);

    pub async fn build(dir: &std::path::Path) -> Backends {
        let store: Arc<dyn portcullis_store::Store> = Arc::new(
            portcullis_store::sqlite::SqliteStore::open(&dir.join(DB_FILE))
                .await
                .unwrap(),
        );
        build_on(store).await
    }

    /// The server state over an empty `store` of either backend.
    pub async fn build_on(store: Arc<dyn portcullis_store::Store>) -> Backends {
        let master = Arc::new(MasterKey::generate().unwrap());
        let (signer, _pkcs8) = SoftwareSigner::generate(Algorithm::ES256).unwrap();
        let keys = Arc::new(KeyRing::new(Arc::new(signer), Vec::new()));
        // The clients the tests mint bearer tokens for exist, as on a real server: a token
        // of a deleted or disabled client is inactive (AuthServer::check_active_token).
        store
            .insert_clients(&[
                portcullis_store::conformance::sample_client("admin-cli"),
                portcullis_store::conformance::sample_client("reader"),
            ])
            .await
            .unwrap();
        // Records sealed as a node seals them (`[audit] encrypt` defaults on).
        let sealer = portcullis_audit::AuditSealer::load_or_create(
            store.clone(),
            portcullis_keys::KeyCustody::Software(master.clone()),
            T0,
        )
        .await
        .unwrap();
        let audit = AuditLog::start_sealed(
            store.clone(),
            portcullis_audit::AuditMode::Async,
            portcullis_audit::log::QUEUE_CAPACITY,
            Some(sealer),
        );
        let settings = OAuthSettings {
            issuer: ISSUER.into(),
            rate_per_client: 0,
            rate_per_address: 0,
            auth_failures_per_minute: 0,
            assertion_algorithms: Algorithm::ALL.to_vec(),
            mtls_base: None,
            jwks_uri_allow_private: false,
            dpop: Default::default(),
        };
        let clock = Arc::new(AtomicI64::new(T0));
        let c = clock.clone();
        let server = AuthServer::new(
            settings,
            store,
            keys,
            audit,
            Zeroizing::new(vec![7u8; 32]),
            master.clone(),
        )
        .with_clock(move || c.load(Ordering::SeqCst));
        (server, clock, master)
    }
}
