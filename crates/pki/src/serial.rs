//! Certificate serial numbers: 128 random bits (RFC 5280 §4.1.2.2 allows up to 20 octets;
//! CA/B Forum asks for at least 64 bits of CSPRNG output), always positive and always 16
//! octets, so the hex form used as the store key is exactly the DER INTEGER content.

/// A fresh random serial: its DER content bytes and its lowercase hex (the store key).
pub fn random_serial() -> Result<(Vec<u8>, String), crate::PkiError> {
    let mut bytes: [u8; 16] = portcullis_keys::random_array()?;
    // Top bit clear keeps the INTEGER positive; the next bit set keeps it 16 octets long
    // (no leading zero to strip), which leaves 126 random bits.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok((bytes.to_vec(), hex(&bytes)))
}

/// The store form of a serial from an INTEGER's content bytes: leading zero octets dropped,
/// lowercase hex.
pub fn serial_hex(integer_content: &[u8]) -> String {
    let skip = integer_content
        .iter()
        .take_while(|b| **b == 0)
        .count()
        .min(integer_content.len().saturating_sub(1));
    hex(&integer_content[skip..])
}

/// Hex digits (an odd count gets a leading zero) as bytes; `None` unless 1 to 42 hex digits
/// (20 octets, RFC 5280's bound, plus a sign octet).
pub fn hex_bytes(digits: &str) -> Option<Vec<u8>> {
    if digits.is_empty() || digits.len() > 42 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits.to_owned()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).ok())
        .collect()
}

/// Parses an operator-typed serial (`0A:1b:...`, `0x0a1b`, or plain hex) into store form.
pub fn parse_serial(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = hex_bytes(&digits)?;
    Some(serial_hex(&bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_sixteen_octets_and_distinct() {
        let (a, ha) = random_serial().unwrap();
        let (b, _) = random_serial().unwrap();
        assert_eq!(a.len(), 16);
        assert!(a[0] & 0x80 == 0 && a[0] & 0x40 != 0);
        assert_ne!(a, b);
        assert_eq!(ha.len(), 32);
        assert_eq!(serial_hex(&a), ha);
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
