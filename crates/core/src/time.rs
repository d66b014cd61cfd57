//! Unix time from a `SystemTime`. The core reads no clock: callers pass the instant in, and
//! every crate that does read the clock converts it here, so seconds are counted one way.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::UnixTime;

/// Whole seconds since the Unix epoch; 0 for an instant before it.
pub fn unix_seconds(at: SystemTime) -> UnixTime {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch (CRL numbers); 0 for an instant before it.
pub fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_from_the_epoch_and_clamps_before_it() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(unix_seconds(t), 1_700_000_000);
        assert_eq!(unix_millis(t), 1_700_000_000_123);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
