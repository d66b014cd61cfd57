//! Reading back the CRL another node published. The store is not trusted blindly: a row that
//! does not parse, names another issuer or carries a bad signature is refused (and rebuilt),
//! so a corrupted or planted value cannot be served as this CA's CRL.

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::Crl;
use crate::PkiError;

/// Decodes and checks a stored CRL against the issuing CA certificate (`issuer_der`).
pub(super) fn decode(der: Vec<u8>, issuer_der: &[u8]) -> Result<Crl, PkiError> {
    let bad = |why: &str| PkiError::Encoding(format!("stored CRL refused: {why}"));
    let (_, issuer) =
        X509Certificate::from_der(issuer_der).map_err(|_| bad("the CA certificate is not DER"))?;
    let (rest, crl) = CertificateRevocationList::from_der(&der).map_err(|_| bad("not DER"))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    if crl.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(bad("another issuer"));
    }
    crl.verify_signature(issuer.public_key())
        .map_err(|_| bad("bad signature"))?;
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| bad("no CRL number"))?;
    let next_update = crl
        .next_update()
        .ok_or_else(|| bad("no nextUpdate"))?
        .timestamp();
    let this_update = crl.last_update().timestamp();
    let entries = crl.iter_revoked_certificates().count();
    Ok(Crl {
        pem: crate::ca::pem("X509 CRL", &der),
        der,
        number,
        this_update,
        next_update,
        entries,
    })
}
