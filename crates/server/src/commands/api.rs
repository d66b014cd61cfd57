//! A small blocking client of the admin API: obtains an admin token with the credential file
//! (client_credentials, dogfooding the token endpoint) and sends JSON requests.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::cli::ApiArgs;

/// A failed CLI request, already phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Credential(String),
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
        Err(e) => Err(ApiError::Unreachable {
            server: base.into(),
            reason: e.to_string(),
        }),
    }
}
