//! The system clock, read in one place: services take it as an injectable `Fn` (tests give
//! their own), and the CRL numbers itself in milliseconds.

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    portcullis_core::time::unix_seconds(std::time::SystemTime::now())
}

/// Milliseconds since the Unix epoch (CRL generation time and number).
pub fn unix_now_millis() -> i64 {
    portcullis_core::time::unix_millis(std::time::SystemTime::now())
}
