//! Writing an `OCSPResponse` (RFC 6960 §4.2): a `BasicOCSPResponse` signed by the issuing
//! CA, or an unsigned error status.

use std::time::Duration;

use der::asn1::{BitString, OctetString};
use der::{DateTime, Decode, Encode};
use portcullis_core::UnixTime;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use super::status::CertificateStatus;
use crate::der_writer::push_tlv;
use crate::{CaKey, PkiError};

fn encoding(e: der::Error) -> PkiError {
    PkiError::Encoding(format!("OCSP response: {e}"))
}

/// An unsigned error response: just `responseStatus` (§2.3: "these messages are not
/// signed"), so answering garbage costs no signature. Five fixed bytes:
/// `SEQUENCE { ENUMERATED status }`.
pub fn unsigned(status: OcspResponseStatus) -> Vec<u8> {
    vec![0x30, 0x03, 0x0a, 0x01, status as u8]
}

/// A GeneralizedTime in whole seconds, UTC (§4.2.2.1 and RFC 5280 §4.1.2.5.2: no
/// fractional seconds, `Z`). Times before 1970 cannot occur; they are clamped.
pub(crate) fn generalized_time(t: UnixTime) -> Result<OcspGeneralizedTime, PkiError> {
    let dt =
        DateTime::from_unix_duration(Duration::from_secs(t.max(0) as u64)).map_err(encoding)?;
    Ok(OcspGeneralizedTime::from(dt))
}

/// One `SingleResponse` (§4.2.1) echoing `cert_id`.
///
/// A revocation reason is included except `unspecified`, which RFC 5280 §5.3.1 says to
/// express by leaving the reason out, as our CRLs do.
pub(crate) fn single(
    cert_id: &CertId,
    status: &CertificateStatus,
    this_update: UnixTime,
    next_update: UnixTime,
) -> Result<SingleResponse, PkiError> {
    let cert_status = match status {
        CertificateStatus::Good => CertStatus::good(),
        CertificateStatus::Unknown => CertStatus::unknown(),
        CertificateStatus::Revoked { at, reason } => {
            let revocation_reason = match reason {
                Some(r) if r.code() != 0 => {
                    // CRLReason ::= ENUMERATED; decoded rather than named to avoid a direct
                    // dependency on x509-cert for one enum.
                    Some(Decode::from_der(&[0x0a, 0x01, r.code()]).map_err(encoding)?)
                }
                _ => None,
            };
            CertStatus::revoked(RevokedInfo {
                revocation_time: generalized_time(*at)?,
                revocation_reason,
            })
        }
    };
    Ok(SingleResponse {
        cert_id: cert_id.clone(),
        cert_status,
        this_update: generalized_time(this_update)?,
        next_update: Some(generalized_time(next_update)?),
        single_extensions: None,
    })
}

/// The DER `Extension` echoing a nonce (RFC 8954 §2.1: the response carries the request's
/// nonce unchanged): `SEQUENCE { id-pkix-ocsp-nonce, OCTET STRING { OCTET STRING nonce } }`.
fn nonce_extension_der(nonce: &[u8]) -> Vec<u8> {
    const NONCE_OID: [u8; 11] = [
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
    ];
    let mut inner = Vec::with_capacity(nonce.len() + 2);
    push_tlv(&mut inner, 0x04, nonce);
    let mut body = NONCE_OID.to_vec();
    push_tlv(&mut body, 0x04, &inner);
    let mut ext = Vec::with_capacity(body.len() + 2);
    push_tlv(&mut ext, 0x30, &body);
    ext
}

/// A successful response: `BasicOCSPResponse` over `responses`, signed by the issuing CA.
///
/// `responderID` is `byKey`, the SHA-1 of the CA's subjectPublicKey bits (§4.2.2.3), which
/// unlike `byName` stays right across a re-issue of the CA certificate with the same key.
/// `certs` is absent: the CA signs itself, and the client already has its certificate
/// (§4.2.2.2, first case).
pub(crate) fn signed(
    ca: &CaKey,
    responder_key_hash: &[u8],
    produced_at: UnixTime,
    responses: Vec<SingleResponse>,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, PkiError> {
    let response_extensions = match nonce {
        Some(n) => Some(vec![
            Decode::from_der(&nonce_extension_der(n)).map_err(encoding)?
        ]),
        None => None,
    };
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(responder_key_hash).map_err(encoding)?),
        produced_at: generalized_time(produced_at)?,
        responses,
        response_extensions,
    };
    let tbs_der = tbs.to_der().map_err(encoding)?;
    let signature = ca.sign_x509(&tbs_der)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: Decode::from_der(&ca.signature_algorithm_der()).map_err(encoding)?,
        signature: BitString::from_bytes(&signature).map_err(encoding)?,
        certs: None,
    };
    OcspResponse::successful(basic)
        .and_then(|r| r.to_der())
        .map_err(encoding)
}
