//! Random bytes from the crypto library's CSPRNG, so every crate draws nonces, ids and
//! secrets from one audited source rather than its own.

use crate::KeyError;

/// Returns `N` bytes from aws-lc's CSPRNG.
pub fn random_array<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| KeyError::Crypto("random generator failed"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        let a = random_array::<32>();
        let b = random_array::<32>();
        assert!(a.is_ok());
        assert_ne!(a, b);
    }
}
