//! Client secrets: generated from 256 random bits, shown once, stored as HMAC-SHA256 under a
//! server pepper (see docs/architecture.md, "Secrets are generated, never chosen").
//!
//! Because a secret carries 256 bits of entropy, a keyed fast hash is as strong as a slow one
//! and costs a microsecond instead of bcrypt's tens of milliseconds per token request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::UnixTime;

/// A secret value (client secret, enrollment secret). Zeroized on drop, redacted in `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Encodes random bytes (the caller supplies them: the core does no I/O) as base64url.
    pub fn from_random_bytes(bytes: &[u8]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }
    /// Wraps a secret presented by a caller.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret text; only for showing it once to its owner or computing a MAC.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A stored HMAC-SHA256 of a secret, with an optional deadline after which it stops being
/// accepted (the overlap window of a secret rotation).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretHash {
    /// base64url of the 32-byte MAC.
    pub mac: String,
    /// Unix time after which this hash is no longer accepted; `None` = no deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<UnixTime>,
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretHash")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The hashes a client keeps after a secret rotation at `now`: every earlier hash gets a
/// deadline no later than `now + overlap_secs` (an overlap of 0 thus ends all of them at
/// once), hashes whose deadline has passed are dropped, and the new hash comes first with no
/// deadline.
pub fn rotated_hashes(
    old: &[SecretHash],
    new: SecretHash,
    now: UnixTime,
    overlap_secs: u32,
) -> Vec<SecretHash> {
    let deadline = now + i64::from(overlap_secs);
    let mut hashes = vec![new];
    for h in old {
        let expires_at = h.expires_at.map_or(deadline, |t| t.min(deadline));
        if expires_at > now {
            hashes.push(SecretHash {
                mac: h.mac.clone(),
                expires_at: Some(expires_at),
            });
        }
    }
    hashes
}

/// HMAC-SHA256 of `secret` under `pepper`.
pub fn secret_mac(pepper: &[u8], secret: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper).unwrap_or_else(|_| unreachable!());
    mac.update(secret);
    mac.finalize().into_bytes().into()
}

impl SecretHash {
    /// Computes the stored form of `secret`.
    pub fn of(pepper: &[u8], secret: &Secret, expires_at: Option<UnixTime>) -> Self {
        Self {
            mac: URL_SAFE_NO_PAD.encode(secret_mac(pepper, secret.expose().as_bytes())),
            expires_at,
        }
    }

    fn mac_bytes(&self) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        let n = URL_SAFE_NO_PAD.decode_slice(&self.mac, &mut out).ok()?;
        (n == 32).then_some(out)
    }
}

/// Whether `presented` matches one of `stored` that is still valid at `now`.
///
/// Every stored hash is compared in constant time, and all of them are compared, so timing
/// tells neither which hash matched nor how many bytes did.
pub fn verify_secret(
    pepper: &[u8],
    presented: &[u8],
    stored: &[SecretHash],
    now: UnixTime,
) -> bool {
    let mac = secret_mac(pepper, presented);
    let mut ok = subtle::Choice::from(0u8);
    for h in stored {
        let live = h.expires_at.is_none_or(|t| now < t);
        if let Some(expected) = h.mac_bytes() {
            ok |= expected.ct_eq(&mac) & subtle::Choice::from(live as u8);
        }
    }
    ok.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEPPER: &[u8] = b"pepper-pepper-pepper-pepper-1234";

    fn hash(mac: &str, expires_at: Option<UnixTime>) -> SecretHash {
        SecretHash {
            mac: mac.into(),
            expires_at,
        }
    }

    #[test]
    fn rotation_gives_the_current_hash_a_deadline_and_the_new_one_none() {
        let out = rotated_hashes(&[hash("old", None)], hash("new", None), 100, 50);
        assert_eq!(out, vec![hash("new", None), hash("old", Some(150))]);
    }

    #[test]
    fn rotation_drops_expired_hashes_and_caps_pending_ones() {
        let old = [
            hash("cur", None),
            hash("prev", Some(500)),
            hash("dead", Some(90)),
        ];
        let out = rotated_hashes(&old, hash("new", None), 100, 50);
        assert_eq!(
            out,
            vec![
                hash("new", None),
                hash("cur", Some(150)),
                hash("prev", Some(150))
            ]
        );
    }

    #[test]
    fn zero_overlap_leaves_only_the_new_hash() {
        let old = [hash("cur", None), hash("prev", Some(500))];
        let out = rotated_hashes(&old, hash("new", None), 100, 0);
        assert_eq!(out, vec![hash("new", None)]);
    }

    #[test]
    fn secret_debug_never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let h = SecretHash::of(PEPPER, &s, None);
        assert!(!format!("{h:?}").contains(&h.mac));
    }

    #[test]
    fn generated_secret_is_43_chars_of_base64url() {
        let s = Secret::from_random_bytes(&[7u8; 32]);
        assert_eq!(s.expose().len(), 43);
    }

    #[test]
    fn right_secret_verifies_and_wrong_one_does_not() {
        let s = Secret::new("right");
        let stored = vec![SecretHash::of(PEPPER, &s, None)];
        assert!(verify_secret(PEPPER, b"right", &stored, 0));
        assert!(!verify_secret(PEPPER, b"wrong", &stored, 0));
        assert!(!verify_secret(b"other pepper", b"right", &stored, 0));
        assert!(!verify_secret(PEPPER, b"right", &[], 0));
    }

    #[test]
    fn rotated_out_secret_is_accepted_only_until_its_deadline() {
        let old = SecretHash::of(PEPPER, &Secret::new("old"), Some(100));
        let new = SecretHash::of(PEPPER, &Secret::new("new"), None);
        let stored = vec![new, old];
        assert!(verify_secret(PEPPER, b"old", &stored, 99));
        assert!(!verify_secret(PEPPER, b"old", &stored, 100));
        assert!(verify_secret(PEPPER, b"new", &stored, 1_000_000));
    }

    #[test]
    fn corrupt_stored_hash_never_matches() {
        let stored = vec![SecretHash {
            mac: "!!".into(),
            expires_at: None,
        }];
        assert!(!verify_secret(PEPPER, b"", &stored, 0));
    }
}
