//! The active signing key and the published key set, swappable while serving.
//!
//! Key rotation (RFC 7517 §5 JWK Sets; RFC 8414 §2 `jwks_uri`) publishes the next key
//! before it signs and keeps the previous one published until its tokens expire. Readers
//! take one `Arc` clone of an immutable snapshot under a read lock held for nanoseconds, so
//! the token endpoint never waits on a rotation, and the JWKS document is serialized once per
//! change rather than once per request.

use crate::jws::JwtSigner;
use crate::verify::VerifyingKey;
use crate::{Algorithm, Jwk, JwkSet, Signer};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The `typ` of every access token (RFC 9068 §2.1).
const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The current signer plus the published public keys; cheap to read, atomic to replace.
#[derive(Debug)]
pub struct KeyRing {
    snapshot: RwLock<Arc<Snapshot>>,
}

#[derive(Debug)]
struct Snapshot {
    active: Arc<JwtSigner>,
    jwks_json: Arc<str>,
    verifying_keys: HashMap<String, VerifyingKey>,
}

impl KeyRing {
    /// A ring signing with `active` and publishing `published` plus the active key's JWK.
    pub fn new(active: Arc<dyn Signer>, published: Vec<Jwk>) -> KeyRing {
        KeyRing {
            snapshot: RwLock::new(Arc::new(Snapshot::build(active, published))),
        }
    }

    /// The signer for new access tokens.
    pub fn active(&self) -> Arc<JwtSigner> {
        Arc::clone(&self.current().active)
    }

    /// The JWK Set document served at `jwks_uri`, `{"keys":[...]}`.
    pub fn jwks_json(&self) -> Arc<str> {
        Arc::clone(&self.current().jwks_json)
    }

    /// The published key with `kid`, ready to verify (e.g. our own tokens at introspection).
    pub fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        self.current().verifying_keys.get(kid).cloned()
    }

    /// Atomically switches to a new active key and published set; in-flight readers keep the
    /// snapshot they already hold.
    pub fn replace(&self, active: Arc<dyn Signer>, published: Vec<Jwk>) {
        let next = Arc::new(Snapshot::build(active, published));
        // A poisoned lock only means a writer panicked between swaps of a whole `Arc`;
        // the value inside is always a complete snapshot.
        let mut guard = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        *guard = next;
    }

    fn current(&self) -> Arc<Snapshot> {
        let guard = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }
}

impl Snapshot {
    fn build(active: Arc<dyn Signer>, published: Vec<Jwk>) -> Snapshot {
        let mut keys: Vec<Jwk> = Vec::with_capacity(published.len() + 1);
        let mut verifying_keys = HashMap::with_capacity(published.len() + 1);
        for jwk in std::iter::once(active.public_jwk()).chain(published) {
            if let Some(kid) = jwk.kid.as_deref() {
                if verifying_keys.contains_key(kid) {
                    continue; // the first key with a kid wins: the active key, then the list order
                }
            }
            // A key we cannot verify with is a key relying parties could not either: leave
            // it out of the document rather than publish something broken.
            let Ok(verifying) = VerifyingKey::from_jwk(&jwk, &Algorithm::ALL) else {
                continue;
            };
            if let Some(kid) = jwk.kid.clone() {
                verifying_keys.insert(kid, verifying);
            }
            keys.push(jwk);
        }
        // Serializing plain strings cannot fail; an empty set is the safe fallback anyway.
        let jwks_json = serde_json::to_string(&JwkSet { keys })
            .unwrap_or_else(|_| String::from(r#"{"keys":[]}"#));
        Snapshot {
            active: Arc::new(JwtSigner::new(active, ACCESS_TOKEN_TYP)),
            jwks_json: Arc::from(jwks_json),
            verifying_keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::generated_signer as signer;
    use crate::verify::decode;

    fn published_kids(ring: &KeyRing) -> Vec<String> {
        let set = JwkSet::parse(&ring.jwks_json());
        set.map(|s| s.keys.into_iter().filter_map(|k| k.kid).collect())
            .unwrap_or_default()
    }

    #[test]
    fn active_key_is_always_published_once() {
        let active = signer(Algorithm::ES256);
        let old = signer(Algorithm::EdDSA);
        let ring = KeyRing::new(
            Arc::clone(&active),
            vec![active.public_jwk(), old.public_jwk(), old.public_jwk()],
        );
        assert_eq!(
            published_kids(&ring),
            vec![active.kid().to_string(), old.kid().to_string()]
        );
    }

    #[test]
    fn tokens_from_the_active_signer_verify_with_the_published_key() {
        let ring = KeyRing::new(signer(Algorithm::ES384), Vec::new());
        let token = ring
            .active()
            .sign_claims_json(br#"{"sub":"x"}"#)
            .unwrap_or_default();
        let Ok(decoded) = decode(&token) else {
            panic!("decode")
        };
        assert_eq!(decoded.header.typ.as_deref(), Some("at+jwt"));
        let kid = decoded.header.kid.clone().unwrap_or_default();
        let key = ring.verifying_key(&kid);
        assert!(key.is_some_and(|k| decoded.verify(&k).is_ok()));
    }

    #[test]
    fn replace_rotates_while_keeping_the_previous_key_verifiable() {
        let first = signer(Algorithm::ES256);
        let ring = KeyRing::new(Arc::clone(&first), Vec::new());
        let held = ring.active();
        let old_token = held.sign_claims_json(b"{}").unwrap_or_default();

        let second = signer(Algorithm::PS256);
        ring.replace(Arc::clone(&second), vec![first.public_jwk()]);

        assert_eq!(ring.active().kid(), second.kid());
        assert_eq!(
            held.kid(),
            first.kid(),
            "a held signer is not swapped underneath"
        );
        let Ok(decoded) = decode(&old_token) else {
            panic!("decode")
        };
        let key = ring.verifying_key(first.kid().as_str());
        assert!(key.is_some_and(|k| decoded.verify(&k).is_ok()));
        assert!(ring.verifying_key("unknown").is_none());
        assert_eq!(published_kids(&ring).len(), 2);
    }
}
