//! Where the PKCS#11 token is and how to log in to it.

use crate::KeyError;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// How to reach one token: module, token label and user PIN. `Debug` hides the PIN.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module_path: PathBuf,
    /// The token's label (`CKA_LABEL` of the token, PKCS#11 v2.40 §5.4 `CK_TOKEN_INFO`).
    pub token_label: String,
    /// The user PIN (`CKU_USER`); zeroized on drop.
    pub pin: Zeroizing<String>,
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module_path", &self.module_path)
            .field("token_label", &self.token_label)
            .field("pin", &"<redacted>")
            .finish()
    }
}

impl Pkcs11Config {
    /// Reads a PIN file: its whole content is the PIN, minus one trailing `\n` or `\r\n` (as
    /// `echo` and editors leave). An empty PIN is refused.
    pub fn pin_from_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
        let mut pin = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            KeyError::Io(format!(
                "PIN file {} cannot be read: {}",
                path.display(),
                e.kind()
            ))
        })?);
        if pin.ends_with('\n') {
            pin.pop();
            if pin.ends_with('\r') {
                pin.pop();
            }
        }
        if pin.is_empty() {
            return Err(KeyError::Malformed(format!(
                "PIN file {} is empty",
                path.display()
            )));
        }
        Ok(pin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin_file(content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("pin");
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write: {e}"));
        (dir, path)
    }

    #[test]
    fn pin_file_loses_exactly_one_trailing_newline() {
        for (content, pin) in [
            ("1234\n", "1234"),
            ("1234\r\n", "1234"),
            ("1234", "1234"),
            ("12 34\n\n", "12 34\n"),
        ] {
            let (_dir, path) = pin_file(content);
            let read = Pkcs11Config::pin_from_file(&path).map(|p| p.as_str().to_owned());
            assert_eq!(read.as_deref(), Ok(pin), "{content:?}");
        }
    }

    #[test]
    fn empty_or_missing_pin_file_is_a_clear_error() {
        let (_dir, path) = pin_file("\n");
        assert!(matches!(
            Pkcs11Config::pin_from_file(&path),
            Err(KeyError::Malformed(_))
        ));
        let missing = Pkcs11Config::pin_from_file(Path::new("/nonexistent/portcullis/pin"));
        assert!(matches!(missing, Err(KeyError::Io(_))));
    }

    #[test]
    fn debug_redacts_the_pin() {
        let config = Pkcs11Config {
            module_path: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
            token_label: "portcullis".into(),
            pin: Zeroizing::new("s3cr3t-pin".into()),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t-pin"));
        assert!(shown.contains("<redacted>"));
    }
}
