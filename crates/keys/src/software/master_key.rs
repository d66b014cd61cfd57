//! The master key that seals every software private key at rest.

use crate::KeyError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::io::{Read, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// Length of the master key: AES-256.
pub const MASTER_KEY_LEN: usize = 32;
/// A key file is base64 of 32 bytes plus a newline; anything much larger is not one.
const MAX_FILE_BYTES: u64 = 256;

/// A 256-bit AES key that wraps data keys; zeroized on drop and never printed.
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Result<MasterKey, KeyError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut())
            .map_err(|_| KeyError::Crypto("random generator failed"))?;
        Ok(MasterKey { bytes })
    }

    /// Wraps existing key bytes (e.g. from a secret manager).
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> MasterKey {
        MasterKey {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// The raw key, for the envelope code only.
    pub(super) fn as_bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.bytes
    }

    /// Loads the key at `path`, or creates it there if no file exists; the `bool` is `true`
    /// when the key was created. A damaged file is an error, never silently replaced: that
    /// would orphan every key sealed under the old one.
    pub fn load_or_create(path: &Path) -> Result<(MasterKey, bool), KeyError> {
        match MasterKey::create_file(path) {
            Ok(key) => Ok((key, true)),
            Err(CreateError::AlreadyExists) => Ok((MasterKey::from_file(path)?, false)),
            Err(CreateError::Failed(e)) => Err(e),
        }
    }

    /// Loads the key from `path`: base64 of 32 bytes, optionally followed by a newline.
    pub fn from_file(path: &Path) -> Result<MasterKey, KeyError> {
        let file = std::fs::File::open(path).map_err(|e| io_error(path, &e))?;
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|_| corrupt(path, "is not text"))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(corrupt(path, "is too large to be a master key"));
        }
        let encoded = text.strip_suffix('\n').unwrap_or(&text);
        let encoded = encoded.strip_suffix('\r').unwrap_or(encoded);
        let mut decoded = Zeroizing::new([0u8; MASTER_KEY_LEN + 3]);
        let len = STANDARD
            .decode_slice(encoded, decoded.as_mut())
            .map_err(|_| corrupt(path, "is not base64 of a 32-byte key"))?;
        if len != MASTER_KEY_LEN {
            return Err(corrupt(path, "is not base64 of a 32-byte key"));
        }
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        bytes.copy_from_slice(
            decoded
                .get(..MASTER_KEY_LEN)
                .ok_or_else(|| corrupt(path, "is not base64 of a 32-byte key"))?,
        );
        Ok(MasterKey { bytes })
    }

    /// Creates `path` exclusively with mode 0600 before any byte is written, so the key is
    /// never readable by others, not even for an instant.
    fn create_file(path: &Path) -> Result<MasterKey, CreateError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = match options.open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(CreateError::AlreadyExists)
            }
            Err(e) => return Err(CreateError::Failed(io_error(path, &e))),
        };
        let key = MasterKey::generate().map_err(CreateError::Failed)?;
        let written = (|| {
            // The umask can only clear bits, but set 0600 explicitly in case the file
            // system ignored the creation mode.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            let mut line = Zeroizing::new(STANDARD.encode(key.as_bytes().as_slice()));
            line.push('\n');
            file.write_all(line.as_bytes())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            // Leave no half-written key behind to be mistaken for a real one.
            let _ = std::fs::remove_file(path);
            return Err(CreateError::Failed(io_error(path, &e)));
        }
        Ok(key)
    }
}

enum CreateError {
    AlreadyExists,
    Failed(KeyError),
}

fn io_error(path: &Path, e: &std::io::Error) -> KeyError {
    KeyError::Io(format!("master key file {}: {e}", path.display()))
}

fn corrupt(path: &Path, what: &str) -> KeyError {
    KeyError::Corrupt(format!("master key file {} {what}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> tempfile::TempDir {
        match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("no temp dir: {e}"),
        }
    }

    #[test]
    fn key_file_is_created_0600_and_reloads_identically() {
        let dir = temp_dir();
        let path = dir.path().join("master.key");
        let Ok((created, true)) = MasterKey::load_or_create(&path) else {
            panic!("first call must create the key")
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        let Ok((loaded, false)) = MasterKey::load_or_create(&path) else {
            panic!("second call must load the key")
        };
        assert_eq!(created.as_bytes(), loaded.as_bytes());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(text.len(), 45, "44 base64 characters and a newline");
    }

    #[test]
    fn truncated_or_garbled_key_file_is_corrupt_and_not_replaced() {
        let dir = temp_dir();
        let path = dir.path().join("master.key");
        let full = STANDARD.encode([7u8; 32]);
        for content in [&full[..20], "not base64 at all!", "", &"A".repeat(400)] {
            assert!(std::fs::write(&path, content).is_ok());
            assert!(
                matches!(MasterKey::load_or_create(&path), Err(KeyError::Corrupt(_))),
                "{content:.30?} must be corrupt"
            );
            assert_eq!(
                std::fs::read_to_string(&path).ok().as_deref(),
                Some(content)
            );
        }
    }

    #[test]
    fn key_file_without_newline_loads() {
        let dir = temp_dir();
        let path = dir.path().join("master.key");
        assert!(std::fs::write(&path, STANDARD.encode([9u8; 32])).is_ok());
        let key = MasterKey::from_file(&path);
        assert_eq!(key.ok().map(|k| *k.as_bytes()), Some([9u8; 32]));
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let dir = temp_dir();
        let path = dir.path().join("no/such/dir/master.key");
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(KeyError::Io(_))
        ));
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let key = MasterKey::from_bytes([0xAB; 32]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "MasterKey(<redacted>)");
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab,"));
    }
}
