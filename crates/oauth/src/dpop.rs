//! DPoP proofs (RFC 9449): verifying them at the token endpoint and wherever a DPoP-bound
//! token is presented, server nonces, and replay across nodes.
//!
//! The claim rules are `portcullis_core::dpop`'s; here are the parts that need keys and the
//! store. Nonces are stateless: `HMAC(nonce key, time slot)`, the key derived from the server
//! pepper every node shares, so any node accepts the nonce another node handed out, with no
//! table and no round trip. A proof's `jti` is remembered in the store's single-use table
//! (scope `#dpop`) until the proof could no longer be accepted anyway, so a proof replayed to
//! another node is refused there too.

use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::dpop::{check_claims, ProofClaims, ProofTarget, ProofWindow, PROOF_TYPE};
use portcullis_core::token::AccessTokenClaims;
use portcullis_core::UnixTime;
use portcullis_keys::verify::{decode, VerifyingKey};
use portcullis_keys::{Algorithm, KeyError};
use portcullis_ports::{DpopPresentation, TokenRejection};

use crate::AuthServer;

/// The single-use scope of DPoP proof ids.
const REPLAY_SCOPE: &str = "#dpop";

/// DPoP settings (`[dpop]` in the configuration).
#[derive(Debug, Clone)]
pub struct DpopSettings {
    /// Algorithms a proof may be signed with (asymmetric only: the key is in the proof).
    pub algorithms: Vec<Algorithm>,
    /// How old or early a proof's `iat` may be.
    pub window: ProofWindow,
    /// Whether every proof must carry a server nonce (RFC 9449 §8, §9).
    pub require_nonce: bool,
    /// How long one nonce slot lasts; a nonce is accepted in its slot and the next.
    pub nonce_lifetime_secs: u32,
}

impl Default for DpopSettings {
    fn default() -> Self {
        DpopSettings {
            algorithms: Algorithm::ALL.to_vec(),
            window: ProofWindow {
                max_age_secs: 60,
                skew_secs: 5,
            },
            require_nonce: false,
            nonce_lifetime_secs: 300,
        }
    }
}

/// Why a proof is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofRefusal {
    /// `invalid_dpop_proof`, with what is wrong (names no value from the proof).
    Invalid(&'static str),
    /// `use_dpop_nonce`: the proof lacks the current nonce.
    NonceRequired,
    /// `invalid_dpop_proof`: the proof was already used (a replay, counted by detection).
    Replayed,
    /// The replay store could not answer; the request is not served.
    StoreUnavailable,
}

/// A proof that passed: the thumbprint of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof's `jwk`: the token's `cnf.jkt`.
    pub jkt: String,
}

/// The nonce key and the origins a proof's `htu` may name: fixed at start-up. Public for the
/// fuzz target; the server reaches it through [`AuthServer`].
pub struct DpopVerifier {
    settings: DpopSettings,
    nonce_key: hmac::Key,
    origins: Vec<String>,
    /// Keys of recent proofs by their protected header (base64url, as sent): a client signs
    /// every proof with the same key and header, so the key is parsed and its thumbprint
    /// computed once, not per request. The signature is still checked every time.
    keys: moka::sync::Cache<String, Arc<(VerifyingKey, String)>>,
}

/// Proof keys kept parsed.
const CACHED_KEYS: u64 = 10_000;

