//! The one error type of the keys crate.
//!
//! Messages describe *what* is wrong and never carry key bytes, secrets or whole tokens; text
//! that came from input (an `alg` name) is cut short so an attacker cannot flood the logs.

/// Everything that can go wrong while handling keys, signing or verifying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Input is not well-formed; the message says what is wrong, never the bytes.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A key that must be public (a JWS header's `jwk`, a JWK Set from outside) carries private
    /// or symmetric members. A variant of its own, not a `Malformed` text, because callers
    /// answer it differently: a DPoP client that sent its private key must be told so.
    #[error("{0} carries private or symmetric key material")]
    PrivateKeyMaterial(&'static str),
    /// The `alg` (or key type) is not one Portcullis implements.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The algorithm exists but policy does not allow it here.
    #[error("algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
    /// The token's `alg` is not the verifying key's algorithm (RFC 8725 §3.1).
    #[error("the token's alg does not match the key's algorithm")]
    AlgorithmMismatch,
    /// No key carries the token's `kid`.
    #[error("no key with the token's kid")]
    UnknownKid,
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A sealed blob cannot be unwrapped with this master key.
    #[error("the master key cannot open this sealed key")]
    WrongMasterKey,
    /// Stored data (sealed blob, master key file) is damaged.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// A file could not be read or written.
    #[error("i/o: {0}")]
    Io(String),
    /// The crypto library refused an operation that should not fail.
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
}

/// Cuts untrusted text to a loggable length and strips control characters.
pub(crate) fn shorten(text: &str) -> String {
    shorten_to(text, 32)
}

/// [`shorten`] with a caller-chosen length.
pub(crate) fn shorten_to(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_in_messages_is_cut_short_and_stripped_of_control_characters() {
        let long = format!("A\n{}", "x".repeat(1000));
        let shown = shorten(&long);
        assert!(shown.chars().count() <= 33);
        assert!(!shown.contains('\n'));
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            KeyError::Malformed("token has 4 segments".into()).to_string(),
            "malformed: token has 4 segments"
        );
        assert_eq!(
            KeyError::BadSignature.to_string(),
            "signature verification failed"
        );
    }
}
