//! Key custody: the one place that decides where a private key lives and how the store keeps
//! a handle to it. Token-signing keys and CA keys (and, with the gateway, command and update
//! signing keys) all go through [`KeyCustody`], so `[keys] backend` means the same thing for
//! every key and a new kind of key cannot invent its own sealing.
//!
//! - `software`: the PKCS#8 is sealed with AES-256-GCM under the master key and kept in the
//!   store; the AAD names the key's [`KeyPurpose`] and kid, so a sealed blob cannot be swapped
//!   for another row's, nor a token key for a CA key.
//! - `pkcs11`: the key is generated inside the token, never leaves it, and is found again by
//!   its kid; the store keeps nothing private.

use std::sync::Arc;

use portcullis_core::Kid;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::pkcs11::Pkcs11Token;
use crate::software::{self, MasterKey, SoftwareSigner};
use crate::{Algorithm, KeyError, Signer};

/// Where keys live (`[keys] backend`, and the `backend` recorded with every stored key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBackend {
    /// Sealed in the store under the master key.
    Software,
    /// Generated and used inside a PKCS#11 token.
    Pkcs11,
}

impl KeyBackend {
    /// The spelling in configuration and in stored rows.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Software => "software",
            Self::Pkcs11 => "pkcs11",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        match s {
            "software" => Ok(Self::Software),
            "pkcs11" => Ok(Self::Pkcs11),
            _ => Err(KeyError::Malformed(
                "a key backend is \"software\" or \"pkcs11\"".into(),
            )),
        }
    }
}

impl std::fmt::Display for KeyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for KeyBackend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|_| {
            D::Error::custom(format!(
                "keys.backend must be \"software\" or \"pkcs11\", not {s:?}"
            ))
        })
    }
}

/// What a key is for. It is bound into a sealed key's AAD, so a key sealed for one purpose
/// never opens as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyPurpose {
    /// Signs access tokens and audit checkpoints.
    TokenSigning,
    /// A certificate authority's key.
    CertificateAuthority,
    /// Signs the gateway's trust list: the key devices pin (issue #13).
    TrustRoot,
    /// Signs commands to devices.
    CommandSigning,
    /// Signs device settings.
    SettingsSigning,
    /// Signs software-update manifests.
    UpdateSigning,
    /// Encrypts the sensitive fields of audit records (a 256-bit AES data key, not a
    /// signing key: see [`KeyCustody::seal_secret`]).
    AuditData,
}

impl KeyPurpose {
    /// The AAD a sealed key of this purpose and kid is bound to. The spellings are stored
    /// data (every sealed key was made with one): never change them.
    pub fn aad(self, kid: &str) -> Vec<u8> {
        match self {
            Self::TokenSigning => format!("portcullis-signing-key:{kid}"),
            Self::CertificateAuthority => format!("portcullis-ca-key:{kid}"),
            Self::TrustRoot => format!("portcullis-trust-root-key:{kid}"),
            Self::CommandSigning => format!("portcullis-command-key:{kid}"),
            Self::SettingsSigning => format!("portcullis-settings-key:{kid}"),
            Self::UpdateSigning => format!("portcullis-update-key:{kid}"),
            Self::AuditData => format!("portcullis-audit-data-key:{kid}"),
        }
        .into_bytes()
    }
}

/// A new key in custody: its signer, and what the store keeps to find it again (the sealed
/// PKCS#8 for a software key; nothing for a token key, which the token finds by kid).
pub struct CustodyKey {
    pub signer: Arc<dyn Signer>,
    pub sealed: Vec<u8>,
}

/// The custody of every private key of a deployment.
#[derive(Clone)]
pub enum KeyCustody {
    /// PKCS#8 sealed under the master key, kept in the store.
    Software(Arc<MasterKey>),
    /// Keys inside a PKCS#11 token; the store holds only their kid.
    Pkcs11(Arc<Pkcs11Token>),
}

impl std::fmt::Debug for KeyCustody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyCustody").field(&self.backend()).finish()
    }
}

impl KeyCustody {
    /// Which backend this is.
    pub fn backend(&self) -> KeyBackend {
        match self {
            Self::Software(_) => KeyBackend::Software,
            Self::Pkcs11(_) => KeyBackend::Pkcs11,
        }
    }

    /// Generates a key of `alg` for `purpose`.
    pub fn generate(&self, purpose: KeyPurpose, alg: Algorithm) -> Result<CustodyKey, KeyError> {
        match self {
            Self::Software(master) => {
                let (signer, pkcs8) = SoftwareSigner::generate(alg)?;
                let sealed = software::seal(master, &pkcs8, &purpose.aad(signer.kid().as_str()))?;
                Ok(CustodyKey {
                    signer: Arc::new(signer),
                    sealed,
                })
            }
            Self::Pkcs11(token) => Ok(CustodyKey {
                signer: Arc::new(token.generate(alg)?),
                sealed: Vec::new(),
            }),
        }
    }

