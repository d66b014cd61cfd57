//! Turning `cryptoki` errors into [`KeyError`]s that say what failed and never carry a PIN.
//!
//! `cryptoki` errors name the PKCS#11 function and return value only (the PIN is never an
//! argument of an error), so their text is safe to show. Token-level failures are reported
//! as [`KeyError::Io`]: the token is a device the key lives on, like a file.

use crate::KeyError;
use cryptoki::error::{Error, RvError};

/// A failed PKCS#11 operation, described by what was being done.
pub(crate) fn token_error(doing: &str, e: &Error) -> KeyError {
    KeyError::Io(format!("PKCS#11 {doing}: {e}"))
}

/// A failed `C_Login`, with the two common causes said plainly.
pub(crate) fn login_error(token_label: &str, e: &Error) -> KeyError {
    let why = match e {
        Error::Pkcs11(RvError::PinIncorrect, _) => "the PIN is incorrect".to_owned(),
        Error::Pkcs11(RvError::PinLocked, _) => "the PIN is locked".to_owned(),
        Error::Pkcs11(RvError::PinLenRange, _) => "the PIN has the wrong length".to_owned(),
        other => other.to_string(),
    };
    KeyError::Io(format!(
        "PKCS#11 login to token {:?} failed: {why}",
        crate::error::shorten(token_label)
    ))
}

/// Whether `e` is the given PKCS#11 return value.
pub(crate) fn is_rv(e: &Error, rv: RvError) -> bool {
    matches!(e, Error::Pkcs11(got, _) if *got == rv)
}
