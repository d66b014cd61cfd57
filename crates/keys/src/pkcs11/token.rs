//! One PKCS#11 token: generating, finding, listing and destroying signing keys on it.
//!
//! Each key is a pair of token objects sharing `CKA_ID` and `CKA_LABEL` = the kid, the
//! RFC 7638 thumbprint of the public JWK, so an operator's `pkcs11-tool --list-objects`
//! shows the same name as JWKS.

use super::error::token_error;
use super::public_key::{
    read_algorithm, read_public_jwk, ED25519_PARAMS, P256_PARAMS, P384_PARAMS,
};
use super::session::SessionPool;
use super::{Pkcs11Config, Pkcs11Signer};
use crate::{Algorithm, KeyError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use portcullis_core::Kid;
use std::sync::Arc;

/// RSA keys generated in the token: 2048 bits, as the software backend (RFC 7518 §3.3).
const RSA_MODULUS_BITS: u64 = 2048;
/// Prefix of the id a key pair carries between generation and naming; a pair left with it
/// (the process died in between) is not a usable key and is not listed.
const PLACEHOLDER_PREFIX: &str = "pending-";
/// F4 = 65537, big-endian.
const RSA_PUBLIC_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// A logged-in token holding signing keys. `Debug` shows the label only.
pub struct Pkcs11Token {
    pub(super) pool: Arc<SessionPool>,
    label: String,
}

impl std::fmt::Debug for Pkcs11Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Token")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Token {
    /// Loads the module, finds the token by label and logs in with the PIN. Errors name the
    /// module or label and the cause, never the PIN.
    pub fn open(config: &Pkcs11Config) -> Result<Pkcs11Token, KeyError> {
        let pool = SessionPool::open(&config.module_path, &config.token_label, &config.pin)?;
        Ok(Pkcs11Token {
            pool: Arc::new(pool),
            label: config.token_label.clone(),
        })
    }

    /// Generates a key pair for `alg` inside the token: private half sensitive,
    /// non-extractable and limited to `alg`'s mechanism; kid = thumbprint of the public half.
    pub fn generate(&self, alg: Algorithm) -> Result<Pkcs11Signer, KeyError> {
        // The kid is known only once the public key exists, so the pair is created under a
        // random placeholder id and renamed.
        let placeholder = format!(
            "{PLACEHOLDER_PREFIX}{}",
            portcullis_core::hex::encode(&crate::random_array::<16>()?)
        );
        let (mechanism, shape) = key_shape(alg);
        let naming = [
            Attribute::Token(true),
            Attribute::Id(placeholder.clone().into_bytes()),
            Attribute::Label(placeholder.into_bytes()),
        ];
        let mut public_template = vec![Attribute::Verify(true), Attribute::Private(false)];
        public_template.extend(shape);
        public_template.extend(naming.iter().cloned());
        let mut private_template = vec![
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::AllowedMechanisms(vec![signing_mechanism(alg)]),
        ];
        private_template.extend(naming.iter().cloned());

        self.pool.with_logged_in_session(|session| {
            let (public_key, private_key) = session
                .generate_key_pair(&mechanism, &public_template, &private_template)
                .map_err(|e| token_error(&format!("generating a {alg} key pair"), &e))?;
            let named = name_pair(session, public_key, private_key, alg);
            if named.is_err() {
                // Best effort: a pair without its kid would be an orphan on the token.
                let _ = session.destroy_object(private_key);
                let _ = session.destroy_object(public_key);
            }
            let (kid, jwk) = named?;
            Ok(Pkcs11Signer::new(
                Arc::clone(&self.pool),
                kid,
                alg,
                private_key,
                jwk,
            ))
        })
    }

    /// The key whose `CKA_ID` is `kid`; [`KeyError::UnknownKid`] if the token has none.
    pub fn find(&self, kid: &Kid) -> Result<Pkcs11Signer, KeyError> {
        self.pool.with_logged_in_session(|session| {
            let private_key = only_object(session, ObjectClass::PRIVATE_KEY, kid)?;
            let public_key = only_object(session, ObjectClass::PUBLIC_KEY, kid)?;
            let alg = read_algorithm(session, private_key)?
                .ok_or_else(|| KeyError::UnsupportedAlgorithm(format!("key {kid} on the token")))?;
            let jwk = read_public_jwk(session, public_key, alg)?;
            Ok(Pkcs11Signer::new(
                Arc::clone(&self.pool),
                kid.clone(),
                alg,
                private_key,
                jwk,
            ))
        })
    }

    /// Every signing key on the token whose `CKA_ID` is a valid kid and whose type is one
    /// Portcullis signs with, sorted by kid. Objects of other applications are skipped.
    pub fn list(&self) -> Result<Vec<(Kid, Algorithm)>, KeyError> {
        self.pool.with_logged_in_session(|session| {
            let handles = session
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Token(true),
                ])
                .map_err(|e| token_error("listing keys", &e))?;
            let mut keys = Vec::with_capacity(handles.len());
            for handle in handles {
                let Some(kid) = read_kid(session, handle)? else {
                    continue;
                };
                if kid.as_str().starts_with(PLACEHOLDER_PREFIX) {
                    continue;
                }
                if let Some(alg) = read_algorithm(session, handle)? {
                    keys.push((kid, alg));
                }
            }
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(keys)
        })
    }

    /// Destroys both halves of the key `kid`. Signers already built for it fail from now on.
    pub fn destroy(&self, kid: &Kid) -> Result<(), KeyError> {
        self.pool.with_logged_in_session(|session| {
            let handles = session
                .find_objects(&[Attribute::Token(true), Attribute::Id(kid_bytes(kid))])
                .map_err(|e| token_error("finding the key", &e))?;
            if handles.is_empty() {
                return Err(KeyError::UnknownKid);
            }
            for handle in handles {
                session
                    .destroy_object(handle)
                    .map_err(|e| token_error("destroying the key", &e))?;
            }
            Ok(())
        })
    }
}