    /// Opens a stored key. `backend` is what was recorded with it: a key held by another
    /// backend than this custody's is refused with a message that says so, rather than
    /// failing to unseal or to be found.
    pub fn open(
        &self,
        purpose: KeyPurpose,
        backend: KeyBackend,
        alg: Algorithm,
        kid: &Kid,
        sealed: &[u8],
    ) -> Result<Arc<dyn Signer>, KeyError> {
        if backend != self.backend() {
            return Err(KeyError::Malformed(format!(
                "key {kid} is held by the {backend} backend, but keys.backend is {}",
                self.backend()
            )));
        }
        match self {
            Self::Software(master) => {
                let pkcs8 = software::open(master, sealed, &purpose.aad(kid.as_str()))?;
                Ok(Arc::new(SoftwareSigner::from_pkcs8(
                    alg,
                    kid.clone(),
                    &pkcs8,
                )?))
            }
            Self::Pkcs11(token) => Ok(Arc::new(token.find(kid)?)),
        }
    }

    /// Takes an existing private key (unencrypted PKCS#8, e.g. `ca import`) into custody
    /// under `kid`, trying each of `candidates` (the PKCS#8 names its key type; the crypto
    /// library decides which algorithm fits). A token's keys are imported with the HSM's own
    /// tools, so the PKCS#11 backend refuses.
    pub fn import_pkcs8(
        &self,
        purpose: KeyPurpose,
        kid: &Kid,
        pkcs8: &[u8],
        candidates: &[Algorithm],
    ) -> Result<CustodyKey, KeyError> {
        let Self::Software(master) = self else {
            return Err(KeyError::Malformed(
                "importing puts the key under the master key; with keys.backend = \"pkcs11\" \
                 import it into the token with your HSM's tools instead"
                    .into(),
            ));
        };
        let signer = candidates
            .iter()
            .find_map(|alg| SoftwareSigner::from_pkcs8(*alg, kid.clone(), pkcs8).ok())
            .ok_or_else(|| {
                KeyError::UnsupportedAlgorithm(
                    "the private key is none of the accepted key types".into(),
                )
            })?;
        let sealed = software::seal(master, pkcs8, &purpose.aad(kid.as_str()))?;
        Ok(CustodyKey {
            signer: Arc::new(signer),
            sealed,
        })
    }

