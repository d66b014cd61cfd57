//! Certificate revocation lists (RFC 5280 §5), built from the store's revocation state. The
//! CRL number is the generation time in milliseconds: strictly increasing across
//! regenerations and across nodes without any shared counter.
//!
//! One node (the `crl` lease holder) builds the CRL and publishes it in the store
//! (`publisher.rs`); every node serves that same signed CRL (`stored.rs` reads it back), so a
//! relying party behind a load balancer never sees CRL numbers go backwards.

mod publisher;
mod stored;

pub use publisher::{CrlPublisher, CRL_SETTING};

use portcullis_core::device::RevocationReason;
use portcullis_store::RevokedCertificate;
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
    portcullis_core::serial::serial_octets(hex)
        .ok_or_else(|| PkiError::Encoding(format!("stored serial {hex:?} is not hex")))
}

/// A signed CRL in both encodings.
#[derive(Debug, Clone)]
pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
    /// The CRL number: milliseconds since the epoch at generation.
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: usize,
}

/// Signs a CRL listing `revoked`, numbered `number` (the publisher keeps numbers increasing).
pub fn build_crl(
    ca: &CertificateAuthority,
    revoked: &[RevokedCertificate],
    now_millis: i64,
    number: u64,
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
        crl_number: SerialNumber::from(number),
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
        number,
        this_update: now,
        next_update: now + validity_secs,
        entries: revoked.len(),
    })
}
