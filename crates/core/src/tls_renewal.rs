//! When the HTTPS listener's own certificate is renewed, and how often that is checked.
//!
//! A node serves its HTTPS certificate for as long as it runs, which may be longer than the
//! certificate is valid; these rules say when a new one is due, so the server can renew it
//! without a restart. Time is a parameter, as everywhere in the core.

use std::time::Duration;

use crate::UnixTime;

/// Longest wait between two checks: a change to configured certificate files is picked up
/// within this, and a due renewal starts at most this late.
pub const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// First wait after a failed renewal or reload; it doubles with every further failure, up to
/// the check interval.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The time at which a certificate issued at `issued_at` and valid until `not_after` is
/// renewed: two thirds into its validity, leaving the last third (30 days of 90) for retries
/// before it expires.
///
/// `issued_at` is when it was issued, not its `notBefore`: that is backdated for clock skew,
/// and counting the backdating would make a short lifetime due at once.
pub fn renewal_at(issued_at: UnixTime, not_after: UnixTime) -> UnixTime {
    let validity = not_after.saturating_sub(issued_at).max(0);
    issued_at.saturating_add(validity / 3 * 2 + validity % 3 * 2 / 3)
}

/// Whether the certificate described as for [`renewal_at`] is due for renewal at `now`.
pub fn renewal_due(issued_at: UnixTime, not_after: UnixTime, now: UnixTime) -> bool {
    now >= renewal_at(issued_at, not_after)
}

/// How often the certificate is checked for a certificate lifetime of `lifetime_secs`: a
/// tenth of it, at most [`MAX_CHECK_INTERVAL`], so a renewal is never late by more than a
/// tenth of the lifetime (and tests with a lifetime of seconds see it within a second).
pub fn check_interval(lifetime_secs: u64) -> Duration {
    Duration::from_millis(lifetime_secs.saturating_mul(100)).min(MAX_CHECK_INTERVAL)
}

/// How long to wait after the `failures`-th failure in a row (counting from 1): 1 s, 2 s,
/// 4 s, … but never longer than the regular `interval`.
pub fn retry_delay(failures: u32, interval: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    FIRST_RETRY_DELAY
        .saturating_mul(1 << doublings)
        .min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn a_ninety_day_certificate_is_renewed_after_sixty_days() {
        let issued = 1_700_000_000;
        let not_after = issued + 90 * DAY;
        assert_eq!(renewal_at(issued, not_after), issued + 60 * DAY);
        assert!(!renewal_due(issued, not_after, issued));
        assert!(!renewal_due(issued, not_after, issued + 60 * DAY - 1));
        assert!(renewal_due(issued, not_after, issued + 60 * DAY));
        assert!(renewal_due(issued, not_after, not_after + 1));
    }

    #[test]
    fn short_lifetimes_are_renewed_two_thirds_in_rounded_down() {
        assert_eq!(renewal_at(100, 109), 106);
        assert_eq!(renewal_at(100, 110), 106);
        assert_eq!(renewal_at(100, 111), 107);
        assert_eq!(renewal_at(100, 101), 100);
    }

    #[test]
    fn a_certificate_cut_short_by_its_issuer_is_due_in_proportion() {
        // The issuing CA expires in 30 days: the certificate is cut to 30 days and renewed
        // after 20, not after 60.
        let issued = 1_700_000_000;
        assert_eq!(renewal_at(issued, issued + 30 * DAY), issued + 20 * DAY);
    }

    #[test]
    fn an_already_expired_or_inverted_validity_is_due_at_once() {
        assert!(renewal_due(1_000, 1_000, 1_000));
        assert!(renewal_due(1_000, 900, 1_000));
        assert_eq!(renewal_at(1_000, 900), 1_000);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        assert_eq!(renewal_at(i64::MIN, i64::MAX), i64::MIN + i64::MAX / 3 * 2);
        assert!(renewal_due(i64::MAX - 1, i64::MAX, i64::MAX));
        assert!(renewal_due(0, i64::MAX, i64::MAX));
    }

    #[test]
    fn checks_run_hourly_or_ten_times_per_lifetime() {
        assert_eq!(check_interval(90 * 86_400), Duration::from_secs(3600));
        assert_eq!(check_interval(36_000), Duration::from_secs(3600));
        assert_eq!(check_interval(9), Duration::from_millis(900));
        assert_eq!(check_interval(u64::MAX), MAX_CHECK_INTERVAL);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_check_interval() {
        let hour = Duration::from_secs(3600);
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n, hour).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(retry_delay(13, hour), hour);
        assert_eq!(retry_delay(u32::MAX, hour), hour);
        assert_eq!(retry_delay(0, hour), FIRST_RETRY_DELAY);
        // A short check interval caps the retries too.
        assert_eq!(
            retry_delay(1, Duration::from_millis(500)),
            Duration::from_millis(500)
        );
    }
}
