//! A small blocking client of the admin API: obtains an admin token with the credential file
//! (client_credentials, dogfooding the token endpoint) and sends JSON requests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::cli::ApiArgs;

/// A failed CLI request, already phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Credential(String),
    /// The `--cacert` file cannot be used.
    #[error("{0}")]
    Trust(String),
    #[error("cannot reach {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("{status} {title}: {detail}")]
    Problem {
        status: u16,
        title: String,
        detail: String,
        /// The whole answer (a problem document's extra members, e.g. the `rule` and
        /// `reason` of a refused command); `Null` if it was not JSON.
        body: Value,
    },
}

#[derive(Deserialize)]
struct Credential {
    client_id: String,
    client_secret: String,
}

/// An authenticated connection to one node's admin API.
pub struct AdminApi {
    base: String,
    token: String,
    /// The scopes the token endpoint granted (space-separated), if it said.
    granted: Option<String>,
    agent: ureq::Agent,
}

impl AdminApi {
    /// Reads the credential file and obtains an admin token.
    pub fn connect(args: &ApiArgs) -> Result<Self, ApiError> {
        Self::connect_with_scope(args, "portcullis:admin")
    }

    /// Reads the credential file and obtains a token for `scope` (e.g. `telemetry:read`).
    pub fn connect_with_scope(args: &ApiArgs, scope: &str) -> Result<Self, ApiError> {
        Self::connect_for(args, Some(scope))
    }

    /// Reads the credential file and obtains a token with every scope its client may have:
    /// for acting as that client (a command's sender or approver), whose rules may name any.
    pub fn connect_as_client(args: &ApiArgs) -> Result<Self, ApiError> {
        Self::connect_for(args, None)
    }

    fn connect_for(args: &ApiArgs, scope: Option<&str>) -> Result<Self, ApiError> {
        let base = args.server.trim_end_matches('/').to_owned();
        let cred = read_credential(&args.admin_credential)?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .tls_config(tls_config(args.cacert.as_deref())?)
            .build();
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", cred.client_id.as_str()),
            ("client_secret", cred.client_secret.as_str()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = agent.post(&format!("{base}/oauth2/token")).send_form(&form);
        let body = read_json(response, &base).map_err(|e| match (e, scope) {
            // The credential works but may not have what the command needs: say which.
            (ApiError::Problem { title, detail, .. }, Some(scope)) if title == "invalid_scope" => {
                ApiError::Credential(format!(
                    "this command needs a credential with the scope {scope}, which client {} may \
                     not have ({detail})",
                    cred.client_id
                ))
            }
            (e, _) => e,
        })?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| ApiError::Credential("token endpoint returned no access_token".into()))?
            .to_owned();
        let granted = body["scope"].as_str().map(str::to_owned);
        Ok(Self {
            base,
            token,
            granted,
            agent,
        })
    }

    /// Whether the token holds `scope`, as far as the token endpoint said (`true` when it did
    /// not say): lets a command refuse before a long upload the node would refuse unread.
    pub fn may(&self, scope: &str) -> bool {
        self.granted
            .as_deref()
            .is_none_or(|granted| granted.split_ascii_whitespace().any(|s| s == scope))
    }

    /// Sends a request to `/admin/v1{path}` with an optional JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        self.call_root(method, &format!("/admin/v1{path}"), body)
    }

    /// Sends a request to `{path}` from the server's root (`/gateway/v1/...`) with an
    /// optional JSON body.
    pub fn call_root(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token));
        let response = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        read_json(response, &self.base)
    }
}

/// A request body sent as it is, not as JSON: `length` bytes of `content_type`, read from
/// `reader` while they are sent (a large file is never held in memory).
pub struct RawBody<'a> {
    pub content_type: &'a str,
    pub length: u64,
    pub reader: Box<dyn std::io::Read + 'a>,
}

