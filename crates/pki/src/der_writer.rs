//! The few DER encodings we write by hand: ECDSA signatures (JWS `r||s` → `Ecdsa-Sig-Value`,
//! RFC 3279 §2.2.3) and RSA public keys (`RSAPublicKey`, RFC 8017 §A.1.1). Both are a
//! SEQUENCE of unsigned INTEGERs.

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(bytes.get(skip..).unwrap_or_default());
    }
}

/// Appends a tag-length-value.
pub(crate) fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    push_len(out, value.len());
    out.extend_from_slice(value);
}

/// An unsigned big-endian integer as DER INTEGER content: leading zeros stripped, one zero
/// added back when the top bit is set so it stays positive.
pub(crate) fn unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let trimmed = bytes.get(skip..).unwrap_or_default();
    let mut v = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(trimmed);
    v
}

/// `SEQUENCE { INTEGER a, INTEGER b }` of two unsigned big-endian integers.
pub(crate) fn integer_pair(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(a.len() + b.len() + 8);
    push_tlv(&mut body, 0x02, &unsigned_integer(a));
    push_tlv(&mut body, 0x02, &unsigned_integer(b));
    let mut out = Vec::with_capacity(body.len() + 4);
    push_tlv(&mut out, 0x30, &body);
    out
}

/// A JWS ECDSA signature (`r || s`, equal halves) as a DER `Ecdsa-Sig-Value`.
pub(crate) fn ecdsa_jws_to_der(sig: &[u8]) -> Option<Vec<u8>> {
    if sig.is_empty() || !sig.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = sig.split_at(sig.len() / 2);
    Some(integer_pair(r, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_stay_positive_and_minimal() {
        assert_eq!(unsigned_integer(&[0, 0, 1]), vec![1]);
        assert_eq!(unsigned_integer(&[0x80]), vec![0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0]), vec![0]);
        assert_eq!(unsigned_integer(&[]), vec![0]);
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let mut out = Vec::new();
        push_tlv(&mut out, 0x04, &[0u8; 300]);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn an_ecdsa_signature_converts_and_odd_lengths_are_refused() {
        let mut sig = vec![0xffu8; 32];
        sig.extend_from_slice(&[1u8; 32]);
        let der = ecdsa_jws_to_der(&sig).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(der[2], 0x02);
        assert_eq!(der[3], 33, "r gets a leading zero");
        assert!(ecdsa_jws_to_der(&[1, 2, 3]).is_none());
        assert!(ecdsa_jws_to_der(&[]).is_none());
    }
}
