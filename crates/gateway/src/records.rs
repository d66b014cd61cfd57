//! What the gateway's services share about their records: the compare-and-swap of a store
//! settings record (operator keys, trust list, command rules, device settings, releases), and
//! reading a small payload a device sent as a JSON object or a CBOR map.

use portcullis_store::{Store, StoreError};
use serde::de::DeserializeOwned;

/// Compare-and-swap of a settings record: `value` replaces `previous` (as read; `None`: the
/// record did not exist); `false` if another writer got there first.
pub(crate) async fn swap_setting(
    store: &dyn Store,
    name: &str,
    previous: Option<&[u8]>,
    value: &[u8],
) -> Result<bool, StoreError> {
    Ok(match previous {
        Some(old) => store.replace_setting(name, old, value).await?,
        None => store.put_setting_if_absent(name, value).await? == value,
    })
}

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
