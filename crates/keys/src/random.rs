//! Random bytes from the crypto library's CSPRNG, so every crate draws nonces, ids and
//! secrets from one audited source rather than its own.

use crate::KeyError;

/// Returns `N` bytes from aws-lc's CSPRNG.
pub fn random_array<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| KeyError::Crypto("random generator failed"))?;
    Ok(out)
}

/// Bytes each thread draws at once for [`random_id`].
const ID_POOL: usize = 1024;

/// A thread's unused identifier bytes: `bytes[used..]`.
struct IdPool {
    bytes: [u8; ID_POOL],
    used: usize,
}

thread_local! {
    static ID_POOL_OF_THREAD: std::cell::RefCell<IdPool> = const {
        std::cell::RefCell::new(IdPool { bytes: [0; ID_POOL], used: ID_POOL })
    };
}

/// `N` random bytes for an identifier that must be unique and unguessable but is not a
/// secret (a token's `jti`, a message id: both travel in the clear), from the same CSPRNG as
/// [`random_array`] but drawn a kilobyte at a time per thread. aws-lc mixes fresh CPU entropy
/// (RDRAND) into every call, and one call per token was 1.5 % of the token path's CPU
/// (docs/benchmarks.md); a key, nonce or secret still takes [`random_array`]. Each byte is
/// handed out once.
pub fn random_id<const N: usize>() -> Result<[u8; N], KeyError> {
    if N > ID_POOL / 8 {
        return random_array();
    }
    ID_POOL_OF_THREAD.with_borrow_mut(|pool| {
        let mut unused = pool.bytes.get(pool.used..pool.used + N);
        if unused.is_none() {
            aws_lc_rs::rand::fill(&mut pool.bytes)
                .map_err(|_| KeyError::Crypto("random generator failed"))?;
            pool.used = 0;
            unused = pool.bytes.get(..N);
        }
        let mut out = [0u8; N];
        out.copy_from_slice(unused.ok_or(KeyError::Crypto("identifier pool too small"))?);
        pool.used += N;
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_across_many_refills_never_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(ID_POOL / 16) * 20 + 3 {
            let id = random_id::<16>();
            assert!(id.is_ok());
            assert!(seen.insert(id.ok()), "an id came twice");
        }
        // Sizes that do not divide the pool, and one too large for it, still work.
        assert_ne!(random_id::<24>().ok(), random_id::<24>().ok());
        assert_ne!(random_id::<512>().ok(), random_id::<512>().ok());
    }

    #[test]
    fn two_draws_differ() {
        let a = random_array::<32>();
        let b = random_array::<32>();
        assert!(a.is_ok());
        assert_ne!(a, b);
    }
}
