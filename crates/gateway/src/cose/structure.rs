//! The bytes a tag or signature covers (RFC 9052 §4.4 `Sig_structure`, §6.3
//! `MAC_structure`), with empty external AAD, written as the RFC requires (§9: definite
//! lengths, shortest arguments) straight from the received protected bytes and payload.
//! The MAC is fed piece by piece, so neither is copied; a signature gets one buffer.

/// The context string of a `COSE_Mac0` tag (RFC 9052 §6.3).
pub(super) const MAC0: &[u8] = b"MAC0";
/// The context string of a `COSE_Sign1` signature (RFC 9052 §4.4).
pub(super) const SIGNATURE1: &[u8] = b"Signature1";

/// Major type 2 (byte string) and 3 (text string), RFC 8949 §3.1.
const BYTES: u8 = 2 << 5;
const TEXT: u8 = 3 << 5;
/// A definite array of four items: context, protected, external AAD, payload.
const ARRAY_OF_FOUR: u8 = (4 << 5) | 4;

/// Gives `emit` the head of a string of `len` bytes under `major`, in its shortest form
/// (RFC 8949 §3).
fn emit_head(major: u8, len: usize, emit: &mut impl FnMut(&[u8])) {
    let len = len as u64;
    match len {
        0..=23 => emit(&[major | len as u8]),
        24..=0xff => emit(&[major | 24, len as u8]),
        0x100..=0xffff => {
            let [a, b] = (len as u16).to_be_bytes();
            emit(&[major | 25, a, b]);
        }
        0x1_0000..=0xffff_ffff => {
            let [a, b, c, d] = (len as u32).to_be_bytes();
            emit(&[major | 26, a, b, c, d]);
        }
        _ => {
            let [a, b, c, d, e, f, g, h] = len.to_be_bytes();
            emit(&[major | 27, a, b, c, d, e, f, g, h]);
        }
    }
}

/// Gives `emit` the structure's bytes in order: `[context, protected, h'', payload]`.
pub(super) fn emit(context: &[u8], protected: &[u8], payload: &[u8], mut emit: impl FnMut(&[u8])) {
    emit(&[ARRAY_OF_FOUR]);
    emit_head(TEXT, context.len(), &mut emit);
    emit(context);
    emit_head(BYTES, protected.len(), &mut emit);
    emit(protected);
    // External AAD: empty.
    emit(&[BYTES]);
    emit_head(BYTES, payload.len(), &mut emit);
    emit(payload);
}

/// The structure in one buffer, for a signature verifier.
pub(super) fn to_vec(context: &[u8], protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(context.len() + protected.len() + payload.len() + 24);
    emit(context, protected, payload, |part| {
        out.extend_from_slice(part)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coset::{MacContext, ProtectedHeader, SignatureContext};

    fn protected(bytes: &[u8]) -> ProtectedHeader {
        ProtectedHeader {
            original_data: Some(bytes.to_vec()),
            header: Default::default(),
        }
    }

    /// Every head size, on both sides of each boundary, against coset's encoding.
    #[test]
    fn matches_cosets_structures_at_every_length_boundary() {
        for len in [0, 1, 23, 24, 255, 256, 65_535, 65_536, 70_000] {
            let payload = vec![0x5a; len];
            let header = vec![0xa1; len % 300];
            assert_eq!(
                to_vec(MAC0, &header, &payload),
                coset::mac_structure_data(MacContext::CoseMac0, protected(&header), b"", &payload),
                "MAC_structure, {len} bytes"
            );
            assert_eq!(
                to_vec(SIGNATURE1, &header, &payload),
                coset::sig_structure_data(
                    SignatureContext::CoseSign1,
                    protected(&header),
                    None,
                    b"",
                    &payload
                ),
                "Sig_structure, {len} bytes"
            );
        }
    }
}
