//! Reading a key pair's public half and algorithm back from token attributes.
//!
//! The JWK (and so the kid, its RFC 7638 thumbprint) is computed from what the token
//! reports: `CKA_EC_POINT` for EC and Edwards keys, `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT`
//! for RSA (PKCS#11 v2.40 §2.3, §2.2; PKCS#11 v3.0 §2.3.5 for Edwards keys).

use super::error::token_error;
use crate::jwk::KeyMembers;
use crate::verify::strip_leading_zeros;
use crate::{Algorithm, Jwk, KeyError};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectHandle};
use cryptoki::session::Session;

/// DER of the P-256 curve OID 1.2.840.10045.3.1.7 (`CKA_EC_PARAMS`, RFC 5480 §2.1.1.1).
pub(crate) const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the P-384 curve OID 1.3.132.0.34.
pub(crate) const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// DER of the Ed25519 OID 1.3.101.112 (RFC 8410 §3).
pub(crate) const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER PrintableString "edwards25519", the curve-name form PKCS#11 v3.0 §2.3.5 also allows
/// (SoftHSM2 stores this form on the private key).
const ED25519_NAME_PARAMS: &[u8] = b"\x13\x0cedwards25519";

/// The public JWK (without kid) of the public key object `public_key`.
pub(crate) fn read_public_jwk(
    session: &Session,
    public_key: ObjectHandle,
    alg: Algorithm,
) -> Result<Jwk, KeyError> {
    let wanted: &[AttributeType] = match alg {
        Algorithm::PS256 | Algorithm::RS256 => {
            &[AttributeType::Modulus, AttributeType::PublicExponent]
        }
        _ => &[AttributeType::EcPoint],
    };
    let attributes = session
        .get_attributes(public_key, wanted)
        .map_err(|e| token_error("reading the public key", &e))?;
    let (mut point, mut modulus, mut exponent) = (None, None, None);
    for attribute in &attributes {
        match attribute {
            Attribute::EcPoint(bytes) => point = Some(bytes.as_slice()),
            Attribute::Modulus(bytes) => modulus = Some(bytes.as_slice()),
            Attribute::PublicExponent(bytes) => exponent = Some(bytes.as_slice()),
            _ => {}
        }
    }
    let missing = || KeyError::Corrupt("the token did not return the public key".into());
    Ok(match alg {
        Algorithm::EdDSA => {
            let x = unwrap_octet_string(point.ok_or_else(missing)?, 32)?;
            Jwk::for_signing("OKP", KeyMembers::Okp { crv: "Ed25519", x }, None, alg)
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let (crv, coordinate_len) = if alg == Algorithm::ES256 {
                ("P-256", 32)
            } else {
                ("P-384", 48)
            };
            let encoded = unwrap_octet_string(point.ok_or_else(missing)?, 1 + 2 * coordinate_len)?;
            // SEC 1 §2.3.3 uncompressed point: 0x04 || x || y.
            let coordinates = match encoded.split_first() {
                Some((0x04, rest)) => rest,
                _ => return Err(KeyError::Corrupt("EC point is not uncompressed".into())),
            };
            let (x, y) = coordinates.split_at(coordinate_len);
            Jwk::for_signing("EC", KeyMembers::Ec { crv, x, y }, None, alg)
        }
        Algorithm::PS256 | Algorithm::RS256 => {
            let n = strip_leading_zeros(modulus.ok_or_else(missing)?);
            let e = strip_leading_zeros(exponent.ok_or_else(missing)?);
            Jwk::for_signing("RSA", KeyMembers::Rsa { n, e }, None, alg)
        }
    })
}

/// The JWS algorithm a private key object serves, from its key type, curve and allowed
/// mechanisms; `None` for keys Portcullis does not use (made by other tools).
pub(crate) fn read_algorithm(
    session: &Session,
    private_key: ObjectHandle,
) -> Result<Option<Algorithm>, KeyError> {
    let attributes = session
        .get_attributes(
            private_key,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::AllowedMechanisms,
            ],
        )
        .map_err(|e| token_error("reading key attributes", &e))?;
    let (mut key_type, mut params, mut mechanisms) = (None, None, None);
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::AllowedMechanisms(m) => mechanisms = Some(m),
            _ => {}
        }
    }
    Ok(match key_type {
        Some(KeyType::EC_EDWARDS)
            if matches!(
                params.as_deref(),
                Some(ED25519_PARAMS | ED25519_NAME_PARAMS)
            ) =>
        {
            Some(Algorithm::EdDSA)
        }
        Some(KeyType::EC) if params.as_deref() == Some(P256_PARAMS) => Some(Algorithm::ES256),
        Some(KeyType::EC) if params.as_deref() == Some(P384_PARAMS) => Some(Algorithm::ES384),
        // An RSA key serves either RSA algorithm; Portcullis records which in
        // CKA_ALLOWED_MECHANISMS, and an unrestricted key is taken as RS256.
        Some(KeyType::RSA) => {
            let pss = mechanisms
                .unwrap_or_default()
                .contains(&MechanismType::SHA256_RSA_PKCS_PSS);
            Some(if pss {
                Algorithm::PS256
            } else {
                Algorithm::RS256
            })
        }
        _ => None,
    })
}

/// `CKA_EC_POINT` is a DER OCTET STRING holding the point (PKCS#11 v2.40 §2.3.3), though
/// some modules return the bare point; both are accepted when the length says which.
fn unwrap_octet_string(bytes: &[u8], point_len: usize) -> Result<&[u8], KeyError> {
    if bytes.len() == point_len {
        return Ok(bytes);
    }
    // Every point here is shorter than 128 bytes: tag 0x04, one short-form length byte.
    match bytes {
        [0x04, len, point @ ..] if usize::from(*len) == point_len && point.len() == point_len => {
            Ok(point)
        }
        _ => Err(KeyError::Corrupt(
            "the token returned a public point of an unexpected size".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_is_accepted_bare_or_der_wrapped_and_nothing_else() {
        let point = [7u8; 32];
        let mut wrapped = vec![0x04, 32];
        wrapped.extend_from_slice(&point);
        assert_eq!(unwrap_octet_string(&point, 32), Ok(&point[..]));
        assert_eq!(unwrap_octet_string(&wrapped, 32), Ok(&point[..]));
        for bad in [&wrapped[..33], &[0x04, 33, 1][..], &[][..], &[0x03, 32][..]] {
            assert!(unwrap_octet_string(bad, 32).is_err(), "{bad:?}");
        }
    }
}
