//! A public key ready to verify, with its one algorithm decided by the key itself.

use crate::{Algorithm, Jwk, KeyError};
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use std::sync::Arc;

/// Smallest RSA modulus accepted (RFC 7518 §3.3: 2048 bits or larger).
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus aws-lc verifies with the `_2048_8192_` parameters.
const MAX_RSA_BITS: usize = 8192;

/// A parsed public key bound to exactly one [`Algorithm`]; cheap to clone.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: Arc<ParsedPublicKey>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Builds a verifying key from a public JWK. The algorithm follows from the key type
    /// (EC P-256 → ES256, P-384 → ES384, OKP Ed25519 → EdDSA, RSA → the JWK's `alg` if RS256
    /// or PS256, else RS256); a JWK `alg` that disagrees is refused, and so is an algorithm
    /// not in `allowed`.
    pub fn from_jwk(jwk: &Jwk, allowed: &[Algorithm]) -> Result<VerifyingKey, KeyError> {
        // RFC 7517 §4.2: a key published for encryption must not verify signatures.
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyError::Malformed("key \"use\" is not \"sig\"".into()));
        }
        let algorithm = algorithm_of(jwk)?;
        if let Some(alg) = jwk.alg.as_deref() {
            if alg != algorithm.as_str() {
                return Err(KeyError::AlgorithmMismatch);
            }
        }
        if !allowed.contains(&algorithm) {
            return Err(KeyError::AlgorithmNotAllowed(algorithm.as_str().into()));
        }
        let key = match algorithm {
            Algorithm::EdDSA => parse_okp(jwk)?,
            Algorithm::ES256 => parse_ec(jwk, 32, &signature::ECDSA_P256_SHA256_FIXED)?,
            Algorithm::ES384 => parse_ec(jwk, 48, &signature::ECDSA_P384_SHA384_FIXED)?,
            Algorithm::RS256 => parse_rsa(jwk, &signature::RSA_PKCS1_2048_8192_SHA256)?,
            Algorithm::PS256 => parse_rsa(jwk, &signature::RSA_PSS_2048_8192_SHA256)?,
        };
        Ok(VerifyingKey {
            kid: jwk.kid.clone(),
            algorithm,
            key: Arc::new(key),
        })
    }

    /// The JWK's `kid`, if it had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks a raw signature over `message`.
    pub(crate) fn verify_signature(&self, message: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        self.key
            .verify_sig(message, sig)
            .map_err(|_| KeyError::BadSignature)
    }
}

/// The algorithm a key can verify, decided by its type and curve, never by a token.
fn algorithm_of(jwk: &Jwk) -> Result<Algorithm, KeyError> {
    let unsupported = |what: &str| KeyError::UnsupportedAlgorithm(crate::error::shorten(what));
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some("P-256")) => Ok(Algorithm::ES256),
        ("EC", Some("P-384")) => Ok(Algorithm::ES384),
        ("OKP", Some("Ed25519")) => Ok(Algorithm::EdDSA),
        ("EC" | "OKP", crv) => Err(unsupported(crv.unwrap_or("missing crv"))),
        ("RSA", _) => match jwk.alg.as_deref() {
            Some("PS256") => Ok(Algorithm::PS256),
            Some("RS256") | None => Ok(Algorithm::RS256),
            // An EC or HMAC name on an RSA key disagrees with the key type.
            Some(alg) if Algorithm::parse(alg).is_ok() || alg.starts_with("HS") => {
                Err(KeyError::AlgorithmMismatch)
            }
            Some(alg) => Err(unsupported(alg)),
        },
        // RFC 8725 §3.1: a symmetric key must never stand where a public key is expected.
        ("oct", _) => Err(unsupported("oct (symmetric) keys cannot verify here")),
        (kty, _) => Err(unsupported(kty)),
    }
}

