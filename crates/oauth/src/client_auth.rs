//! Client authentication (RFC 6749 §2.3) for the token, introspection and revocation
//! endpoints: `client_secret_basic` (§2.3.1, HTTP Basic), `client_secret_post` (§2.3.1, form
//! parameters), and JWT assertions (RFC 7523 §2.2) signed with a shared secret
//! (`client_secret_jwt`) or a private key (`private_key_jwt`), and the TLS client
//! certificate of RFC 8705 §2 (`tls_client_auth`, `self_signed_tls_client_auth`; the checks
//! themselves are in `mtls.rs`).
//!
//! Two steps: [`Credentials::from_request`] reads what was presented without touching any
//! state (and names the claimed client for audit records); [`authenticate`] checks it. Every
//! failure that could tell whether a client exists answers the same `invalid_client`
//! description, and is counted under a `reason` label only in metrics.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use portcullis_core::assertion::{check_assertion_claims, claimed_client_id, AssertionClaims};
use portcullis_core::client::{AuthMethod, Client};
use portcullis_core::form::Form;
use portcullis_core::secret::verify_secret;
use portcullis_core::token::JWT_BEARER_ASSERTION_TYPE;
use portcullis_core::{ClientId, ErrorCode, OAuthError};
use portcullis_http::{basic_credentials, MalformedCredentials};
use portcullis_keys::verify::{self, Decoded};
use zeroize::Zeroizing;

use crate::client_keys;
use crate::error::Error;
use crate::mtls::{self, CertificateRefusal, PeerCertificates};
use crate::router::OAuthForm;
use crate::AuthServer;

/// The one description of every authentication failure that must not reveal whether the
/// client exists (RFC 6749 §5.2 `invalid_client`; RFC 6819 §5.2.3.x).
pub const AUTH_FAILED: &str = "client authentication failed";

/// Why authentication failed: logged (debug) as is; counted in
/// `portcullis_client_auth_failures_total` under [`FailureReason::label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    UnknownClient,
    BadSecret,
    Disabled,
    BadAssertion,
    Replay,
    MethodMismatch,
    /// RFC 8705: the client certificate chain is untrusted, malformed, expired or revoked.
    BadCertificate,
    /// RFC 8705: a good certificate, but not the one the client registered.
    CertificateMismatch,
    /// `tls_client_auth` while no certificate validator is configured.
    NoCertificateValidator,
}

impl FailureReason {
    /// The `reason` label of `portcullis_client_auth_failures_total`. Every reason that would
    /// tell a client that exists from one that does not (an unknown id against a wrong secret,
    /// a disabled client, a method or certificate that is not the registered one, an assertion
    /// that does not verify with the registered keys) is one label, `invalid_credentials`, as
    /// they are one `invalid_client` answer: metrics must not undo what the answer hides.
    pub const fn label(self) -> &'static str {
        match self {
            Self::UnknownClient
            | Self::BadSecret
            | Self::Disabled
            | Self::BadAssertion
            | Self::MethodMismatch
            | Self::CertificateMismatch => "invalid_credentials",
            Self::Replay => "replay",
            Self::BadCertificate => "bad_certificate",
            Self::NoCertificateValidator => "no_certificate_validator",
        }
    }

    /// The precise reason, for the debug log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown_client",
            Self::BadSecret => "bad_secret",
            Self::Disabled => "disabled",
            Self::BadAssertion => "bad_assertion",
            Self::Replay => "replay",
            Self::MethodMismatch => "method_mismatch",
            Self::BadCertificate => "bad_certificate",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::NoCertificateValidator => "no_certificate_validator",
        }
    }
}

/// Counts a failure and returns the error the caller sees.
fn refuse(reason: FailureReason, error: OAuthError) -> Error {
    tracing::debug!(reason = reason.as_str(), "client authentication failed");
    metrics::counter!("portcullis_client_auth_failures_total", "reason" => reason.label())
        .increment(1);
    Error::ClientAuth {
        reason: reason.as_str(),
        error,
    }
}

fn refuse_generic(reason: FailureReason) -> Error {
    refuse(reason, OAuthError::invalid_client(AUTH_FAILED))
}

