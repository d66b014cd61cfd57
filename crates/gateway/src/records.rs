//! What the gateway's services share about their records: the compare-and-swap of a store
//! settings record (operator keys, trust list, command rules, device settings, releases), and
//! reading a small payload a device sent as a JSON object or a CBOR map.

use serde::de::DeserializeOwned;

/// A device's payload as `T`: a JSON object when its first non-blank byte is `{`, else a CBOR
/// map (what a COSE device naturally sends). `None` if it is neither.
pub(crate) fn json_or_cbor<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        serde_json::from_slice(payload).ok()
    } else {
        ciborium::from_reader(payload).ok()
    }
}
