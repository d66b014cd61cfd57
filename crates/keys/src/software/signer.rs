//! [`Signer`] over an in-process private key, for all five algorithms.

use crate::jwk::KeyMembers;
use crate::{Algorithm, Jwk, KeyError, Signer};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use portcullis_core::Kid;
use zeroize::Zeroizing;

/// RSA keys Portcullis generates: 2048 bits (RFC 7518 §3.3 minimum, fast to sign).
const RSA_GENERATED_SIZE: KeySize = KeySize::Rsa2048;
/// Smallest RSA key accepted from PKCS#8.
const MIN_RSA_BYTES: usize = 2048 / 8;

/// A private key held in this process. `Debug` shows only kid and algorithm.
pub struct SoftwareSigner {
    kid: Kid,
    algorithm: Algorithm,
    key: PrivateKey,
    public_jwk: Jwk,
    rng: SystemRandom,
}

enum PrivateKey {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("kid", &self.kid.as_str())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SoftwareSigner {
    /// Generates a key for `alg`, returning the signer (kid = its RFC 7638 thumbprint) and
    /// the PKCS#8 DER document to [`seal`](super::seal) and store.
    pub fn generate(alg: Algorithm) -> Result<(SoftwareSigner, Zeroizing<Vec<u8>>), KeyError> {
        let failed = |_| KeyError::Crypto("key generation failed");
        let pkcs8 = Zeroizing::new(match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 | Algorithm::ES384 => EcdsaKeyPair::generate(ecdsa_signing(alg))
                .and_then(|k| k.to_pkcs8v1())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::PS256 | Algorithm::RS256 => RsaKeyPair::generate(RSA_GENERATED_SIZE)
                .and_then(|k| k.as_der())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
        });
        let key = parse_private_key(alg, &pkcs8)?;
        let thumbprint = public_jwk(&key, None, alg).thumbprint()?;
        let kid =
            Kid::parse(thumbprint).map_err(|_| KeyError::Crypto("thumbprint is not a kid"))?;
        Ok((SoftwareSigner::assemble(alg, kid, key), pkcs8))
    }

    /// Loads a key from a PKCS#8 DER document (v1 or v2) for `alg` under `kid`.
    pub fn from_pkcs8(alg: Algorithm, kid: Kid, pkcs8: &[u8]) -> Result<SoftwareSigner, KeyError> {
        let key = parse_private_key(alg, pkcs8)?;
        Ok(SoftwareSigner::assemble(alg, kid, key))
    }

    fn assemble(algorithm: Algorithm, kid: Kid, key: PrivateKey) -> SoftwareSigner {
        SoftwareSigner {
            public_jwk: public_jwk(&key, Some(kid.as_str()), algorithm),
            kid,
            algorithm,
            key,
            rng: SystemRandom::new(),
        }
    }
}