impl DpopVerifier {
    /// `pepper` is the server secret every node shares; the nonce key is derived from it
    /// (one HMAC, so the pepper itself never keys anything but secret hashes).
    pub fn new(
        settings: DpopSettings,
        pepper: &[u8],
        issuer: &str,
        mtls_base: Option<&str>,
    ) -> DpopVerifier {
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, pepper),
            b"portcullis dpop nonce key v1",
        );
        let origins = std::iter::once(issuer)
            .chain(mtls_base)
            .filter_map(portcullis_core::dpop::origin_of)
            .collect();
        DpopVerifier {
            settings,
            nonce_key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            origins,
            keys: moka::sync::Cache::new(CACHED_KEYS),
        }
    }

    pub(crate) fn settings(&self) -> &DpopSettings {
        &self.settings
    }

    /// The nonce of the slot `now` falls in.
    pub(crate) fn nonce(&self, now: UnixTime) -> String {
        self.nonce_of_slot(self.slot(now))
    }

    fn slot(&self, now: UnixTime) -> i64 {
        now.div_euclid(i64::from(self.settings.nonce_lifetime_secs.max(1)))
    }

    fn nonce_of_slot(&self, slot: i64) -> String {
        let tag = hmac::sign(&self.nonce_key, &slot.to_be_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref().get(..18).unwrap_or_default())
    }

    /// Whether `nonce` is this slot's or the previous one's (constant time: a nonce is not a
    /// secret, but nothing is gained by letting timing tell how close a guess came).
    fn nonce_is_current(&self, nonce: &str, now: UnixTime) -> bool {
        let slot = self.slot(now);
        [slot, slot - 1].into_iter().any(|s| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                self.nonce_of_slot(s).as_bytes(),
                nonce.as_bytes(),
            )
            .is_ok()
        })
    }

    /// RFC 9449 §4.3 steps 2–12 but `jti` uniqueness: the proof is a `dpop+jwt` signed with
    /// an allowed asymmetric algorithm by the public key in its header, for `method` and
    /// `path` on one of our origins, fresh, with `ath` exactly when a token is presented and
    /// the current nonce when nonces are required.
    pub fn check(
        &self,
        proof: &str,
        method: &str,
        path: &str,
        access_token_hash: Option<&str>,
        now: UnixTime,
    ) -> Result<(ProofClaims, VerifiedProof), ProofRefusal> {
        use ProofRefusal::Invalid;
        let decoded = decode(proof).map_err(|e| {
            Invalid(match e {
                KeyError::UnsupportedAlgorithm(_) => "the DPoP proof's alg is none",
                KeyError::PrivateKeyMaterial(_) => {
                    "the DPoP proof's jwk carries private or symmetric key material; a proof \
                     carries its public key only"
                }
                _ => "the DPoP proof is not a compact JWS",
            })
        })?;
        if decoded.header.typ.as_deref() != Some(PROOF_TYPE) {
            return Err(Invalid("the DPoP proof's typ is not dpop+jwt"));
        }
        let key = self.key_of(proof, &decoded)?;
        let (key, jkt) = (&key.0, &key.1);
        decoded
            .verify(key)
            .map_err(|_| Invalid("the DPoP proof's signature does not verify with its jwk"))?;
        let claims: ProofClaims = decoded
            .claims_as()
            .map_err(|_| Invalid("the DPoP proof lacks jti, htm, htu or iat"))?;
        let target = ProofTarget {
            method,
            path,
            origins: &self.origins,
            access_token_hash,
        };
        check_claims(&claims, &target, self.settings.window, now)
            .map_err(|e| Invalid(e.describe()))?;
        if self.settings.require_nonce
            && !claims
                .nonce
                .as_deref()
                .is_some_and(|n| self.nonce_is_current(n, now))
        {
            return Err(ProofRefusal::NonceRequired);
        }
        Ok((claims, VerifiedProof { jkt: jkt.clone() }))
    }

    /// The proof's key and its thumbprint, from the cache when its header was seen before.
    fn key_of(
        &self,
        proof: &str,
        decoded: &portcullis_keys::Decoded,
    ) -> Result<Arc<(VerifyingKey, String)>, ProofRefusal> {
        use ProofRefusal::Invalid;
        let header = proof.split('.').next().unwrap_or_default();
        if let Some(key) = self.keys.get(header) {
            return Ok(key);
        }
        let jwk = decoded
            .header
            .jwk
            .as_deref()
            .ok_or(Invalid("the DPoP proof's header carries no public jwk"))?;
        let key =
            VerifyingKey::from_header_jwk(jwk, &decoded.header.alg, &self.settings.algorithms)
                .map_err(|_| {
                    Invalid("the DPoP proof's alg is not allowed or does not fit its jwk")
                })?;
        let jkt = jwk
            .thumbprint()
            .map_err(|_| Invalid("the DPoP proof's jwk has no thumbprint"))?;
        let key = Arc::new((key, jkt));
        self.keys.insert(header.to_owned(), key.clone());
        Ok(key)
    }
}