/// How long a request with a raw body may take: an upload takes as long as the link needs.
const RAW_BODY_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl AdminApi {
    /// Sends `{method} {path}?{query}` (`path` from the server's root, `query`'s pairs
    /// percent-encoded) with `body`, if any, streamed as it is, and reads the JSON answer.
    pub fn call_raw(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<RawBody<'_>>,
    ) -> Result<Value, ApiError> {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .query_pairs(query.iter().copied())
            .set("Authorization", &format!("Bearer {}", self.token));
        let response = match body {
            Some(body) => req
                .timeout(RAW_BODY_TIMEOUT)
                .set("Content-Type", body.content_type)
                .set("Content-Length", &body.length.to_string())
                .send(body.reader),
            None => req.call(),
        };
        read_json(response, &self.base)
    }

    /// Sends `GET {path}` (a path from the server's root, not under `/admin/v1`) and hands
    /// back the body as a reader, for streamed answers (NDJSON).
    pub fn stream(&self, path: &str) -> Result<Box<dyn std::io::Read + Send>, ApiError> {
        let response = self
            .agent
            .get(&format!("{}{path}", self.base))
            .timeout(Duration::from_secs(24 * 3600))
            .set("Authorization", &format!("Bearer {}", self.token))
            .set("Accept", "application/x-ndjson")
            .call();
        match response {
            Ok(r) => Ok(Box::new(r.into_reader())),
            Err(e) => read_json(Err(e), &self.base)
                .map(|_| -> Box<dyn std::io::Read + Send> { Box::new(std::io::empty()) }),
        }
    }
}

/// The CAs an `https://` server's certificate may chain to: the system's, as curl and openssl
/// see them (`SSL_CERT_FILE` and `SSL_CERT_DIR` included), or Mozilla's bundled ones where the
/// system has none (a minimal container); and those of `--cacert`, since a node's own CA and
/// the private CA of a `tls_cert_file` are rarely in the system's store.
fn tls_config(cacert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ApiError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable entries of the system store are skipped, as curl skips them; what is left
    // (or `--cacert`) decides, and a failed handshake names the certificate problem.
    let (system, _unparsable) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if system == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = cacert {
        add_cacert(&mut roots, path)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ApiError::Trust(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Adds every certificate of the PEM file `path` as a trust anchor; a file with none is an
/// error, not a silent no-op.
fn add_cacert(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), ApiError> {
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(path)
        .map_err(|e| ApiError::Trust(format!("cannot read --cacert {}: {e}", path.display())))?;
    let mut added = 0usize;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            ApiError::Trust(format!(
                "--cacert {}: not PEM certificates: {e}",
                path.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            ApiError::Trust(format!(
                "--cacert {}: a certificate cannot be a trust anchor: {e}",
                path.display()
            ))
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(ApiError::Trust(format!(
            "--cacert {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(())
}

/// Why a request failed before any answer, with the remedy when the server's certificate is
/// not trusted: the usual first meeting with a node serving its own CA's certificate.
fn unreachable(base: &str, e: &ureq::Error) -> ApiError {
    let mut reason = e.to_string();
    if let Some(tls) = tls_error(e) {
        reason = match tls {
            rustls::Error::InvalidCertificate(_) => format!(
                "{reason} (TLS: the server's certificate is not trusted; if a private CA or the \
                 node's own issued it, give that CA with --cacert FILE or PORTCULLIS_CACERT, e.g. \
                 the output of `portcullis ca export`)"
            ),
            _ => format!("{reason} (TLS handshake failed)"),
        };
    }
    ApiError::Unreachable {
        server: base.into(),
        reason,
    }
}

/// The rustls error under a transport error, if the TLS handshake is what failed. rustls's
/// errors reach ureq inside an `io::Error`, whose `source` skips the error it wraps, so the
/// chain is walked through `get_ref` as well.
fn tls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(tls);
            }
        }
        next = err.source();
    }
    None
}

fn read_credential(path: &Path) -> Result<Credential, ApiError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ApiError::Credential(format!(
            "cannot read admin credential {}: {e} (use --admin-credential)",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        ApiError::Credential(format!(
            "admin credential {} is not valid: {e}",
            path.display()
        ))
    })
}

/// Turns a response into JSON, or into the problem/OAuth error it carries.
fn read_json(response: Result<ureq::Response, ureq::Error>, base: &str) -> Result<Value, ApiError> {
    match response {
        Ok(r) if r.status() == 204 => Ok(Value::Null),
        Ok(r) => r.into_json().map_err(|e| ApiError::Unreachable {
            server: base.into(),
            reason: e.to_string(),
        }),
        Err(ureq::Error::Status(status, r)) => {
            let body: Value = r.into_json().unwrap_or(Value::Null);
            let title = body["title"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("error")
                .to_owned();
            let detail = body["detail"]
                .as_str()
                .or(body["error_description"].as_str())
                .unwrap_or("")
                .to_owned();
            Err(ApiError::Problem {
                status,
                title,
                detail,
                body,
            })
        }
        Err(e) => Err(unreachable(base, &e)),
    }
}
