//! PEM armour (RFC 7468): how certificates and CRLs are handed to people and to tools like
//! openssl, curl and mosquitto.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// `der` armoured under `label` (e.g. `CERTIFICATE`), in 64-column lines.
pub fn armor(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_64_columns_between_the_labels() {
        let text = armor("CERTIFICATE", &[0u8; 100]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert_eq!(lines.get(1).map(|l| l.len()), Some(64));
        assert_eq!(lines.len(), 5);
    }
}
