//! A local OpenID issuer for the federation tests: it serves a real discovery document and
//! JWKS over HTTP on a free port (as a Kubernetes API server or a CI provider does) and signs
//! tokens shaped like theirs. Its key can be rotated while it runs.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, Signer};
use serde_json::{json, Value};

pub struct LocalIssuer {
    /// `http://127.0.0.1:PORT`: the `iss` of its tokens.
    pub base: String,
    signer: Mutex<SoftwareSigner>,
    jwks: Arc<Mutex<String>>,
    /// Requests for the JWKS so far.
    pub jwks_fetches: Arc<AtomicUsize>,
}

impl LocalIssuer {
    /// Serves `/.well-known/openid-configuration` naming `issuer` (its own URL unless told
    /// otherwise, to test a look-alike) and `/jwks.json`.
    pub fn start() -> LocalIssuer {
        Self::start_claiming(None)
    }

    pub fn start_claiming(claimed_issuer: Option<&str>) -> LocalIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let signer = new_signer();
        let jwks = Arc::new(Mutex::new(jwks_of(&signer)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({
            "issuer": claimed_issuer.unwrap_or(&base),
            "jwks_uri": format!("{base}/jwks.json"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
        .to_string();
        let (served, counted) = (jwks.clone(), fetches.clone());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match path {
                    "/.well-known/openid-configuration" => ("200 OK", discovery.clone()),
                    "/jwks.json" => {
                        counted.fetch_add(1, Ordering::SeqCst);
                        ("200 OK", served.lock().unwrap().clone())
                    }
                    _ => ("404 Not Found", "{}".to_owned()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        LocalIssuer {
            base,
            signer: Mutex::new(signer),
            jwks,
            jwks_fetches: fetches,
        }
    }

    /// A new key replaces the old one, in the JWKS and for signing.
    pub fn rotate(&self) {
        let signer = new_signer();
        *self.jwks.lock().unwrap() = jwks_of(&signer);
        *self.signer.lock().unwrap() = signer;
    }

    /// Signs `claims` with the current key (`kid` set, `typ` JWT).
    pub fn sign(&self, claims: &Value) -> String {
        let signer = self.signer.lock().unwrap();
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": signer.kid().as_str()});
        sign_with(&signer, &header, claims)
    }

    /// Signs with any header (the hostile tables bend it).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        sign_with(&self.signer.lock().unwrap(), header, claims)
    }

    /// The current key's id.
    pub fn kid(&self) -> String {
        self.signer.lock().unwrap().kid().as_str().to_owned()
    }

    /// Claims as a Kubernetes service-account token (projected, audience-bound) carries them.
    pub fn service_account_claims(&self, namespace: &str, name: &str, audience: &str) -> Value {
        let now = super::gateway::now();
        json!({
            "iss": self.base,
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "aud": [audience],
            "iat": now, "nbf": now, "exp": now + 600,
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": format!("{name}-7d9f8b-x2k4q"), "uid": "3c3a1e2e-8a62-4f5c-9f3e-2b1d8c4e5f60"},
                "serviceaccount": {"name": name, "uid": "d5c2a9a4-1b7e-4c5e-8e0b-6f1a2b3c4d5e"}
            }
        })
    }

    /// Claims as a GitHub Actions OIDC token carries them.
    pub fn ci_claims(&self, repository: &str, git_ref: &str, audience: &str) -> Value {
        let now = super::gateway::now();
        let jti = URL_SAFE_NO_PAD.encode(portcullis_keys::random_array::<12>().unwrap());
        json!({
            "iss": self.base,
            "sub": format!("repo:{repository}:ref:{git_ref}"),
            "aud": audience,
            "iat": now, "nbf": now - 5, "exp": now + 300,
            "jti": jti,
            "ref": git_ref,
            "ref_type": "branch",
            "repository": repository,
            "repository_owner": repository.split('/').next().unwrap_or_default(),
            "run_id": "4242", "run_attempt": "1",
            "workflow": "deploy",
            "job_workflow_ref": format!("{repository}/.github/workflows/deploy.yml@{git_ref}"),
            "event_name": "push",
            "runner_environment": "github-hosted"
        })
    }
}

fn new_signer() -> SoftwareSigner {
    SoftwareSigner::generate(Algorithm::ES256)
        .expect("issuer key")
        .0
}

fn jwks_of(signer: &SoftwareSigner) -> String {
    json!({ "keys": [signer.public_jwk()] }).to_string()
}

fn sign_with(signer: &SoftwareSigner, header: &Value, claims: &Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = signer.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