/// What a request presented to authenticate its client, not yet checked.
pub enum Credentials {
    /// `client_secret_basic` or `client_secret_post`.
    Secret {
        client_id: ClientId,
        secret: Zeroizing<Vec<u8>>,
        method: AuthMethod,
    },
    /// `client_secret_jwt` or `private_key_jwt`: a decoded (unverified) assertion.
    Assertion {
        client_id: ClientId,
        decoded: Box<Decoded>,
        claims: Box<AssertionClaims>,
    },
    /// `tls_client_auth` or `self_signed_tls_client_auth` (RFC 8705 §2): the `client_id`
    /// parameter and the certificate chain of the TLS connection.
    Certificate {
        client_id: ClientId,
        chain: PeerCertificates,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the assertion.
        f.debug_struct("Credentials")
            .field("client_id", self.client_id())
            .finish_non_exhaustive()
    }
}

/// A client whose credentials were checked.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client: Arc<Client>,
    /// The method the request used (for audit records and metrics).
    pub method: AuthMethod,
}

impl Credentials {
    /// Reads the credentials of a request from its `Authorization` header and form, for a
    /// connection without a client certificate.
    pub fn from_request(headers: &HeaderMap, form: &Form) -> Result<Self, Error> {
        Self::from_parts(headers, form, None)
    }

