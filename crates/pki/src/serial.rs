//! Certificate serial numbers: 128 random bits (RFC 5280 §4.1.2.2 allows up to 20 octets;
//! CA/B Forum asks for at least 64 bits of CSPRNG output), always positive and always 16
//! octets, so the hex form used as the store key is exactly the DER INTEGER content. How a
//! serial is keyed and parsed is `portcullis_core::serial`, shared with the admin API.

use portcullis_core::hex;

/// A fresh random serial: its DER content bytes and its lowercase hex (the store key).
pub fn random_serial() -> Result<(Vec<u8>, String), crate::PkiError> {
    let mut bytes: [u8; 16] = portcullis_keys::random_array()?;
    // Top bit clear keeps the INTEGER positive; the next bit set keeps it 16 octets long
    // (no leading zero to strip), which leaves 126 random bits.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok((bytes.to_vec(), hex::encode(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::serial::serial_key;

    #[test]
    fn serials_are_positive_sixteen_octets_and_distinct() {
        let (a, ha) = random_serial().unwrap();
        let (b, _) = random_serial().unwrap();
        assert_eq!(a.len(), 16);
        assert!(a[0] & 0x80 == 0 && a[0] & 0x40 != 0);
        assert_ne!(a, b);
        assert_eq!(ha.len(), 32);
        assert_eq!(serial_key(&a), ha);
    }
}
