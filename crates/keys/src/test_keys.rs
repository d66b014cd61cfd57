//! Freshly generated keys for the unit tests of every module.

use crate::software::SoftwareSigner;
use crate::{Algorithm, Signer};
use std::sync::Arc;

/// A new software key for `alg`, as the trait object the rest of the crate takes.
pub(crate) fn generated_signer(alg: Algorithm) -> Arc<dyn Signer> {
    match SoftwareSigner::generate(alg) {
        Ok((signer, _pkcs8)) => Arc::new(signer),
        Err(e) => panic!("generating a {alg} key failed: {e}"),
    }
}
