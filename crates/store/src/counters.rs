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

/// A raise's rows (`Store::raise_device_counters`): the highest valid counter per device,
/// ordered by device id (so that rows are locked in one order on a shared store, and no
/// statement touches a device twice, which PostgreSQL's upsert refuses).
pub(crate) fn highest(highs: &[(portcullis_core::device::DeviceId, u64)]) -> Vec<(&str, i64)> {
    let mut rows: Vec<(&str, i64)> = highs
        .iter()
        .filter_map(|(device, counter)| Some((device.as_str(), as_stored(*counter)?)))
        .collect();
    // Highest first within a device, then keep each device's first row.
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
    rows.dedup_by(|later, first| later.0 == first.0);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::device::DeviceId;

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    #[test]
    fn a_raise_keeps_the_highest_valid_counter_per_device_in_device_order() {
        let highs = [
            (id("b"), 3),
            (id("a"), 5),
            (id("b"), 9),
            (id("a"), 2),
            (id("c"), 0),
            (id("d"), u64::MAX),
        ];
        assert_eq!(highest(&highs), vec![("a", 5), ("b", 9)]);
    }
}