/// base64url SHA-256 of an access token: a proof's `ath` (RFC 9449 §4.2).
pub fn access_token_hash(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl AuthServer {
    /// Verifies a proof and spends its `jti` (RFC 9449 §11.1): a second use, on this node or
    /// any other sharing the store, is refused until the proof would be stale anyway.
    pub(crate) async fn accept_dpop_proof(
        &self,
        proof: &str,
        method: &str,
        path: &str,
        access_token_hash: Option<&str>,
    ) -> Result<VerifiedProof, ProofRefusal> {
        let now = self.now();
        let (claims, verified) = self
            .dpop
            .check(proof, method, path, access_token_hash, now)?;
        // The row key binds the jti to the key, so one client's ids cannot collide with (and
        // burn) another's, and has a fixed size whatever the client sent.
        let id = replay_id(&verified.jkt, &claims.jti);
        let expires_at = self.dpop.settings().window.expires_at(claims.iat);
        match self
            .single_use
            .spend(REPLAY_SCOPE, &id, expires_at, now)
            .await
        {
            Ok(true) => Ok(verified),
            Ok(false) => Err(ProofRefusal::Replayed),
            Err(e) => {
                tracing::warn!(error = %e, "DPoP replay check failed: store unavailable");
                Err(ProofRefusal::StoreUnavailable)
            }
        }
    }

    /// RFC 9449 §7.1: a DPoP-bound token must come as `DPoP` with a proof for this request,
    /// carrying its hash, signed by the key it is bound to; an unbound token must not come
    /// as `DPoP` (the proof would bind nothing).
    pub(crate) async fn check_dpop_binding(
        &self,
        claims: &AccessTokenClaims,
        token: &str,
        presented: Option<DpopPresentation<'_>>,
    ) -> Result<(), TokenRejection> {
        let (jkt, dpop) = match (claims.dpop_jkt(), presented) {
            (None, None) => return Ok(()),
            (None, Some(_)) => return Err(TokenRejection::NotDpopBound),
            (Some(_), None) => return Err(TokenRejection::DpopProofMissing),
            (Some(jkt), Some(dpop)) => (jkt, dpop),
        };
        let proof = dpop.proof.ok_or(TokenRejection::DpopProofMissing)?;
        let ath = access_token_hash(token);
        let verified = self
            .accept_dpop_proof(proof, dpop.method, dpop.path, Some(&ath))
            .await
            .map_err(|refusal| match refusal {
                ProofRefusal::NonceRequired => TokenRejection::DpopNonceRequired,
                ProofRefusal::StoreUnavailable => TokenRejection::StoreUnavailable,
                ProofRefusal::Replayed => TokenRejection::DpopProofReplayed,
                ProofRefusal::Invalid(why) => {
                    tracing::debug!(why, "DPoP proof refused");
                    TokenRejection::DpopProofInvalid
                }
            })?;
        let same_key = aws_lc_rs::constant_time::verify_slices_are_equal(
            verified.jkt.as_bytes(),
            jkt.as_bytes(),
        )
        .is_ok();
        if same_key {
            Ok(())
        } else {
            tracing::debug!("DPoP proof signed by another key than the token's");
            Err(TokenRejection::DpopProofInvalid)
        }
    }

    /// Loads the single-use ids the store keeps (DPoP proofs, outside tokens) where this
    /// node decides them in memory (an embedded store): at start, before serving.
    pub async fn load_single_use(&self) -> Result<usize, portcullis_store::StoreError> {
        self.single_use.load(self.store.as_ref(), self.now()).await
    }

    /// Writes every spent id still queued (a graceful stop, before the process ends).
    pub async fn flush_single_use(&self) {
        self.single_use.flush().await;
    }

    /// A fresh nonce for a `DPoP-Nonce` header, when nonces are required.
    pub fn current_dpop_nonce(&self) -> Option<String> {
        self.dpop
            .settings()
            .require_nonce
            .then(|| self.dpop.nonce(self.now()))
    }
}

/// The replay-store id of a proof: base64url SHA-256 of `jkt`, a NUL and `jti`.
fn replay_id(jkt: &str, jti: &str) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(jkt.as_bytes());
    ctx.update(&[0]);
    ctx.update(jti.as_bytes());
    URL_SAFE_NO_PAD.encode(ctx.finish().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(require_nonce: bool) -> DpopVerifier {
        DpopVerifier::new(
            DpopSettings {
                require_nonce,
                ..DpopSettings::default()
            },
            b"pepper",
            "https://as.example",
            Some("https://as.example:8443"),
        )
    }

    #[test]
    fn a_nonce_lives_for_its_slot_and_the_next_and_is_shared_by_every_node() {
        let a = verifier(true);
        let b = verifier(true);
        let n = a.nonce(1_000);
        assert!(b.nonce_is_current(&n, 1_000));
        assert!(b.nonce_is_current(&n, 1_000 + 300));
        assert!(!b.nonce_is_current(&n, 1_000 + 600));
        assert!(!b.nonce_is_current("not-a-nonce", 1_000));
        let other = DpopVerifier::new(
            DpopSettings::default(),
            b"other",
            "https://as.example",
            None,
        );
        assert!(!other.nonce_is_current(&n, 1_000));
    }

    #[test]
    fn both_listeners_are_accepted_origins() {
        assert_eq!(
            verifier(false).origins,
            vec!["https://as.example", "https://as.example:8443"]
        );
    }

    #[test]
    fn replay_ids_separate_keys_and_have_a_fixed_size() {
        let a = replay_id("k1", "j");
        assert_ne!(a, replay_id("k2", "j"));
        assert_ne!(a, replay_id("k1", "j2"));
        assert_eq!(replay_id("k1", &"x".repeat(256)).len(), 43);
    }
}
