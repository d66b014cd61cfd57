//! The SAML 2.0 bearer assertion grant (RFC 7522 §3): a signed assertion from a trusted SAML
//! identity provider, mapped to a client by the same trust policies as outside JWTs.
//!
//! The XML work is `portcullis-saml`'s (structure check, libxmlsec1 signature check, reading
//! the signed bytes only); the rules on what was signed are `portcullis_core::saml`'s. Here:
//! which identity provider, where the assertion must be aimed, and the policy.

use portcullis_core::federation::{select_policy, ExternalTokenError};
use portcullis_core::saml::Destination;
use portcullis_core::token::FederatedSubject;
use portcullis_core::{ClientId, ErrorCode, OAuthError};
use portcullis_saml::SamlError;

use super::grant::{invalid_grant, SingleUse};
use super::FederatedGrant;
use crate::error::Error;
use crate::AuthServer;

/// Longest assertion `ID` remembered as spent; longer ones are refused rather than stored.
const MAX_ID_LEN: usize = 256;

impl From<SamlError> for Error {
    fn from(e: SamlError) -> Self {
        let code = match e {
            SamlError::Unsupported => ErrorCode::UnsupportedGrantType,
            SamlError::Encoding | SamlError::TooLarge => ErrorCode::InvalidRequest,
            _ => ErrorCode::InvalidGrant,
        };
        Error::OAuth(OAuthError::new(code, e.to_string()))
    }
}

impl AuthServer {
    /// RFC 7522 §3 for the base64url `assertion`; `authenticated` is the client the request
    /// authenticated as, if it did (optional, §3.1): the policy must then name that client.
    pub(crate) async fn saml_grant(
        &self,
        assertion: &str,
        authenticated: Option<&ClientId>,
    ) -> Result<FederatedGrant, Error> {
        if !portcullis_saml::SUPPORTED {
            return Err(SamlError::Unsupported.into());
        }
        let xml = portcullis_saml::decode_param(assertion)?;
        let inspected = portcullis_saml::inspect(&xml)?;
        let trust = self.federation.in_force();
        let issuer = trust.saml_issuer(&inspected.issuer).ok_or(invalid_grant(
            "the assertion's Issuer is not a trusted SAML identity provider",
        ))?;
        let certificates = issuer
            .certificates
            .iter()
            .map(|pem| portcullis_saml::pem_certificates(pem))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid_grant("the identity provider's certificates do not parse"))?
            .concat();
        // libxmlsec1 is synchronous: verification runs off the executor's threads.
        let verified = tokio::task::spawn_blocking(move || {
            portcullis_saml::verify(&xml, &inspected, &certificates)
        })
        .await
        .map_err(|_| {
            Error::OAuth(OAuthError::new(
                ErrorCode::ServerError,
                "the assertion could not be verified",
            ))
        })??;
        let token_endpoint = self.token_endpoint();
        let defaults = [self.settings.issuer.as_str(), token_endpoint];
        let configured;
        let audiences: &[&str] = match &issuer.audience {
            Some(audience) => {
                configured = [audience.as_str()];
                &configured
            }
            None => &defaults,
        };
        let to = Destination {
            audiences,
            token_endpoint,
        };
        let expires_at = verified
            .check(issuer, to, self.now())
            .map_err(|e| invalid_grant(e.describe()))?;
        let policy = select_policy(&trust.policies, &issuer.name, &verified.claims())
            .ok_or(ExternalTokenError::NoPolicy)?;
        if verified.id.len() > MAX_ID_LEN {
            return Err(invalid_grant(
                "the assertion's ID is longer than 256 characters",
            ));
        }
        let subject = FederatedSubject {
            iss: issuer.entity_id.clone(),
            sub: verified.name_id.clone(),
        };
        let once = SingleUse {
            scope: format!("#saml:{}", issuer.name),
            id: &verified.id,
            what: "the assertion was already used (ID)",
        };
        self.grant_by_policy(policy, authenticated, subject, expires_at, Some(once))
            .await
    }
}
