//! A new hierarchy: a root (20 years, path length 1) that signs one issuing CA (10 years,
//! path length 0). Both keys are generated in key custody.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_keys::{Algorithm, KeyCustody};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
};

use super::custody::StoredCaKey;
use super::stored::StoredCa;
use crate::serial::random_serial;
use crate::{CaKey, PkiError};

const ROOT_LIFETIME_SECS: i64 = 20 * 365 * 24 * 3600;
const ISSUING_LIFETIME_SECS: i64 = 10 * 365 * 24 * 3600;

fn ca_params(
    org: &str,
    cn: &str,
    path_len: u8,
    now: i64,
    lifetime: i64,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = super::issue::time(now - 60)?;
    params.not_after = super::issue::time(now + lifetime)?;
    params.serial_number = Some(random_serial()?.0.into());
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// Generates both keys and both certificates.
pub(super) fn hierarchy(
    custody: &KeyCustody,
    name: &str,
    alg: Algorithm,
    now: i64,
) -> Result<StoredCa, PkiError> {
    let (root_signer, root_stored) = StoredCaKey::generate(custody, alg)?;
    let root_key = CaKey::new(root_signer)?;
    let root_params = ca_params(name, &format!("{name} Root CA"), 1, now, ROOT_LIFETIME_SECS)?;
    let root_cert = root_params.self_signed(&root_key)?;
    let root_issuer = rcgen::Issuer::new(root_params, root_key);

    let (issuing_signer, issuing_stored) = StoredCaKey::generate(custody, alg)?;
    let issuing_key = CaKey::new(issuing_signer)?;
    let issuing_params = ca_params(
        name,
        &format!("{name} Device CA"),
        0,
        now,
        ISSUING_LIFETIME_SECS,
    )?;
    let issuing_cert = issuing_params.signed_by(&issuing_key, &root_issuer)?;
    Ok(StoredCa {
        version: 1,
        root_cert: STANDARD.encode(root_cert.der()),
        issuing_cert: STANDARD.encode(issuing_cert.der()),
        root_key: Some(root_stored),
        issuing_key: issuing_stored,
        origin: "generated".into(),
        created_at: now,
    })
}
