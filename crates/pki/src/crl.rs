//! Certificate revocation lists (RFC 5280 §5), built from the store's revocation state. The
//! CRL number is the generation time in milliseconds: strictly increasing across
//! regenerations and across nodes without any shared counter.

use std::sync::Arc;
use std::sync::RwLock;

use portcullis_core::device::RevocationReason;
use portcullis_store::{RevokedCertificate, Store};
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};

use crate::ca::issue_time;
use crate::ca::CertificateAuthority;
use crate::PkiError;

fn rcgen_reason(r: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match r {
        RevocationReason::Unspecified => R::Unspecified,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
    }
}

/// A stored serial's octets; stored serials are always an even number of hex digits.
fn serial_bytes(hex: &str) -> Result<Vec<u8>, PkiError> {
    if !hex.len().is_multiple_of(2) {
        return Err(PkiError::Encoding(format!(
            "stored serial {hex:?} has odd length"
        )));
    }
    crate::serial::hex_bytes(hex)
        .ok_or_else(|| PkiError::Encoding(format!("stored serial {hex:?} is not hex")))
}

/// A signed CRL in both encodings.
#[derive(Debug, Clone)]
pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: usize,
}

/// Signs a CRL listing `revoked`.
pub fn build_crl(
    ca: &CertificateAuthority,
    revoked: &[RevokedCertificate],
    now_millis: i64,
    validity_secs: i64,
) -> Result<Crl, PkiError> {
    let now = now_millis.div_euclid(1000);
    let mut entries = Vec::with_capacity(revoked.len());
    for r in revoked {
        entries.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial_bytes(&r.serial)?),
            revocation_time: issue_time(r.revoked_at)?,
            reason_code: Some(rcgen_reason(r.reason)),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: issue_time(now)?,
        next_update: issue_time(now + validity_secs)?,
        crl_number: SerialNumber::from(u64::try_from(now_millis).unwrap_or(0)),
        issuing_distribution_point: None,
        revoked_certs: entries,
        key_identifier_method: match ca.subject_key_id() {
            Some(id) => KeyIdMethod::PreSpecified(id.to_vec()),
            None => KeyIdMethod::Sha256,
        },
    };
    let crl = params.signed_by(ca.issuer())?;
    let der = crl.der().to_vec();
    Ok(Crl {
        pem: crate::ca::pem("X509 CRL", &der),
        der,
        this_update: now,
        next_update: now + validity_secs,
        entries: revoked.len(),
    })
}

/// The node's current CRL, regenerated when a revocation marks it stale and before it
/// expires.
pub struct CrlPublisher {
    ca: Arc<CertificateAuthority>,
    store: Arc<dyn Store>,
    validity_secs: i64,
    current: RwLock<Option<Arc<Crl>>>,
    stale: std::sync::atomic::AtomicBool,
}

impl CrlPublisher {
    pub fn new(ca: Arc<CertificateAuthority>, store: Arc<dyn Store>, validity_secs: i64) -> Self {
        Self {
            ca,
            store,
            validity_secs,
            current: RwLock::new(None),
            stale: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Marks the CRL out of date (a certificate was revoked, here or on another node).
    pub fn mark_stale(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The current CRL, regenerating it first if it is stale or past half its validity.
    pub async fn current(&self, now_millis: i64) -> Result<Arc<Crl>, PkiError> {
        let now = now_millis.div_euclid(1000);
        if !self.stale.load(std::sync::atomic::Ordering::Acquire) {
            if let Some(crl) = self.current.read().ok().and_then(|c| c.clone()) {
                if now < crl.this_update + self.validity_secs / 2 {
                    return Ok(crl);
                }
            }
        }
        self.regenerate(now_millis).await
    }

    /// Rebuilds the CRL from the store now.
    pub async fn regenerate(&self, now_millis: i64) -> Result<Arc<Crl>, PkiError> {
        // Cleared before reading, so a revocation committed during the read marks it again.
        self.stale
            .store(false, std::sync::atomic::Ordering::Release);
        let revoked = self
            .store
            .list_revoked_certificates(now_millis.div_euclid(1000))
            .await
            .inspect_err(|_| self.mark_stale())?;
        let ca = self.ca.clone();
        let validity = self.validity_secs;
        let crl =
            tokio::task::spawn_blocking(move || build_crl(&ca, &revoked, now_millis, validity))
                .await
                .map_err(|e| PkiError::Encoding(format!("CRL task failed: {e}")))??;
        let crl = Arc::new(crl);
        if let Ok(mut slot) = self.current.write() {
            *slot = Some(crl.clone());
        }
        Ok(crl)
    }
}