/// The generation mechanism and public-template attributes that fix the key's shape.
fn key_shape(alg: Algorithm) -> (Mechanism<'static>, Vec<Attribute>) {
    match alg {
        Algorithm::EdDSA => (
            Mechanism::EccEdwardsKeyPairGen,
            vec![Attribute::EcParams(ED25519_PARAMS.to_vec())],
        ),
        Algorithm::ES256 => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(P256_PARAMS.to_vec())],
        ),
        Algorithm::ES384 => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(P384_PARAMS.to_vec())],
        ),
        Algorithm::PS256 | Algorithm::RS256 => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits(RSA_MODULUS_BITS.into()),
                Attribute::PublicExponent(RSA_PUBLIC_EXPONENT.to_vec()),
            ],
        ),
    }
}

/// The one signing mechanism a key of `alg` may be used with (`CKA_ALLOWED_MECHANISMS`).
pub(crate) fn signing_mechanism(alg: Algorithm) -> MechanismType {
    match alg {
        Algorithm::EdDSA => MechanismType::EDDSA,
        Algorithm::ES256 | Algorithm::ES384 => MechanismType::ECDSA,
        Algorithm::PS256 => MechanismType::SHA256_RSA_PKCS_PSS,
        Algorithm::RS256 => MechanismType::SHA256_RSA_PKCS,
    }
}

/// Computes the kid from the public key the token made and writes it to both objects.
fn name_pair(
    session: &Session,
    public_key: ObjectHandle,
    private_key: ObjectHandle,
    alg: Algorithm,
) -> Result<(Kid, crate::Jwk), KeyError> {
    let mut jwk = read_public_jwk(session, public_key, alg)?;
    let kid =
        Kid::parse(jwk.thumbprint()?).map_err(|_| KeyError::Crypto("thumbprint is not a kid"))?;
    let naming = [
        Attribute::Id(kid_bytes(&kid)),
        Attribute::Label(kid_bytes(&kid)),
    ];
    for object in [public_key, private_key] {
        session
            .update_attributes(object, &naming)
            .map_err(|e| token_error("naming the key pair", &e))?;
    }
    jwk.kid = Some(kid.as_str().to_owned());
    Ok((kid, jwk))
}

/// The single token object of `class` with `CKA_ID` = `kid`.
pub(super) fn only_object(
    session: &Session,
    class: ObjectClass,
    kid: &Kid,
) -> Result<ObjectHandle, KeyError> {
    let handles = session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Token(true),
            Attribute::Id(kid_bytes(kid)),
        ])
        .map_err(|e| token_error("finding the key", &e))?;
    match handles.as_slice() {
        [handle] => Ok(*handle),
        [] => Err(KeyError::UnknownKid),
        _ => Err(KeyError::Corrupt(format!(
            "several token objects of one class share kid {kid}"
        ))),
    }
}

/// The kid in an object's `CKA_ID`, or `None` if it is not one of ours.
fn read_kid(session: &Session, object: ObjectHandle) -> Result<Option<Kid>, KeyError> {
    let attributes = session
        .get_attributes(object, &[cryptoki::object::AttributeType::Id])
        .map_err(|e| token_error("reading a key id", &e))?;
    Ok(attributes
        .into_iter()
        .find_map(|attribute| match attribute {
            Attribute::Id(id) => String::from_utf8(id).ok().and_then(|s| Kid::parse(s).ok()),
            _ => None,
        }))
}

fn kid_bytes(kid: &Kid) -> Vec<u8> {
    kid.as_str().as_bytes().to_vec()
}
