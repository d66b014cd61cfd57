//! The "certs-only" CMS message EST answers with (RFC 7030 §4.1.3 and §4.2.3, RFC 5652 §5):
//! a SignedData with no content and no signers, carrying certificates.

use crate::der_writer::push_tlv;

/// A degenerate SignedData (`application/pkcs7-mime; smime-type=certs-only`) holding `certs`.
pub fn certs_only(certs: &[&[u8]]) -> Vec<u8> {
    // OIDs: signedData 1.2.840.113549.1.7.2, data 1.2.840.113549.1.7.1.
    const SIGNED_DATA: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    const DATA: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    let mut signed_data = Vec::new();
    push_tlv(&mut signed_data, 0x02, &[1]); // version 1
    push_tlv(&mut signed_data, 0x31, &[]); // digestAlgorithms: empty SET
    let mut encap = Vec::new();
    push_tlv(&mut encap, 0x06, &DATA);
    push_tlv(&mut signed_data, 0x30, &encap); // encapContentInfo without content
    let mut cert_set = Vec::new();
    for cert in certs {
        cert_set.extend_from_slice(cert);
    }
    push_tlv(&mut signed_data, 0xa0, &cert_set); // certificates [0] IMPLICIT
    push_tlv(&mut signed_data, 0x31, &[]); // signerInfos: empty SET
    let mut sequence = Vec::new();
    push_tlv(&mut sequence, 0x30, &signed_data);
    let mut content_info = Vec::new();
    push_tlv(&mut content_info, 0x06, &SIGNED_DATA);
    push_tlv(&mut content_info, 0xa0, &sequence); // content [0] EXPLICIT
    let mut out = Vec::new();
    push_tlv(&mut out, 0x30, &content_info);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_reads_the_certificates_back() {
        let key = rcgen::KeyPair::generate().unwrap();
        let a = rcgen::CertificateParams::new(vec!["a.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let b = rcgen::CertificateParams::new(vec!["b.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let p7 = certs_only(&[a.der(), b.der()]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certs.p7");
        std::fs::write(&path, &p7).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkcs7", "-inform", "DER", "-print_certs", "-noout", "-in"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches("subject=").count(), 2, "{text}");
    }
}
