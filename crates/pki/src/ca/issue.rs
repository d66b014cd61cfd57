//! Issuing end-entity certificates. Every field comes from the profile and the CA, none from
//! the request: CN and SAN URI name the device, the extended key usage is clientAuth (or
//! serverAuth for the node's own TLS certificate), and every certificate names where its
//! revocation status is published (CRL Distribution Points and the OCSP AIA).

use aws_lc_rs::digest;
use portcullis_core::device::DeviceId;
use portcullis_store::IssuedCertificate;
use rcgen::{
    CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, PublicKeyData, SanType,
};

use super::CertificateAuthority;
use crate::der_writer::push_tlv;
use crate::serial::random_serial;
use crate::PkiError;
use portcullis_core::hex::encode as hex;

/// A Unix time as rcgen wants it.
pub(crate) fn time(unix: i64) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| PkiError::Encoding(format!("time {unix} out of range")))
}

/// The Authority Information Access extension (RFC 5280 §4.2.2.1): OCSP and caIssuers.
fn authority_info_access(ocsp: &str, ca_issuers: &str) -> CustomExtension {
    // id-ad-ocsp 1.3.6.1.5.5.7.48.1 and id-ad-caIssuers 1.3.6.1.5.5.7.48.2.
    const OCSP: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    const CA_ISSUERS: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    let mut descriptions = Vec::new();
    for (method, uri) in [(OCSP, ocsp), (CA_ISSUERS, ca_issuers)] {
        let mut body = Vec::new();
        push_tlv(&mut body, 0x06, &method);
        // GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String.
        push_tlv(&mut body, 0x86, uri.as_bytes());
        push_tlv(&mut descriptions, 0x30, &body);
    }
    let mut value = Vec::new();
    push_tlv(&mut value, 0x30, &descriptions);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], value)
}

impl CertificateAuthority {
    fn end_entity_params(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        eku: ExtendedKeyUsagePurpose,
        lifetime: i64,
        now: i64,
    ) -> Result<(CertificateParams, String), PkiError> {
        let (serial, serial_hex) = random_serial()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        params.serial_number = Some(serial.into());
        params.not_before = time(now - self.profile.backdate_secs)?;
        // Never outlive the issuing CA (RFC 5280 path validation would reject the rest).
        params.not_after = time((now + lifetime).min(self.issuing_not_after))?;
        params.use_authority_key_identifier_extension = true;
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![self.urls.crl.clone()],
        }];
        params.custom_extensions.push(authority_info_access(
            &self.urls.ocsp,
            &self.urls.ca_issuers,
        ));
        Ok((params, serial_hex))
    }

    fn sign(
        &self,
        params: &CertificateParams,
        key: &impl PublicKeyData,
        serial: String,
        device_id: Option<DeviceId>,
        subject: String,
    ) -> Result<IssuedCertificate, PkiError> {
        let cert = params.signed_by(key, &self.issuer)?;
        let der = cert.der().to_vec();
        Ok(IssuedCertificate {
            serial,
            device_id,
            subject,
            not_before: params.not_before.unix_timestamp(),
            not_after: params.not_after.unix_timestamp(),
            sha256: hex(digest::digest(&digest::SHA256, &der).as_ref()),
            der,
            revoked_at: None,
            revocation_reason: None,
        })
    }

    /// A device certificate for a checked request's key.
    pub fn issue_device(
        &self,
        device: &DeviceId,
        key: &impl PublicKeyData,
        now: i64,
    ) -> Result<IssuedCertificate, PkiError> {
        let uri = device
            .uri()
            .try_into()
            .map_err(|_| PkiError::Encoding("device URI is not IA5".into()))?;
        let (params, serial) = self.end_entity_params(
            device.as_str(),
            vec![SanType::URI(uri)],
            ExtendedKeyUsagePurpose::ClientAuth,
            self.profile.lifetime_secs,
            now,
        )?;
        self.sign(
            &params,
            key,
            serial,
            Some(device.clone()),
            format!("CN={device}"),
        )
    }

    /// The node's own TLS server certificate for `names` (DNS names or IP addresses).
    pub fn issue_tls_server(
        &self,
        names: &[String],
        key: &impl PublicKeyData,
        lifetime: i64,
        now: i64,
    ) -> Result<IssuedCertificate, PkiError> {
        let mut sans = Vec::with_capacity(names.len());
        for name in names {
            sans.push(match name.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.as_str().try_into().map_err(|_| {
                    PkiError::Ca(format!("TLS name {name:?} is not a valid DNS name"))
                })?),
            });
        }
        let cn = names.first().map_or("portcullis", String::as_str);
        let (params, serial) =
            self.end_entity_params(cn, sans, ExtendedKeyUsagePurpose::ServerAuth, lifetime, now)?;
        self.sign(&params, key, serial, None, format!("CN={cn}"))
    }
}