impl Signer for SoftwareSigner {
    fn kid(&self) -> &Kid {
        &self.kid
    }

    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |_| KeyError::Crypto("signing failed");
        match &self.key {
            PrivateKey::Ed25519(key) => {
                Ok(key.try_sign(message).map_err(failed)?.as_ref().to_vec())
            }
            // The `_FIXED_SIGNING` algorithms emit r||s as RFC 7518 §3.4 requires.
            PrivateKey::Ecdsa(key) => Ok(key
                .sign(&self.rng, message)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            PrivateKey::Rsa(key, padding) => {
                let mut signature = vec![0u8; key.public_modulus_len()];
                key.sign(*padding, &self.rng, message, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
        }
    }

    fn public_jwk(&self) -> Jwk {
        self.public_jwk.clone()
    }
}

fn ecdsa_signing(alg: Algorithm) -> &'static signature::EcdsaSigningAlgorithm {
    match alg {
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}

fn parse_private_key(alg: Algorithm, pkcs8: &[u8]) -> Result<PrivateKey, KeyError> {
    let rejected = |_| KeyError::Malformed(format!("PKCS#8 document is not a valid {alg} key"));
    match alg {
        Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(PrivateKey::Ed25519)
            .map_err(rejected),
        Algorithm::ES256 | Algorithm::ES384 => EcdsaKeyPair::from_pkcs8(ecdsa_signing(alg), pkcs8)
            .map(PrivateKey::Ecdsa)
            .map_err(rejected),
        Algorithm::PS256 | Algorithm::RS256 => {
            let key = RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
            if key.public_modulus_len() < MIN_RSA_BYTES {
                return Err(KeyError::Malformed(
                    "RSA key is shorter than 2048 bits (RFC 7518 §3.3)".into(),
                ));
            }
            let padding: &'static dyn signature::RsaEncoding = if alg == Algorithm::PS256 {
                &signature::RSA_PSS_SHA256
            } else {
                &signature::RSA_PKCS1_SHA256
            };
            Ok(PrivateKey::Rsa(key, padding))
        }
    }
}

/// The public half as a JWK (RFC 7518 §6.2 EC, §6.3 RSA; RFC 8037 §2 OKP).
fn public_jwk(key: &PrivateKey, kid: Option<&str>, alg: Algorithm) -> Jwk {
    match key {
        PrivateKey::Ed25519(key) => {
            let x = key.public_key().as_ref();
            Jwk::for_signing("OKP", KeyMembers::Okp { crv: "Ed25519", x }, kid, alg)
        }
        PrivateKey::Ecdsa(key) => {
            // Uncompressed SEC 1 point: 0x04 || x || y, coordinates of equal length.
            let point = key.public_key().as_ref();
            let coordinates = point.get(1..).unwrap_or_default();
            let (x, y) = coordinates.split_at(coordinates.len() / 2);
            let crv = if alg == Algorithm::ES384 {
                "P-384"
            } else {
                "P-256"
            };
            Jwk::for_signing("EC", KeyMembers::Ec { crv, x, y }, kid, alg)
        }
        PrivateKey::Rsa(key, _) => {
            let public = key.public_key();
            let n = public.modulus().big_endian_without_leading_zero();
            let e = public.exponent().big_endian_without_leading_zero();
            Jwk::for_signing("RSA", KeyMembers::Rsa { n, e }, kid, alg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(alg: Algorithm) -> (SoftwareSigner, Zeroizing<Vec<u8>>) {
        match SoftwareSigner::generate(alg) {
            Ok(pair) => pair,
            Err(e) => panic!("{alg}: {e}"),
        }
    }

    #[test]
    fn generated_kid_is_the_public_jwk_thumbprint() {
        for alg in Algorithm::ALL {
            let (signer, _) = generate(alg);
            let jwk = signer.public_jwk();
            assert_eq!(
                jwk.thumbprint().ok().as_deref(),
                Some(signer.kid().as_str())
            );
            assert_eq!(jwk.kid.as_deref(), Some(signer.kid().as_str()));
            assert_eq!(jwk.alg.as_deref(), Some(alg.as_str()));
            assert_eq!(jwk.use_.as_deref(), Some("sig"));
        }
    }

    #[test]
    fn pkcs8_reloads_to_the_same_public_key() {
        for alg in Algorithm::ALL {
            let (signer, pkcs8) = generate(alg);
            let reloaded = SoftwareSigner::from_pkcs8(alg, signer.kid().clone(), &pkcs8);
            assert_eq!(
                reloaded.map(|s| s.public_jwk()).ok(),
                Some(signer.public_jwk()),
                "{alg}"
            );
        }
    }

    #[test]
    fn pkcs8_for_another_algorithm_or_garbage_is_rejected() {
        let (_, ec) = generate(Algorithm::ES256);
        let kid = Kid::parse("k").ok();
        let Some(kid) = kid else { panic!("kid") };
        for (alg, der) in [
            (Algorithm::EdDSA, ec.as_slice()),
            (Algorithm::ES384, ec.as_slice()),
            (Algorithm::RS256, ec.as_slice()),
            (Algorithm::ES256, b"not der".as_slice()),
            (Algorithm::ES256, &ec[..ec.len() - 1]),
        ] {
            let result = SoftwareSigner::from_pkcs8(alg, kid.clone(), der);
            assert!(matches!(result, Err(KeyError::Malformed(_))), "{alg}");
        }
    }

    #[test]
    fn rsa_signatures_are_modulus_sized_and_ec_signatures_fixed_size() {
        for (alg, len) in [
            (Algorithm::EdDSA, 64),
            (Algorithm::ES256, 64),
            (Algorithm::ES384, 96),
            (Algorithm::PS256, 256),
            (Algorithm::RS256, 256),
        ] {
            let (signer, _) = generate(alg);
            assert_eq!(signer.sign(b"m").map(|s| s.len()), Ok(len), "{alg}");
        }
    }

    #[test]
    fn debug_shows_kid_and_algorithm_only() {
        for alg in Algorithm::ALL {
            let (signer, _) = generate(alg);
            assert_eq!(
                format!("{signer:?}"),
                format!(
                    "SoftwareSigner {{ kid: {:?}, algorithm: {alg:?}, .. }}",
                    signer.kid().as_str()
                )
            );
        }
    }
}
