//! A CA key as rcgen sees it. Certificates, CRLs and OCSP responses are signed through
//! `portcullis_keys::Signer`, so a CA key can live in the software keystore or inside a
//! PKCS#11 token exactly like a token-signing key; rcgen only ever sees signatures.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_keys::{Algorithm, Signer};

use crate::der_writer::{ecdsa_jws_to_der, integer_pair};
use crate::PkiError;

/// A [`Signer`] adapted to rcgen's [`rcgen::SigningKey`].
#[derive(Debug, Clone)]
pub struct CaKey {
    signer: Arc<dyn Signer>,
    algorithm: &'static rcgen::SignatureAlgorithm,
    /// The subjectPublicKey bits (EC point, Ed25519 key, or DER `RSAPublicKey`).
    public_key: Vec<u8>,
}

impl CaKey {
    /// Wraps a signer. PS256 keys are refused: X.509 RSASSA-PSS needs parameters that
    /// relying parties (and rcgen) handle poorly; a CA uses ES256, ES384, EdDSA or RS256.
    pub fn new(signer: Arc<dyn Signer>) -> Result<Self, PkiError> {
        let algorithm = match signer.algorithm() {
            Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Algorithm::EdDSA => &rcgen::PKCS_ED25519,
            Algorithm::RS256 => &rcgen::PKCS_RSA_SHA256,
            other => {
                return Err(PkiError::Ca(format!(
                    "a CA key cannot use {other}; use ES256, ES384, EdDSA or RS256"
                )))
            }
        };
        let public_key = public_key_bits(&signer.public_jwk())?;
        Ok(Self {
            signer,
            algorithm,
            public_key,
        })
    }

    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// The DER `SubjectPublicKeyInfo` of this key.
    pub fn spki_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(self)
    }

    /// The raw subjectPublicKey bits (what OCSP's `issuerKeyHash` hashes).
    pub fn public_key_bits(&self) -> &[u8] {
        &self.public_key
    }

    /// Signs `message` and returns the signature as X.509 carries it (DER for ECDSA).
    pub fn sign_x509(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let sig = self.signer.sign(message)?;
        match self.signer.algorithm() {
            Algorithm::ES256 | Algorithm::ES384 => ecdsa_jws_to_der(&sig)
                .ok_or_else(|| PkiError::Encoding("ECDSA signature of odd length".into())),
            _ => Ok(sig),
        }
    }

    /// The signatureAlgorithm `AlgorithmIdentifier` DER this key's signatures carry.
    pub fn signature_algorithm_der(&self) -> Vec<u8> {
        // OIDs: ecdsa-with-SHA256 1.2.840.10045.4.3.2, -SHA384 .4.3.3, Ed25519 1.3.101.112,
        // sha256WithRSAEncryption 1.2.840.113549.1.1.11 (with NULL parameters).
        match self.signer.algorithm() {
            Algorithm::ES256 => {
                vec![
                    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
                ]
            }
            Algorithm::ES384 => {
                vec![
                    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
                ]
            }
            Algorithm::EdDSA => vec![0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
            _ => vec![
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
                0x00,
            ],
        }
    }
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        // rcgen's error type has no variant for a remote signer's reason; the signer logs
        // its own failure, and no key material is in either.
        self.sign_x509(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// The subjectPublicKey bits of a public JWK.
fn public_key_bits(jwk: &portcullis_keys::Jwk) -> Result<Vec<u8>, PkiError> {
    let field = |v: &Option<String>, name: &str| {
        v.as_deref()
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .ok_or_else(|| PkiError::Ca(format!("CA public key lacks a valid `{name}`")))
    };
    match jwk.kty.as_str() {
        "EC" => {
            let mut point = vec![0x04];
            point.extend(field(&jwk.x, "x")?);
            point.extend(field(&jwk.y, "y")?);
            Ok(point)
        }
        "OKP" => field(&jwk.x, "x"),
        "RSA" => Ok(integer_pair(&field(&jwk.n, "n")?, &field(&jwk.e, "e")?)),
        other => Err(PkiError::Ca(format!("unsupported CA key type {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_keys::software::SoftwareSigner;
    use rcgen::PublicKeyData as _;

    #[test]
    fn every_ca_algorithm_yields_an_spki_aws_lc_can_parse_and_verify_with() {
        use aws_lc_rs::signature::{self, UnparsedPublicKey};
        for (alg, verify_alg) in [
            (
                Algorithm::ES256,
                &signature::ECDSA_P256_SHA256_ASN1 as &dyn signature::VerificationAlgorithm,
            ),
            (Algorithm::ES384, &signature::ECDSA_P384_SHA384_ASN1),
            (Algorithm::EdDSA, &signature::ED25519),
            (Algorithm::RS256, &signature::RSA_PKCS1_2048_8192_SHA256),
        ] {
            let (signer, _pkcs8) = SoftwareSigner::generate(alg).unwrap();
            let key = CaKey::new(Arc::new(signer)).unwrap();
            let sig = key.sign_x509(b"tbs").unwrap();
            UnparsedPublicKey::new(verify_alg, key.der_bytes())
                .verify(b"tbs", &sig)
                .unwrap_or_else(|_| panic!("{alg} signature must verify"));
            let spki = key.spki_der();
            use x509_parser::prelude::FromDer as _;
            let (rest, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).unwrap();
            assert!(rest.is_empty());
            assert_eq!(parsed.subject_public_key.data.as_ref(), key.der_bytes());
        }
    }

    #[test]
    fn ps256_is_refused_for_a_ca() {
        let (signer, _pkcs8) = SoftwareSigner::generate(Algorithm::PS256).unwrap();
        assert!(matches!(CaKey::new(Arc::new(signer)), Err(PkiError::Ca(_))));
    }
}