    /// Reads the credentials of a request from its `Authorization` header, its form and the
    /// client certificate chain of its TLS connection.
    ///
    /// RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each
    /// request", so a second method is `invalid_request`; no method at all is
    /// `invalid_client` (§5.2: "no client authentication included"). A certificate counts as
    /// the method only when nothing else is presented (RFC 8705 §2: with the `client_id`
    /// parameter); beside a secret or an assertion it only binds the token (§3).
    pub fn from_parts(
        headers: &HeaderMap,
        form: &Form,
        peer: Option<&PeerCertificates>,
    ) -> Result<Self, Error> {
        let authorization = headers.contains_key(header::AUTHORIZATION);
        let form_client_id = form.get("client_id");
        let form_secret = form.get("client_secret");
        let assertion = form.get("client_assertion");
        let assertion_type = form.get("client_assertion_type");
        let methods = usize::from(authorization)
            + usize::from(form_secret.is_some())
            + usize::from(assertion.is_some() || assertion_type.is_some());
        if methods > 1 {
            return Err(Error::invalid_request(
                "use exactly one client authentication method per request",
            ));
        }
        if let Some((client_id, secret)) = parse_basic(headers)? {
            // RFC 6749 §2.3.1 allows `client_id` beside Basic only if it names the same client.
            if form_client_id.is_some_and(|id| id != client_id.as_str()) {
                return Err(Error::invalid_request(
                    "client_id in the body does not match the Authorization header",
                ));
            }
            return Ok(Credentials::Secret {
                client_id,
                secret,
                method: AuthMethod::ClientSecretBasic,
            });
        }
        if let Some(secret) = form_secret {
            let id = form_client_id
                .ok_or_else(|| Error::invalid_request("client_secret requires client_id"))?;
            let client_id =
                ClientId::parse(id).map_err(|_| refuse_generic(FailureReason::UnknownClient))?;
            let secret = Zeroizing::new(secret.as_bytes().to_vec());
            return Ok(Credentials::Secret {
                client_id,
                secret,
                method: AuthMethod::ClientSecretPost,
            });
        }
        match (assertion, assertion_type) {
            (Some(assertion), Some(JWT_BEARER_ASSERTION_TYPE)) => read_assertion(assertion, form_client_id),
            (Some(_), Some(_)) => Err(Error::OAuth(OAuthError::invalid_client(
                "unsupported client_assertion_type; use urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ))),
            (Some(_), None) => Err(Error::invalid_request("client_assertion requires client_assertion_type")),
            (None, Some(_)) => Err(Error::invalid_request("client_assertion_type requires client_assertion")),
            (None, None) => match (peer, form_client_id) {
                (Some(chain), Some(id)) => Ok(Credentials::Certificate {
                    client_id: ClientId::parse(id)
                        .map_err(|_| refuse_generic(FailureReason::UnknownClient))?,
                    chain: chain.clone(),
                }),
                _ => Err(Error::OAuth(OAuthError::invalid_client("client authentication is required"))),
            },
        }
    }

    /// The client the request claims to be (unverified).
    pub fn client_id(&self) -> &ClientId {
        match self {
            Credentials::Secret { client_id, .. }
            | Credentials::Assertion { client_id, .. }
            | Credentials::Certificate { client_id, .. } => client_id,
        }
    }
}

/// Decodes an assertion (RFC 7523 §3) far enough to know whose keys verify it.
fn read_assertion(assertion: &str, form_client_id: Option<&str>) -> Result<Credentials, Error> {
    let decoded =
        verify::decode(assertion).map_err(|_| refuse_generic(FailureReason::BadAssertion))?;
    let claims: AssertionClaims = decoded
        .claims_as()
        .map_err(|_| refuse_generic(FailureReason::BadAssertion))?;
    let client_id =
        claimed_client_id(&claims).map_err(|_| refuse_generic(FailureReason::BadAssertion))?;
    // RFC 7521 §4.2: `client_id` is optional beside an assertion, but must then agree with it.
    if form_client_id.is_some_and(|id| id != client_id.as_str()) {
        return Err(refuse_generic(FailureReason::BadAssertion));
    }
    Ok(Credentials::Assertion {
        client_id,
        decoded: Box::new(decoded),
        claims: Box::new(claims),
    })
}

/// A client id and its secret as presented (wiped on drop).
pub type ClientSecretCredentials = (ClientId, Zeroizing<Vec<u8>>);

/// The `Authorization: Basic` client credentials (RFC 7617 §2, read by the shared HTTP
/// layer) with the RFC 6749 §2.3.1 twist: client id and secret are each
/// `application/x-www-form-urlencoded` before being joined by `:`. `None` without the header.
pub fn parse_basic(headers: &HeaderMap) -> Result<Option<ClientSecretCredentials>, Error> {
    let basic = match basic_credentials(headers) {
        Ok(Some(basic)) => basic,
        Ok(None) => return Ok(None),
        Err(MalformedCredentials::OtherScheme) => {
            return Err(Error::OAuth(OAuthError::invalid_client(
                "unsupported Authorization scheme; use Basic (client_secret_basic)",
            )))
        }
        Err(malformed) => return Err(Error::invalid_request(malformed.describe())),
    };
    let id_bytes = form_url_decode(basic.user());
    let secret = Zeroizing::new(form_url_decode(basic.password()));
    let client_id = std::str::from_utf8(&id_bytes)
        .ok()
        .and_then(|id| ClientId::parse(id).ok())
        .ok_or_else(|| refuse_generic(FailureReason::UnknownClient))?;
    Ok(Some((client_id, secret)))
}

/// `application/x-www-form-urlencoded` decoding of one value (WHATWG URL §5.1): `+` is a
/// space, `%XX` a byte; a `%` not followed by two hex digits stays literal, as browsers and
/// `form_urlencoded` treat it, so clients that do not encode at all still work.
fn form_url_decode(input: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// Checks the credentials against the registered client.
///
/// Secret clients cost one cache lookup and one HMAC; only assertions reach the store
/// (the RFC 7523 §3 item 7 replay check).
pub async fn authenticate(
    server: &AuthServer,
    credentials: Credentials,
) -> Result<AuthenticatedClient, Error> {
    let now = server.now();
    match credentials {
        Credentials::Secret {
            client_id,
            secret,
            method,
        } => {
            let client = load_client(server, &client_id).await?;
            if !client.auth_method.accepts(method) {
                return Err(refuse_generic(FailureReason::MethodMismatch));
            }
            if !verify_secret(&server.pepper, &secret, &client.secret_hashes, now) {
                return Err(refuse_generic(FailureReason::BadSecret));
            }
            if !client.enabled {
                return Err(refuse_generic(FailureReason::Disabled));
            }
            Ok(AuthenticatedClient { client, method })
        }
        Credentials::Assertion {
            client_id,
            decoded,
            claims,
        } => {
            let client = load_client(server, &client_id).await?;
            // The registered method decides how the signature is checked; an HMAC assertion
            // for a key-holding client (or the reverse) is refused before any verification.
            let method = if is_hmac_alg(decoded.header.alg.as_str()) {
                AuthMethod::ClientSecretJwt
            } else {
                AuthMethod::PrivateKeyJwt
            };
            if !client.auth_method.accepts(method) {
                return Err(refuse_generic(FailureReason::MethodMismatch));
            }
            if !client.enabled {
                return Err(refuse_generic(FailureReason::Disabled));
            }
            let verified = match method {
                AuthMethod::ClientSecretJwt => verify_hmac_assertion(server, &client, &decoded),
                _ => client_keys::verify_assertion(server, &client, &decoded).await,
            };
            if !verified {
                return Err(refuse_generic(FailureReason::BadAssertion));
            }
            let audiences = [server.token_endpoint(), server.settings.issuer.as_str()];
            let checked = check_assertion_claims(&claims, &client.client_id, &audiences, now)
                .map_err(|e| refuse(FailureReason::BadAssertion, e))?;
            // RFC 7523 §3 item 7: a jti is accepted once.
            if !server
                .store
                .record_single_use(client.client_id.as_str(), &checked.jti, checked.exp, now)
                .await?
            {
                return Err(refuse(
                    FailureReason::Replay,
                    OAuthError::invalid_client("assertion jti replayed"),
                ));
            }
            Ok(AuthenticatedClient { client, method })
        }
        Credentials::Certificate { client_id, chain } => {
            let client = load_client(server, &client_id).await?;
            let method = client.auth_method;
            let checked = match method {
                AuthMethod::TlsClientAuth => {
                    mtls::check_pki_certificate(
                        server.certificate_validator.as_deref(),
                        &client,
                        &chain.0,
                        now,
                    )
                    .await
                }
                AuthMethod::SelfSignedTlsClientAuth => {
                    mtls::check_self_signed(&client, &chain.0, now)
                }
                _ => return Err(refuse_generic(FailureReason::MethodMismatch)),
            };
            if let Err(refusal) = checked {
                let reason = match refusal {
                    CertificateRefusal::Invalid(why) => {
                        tracing::debug!(client_id = %client.client_id, reason = %why, "client certificate refused");
                        FailureReason::BadCertificate
                    }
                    CertificateRefusal::Mismatch => FailureReason::CertificateMismatch,
                    CertificateRefusal::NoValidator => {
                        tracing::warn!(client_id = %client.client_id, "tls_client_auth attempted but no certificate validator is configured");
                        FailureReason::NoCertificateValidator
                    }
                };
                return Err(refuse_generic(reason));
            }
            if !client.enabled {
                return Err(refuse_generic(FailureReason::Disabled));
            }
            Ok(AuthenticatedClient { client, method })
        }
    }
}

/// Reads and checks the client credentials of a request; counts an `invalid_client` against
/// the source address's failure budget. `claimed` receives the client the request claimed
/// to be, for the refusal's audit record.
pub(crate) async fn authenticate_request(
    server: &AuthServer,
    addr: IpAddr,
    request: &OAuthForm,
    claimed: &mut Option<ClientId>,
) -> Result<AuthenticatedClient, Error> {
    let result = match Credentials::from_parts(
        &request.headers,
        &request.form,
        request.peer_certificates.as_ref(),
    ) {
        Ok(credentials) => {
            *claimed = Some(credentials.client_id().clone());
            authenticate(server, credentials).await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        if e.code() == ErrorCode::InvalidClient {
            server.limits.record_failure(addr);
        }
    }
    result
}

/// RFC 7518 §3.2: the HMAC algorithms `client_secret_jwt` uses.
fn is_hmac_alg(alg: &str) -> bool {
    matches!(alg, "HS256" | "HS384" | "HS512")
}

/// Loads a client from the cache (the store only on a miss), or a device as a client.
async fn load_client(server: &AuthServer, client_id: &ClientId) -> Result<Arc<Client>, Error> {
    server
        .find_client(client_id)
        .await?
        .ok_or_else(|| refuse_generic(FailureReason::UnknownClient))
}

/// `client_secret_jwt`: the HMAC key is the secret itself, sealed under the master key with
/// the client id as associated data so a sealed secret cannot be moved to another client.
fn verify_hmac_assertion(server: &AuthServer, client: &Client, decoded: &Decoded) -> bool {
    let Some(sealed) = client.sealed_secret.as_deref() else {
        return false;
    };
    match portcullis_keys::software::open(
        &server.master,
        sealed,
        client.client_id.as_str().as_bytes(),
    ) {
        Ok(secret) => verify::verify_hmac(decoded, &secret).is_ok(),
        Err(e) => {
            tracing::error!(client_id = %client.client_id, error = %e, "cannot unseal a client_secret_jwt secret");
            false
        }
    }
}

#[cfg(test)]
#[path = "client_auth_tests.rs"]
mod tests;