fn parse_ec(
    jwk: &Jwk,
    coordinate_len: usize,
    params: &'static signature::EcdsaVerificationAlgorithm,
) -> Result<ParsedPublicKey, KeyError> {
    let x = jwk.decode_member("x", &jwk.x)?;
    let y = jwk.decode_member("y", &jwk.y)?;
    // RFC 7518 §6.2.1.2: coordinates are exactly the field size, leading zeros kept.
    if x.len() != coordinate_len || y.len() != coordinate_len {
        return Err(KeyError::Malformed(
            "EC coordinates have the wrong length".into(),
        ));
    }
    // SEC 1 §2.3.3 uncompressed point: 0x04 || x || y.
    let mut point = Vec::with_capacity(1 + 2 * coordinate_len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    ParsedPublicKey::new(params, point)
        .map_err(|_| KeyError::Malformed("EC point is not on the curve".into()))
}

fn parse_okp(jwk: &Jwk) -> Result<ParsedPublicKey, KeyError> {
    let x = jwk.decode_member("x", &jwk.x)?;
    if x.len() != 32 {
        return Err(KeyError::Malformed("Ed25519 key is not 32 bytes".into()));
    }
    ParsedPublicKey::new(&signature::ED25519, x)
        .map_err(|_| KeyError::Malformed("Ed25519 key is invalid".into()))
}

fn parse_rsa(
    jwk: &Jwk,
    params: &'static signature::RsaParameters,
) -> Result<ParsedPublicKey, KeyError> {
    let n = jwk.decode_member("n", &jwk.n)?;
    let e = jwk.decode_member("e", &jwk.e)?;
    // Some producers prepend a zero byte; it carries no value and aws-lc refuses it.
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return Err(KeyError::Malformed(
            "RSA modulus is shorter than 2048 bits (RFC 7518 §3.3)".into(),
        ));
    }
    if bits > MAX_RSA_BITS {
        return Err(KeyError::Malformed(
            "RSA modulus is longer than 8192 bits".into(),
        ));
    }
    RsaPublicKeyComponents { n, e }
        .to_parsed_public_key(params)
        .map_err(|_| KeyError::Malformed("RSA public key is invalid".into()))
}

/// A big-endian unsigned integer without its leading zero octets (JWK `n`/`e`, RFC 7518
/// §6.3.1, have none; PKCS#11 and DER may carry them).
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

/// Bit length of a big-endian unsigned integer without leading zero bytes.
fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.first() {
        Some(first) => big_endian.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec_jwk(alg: Option<&str>) -> Jwk {
        // RFC 7515 Appendix A.3 P-256 public key.
        Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU".into()),
            y: Some("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0".into()),
            n: None,
            e: None,
            kid: Some("ec".into()),
            alg: alg.map(str::to_owned),
            use_: None,
        }
    }

    #[test]
    fn ec_key_decides_es256() {
        let key = VerifyingKey::from_jwk(&ec_jwk(None), &Algorithm::ALL);
        assert_eq!(key.map(|k| k.algorithm()).ok(), Some(Algorithm::ES256));
    }

    #[test]
    fn jwk_alg_that_disagrees_with_key_type_is_rejected() {
        for alg in ["RS256", "HS256", "ES384", "none"] {
            let result = VerifyingKey::from_jwk(&ec_jwk(Some(alg)), &Algorithm::ALL);
            assert!(matches!(result, Err(KeyError::AlgorithmMismatch)), "{alg}");
        }
    }

    #[test]
    fn algorithm_outside_the_allow_list_is_rejected() {
        let result = VerifyingKey::from_jwk(&ec_jwk(None), &[Algorithm::EdDSA]);
        assert!(matches!(result, Err(KeyError::AlgorithmNotAllowed(_))));
    }

    #[test]
    fn point_off_the_curve_is_rejected() {
        let mut jwk = ec_jwk(None);
        jwk.y = jwk.x.clone();
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk, &Algorithm::ALL),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn encryption_key_is_rejected() {
        let mut jwk = ec_jwk(None);
        jwk.use_ = Some("enc".into());
        assert!(VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).is_err());
    }

    #[test]
    fn symmetric_and_unknown_key_types_are_rejected() {
        for kty in ["oct", "EC2", ""] {
            let mut jwk = ec_jwk(None);
            jwk.kty = kty.into();
            assert!(matches!(
                VerifyingKey::from_jwk(&jwk, &Algorithm::ALL),
                Err(KeyError::UnsupportedAlgorithm(_))
            ));
        }
    }

    #[test]
    fn rsa_modulus_below_2048_bits_is_rejected() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let mut n = vec![0xffu8; 255]; // 2040 bits
        n[254] = 0x01;
        let jwk = Jwk {
            kty: "RSA".into(),
            n: Some(b64(&n)),
            e: Some("AQAB".into()),
            ..ec_jwk(None)
        };
        let jwk = Jwk {
            crv: None,
            x: None,
            y: None,
            ..jwk
        };
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk, &Algorithm::ALL),
            Err(KeyError::Malformed(m)) if m.contains("2048")
        ));
    }

    #[test]
    fn bit_length_counts_from_the_first_set_bit() {
        assert_eq!(bit_length(&[0x01, 0x00]), 9);
        assert_eq!(bit_length(&[0x80]), 8);
        assert_eq!(bit_length(&[]), 0);
    }
}
