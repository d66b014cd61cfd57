//! Gateway message counters: what both backends share.

/// The answer to one advance: `Some(previous)` when the counter was above the stored one
/// and is now stored (previous 0 = the device had none), `None` when it was not (a replay).
pub type CounterAdvance = Option<u64>;

/// Counters are stored as signed 64-bit integers: 1..=i64::MAX are valid, anything else can
/// never be accepted.
pub(crate) fn as_stored(counter: u64) -> Option<i64> {
    i64::try_from(counter).ok().filter(|c| *c > 0)
}

/// Judges a batch against the stored counters (`current`, by device id; absent = 0), in
/// order, each advance against what the earlier ones left. Returns each answer and the new
/// highs to write.
pub(crate) fn judge(
    batch: &[(portcullis_core::device::DeviceId, u64)],
    mut current: std::collections::HashMap<String, i64>,
) -> (Vec<CounterAdvance>, std::collections::HashMap<&str, i64>) {
    let mut out = Vec::with_capacity(batch.len());
    let mut raised = std::collections::HashMap::new();
    for (device, counter) in batch {
        let previous = current.get(device.as_str()).copied().unwrap_or(0);
        match as_stored(*counter) {
            Some(c) if c > previous => {
                current.insert(device.as_str().to_owned(), c);
                raised.insert(device.as_str(), c);
                out.push(Some(previous.unsigned_abs()));
            }
            _ => out.push(None),
        }
    }
    (out, raised)
}
