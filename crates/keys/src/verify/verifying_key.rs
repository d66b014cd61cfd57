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
            if !algorithm.matches_header(alg) {
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

    /// Builds the key a token carries in its own header (a DPoP proof's `jwk`, RFC 9449
    /// §4.2) for the header's `alg`. An EC or OKP key still decides its algorithm itself; an
    /// RSA key without `alg` serves the header's RS256 or PS256, since one RSA key can sign
    /// with either. Symmetric (`kty: oct`) keys and algorithms outside `allowed` are refused.
    pub fn from_header_jwk(
        jwk: &Jwk,
        header_alg: &str,
        allowed: &[Algorithm],
    ) -> Result<VerifyingKey, KeyError> {
        if jwk.kty == "RSA" && jwk.alg.is_none() {
            let alg = Algorithm::parse(header_alg)?;
            let mut with_alg = jwk.clone();
            with_alg.alg = Some(alg.as_str().to_owned());
            return VerifyingKey::from_jwk(&with_alg, allowed);
        }
        VerifyingKey::from_jwk(jwk, allowed)
    }

    /// Builds the verifying keys of a certificate's `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7):
    /// EC P-256 → ES256, P-384 → ES384, Ed25519 (RFC 8410) → EdDSA, RSA of 2048 to 8192 bits
    /// → RS256 and PS256; each kept only if in `allowed`. Any other key type or curve, a
    /// trailing byte, or a key that leaves nothing allowed is refused.
    pub fn from_spki_der(
        spki_der: &[u8],
        allowed: &[Algorithm],
    ) -> Result<Vec<VerifyingKey>, KeyError> {
        let (key_type, public_key) = spki::parse(spki_der)?;
        let candidates: &[Algorithm] = match key_type {
            spki::KeyType::P256 => &[Algorithm::ES256],
            spki::KeyType::P384 => &[Algorithm::ES384],
            spki::KeyType::Ed25519 => &[Algorithm::EdDSA],
            spki::KeyType::Rsa => &[Algorithm::RS256, Algorithm::PS256],
        };
        let algorithms: Vec<Algorithm> = candidates
            .iter()
            .copied()
            .filter(|a| allowed.contains(a))
            .collect();
        if algorithms.is_empty() {
            let names: Vec<&str> = candidates.iter().map(|a| a.as_str()).collect();
            return Err(KeyError::AlgorithmNotAllowed(names.join(", ")));
        }
        algorithms
            .into_iter()
            .map(|algorithm| {
                let key = match (key_type, algorithm) {
                    (spki::KeyType::Rsa, Algorithm::PS256) => {
                        parse_rsa_der(public_key, &signature::RSA_PSS_2048_8192_SHA256)?
                    }
                    (spki::KeyType::Rsa, _) => {
                        parse_rsa_der(public_key, &signature::RSA_PKCS1_2048_8192_SHA256)?
                    }
                    (spki::KeyType::P256, _) => {
                        parse_ec_point(public_key, 32, &signature::ECDSA_P256_SHA256_FIXED)?
                    }
                    (spki::KeyType::P384, _) => {
                        parse_ec_point(public_key, 48, &signature::ECDSA_P384_SHA384_FIXED)?
                    }
                    (spki::KeyType::Ed25519, _) => parse_ed25519(public_key.to_vec())?,
                };
                Ok(VerifyingKey {
                    kid: None,
                    algorithm,
                    key: Arc::new(key),
                })
            })
            .collect()
    }

    /// The JWK's `kid`, if it had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks a raw signature over `message` with this key's one algorithm: ECDSA as the
    /// fixed-size `r||s` of RFC 7518 §3.4 and RFC 9053 §2.1 (not DER), Ed25519 as its 64
    /// bytes, RSA as the modulus-sized block (PSS with a 32-byte salt, RFC 8230 §2).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        self.key
            .verify_sig(message, signature)
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

/// An uncompressed SEC 1 point (§2.3.3: `0x04 || x || y`) of the given coordinate size.
fn parse_ec_point(
    point: &[u8],
    coordinate_len: usize,
    params: &'static signature::EcdsaVerificationAlgorithm,
) -> Result<ParsedPublicKey, KeyError> {
    // Compressed points are legal in SPKI but no certificate we issue has one; refusing them
    // keeps one encoding per key.
    if point.len() != 1 + 2 * coordinate_len || point.first() != Some(&0x04) {
        return Err(KeyError::Malformed(
            "EC public key is not an uncompressed point of its curve".into(),
        ));
    }
    ParsedPublicKey::new(params, point)
        .map_err(|_| KeyError::Malformed("EC point is not on the curve".into()))
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
    parse_ec_point(&point, coordinate_len, params)
}

fn parse_okp(jwk: &Jwk) -> Result<ParsedPublicKey, KeyError> {
    parse_ed25519(jwk.decode_member("x", &jwk.x)?)
}

fn parse_ed25519(x: Vec<u8>) -> Result<ParsedPublicKey, KeyError> {
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
    parse_rsa_components(&n, &e, params)
}

/// The DER `RSAPublicKey` (RFC 8017 §A.1.1) inside an RSA `SubjectPublicKeyInfo`.
fn parse_rsa_der(
    rsa_public_key: &[u8],
    params: &'static signature::RsaParameters,
) -> Result<ParsedPublicKey, KeyError> {
    let (n, e) = spki::rsa_public_key(rsa_public_key)?;
    parse_rsa_components(n, e, params)
}

fn parse_rsa_components(
    n: &[u8],
    e: &[u8],
    params: &'static signature::RsaParameters,
) -> Result<ParsedPublicKey, KeyError> {
    // Some producers prepend a zero byte (DER always does for a modulus with its top bit
    // set); it carries no value and aws-lc refuses it.
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
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

/// Just enough DER (X.690 §10) to read a `SubjectPublicKeyInfo` and an `RSAPublicKey`:
/// definite lengths in their shortest form, every length checked against what is left, no
/// trailing bytes. The key bytes themselves are checked again by aws-lc.
mod spki {
    use crate::KeyError;

    /// The public key types a device certificate may carry.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum KeyType {
        P256,
        P384,
        Ed25519,
        Rsa,
    }

    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    const NULL: u8 = 0x05;
    const OID: u8 = 0x06;

    // OID contents (without tag and length).
    /// id-ecPublicKey, 1.2.840.10045.2.1 (RFC 5480 §2.1.1).
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// secp256r1, 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1).
    const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// secp384r1, 1.3.132.0.34 (RFC 5480 §2.1.1.1).
    const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    /// id-Ed25519, 1.3.101.112 (RFC 8410 §3).
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    /// rsaEncryption, 1.2.840.113549.1.1.1 (RFC 3279 §2.3.1).
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    fn malformed(what: &str) -> KeyError {
        KeyError::Malformed(format!("SubjectPublicKeyInfo: {what}"))
    }

    /// Splits one TLV of tag `tag` off the front of `input`: (contents, rest).
    fn take(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), KeyError> {
        let (&found, rest) = input.split_first().ok_or_else(|| malformed("truncated"))?;
        if found != tag {
            return Err(malformed("unexpected element"));
        }
        let (&first, rest) = rest.split_first().ok_or_else(|| malformed("truncated"))?;
        let (len, rest) = match first {
            0x00..=0x7f => (usize::from(first), rest),
            // Long form with 1 or 2 length octets covers every key up to RSA-8192.
            0x81 | 0x82 => {
                let count = usize::from(first & 0x7f);
                let octets = rest.get(..count).ok_or_else(|| malformed("truncated"))?;
                let len = octets
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                // DER: the shortest form only.
                if len < 0x80 || octets.first() == Some(&0) {
                    return Err(malformed("length not in its shortest form"));
                }
                (len, rest.get(count..).unwrap_or_default())
            }
            _ => return Err(malformed("length is indefinite or too long")),
        };
        if rest.len() < len {
            return Err(malformed("truncated"));
        }
        Ok(rest.split_at(len))
    }

    /// Like [`take`], but the element must be the last one of `input`.
    fn take_last(input: &[u8], tag: u8) -> Result<&[u8], KeyError> {
        match take(input, tag)? {
            (contents, []) => Ok(contents),
            _ => Err(malformed("trailing bytes")),
        }
    }

    /// The key type and the `subjectPublicKey` bits of a DER `SubjectPublicKeyInfo`.
    pub(super) fn parse(der: &[u8]) -> Result<(KeyType, &[u8]), KeyError> {
        let spki = take_last(der, SEQUENCE)?;
        let (algorithm, rest) = take(spki, SEQUENCE)?;
        let bits = take_last(rest, BIT_STRING)?;
        // Key bits are whole octets: the unused-bits octet is zero.
        let public_key = match bits.split_first() {
            Some((0, key)) if !key.is_empty() => key,
            _ => return Err(malformed("subjectPublicKey is not whole octets")),
        };
        let (oid, params) = take(algorithm, OID)?;
        let key_type = match oid {
            EC_PUBLIC_KEY => match take_last(params, OID)? {
                P256 => KeyType::P256,
                P384 => KeyType::P384,
                _ => return Err(KeyError::UnsupportedAlgorithm("EC curve".into())),
            },
            // RFC 8410 §3: the parameters are absent.
            ED25519 if params.is_empty() => KeyType::Ed25519,
            // RFC 3279 §2.3.1: NULL parameters; some encoders omit them.
            RSA_ENCRYPTION if params.is_empty() || take_last(params, NULL)?.is_empty() => {
                KeyType::Rsa
            }
            ED25519 | RSA_ENCRYPTION => return Err(malformed("unexpected parameters")),
            _ => return Err(KeyError::UnsupportedAlgorithm("public key type".into())),
        };
        Ok((key_type, public_key))
    }

    /// The modulus and public exponent of a DER `RSAPublicKey` (RFC 8017 §A.1.1), as
    /// big-endian bytes (possibly with DER's leading zero).
    pub(super) fn rsa_public_key(der: &[u8]) -> Result<(&[u8], &[u8]), KeyError> {
        let key = take_last(der, SEQUENCE)?;
        let (n, rest) = take(key, INTEGER)?;
        let e = take_last(rest, INTEGER)?;
        // A negative modulus or exponent (top bit set without a leading zero) is no key.
        if n.first().is_none_or(|b| b & 0x80 != 0) || e.first().is_none_or(|b| b & 0x80 != 0) {
            return Err(malformed("RSA integer is negative or empty"));
        }
        Ok((n, e))
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
