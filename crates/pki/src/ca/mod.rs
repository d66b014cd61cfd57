//! The CA hierarchy: a root and one issuing (intermediate) CA, created on first start with
//! keys in key custody, or imported from an existing PKI (`portcullis ca import`). Device
//! certificates, the TLS server certificate, CRLs and OCSP responses are all signed by the
//! issuing CA; the root signs only the issuing certificate and can stay untouched.

mod create;
mod import;
mod issue;
pub(crate) use issue::time as issue_time;
pub mod custody;
pub mod stored;

use std::sync::Arc;

use portcullis_keys::{Algorithm, KeyCustody};
use portcullis_store::Store;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

pub use custody::StoredCaKey;
pub use import::{import, pem_blocks};
pub use stored::{StoredCa, CA_SETTING};

use crate::profile::CertificateProfile;
use crate::{CaKey, PkiError};

/// Where relying parties find revocation information; named in every certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiUrls {
    /// CRL Distribution Point (DER CRL over plain HTTP).
    pub crl: String,
    /// OCSP responder (Authority Information Access).
    pub ocsp: String,
    /// The issuing CA certificate (AIA caIssuers, DER).
    pub ca_issuers: String,
}

impl PkiUrls {
    /// The standard paths under a public base URL such as `http://pki.example:8080`.
    pub fn under(base: &str) -> PkiUrls {
        let base = base.trim_end_matches('/');
        PkiUrls {
            crl: format!("{base}/pki/crl"),
            ocsp: format!("{base}/ocsp"),
            ca_issuers: format!("{base}/pki/ca.der"),
        }
    }
}

/// How a new hierarchy is made and what it issues.
#[derive(Debug, Clone)]
pub struct CaSettings {
    /// Organisation name in the CA subjects (`<name> Root CA`, `<name> Device CA`).
    pub name: String,
    pub algorithm: Algorithm,
    pub urls: PkiUrls,
    pub profile: CertificateProfile,
}

/// The loaded CA, ready to issue.
pub struct CertificateAuthority {
    root_der: Vec<u8>,
    issuing_der: Vec<u8>,
    key: CaKey,
    issuer: rcgen::Issuer<'static, CaKey>,
    issuing_not_after: i64,
    urls: PkiUrls,
    profile: CertificateProfile,
    origin: String,
    /// The issuing certificate's subjectKeyIdentifier: CRLs name it as their authority key
    /// id, and relying parties match the two exactly.
    subject_key_id: Option<Vec<u8>>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("origin", &self.origin)
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads the stored CA, or creates and stores a new hierarchy if there is none. Returns
    /// whether this call created it. Safe when several nodes start at once.
    pub async fn load_or_create(
        store: &dyn Store,
        custody: &KeyCustody,
        settings: &CaSettings,
        now: i64,
    ) -> Result<(Arc<CertificateAuthority>, bool), PkiError> {
        if let Some(bytes) = store.get_setting(CA_SETTING).await? {
            let ca = Self::open(&StoredCa::from_bytes(&bytes)?, custody, settings)?;
            return Ok((Arc::new(ca), false));
        }
        let fresh = create::hierarchy(custody, &settings.name, settings.algorithm, now)?;
        let mine = fresh.to_bytes();
        let winner = store.put_setting_if_absent(CA_SETTING, &mine).await?;
        let created = winner == mine;
        let ca = Self::open(&StoredCa::from_bytes(&winner)?, custody, settings)?;
        Ok((Arc::new(ca), created))
    }

    /// Opens a stored hierarchy.
    pub fn open(
        stored: &StoredCa,
        custody: &KeyCustody,
        settings: &CaSettings,
    ) -> Result<CertificateAuthority, PkiError> {
        settings.profile.validate()?;
        let root_der = stored.root_der()?;
        let issuing_der = stored.issuing_der()?;
        let key = CaKey::new(stored.issuing_key.open(custody)?)?;
        let (_, cert) = X509Certificate::from_der(&issuing_der)
            .map_err(|_| PkiError::Ca("stored issuing certificate does not parse".into()))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_bits() {
            return Err(PkiError::Ca(
                "the issuing CA key does not match the issuing certificate".into(),
            ));
        }
        let issuing_not_after = cert.validity().not_after.timestamp();
        let subject_key_id = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(id.0.to_vec())
                }
                _ => None,
            });
        let issuer = rcgen::Issuer::from_ca_cert_der(
            &CertificateDer::from(issuing_der.clone()),
            key.clone(),
        )?;
        Ok(CertificateAuthority {
            root_der,
            issuing_der,
            key,
            issuer,
            issuing_not_after,
            urls: settings.urls.clone(),
            profile: settings.profile.clone(),
            origin: stored.origin.clone(),
            subject_key_id,
        })
    }

    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    pub fn issuing_der(&self) -> &[u8] {
        &self.issuing_der
    }

    /// The issuing CA's key (it also signs CRLs and OCSP responses).
    pub fn key(&self) -> &CaKey {
        &self.key
    }

    pub fn issuer(&self) -> &rcgen::Issuer<'static, CaKey> {
        &self.issuer
    }

    /// The issuing certificate's subjectKeyIdentifier, if it has one.
    pub fn subject_key_id(&self) -> Option<&[u8]> {
        self.subject_key_id.as_deref()
    }

    pub fn urls(&self) -> &PkiUrls {
        &self.urls
    }

    pub fn profile(&self) -> &CertificateProfile {
        &self.profile
    }

    /// `generated` or `imported`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The chain relying parties need, issuing CA first then root, in PEM.
    pub fn chain_pem(&self) -> String {
        let mut out = pem("CERTIFICATE", &self.issuing_der);
        if self.root_der != self.issuing_der {
            out.push_str(&pem("CERTIFICATE", &self.root_der));
        }
        out
    }
}

/// PEM armour (RFC 7468) with 64-column lines.
pub use portcullis_core::pem::armor as pem;

#[cfg(test)]
mod tests;
