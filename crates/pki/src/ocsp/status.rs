//! Where a certificate's status comes from. The responder only needs "good, revoked (when,
//! why) or unknown" per serial; keeping that behind a trait lets the responder be tested
//! without a database and keeps it ignorant of the store's other tables.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::device::RevocationReason;
use portcullis_core::UnixTime;
use portcullis_store::Store;

use crate::PkiError;

/// A certificate's status as OCSP reports it (RFC 6960 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Issued by us and not revoked. (§2.2: "good" does not promise the certificate was
    /// ever issued or is within its validity, only that it is not revoked; ours does also
    /// mean we issued it, since unknown serials are answered `Unknown`.)
    Good,
    /// Revoked at `at`, for `reason` when one was recorded.
    Revoked {
        at: UnixTime,
        reason: Option<RevocationReason>,
    },
    /// Not a serial we issued.
    Unknown,
}

impl CertificateStatus {
    /// The metric label.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Revoked { .. } => "revoked",
            Self::Unknown => "unknown",
        }
    }
}

/// Looks up the status of one serial of the issuing CA.
#[async_trait]
pub trait CertificateStatusSource: Send + Sync + std::fmt::Debug + 'static {
    /// `serial_hex` is the store's key: lowercase hex of the serial INTEGER's content octets
    /// with leading zero bytes stripped. An error becomes `internalError` (§2.3), never a
    /// status: saying `unknown` or `good` because the database is down would be a lie.
    async fn status(&self, serial_hex: &str) -> Result<CertificateStatus, PkiError>;
}

/// The production source: the certificates table of the [`Store`], the one source of
/// revocation truth, so a revocation on any node is answered by every node.
#[derive(Debug, Clone)]
pub struct StoreStatusSource(pub Arc<dyn Store>);

#[async_trait]
impl CertificateStatusSource for StoreStatusSource {
    async fn status(&self, serial_hex: &str) -> Result<CertificateStatus, PkiError> {
        Ok(match self.0.get_certificate(serial_hex).await? {
            None => CertificateStatus::Unknown,
            Some(cert) => match cert.revoked_at {
                Some(at) => CertificateStatus::Revoked {
                    at,
                    reason: cert.revocation_reason,
                },
                None => CertificateStatus::Good,
            },
        })
    }
}
