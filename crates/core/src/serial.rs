//! Certificate serial numbers as the store keys them: the lowercase hex of the DER INTEGER's
//! content octets with leading zero octets dropped (one kept for a zero serial). Issuance,
//! OCSP, CRLs, the admin API and the CLI all derive the key here; a second spelling would make
//! OCSP answer "unknown" for a certificate the store holds.

use crate::hex;

/// Most hex digits a serial may have: 20 octets (RFC 5280 §4.1.2.2) plus a sign octet.
const MAX_SERIAL_DIGITS: usize = 42;

/// The store key of a serial from its INTEGER content octets.
pub fn serial_key(integer_content: &[u8]) -> String {
    let skip = integer_content
        .iter()
        .take_while(|b| **b == 0)
        .count()
        .min(integer_content.len().saturating_sub(1));
    hex::encode(integer_content.get(skip..).unwrap_or_default())
}

/// The octets of 1 to 42 hex digits (an odd count gets a leading zero); `None` otherwise.
pub fn serial_octets(digits: &str) -> Option<Vec<u8>> {
    if digits.is_empty() || digits.len() > MAX_SERIAL_DIGITS {
        return None;
    }
    if digits.len() % 2 == 1 {
        hex::decode(&format!("0{digits}"))
    } else {
        hex::decode(digits)
    }
}

/// Parses an operator-typed serial (`0A:1b:...`, `0x0a1b`, or plain hex) into its store key.
pub fn parse_serial(typed: &str) -> Option<String> {
    let s = typed.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    Some(serial_key(&serial_octets(&digits)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_drop_leading_zero_octets_but_keep_one() {
        assert_eq!(serial_key(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_key(&[0x00, 0x00]), "00");
        assert_eq!(serial_key(&[0x7f]), "7f");
        assert_eq!(serial_key(&[]), "");
    }

    #[test]
    fn operator_forms_normalise() {
        assert_eq!(parse_serial("0A:1B").as_deref(), Some("0a1b"));
        assert_eq!(parse_serial("0x00ff").as_deref(), Some("ff"));
        assert_eq!(parse_serial("abc").as_deref(), Some("0abc"));
        assert_eq!(parse_serial("00").as_deref(), Some("00"));
        for bad in ["", "xyz", "0x", &"f".repeat(43)] {
            assert!(parse_serial(bad).is_none(), "{bad:?}");
        }
    }
}
