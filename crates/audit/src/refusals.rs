//! Refusals of unauthenticated requests, summarised per source and window.
//!
//! Anyone can send a token request or an EST enrollment, and the chain refuses deletes: one
//! record per refusal would let a loop of `curl` grow the audit table without bound. So the
//! first refusal of a kind (its action) from a source in a [`WINDOW`] is recorded as it
//! happens — an investigator sees the attack start at once — and the others are counted; when
//! the window closes, one summary record says how many more there were, from when to when.
//! At most [`MAX_SOURCES`] windows are open; refusals from further sources share one window
//! whose source is `*`, so memory stays bounded too.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use portcullis_core::audit::{AuditEvent, Outcome};
use portcullis_core::UnixTime;

/// How long refusals from one source are folded into one summary.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Open windows at most (about 200 bytes each).
pub const MAX_SOURCES: usize = 10_000;

/// The source of the window every source beyond [`MAX_SOURCES`] shares.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

struct Window {
    opened: Instant,
    first: AuditEvent,
    /// Refusals after the first.
    more: u64,
    last_at: UnixTime,
}

/// The open windows.
#[derive(Default)]
pub struct Refusals {
    windows: HashMap<(String, IpAddr), Window>,
}

impl std::fmt::Debug for Refusals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refusals")
            .field("open_windows", &self.windows.len())
            .finish()
    }
}

impl Refusals {
    /// Notes a refusal from `source` at `now`; returns it when it opens a window (record it
    /// now), `None` when it was counted into an open one.
    pub fn note(&mut self, now: Instant, source: IpAddr, event: AuditEvent) -> Option<AuditEvent> {
        let mut key = (event.action.clone(), source);
        if self.windows.len() >= MAX_SOURCES && !self.windows.contains_key(&key) {
            key.1 = OVERFLOW;
        }
        match self.windows.get_mut(&key) {
            Some(window) => {
                window.more += 1;
                window.last_at = event.at;
                None
            }
            None => {
                self.windows.insert(
                    key,
                    Window {
                        opened: now,
                        first: event.clone(),
                        more: 0,
                        last_at: event.at,
                    },
                );
                Some(event)
            }
        }
    }

    /// Closes the windows opened a [`WINDOW`] or more before `now`; returns the summaries of
    /// those that counted more than their first refusal.
    pub fn take_closed(&mut self, now: Instant) -> Vec<AuditEvent> {
        let closed: Vec<_> = self
            .windows
            .iter()
            .filter(|(_, w)| now.duration_since(w.opened) >= WINDOW)
            .map(|(key, _)| key.clone())
            .collect();
        closed
            .into_iter()
            .filter_map(|key| {
                let window = self.windows.remove(&key)?;
                summary(key.1, window)
            })
            .collect()
    }

    /// Closes every window (at shutdown).
    pub fn take_all(&mut self) -> Vec<AuditEvent> {
        self.windows
            .drain()
            .filter_map(|(key, window)| summary(key.1, window))
            .collect()
    }
}

fn summary(source: IpAddr, window: Window) -> Option<AuditEvent> {
    if window.more == 0 {
        return None;
    }
    let source = if source == OVERFLOW {
        "*".to_owned()
    } else {
        source.to_string()
    };
    Some(AuditEvent {
        at: window.last_at,
        actor: window.first.actor,
        action: window.first.action,
        subject: window.first.subject,
        outcome: Outcome::Failure.into(),
        detail: serde_json::json!({
            "summary": {
                "source": source,
                "more_refusals": window.more,
                "first_at": window.first.at,
                "last_at": window.last_at,
                "window_secs": WINDOW.as_secs(),
            },
            "first": window.first.detail,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn refusal(at: UnixTime) -> AuditEvent {
        AuditEvent {
            at,
            actor: "anonymous".into(),
            action: "token.refused".into(),
            subject: "-".into(),
            outcome: "failure".into(),
            detail: serde_json::json!({"error": "invalid_request"}),
        }
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2));

    #[test]
    fn a_flood_from_one_source_is_one_record_and_one_summary_per_window() {
        let mut refusals = Refusals::default();
        let t0 = Instant::now();
        assert!(refusals.note(t0, A, refusal(100)).is_some());
        for i in 1..1000 {
            assert!(refusals.note(t0, A, refusal(100 + i / 100)).is_none());
        }
        assert!(
            refusals.note(t0, B, refusal(101)).is_some(),
            "another source"
        );
        assert!(refusals.take_closed(t0 + WINDOW / 2).is_empty());
        let closed = refusals.take_closed(t0 + WINDOW);
        assert_eq!(closed.len(), 1, "B refused once: nothing to summarise");
        let s = &closed[0].detail["summary"];
        assert_eq!(s["more_refusals"], 999);
        assert_eq!(s["source"], "203.0.113.1");
        assert_eq!(s["first_at"], 100);
        assert_eq!(closed[0].at, 109);
        // The next window starts over.
        assert!(refusals.note(t0 + WINDOW, A, refusal(200)).is_some());
    }

    #[test]
    fn sources_beyond_the_limit_share_one_window() {
        let mut refusals = Refusals::default();
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 + 500 {
            let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            refusals.note(t0, source, refusal(1));
        }
        assert_eq!(refusals.windows.len(), MAX_SOURCES + 1);
        let all = refusals.take_all();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].detail["summary"]["source"], "*");
        assert_eq!(all[0].detail["summary"]["more_refusals"], 499);
    }
}
