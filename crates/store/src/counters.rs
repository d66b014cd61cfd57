//! Gateway message counters: what both backends share.

/// The answer to one advance: `Some(previous)` when the counter was above the stored one
/// and is now stored (previous 0 = the device had none), `None` when it was not (a replay).
pub type CounterAdvance = Option<u64>;

/// Counters are stored as signed 64-bit integers: 1..=i64::MAX are valid, anything else can
/// never be accepted.
pub(crate) fn as_stored(counter: u64) -> Option<i64> {
    i64::try_from(counter).ok().filter(|c| *c > 0)
}