    /// Seals a symmetric secret of `purpose` named `kid` (an audit data key): under the
    /// master key (software), or by the token under an AES key that never leaves it
    /// (pkcs11), so with an HSM a copied database and master key file open nothing.
    pub fn seal_secret(
        &self,
        purpose: KeyPurpose,
        kid: &str,
        secret: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Software(master) => software::seal(master, secret, &purpose.aad(kid)),
            Self::Pkcs11(token) => token.seal_secret(secret, &purpose.aad(kid)),
        }
    }

    /// Opens a secret [`Self::seal_secret`] made; `backend` is the one recorded with it.
    pub fn open_secret(
        &self,
        purpose: KeyPurpose,
        backend: KeyBackend,
        kid: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
        if backend != self.backend() {
            return Err(KeyError::Malformed(format!(
                "secret {kid} is held by the {backend} backend, but keys.backend is {}",
                self.backend()
            )));
        }
        match self {
            Self::Software(master) => software::open(master, sealed, &purpose.aad(kid)),
            Self::Pkcs11(token) => token.open_secret(sealed, &purpose.aad(kid)),
        }
    }

    /// Destroys a key that will never be used again. A software key's sealed blob stays in
    /// its row (it still verifies old audit checkpoints); a token key is deleted from the
    /// token.
    pub fn destroy(&self, kid: &Kid) -> Result<(), KeyError> {
        match self {
            Self::Software(_) => Ok(()),
            Self::Pkcs11(token) => token.destroy(kid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custody(seed: u8) -> KeyCustody {
        KeyCustody::Software(Arc::new(MasterKey::from_bytes([seed; 32])))
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_purpose_kid_and_master_key() -> Result<(), KeyError> {
        let keys = custody(2);
        let sealed = keys.seal_secret(KeyPurpose::AuditData, "ak-1", &[7; 32])?;
        let opened =
            keys.open_secret(KeyPurpose::AuditData, KeyBackend::Software, "ak-1", &sealed)?;
        assert_eq!(opened.as_slice(), &[7; 32]);
        for (purpose, kid) in [
            (KeyPurpose::AuditData, "ak-2"),
            (KeyPurpose::TokenSigning, "ak-1"),
        ] {
            assert!(keys
                .open_secret(purpose, KeyBackend::Software, kid, &sealed)
                .is_err());
        }
        assert!(custody(3)
            .open_secret(KeyPurpose::AuditData, KeyBackend::Software, "ak-1", &sealed)
            .is_err());
        assert!(keys
            .open_secret(KeyPurpose::AuditData, KeyBackend::Pkcs11, "ak-1", &sealed)
            .is_err());
        Ok(())
    }

    #[test]
    fn a_generated_key_opens_again_and_signs_the_same() -> Result<(), KeyError> {
        let custody = custody(1);
        let key = custody.generate(KeyPurpose::TokenSigning, Algorithm::ES256)?;
        let opened = custody.open(
            KeyPurpose::TokenSigning,
            KeyBackend::Software,
            Algorithm::ES256,
            key.signer.kid(),
            &key.sealed,
        )?;
        assert_eq!(opened.public_jwk(), key.signer.public_jwk());
        Ok(())
    }

    #[test]
    fn a_key_sealed_for_one_purpose_does_not_open_as_another() -> Result<(), KeyError> {
        let custody = custody(2);
        let key = custody.generate(KeyPurpose::TokenSigning, Algorithm::ES256)?;
        let as_ca = custody.open(
            KeyPurpose::CertificateAuthority,
            KeyBackend::Software,
            Algorithm::ES256,
            key.signer.kid(),
            &key.sealed,
        );
        assert!(as_ca.is_err());
        // A command key's sealed blob put in the trust root's place does not open either.
        let command = custody.generate(KeyPurpose::CommandSigning, Algorithm::ES256)?;
        for other in [
            KeyPurpose::TrustRoot,
            KeyPurpose::SettingsSigning,
            KeyPurpose::UpdateSigning,
        ] {
            let opened = custody.open(
                other,
                KeyBackend::Software,
                Algorithm::ES256,
                command.signer.kid(),
                &command.sealed,
            );
            assert!(opened.is_err(), "{other:?}");
        }
        Ok(())
    }

    #[test]
    fn a_key_of_another_backend_or_master_key_is_refused() -> Result<(), KeyError> {
        let key = custody(3).generate(KeyPurpose::CertificateAuthority, Algorithm::EdDSA)?;
        let kid = key.signer.kid().clone();
        let other_backend = custody(3).open(
            KeyPurpose::CertificateAuthority,
            KeyBackend::Pkcs11,
            Algorithm::EdDSA,
            &kid,
            &key.sealed,
        );
        assert!(matches!(other_backend, Err(KeyError::Malformed(m)) if m.contains("pkcs11")));
        let other_master = custody(4).open(
            KeyPurpose::CertificateAuthority,
            KeyBackend::Software,
            Algorithm::EdDSA,
            &kid,
            &key.sealed,
        );
        assert_eq!(other_master.err(), Some(KeyError::WrongMasterKey));
        Ok(())
    }

    #[test]
    fn an_imported_key_takes_the_algorithm_its_pkcs8_names() -> Result<(), KeyError> {
        let (original, pkcs8) = SoftwareSigner::generate(Algorithm::ES384)?;
        let kid = Kid::parse("ca-imported").map_err(|e| KeyError::Malformed(e.to_string()))?;
        let custody = custody(5);
        let imported = custody.import_pkcs8(
            KeyPurpose::CertificateAuthority,
            &kid,
            &pkcs8,
            &[Algorithm::ES256, Algorithm::ES384],
        )?;
        assert_eq!(imported.signer.algorithm(), Algorithm::ES384);
        let opened = custody.open(
            KeyPurpose::CertificateAuthority,
            KeyBackend::Software,
            Algorithm::ES384,
            &kid,
            &imported.sealed,
        )?;
        assert_eq!(opened.public_jwk().x, original.public_jwk().x);
        let refused = custody.import_pkcs8(
            KeyPurpose::CertificateAuthority,
            &kid,
            &pkcs8,
            &[Algorithm::EdDSA],
        );
        assert!(matches!(refused, Err(KeyError::UnsupportedAlgorithm(_))));
        Ok(())
    }

    #[test]
    fn the_backend_parses_from_its_stored_spelling_only() {
        assert_eq!(KeyBackend::parse("pkcs11").ok(), Some(KeyBackend::Pkcs11));
        assert_eq!(
            KeyBackend::parse("software").ok(),
            Some(KeyBackend::Software)
        );
        assert!(KeyBackend::parse("Software").is_err());
    }
}
