//! Compact JWS signing (RFC 7515 §7.1) for the token endpoint's hot path.
//!
//! The protected header is fixed per key, so it is encoded once at construction; signing a
//! token is then one allocation for the output, two base64url encodes into it and one call
//! to the [`Signer`].

use crate::{Algorithm, KeyError, Signer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::Kid;
use std::sync::Arc;

/// Signs JWTs with one key and one `typ` (e.g. `at+jwt`, RFC 9068 §2.1).
#[derive(Debug)]
pub struct JwtSigner {
    signer: Arc<dyn Signer>,
    /// base64url of `{"alg":..,"typ":..,"kid":..}`.
    encoded_header: String,
    /// Exact base64url length of this key's signatures.
    encoded_signature_len: usize,
}

impl JwtSigner {
    /// Wraps `signer`, encoding the protected header (RFC 7515 §4.1.1 `alg`, §4.1.9 `typ`,
    /// §4.1.4 `kid`) once.
    pub fn new(signer: Arc<dyn Signer>, typ: &str) -> JwtSigner {
        let alg = signer.algorithm();
        // `Value`'s Display escapes the strings and cannot fail.
        let header = format!(
            "{{\"alg\":\"{}\",\"typ\":{},\"kid\":{}}}",
            alg.as_str(),
            serde_json::Value::String(typ.to_owned()),
            serde_json::Value::String(signer.kid().as_str().to_owned()),
        );
        let signature_len = alg
            .fixed_signature_len()
            .unwrap_or_else(|| rsa_signature_len(&signer.public_jwk()));
        JwtSigner {
            encoded_header: URL_SAFE_NO_PAD.encode(header),
            encoded_signature_len: encoded_len(signature_len),
            signer,
        }
    }

    /// The same key writing another `typ`, for JWS that are not access tokens (audit
    /// checkpoints): explicit typing keeps one kind from passing for the other (RFC 8725 §3.11).
    pub fn with_typ(&self, typ: &str) -> JwtSigner {
        JwtSigner::new(Arc::clone(&self.signer), typ)
    }

    /// The key id in every header this signer writes.
    pub fn kid(&self) -> &Kid {
        self.signer.kid()
    }

    /// The algorithm in every header this signer writes.
    pub fn algorithm(&self) -> Algorithm {
        self.signer.algorithm()
    }

    /// Signs already-serialized JSON claims, returning the compact JWS
    /// `header.payload.signature` (RFC 7515 §7.1).
    pub fn sign_claims_json(&self, claims_json: &[u8]) -> Result<String, KeyError> {
        let capacity = self.encoded_header.len()
            + 1
            + encoded_len(claims_json.len())
            + 1
            + self.encoded_signature_len;
        let mut token = String::with_capacity(capacity);
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut token);
        // RFC 7515 §5.1 step 5: the signing input is ASCII(header '.' payload).
        let signature = self.signer.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    /// Serializes `claims` to JSON and signs them.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let json = serde_json::to_vec(claims)
            .map_err(|_| KeyError::Malformed("claims cannot be serialized to JSON".into()))?;
        self.sign_claims_json(&json)
    }
}

/// Unpadded base64 length of `n` bytes.
fn encoded_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// An RSA signature is as long as the modulus (RFC 8017 §8.1.1); the JWK `n` carries no
/// leading zeros (RFC 7518 §6.3.1.1), so its decoded length is the modulus length. An
/// unreadable `n` only costs a reallocation, so fall back to the 4096-bit size.
fn rsa_signature_len(jwk: &crate::Jwk) -> usize {
    jwk.n
        .as_deref()
        .map(|n| n.len() * 3 / 4)
        .filter(|len| *len > 0)
        .unwrap_or(512)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::generated_signer as signer;

    #[test]
    fn header_names_alg_typ_and_kid() {
        let jwt = JwtSigner::new(signer(Algorithm::ES256), "at+jwt");
        let header = URL_SAFE_NO_PAD
            .decode(&jwt.encoded_header)
            .unwrap_or_default();
        let expected = format!(
            r#"{{"alg":"ES256","typ":"at+jwt","kid":"{}"}}"#,
            jwt.kid().as_str()
        );
        assert_eq!(String::from_utf8_lossy(&header), expected);
    }

    #[test]
    fn token_fits_the_precomputed_capacity_exactly() {
        for alg in Algorithm::ALL {
            let jwt = JwtSigner::new(signer(alg), "at+jwt");
            let claims = br#"{"iss":"https://as.example","sub":"sensor-1","exp":1}"#;
            let token = jwt.sign_claims_json(claims);
            let Ok(token) = token else {
                panic!("{alg} signing failed")
            };
            assert_eq!(token.len(), token.capacity(), "{alg} reallocated");
            assert_eq!(token.split('.').count(), 3);
        }
    }

    #[test]
    fn sign_serializes_claims() {
        let jwt = JwtSigner::new(signer(Algorithm::EdDSA), "JWT");
        let token = jwt
            .sign(&serde_json::json!({"sub": "a"}))
            .unwrap_or_default();
        let payload = token.split('.').nth(1).unwrap_or_default();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(payload).ok(),
            Some(br#"{"sub":"a"}"#.to_vec())
        );
    }
}
