//! [`Signer`] over a private key inside a PKCS#11 token: the key never leaves the token.

use super::error::{is_rv, token_error};
use super::session::SessionPool;
use super::token::only_object;
use crate::{Algorithm, Jwk, KeyError, Signer};
use aws_lc_rs::digest;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use portcullis_core::Kid;
use std::sync::{Arc, Mutex, PoisonError};

/// RFC 7518 §3.5: PS256 uses a salt as long as the SHA-256 output.
const PS256_SALT_LEN: u64 = 32;

/// A private key held by a token. `Debug` shows only kid and algorithm.
pub struct Pkcs11Signer {
    pool: Arc<SessionPool>,
    kid: Kid,
    algorithm: Algorithm,
    /// The private key's handle; a token may renumber objects after a logout or restart,
    /// so it is looked up again by kid when the token calls it invalid.
    private_key: Mutex<ObjectHandle>,
    public_jwk: Jwk,
}

/// How a private key is protected, as the token reports it (PKCS#11 v2.40 §4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    /// `CKA_SENSITIVE`: the key's value cannot be read in the clear.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key can be wrapped out of the token.
    pub extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`: the key has been sensitive since it was created.
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`: the key has never been extractable.
    pub never_extractable: bool,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("kid", &self.kid.as_str())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    pub(crate) fn new(
        pool: Arc<SessionPool>,
        kid: Kid,
        algorithm: Algorithm,
        private_key: ObjectHandle,
        mut public_jwk: Jwk,
    ) -> Pkcs11Signer {
        public_jwk.kid = Some(kid.as_str().to_owned());
        Pkcs11Signer {
            pool,
            kid,
            algorithm,
            private_key: Mutex::new(private_key),
            public_jwk,
        }
    }

    /// Runs `operation` with the private key's handle; if the token says the handle is no
    /// longer valid, finds the key by kid again (PKCS#11 v2.40 §2.2: handles are not
    /// guaranteed to survive a logout) and retries once.
    fn with_private_key<T>(
        &self,
        session: &Session,
        doing: &str,
        operation: impl Fn(ObjectHandle) -> Result<T, Error>,
    ) -> Result<T, KeyError> {
        let handle = *self
            .private_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match operation(handle) {
            Ok(value) => Ok(value),
            Err(e)
                if is_rv(&e, RvError::ObjectHandleInvalid)
                    || is_rv(&e, RvError::KeyHandleInvalid) =>
            {
                let handle = only_object(session, ObjectClass::PRIVATE_KEY, &self.kid)?;
                *self
                    .private_key
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = handle;
                operation(handle).map_err(|e| token_error(doing, &e))
            }
            Err(e) => Err(token_error(doing, &e)),
        }
    }

    /// Reads the private key's protection attributes back from the token.
    pub fn protection(&self) -> Result<KeyProtection, KeyError> {
        let wanted = [
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::AlwaysSensitive,
            AttributeType::NeverExtractable,
        ];
        let attributes = self.pool.with_session(|session| {
            self.with_private_key(session, "reading key attributes", |key| {
                session.get_attributes(key, &wanted)
            })
        })?;
        // Absent attributes are reported in the unsafe direction.
        let mut protection = KeyProtection {
            sensitive: false,
            extractable: true,
            always_sensitive: false,
            never_extractable: false,
        };
        for attribute in attributes {
            match attribute {
                Attribute::Sensitive(v) => protection.sensitive = v,
                Attribute::Extractable(v) => protection.extractable = v,
                Attribute::AlwaysSensitive(v) => protection.always_sensitive = v,
                Attribute::NeverExtractable(v) => protection.never_extractable = v,
                _ => {}
            }
        }
        Ok(protection)
    }
}

impl Signer for Pkcs11Signer {
    fn kid(&self) -> &Kid {
        &self.kid
    }

    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        // CKM_ECDSA signs a digest computed here (PKCS#11 v2.40 §2.3.6) and already returns
        // the fixed r||s of RFC 7518 §3.4; the RSA and EdDSA mechanisms hash inside.
        let digest_of = |alg| digest::digest(alg, message);
        let ec_digest;
        let (mechanism, input): (Mechanism<'_>, &[u8]) = match self.algorithm {
            Algorithm::ES256 => {
                ec_digest = digest_of(&digest::SHA256);
                (Mechanism::Ecdsa, ec_digest.as_ref())
            }
            Algorithm::ES384 => {
                ec_digest = digest_of(&digest::SHA384);
                (Mechanism::Ecdsa, ec_digest.as_ref())
            }
            Algorithm::RS256 => (Mechanism::Sha256RsaPkcs, message),
            // RFC 7518 §3.5: MGF1 with SHA-256, salt length 32.
            Algorithm::PS256 => (
                Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
                    hash_alg: MechanismType::SHA256,
                    mgf: PkcsMgfType::MGF1_SHA256,
                    s_len: PS256_SALT_LEN.into(),
                }),
                message,
            ),
            // RFC 8037 §3.1: pure Ed25519, no context, no pre-hash.
            Algorithm::EdDSA => (
                Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                message,
            ),
        };
        let signature = self.pool.with_session(|session| {
            self.with_private_key(session, "signing", |key| {
                session.sign(&mechanism, key, input)
            })
        })?;
        if let Some(len) = self.algorithm.fixed_signature_len() {
            if signature.len() != len {
                return Err(KeyError::Crypto(
                    "the token returned a signature of the wrong size",
                ));
            }
        }
        Ok(signature)
    }

    fn public_jwk(&self) -> Jwk {
        self.public_jwk.clone()
    }
}
