//! RFC 8705 `tls_client_auth` trusts certificates our issuing CA issued, checked against the
//! store's revocation state at every request (`portcullis_pki::chain`), adapted to the OAuth
//! crate's validator port.

use portcullis_core::UnixTime;
use portcullis_oauth::mtls::{BoxFuture, CertificateError};
use portcullis_oauth::{CertificateValidator, ValidatedCertificate};
use portcullis_pki::chain::IssuedCertificateValidator;

pub struct PkiCertificateValidator(pub IssuedCertificateValidator);

impl CertificateValidator for PkiCertificateValidator {
    fn validate<'a>(
        &'a self,
        chain: &'a [Vec<u8>],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<ValidatedCertificate, CertificateError>> {
        Box::pin(async move {
            self.0
                .validate(chain, now)
                .await
                .map_err(|e| CertificateError::Untrusted(e.to_string()))?;
            let leaf = chain
                .first()
                .ok_or_else(|| CertificateError::Untrusted("no client certificate".into()))?;
            ValidatedCertificate::from_der(leaf)
        })
    }
}
