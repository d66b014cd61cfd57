//! Lowercase hexadecimal, written once: certificate serials (a store key, so two spellings
//! would make OCSP answer "unknown"), fingerprints, PKCS#11 ids and test fixtures all use it.

/// Lowercase hex of `bytes`. Two hashes of every audit record go through here, so it is a
/// byte per nibble into a byte buffer rather than a `char` converted and pushed at a time.
pub fn encode(bytes: &[u8]) -> String {
    let digit = |nibble: u8| {
        if nibble < 10 {
            b'0' + nibble
        } else {
            b'a' + nibble - 10
        }
    };
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(digit(b >> 4));
        out.push(digit(b & 0x0f));
    }
    // Only ASCII digits were written, so the conversion cannot fail.
    String::from_utf8(out).unwrap_or_default()
}

/// The bytes an even number of hex digits (either case) spell; `None` for anything else.
pub fn decode(digits: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let pairs = digits.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_lowercase() {
        let bytes = [0x00, 0x0f, 0xa0, 0xff];
        assert_eq!(encode(&bytes), "000fa0ff");
        assert_eq!(decode("000FA0ff").unwrap(), bytes);
        assert_eq!(encode(&[]), "");
        let every: Vec<u8> = (0..=255).collect();
        let expected: String = every.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(encode(&every), expected);
    }

    #[test]
    fn odd_lengths_and_non_digits_are_refused() {
        for bad in ["0", "abc", "zz", "0x00", " 00"] {
            assert!(decode(bad).is_none(), "{bad:?}");
        }
    }
}
