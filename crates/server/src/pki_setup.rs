//! Bringing up the device PKI on a node: the CA (created on the first start, loaded after),
//! the OCSP responder and the CRL publisher. (The HTTPS listener's certificate, issued by this
//! CA unless files are configured, is `tls_certificate.rs`.)

use portcullis_core::audit::{AuditAction, Outcome};
use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::AuditLog;
use portcullis_core::audit::AuditEvent;
use portcullis_pki::ca::{CaSettings, CertificateAuthority};
use portcullis_pki::ocsp::{OcspConfig, OcspResponder};
use portcullis_pki::{Pki, PkiUrls};
use serde_json::json;

use crate::bootstrap::{unix_now, Node};
use crate::config::Config;
use crate::config::ConfigError;
use crate::serve_error::ServeError;

/// The PKI of this node.
pub struct NodePki {
    pub pki: Arc<Pki>,
    pub ocsp: Arc<OcspResponder>,
}

/// The CA settings the configuration describes.
pub fn ca_settings(config: &Config, public_url: &str) -> Result<CaSettings, ConfigError> {
    Ok(CaSettings {
        name: config.pki.ca_name.clone(),
        algorithm: config.ca_algorithm()?,
        urls: PkiUrls::under(public_url),
        profile: config.certificate_profile()?,
    })
}

/// Loads or creates the CA and assembles the PKI services.
pub async fn start(
    config: &Config,
    node: &Node,
    public_url: &str,
    audit: AuditLog,
) -> Result<NodePki, ServeError> {
    let settings = ca_settings(config, public_url)?;
    let custody = node.lifecycle.custody();
    let (ca, created) =
        CertificateAuthority::load_or_create(node.store.as_ref(), custody, &settings, unix_now())
            .await
            .map_err(ServeError::pki("device CA"))?;
    if created {
        tracing::info!(
            backend = custody.backend().as_str(),
            "first start: device CA created (root and issuing CA)"
        );
        audit.commit(AuditEvent {
            at: unix_now(),
            actor: "system".into(),
            action: AuditAction::CaCreated.into(),
            subject: "pki".into(),
            outcome: Outcome::Success.into(),
            detail: json!({"backend": custody.backend().as_str(), "algorithm": settings.algorithm.as_str()}),
        })
        .await
        .map_err(|e| ServeError::Pki {
            what: "device CA",
            source: portcullis_pki::PkiError::from(e),
        })?;
    }
    let ocsp = Arc::new(
        OcspResponder::for_store(
            ca.key().clone(),
            ca.issuing_der(),
            node.store.clone(),
            OcspConfig {
                validity: Duration::from_secs(config.pki.ocsp_validity_secs.unsigned_abs()),
                fresh_signatures_per_sec: config.pki.ocsp_fresh_signatures_per_sec,
                ..OcspConfig::default()
            },
        )
        .map_err(ServeError::pki("OCSP responder"))?,
    );
    let manufacturers = match &config.pki.manufacturer_ca_file {
        Some(path) => {
            let text = std::fs::read(path).map_err(|source| ServeError::ManufacturerCas {
                path: path.clone(),
                source,
            })?;
            let certs = portcullis_pki::ca::pem_blocks(&text, "CERTIFICATE")
                .map_err(ServeError::pki("pki.manufacturer_ca_file"))?;
            if certs.is_empty() {
                return Err(ServeError::NoManufacturerCa { path: path.clone() });
            }
            certs
        }
        None => Vec::new(),
    };
    let hook_ocsp = ocsp.clone();
    let pki = Pki::new(
        ca,
        node.store.clone(),
        audit,
        node.pepper.clone(),
        node.master.clone(),
        config.pki.crl_validity_secs,
        config.store.device_cache_entries,
    )
    .and_then(|p| p.with_manufacturer_cas(manufacturers))
    .map_err(ServeError::pki("device PKI"))?
    .with_limits(portcullis_http::AbuseLimits::new(
        0,
        config.rate_limit.per_address,
        config.rate_limit.auth_failures_per_minute,
    ))
    .with_revocation_hook(presigning(hook_ocsp));
    Ok(NodePki {
        pki: Arc::new(pki),
        ocsp,
    })
}

/// The revocation hook: drops the certificate's pre-signed OCSP answer and signs the new
/// one in the background, so relying parties asking right after get a cached `revoked`.
/// (Answers for new certificates are signed on first request, from the responder's budget,
/// and cached from then on: signing them at issuance doubled the cost of an enrollment.)
fn presigning(ocsp: Arc<OcspResponder>) -> portcullis_pki::service::CertificateHook {
    Arc::new(move |serial: &str| {
        ocsp.invalidate(serial);
        let (ocsp, serial) = (ocsp.clone(), serial.to_owned());
        tokio::spawn(async move {
            if let Err(e) = ocsp.presign(&serial).await {
                tracing::warn!(%serial, error = %e, "pre-signing an OCSP response failed");
            }
        });
    })
}
