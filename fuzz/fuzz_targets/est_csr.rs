//! Fuzzes what an EST client sends before it is authenticated beyond its Basic credentials:
//! the request body (base64 or PEM, `est::decode_csr_body`) and the PKCS#10 inside it
//! (`csr::check_csr`). Nothing may panic; a request that passes must name the device it was
//! checked for and carry a key the profile allows.
#![no_main]

use axum::http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis_core::device::DeviceId;
use portcullis_pki::csr::check_csr;
use portcullis_pki::est::decode_csr_body;
use portcullis_pki::profile::CertificateProfile;

fuzz_target!(|data: &[u8]| {
    let profile = CertificateProfile::default();
    let device = DeviceId::parse("sensor-1").expect("valid id");
    // The raw bytes as DER, for and not for a given device.
    if let Ok(checked) = check_csr(data, Some(&device), &profile) {
        assert_eq!(checked.device_id, device);
        assert!(profile.allowed_keys.contains(&checked.key.key_type));
    }
    let _ = check_csr(data, None, &profile);
    // The same bytes as an EST body.
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkcs10"),
    );
    if let Ok(der) = decode_csr_body(&headers, data) {
        let _ = check_csr(&der, Some(&device), &profile);
    }
});
