//! Abuse limits of the unauthenticated endpoints (token, introspection, revocation, EST): a
//! request rate per client id and per source address (GCRA keyed limiters from `governor`),
//! and a lock-out of addresses that keep failing (RFC 6819 §5.1.4.2.3 and §4.4.1.x: online
//! guessing of credentials must be made expensive). Each surface keeps its own instance and
//! maps [`Limited`] to its protocol's answer (429 with `Retry-After`).
//!
//! The failure lock-out is a fixed one-minute window rather than a GCRA limiter, because its
//! rule is "after 10 failures in a minute, refuse everything until the minute is over": it
//! must be *checked* on every request but *counted* only on failures, and governor cannot
//! look at a key without spending a cell.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portcullis_core::ClientId;

/// A limit was hit: retry after this many seconds (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded; retry after {retry_after_secs} s")]
pub struct Limited {
    pub retry_after_secs: u64,
}

/// Authentication failures from one address tolerated per window, by default.
pub const DEFAULT_MAX_AUTH_FAILURES: u32 = 20;
/// Length of the failure window.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Most addresses whose failures are remembered at once; older ones are evicted first.
const MAX_FAILURE_ENTRIES: u64 = 100_000;
/// Every this many checks, keys whose limiter state has fully recovered are dropped, so an
/// attacker spraying addresses or client ids cannot grow the maps without bound.
const RETAIN_EVERY: u64 = 1024;

/// Failures of one address within its current window.
#[derive(Debug)]
struct FailureWindow {
    started: Instant,
    count: AtomicU32,
}

/// The per-client, per-address and failure limits of one node.
pub struct AbuseLimits {
    per_client: Option<DefaultKeyedRateLimiter<ClientId>>,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    failures: moka::sync::Cache<IpAddr, Arc<FailureWindow>>,
    /// Failures per window before lock-out; 0 = never lock out.
    max_failures: u32,
    checks: AtomicU64,
}

impl std::fmt::Debug for AbuseLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AbuseLimits")
            .field("per_client", &self.per_client.is_some())
            .field("per_address", &self.per_address.is_some())
            .finish_non_exhaustive()
    }
}

/// A keyed limiter allowing `rate` requests per second with a burst of `rate`; 0 = off.
fn keyed<K: std::hash::Hash + Eq + Clone>(rate: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(rate).map(|r| RateLimiter::keyed(Quota::per_second(r).allow_burst(r)))
}

/// Rounds a wait up to whole seconds, at least one (RFC 9110 §10.2.3 `Retry-After`).
fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The key an address is limited under: IPv6 clients usually hold a whole /64, so limiting
/// single addresses would let one host rotate through 2^64 keys.
pub fn limit_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl AbuseLimits {
    /// Limits of `rate_per_client` and `rate_per_address` requests per second, and a
    /// lock-out after `max_failures` failed authentications per minute (each 0 = off).
    pub fn new(rate_per_client: u32, rate_per_address: u32, max_failures: u32) -> Self {
        Self {
            per_client: keyed(rate_per_client),
            per_address: keyed(rate_per_address),
            failures: moka::sync::Cache::builder()
                .max_capacity(MAX_FAILURE_ENTRIES)
                .time_to_live(FAILURE_WINDOW)
                .build(),
            max_failures,
            checks: AtomicU64::new(0),
        }
    }

    /// Drops recovered limiter state now and then (amortised over [`RETAIN_EVERY`] calls).
    fn maybe_retain(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            if let Some(l) = &self.per_client {
                l.retain_recent();
            }
            if let Some(l) = &self.per_address {
                l.retain_recent();
            }
        }
    }

    /// Refuses an address locked out for repeated authentication failures.
    pub fn check_lockout(&self, addr: IpAddr) -> Result<(), Limited> {
        if let Some(window) = self.failures.get(&limit_key(addr)) {
            if self.max_failures > 0 && window.count.load(Ordering::Relaxed) >= self.max_failures {
                let left = FAILURE_WINDOW.saturating_sub(window.started.elapsed());
                return Err(Limited {
                    retry_after_secs: whole_seconds(left),
                });
            }
        }
        Ok(())
    }

    /// Checks the lock-out and spends one request of the address's rate.
    pub fn check_address(&self, addr: IpAddr) -> Result<(), Limited> {
        self.check_lockout(addr)?;
        self.maybe_retain();
        if let Some(limiter) = &self.per_address {
            limiter
                .check_key(&limit_key(addr))
                .map_err(|not_until| Limited {
                    retry_after_secs: whole_seconds(
                        not_until.wait_time_from(DefaultClock::default().now()),
                    ),
                })?;
        }
        Ok(())
    }

    /// Spends one request of an authenticated client's rate. Checked after authentication,
    /// so nobody can exhaust another client's budget by sending its id with a wrong secret.
    pub fn check_client(&self, client_id: &ClientId) -> Result<(), Limited> {
        if let Some(limiter) = &self.per_client {
            limiter.check_key(client_id).map_err(|not_until| Limited {
                retry_after_secs: whole_seconds(
                    not_until.wait_time_from(DefaultClock::default().now()),
                ),
            })?;
        }
        Ok(())
    }

    /// Counts one failed request (a failed authentication, a malformed request) from `addr`.
    pub fn record_failure(&self, addr: IpAddr) {
        let window = self.failures.get_with(limit_key(addr), || {
            Arc::new(FailureWindow {
                started: Instant::now(),
                count: AtomicU32::new(0),
            })
        });
        window.count.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn zero_rate_means_no_limit() {
        let limits = AbuseLimits::new(0, 0, DEFAULT_MAX_AUTH_FAILURES);
        for _ in 0..10_000 {
            assert!(limits.check_address(A).is_ok());
        }
    }

    #[test]
    fn address_rate_allows_a_burst_then_asks_to_retry() {
        let limits = AbuseLimits::new(0, 5, DEFAULT_MAX_AUTH_FAILURES);
        for _ in 0..5 {
            assert!(limits.check_address(A).is_ok());
        }
        match limits.check_address(A) {
            Err(Limited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(
            limits.check_address(B).is_ok(),
            "other addresses are unaffected"
        );
    }

    #[test]
    fn client_rate_is_per_client() {
        let limits = AbuseLimits::new(2, 0, DEFAULT_MAX_AUTH_FAILURES);
        let c1 = ClientId::parse("c1").unwrap();
        let c2 = ClientId::parse("c2").unwrap();
        assert!(limits.check_client(&c1).is_ok());
        assert!(limits.check_client(&c1).is_ok());
        assert!(limits.check_client(&c1).is_err());
        assert!(limits.check_client(&c2).is_ok());
    }

    #[test]
    fn repeated_failures_lock_the_address_out_for_the_window() {
        let limits = AbuseLimits::new(0, 0, DEFAULT_MAX_AUTH_FAILURES);
        for _ in 0..DEFAULT_MAX_AUTH_FAILURES {
            assert!(limits.check_lockout(A).is_ok());
            limits.record_failure(A);
        }
        match limits.check_address(A) {
            Err(Limited { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs))
            }
            other => panic!("expected a lock-out, got {other:?}"),
        }
        assert!(limits.check_lockout(B).is_ok());
    }

    #[test]
    fn ipv6_addresses_are_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse::<Ipv6Addr>().unwrap().into();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse::<Ipv6Addr>().unwrap().into();
        assert_eq!(limit_key(a), limit_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse::<Ipv6Addr>().unwrap().into();
        assert_eq!(limit_key(mapped), A);
    }
}
