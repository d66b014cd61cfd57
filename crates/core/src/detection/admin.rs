//! Admin actions outside the configured hours, weekdays or networks.
//!
//! An admin action is any event whose actor is `admin:<client_id>`. Its time is the event's
//! `at`, read in UTC shifted by `utc_offset_minutes` (a fixed offset: the core has no time
//! zone database, so daylight saving time is the operator's to account for). Its source is
//! the `source` member of its detail when there is one; admin events do not carry one today,
//! so until they do the network check cannot fire (it never guesses).

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use super::config::DetectionConfigError;
use super::signals::source_address;
use crate::audit::AuditEvent;
use crate::forwarded::IpCidr;
use crate::UnixTime;

/// The actor prefix of admin API callers.
pub const ADMIN_ACTOR_PREFIX: &str = "admin:";

/// A day of the week, spelled `mon` … `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    const ALL: [Weekday; 7] = [
        Self::Mon,
        Self::Tue,
        Self::Wed,
        Self::Thu,
        Self::Fri,
        Self::Sat,
        Self::Sun,
    ];

    /// The day `at` falls on (Unix time 0 was a Thursday).
    pub fn of(at: UnixTime) -> Weekday {
        let days = at.div_euclid(86_400);
        let index = usize::try_from((days + 3).rem_euclid(7)).unwrap_or(0);
        Self::ALL.get(index).copied().unwrap_or(Self::Mon)
    }
}

/// When and from where admin actions are expected (`[detection.admin]`). Empty (the
/// default): any time, anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminPolicy {
    /// Allowed hours `[start, end)`, `start` 0-23, `end` 1-24; `start > end` wraps midnight
    /// (`[22, 6]`: 22:00 to 06:00). `None`: any hour.
    pub hours: Option<(u8, u8)>,
    /// Allowed days (of the shifted time). `None`: every day.
    pub weekdays: Option<Vec<Weekday>>,
    /// The offset of the operator's local time from UTC, in minutes (−840 to 840).
    pub utc_offset_minutes: i16,
    /// Networks admin calls may come from (CIDR, or a single address). Empty: any.
    #[serde(deserialize_with = "cidrs")]
    pub networks: Vec<IpCidr>,
}

fn cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpCidr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            IpCidr::parse(s).map_err(|_| {
                serde::de::Error::custom(format!(
                    "admin network {s:?} is not an address or CIDR (10.0.0.0/8, 2001:db8::/32)"
                ))
            })
        })
        .collect()
}

/// Why an admin action broke the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminViolation {
    /// At this local weekday and hour.
    OffHours { weekday: Weekday, hour: u8 },
    /// From this address.
    OffNetwork { source: IpAddr },
}

impl AdminPolicy {
    pub fn validate(&self) -> Result<(), DetectionConfigError> {
        let bad = |why: &str| Err(DetectionConfigError::Admin(why.to_owned()));
        if let Some((start, end)) = self.hours {
            if start > 23 || end == 0 || end > 24 || start == end {
                return bad("hours must be [start, end] with start 0-23, end 1-24, start != end");
            }
        }
        if self.weekdays.as_ref().is_some_and(Vec::is_empty) {
            return bad("weekdays is empty: no day would be allowed (leave it out for every day)");
        }
        if self.utc_offset_minutes.unsigned_abs() > 14 * 60 {
            return bad("utc_offset_minutes must be between -840 and 840");
        }
        Ok(())
    }

    /// Whether local hour `hour` (0-23) is allowed.
    fn hour_allowed(&self, hour: u8) -> bool {
        match self.hours {
            None => true,
            Some((start, end)) if start < end => hour >= start && hour < end,
            Some((start, end)) => hour >= start || hour < end,
        }
    }

    fn time_violation(&self, at: UnixTime) -> Option<AdminViolation> {
        let local = at.saturating_add(i64::from(self.utc_offset_minutes) * 60);
        let hour = u8::try_from(local.rem_euclid(86_400) / 3600).unwrap_or(0);
        let weekday = Weekday::of(local);
        let day_ok = self
            .weekdays
            .as_ref()
            .is_none_or(|days| days.contains(&weekday));
        (!day_ok || !self.hour_allowed(hour)).then_some(AdminViolation::OffHours { weekday, hour })
    }

    fn network_violation(&self, source: Option<IpAddr>) -> Option<AdminViolation> {
        let source = source?;
        let outside =
            !self.networks.is_empty() && !self.networks.iter().any(|n| n.contains(source));
        outside.then_some(AdminViolation::OffNetwork { source })
    }
}

/// The admin client of an event whose actor is `admin:<client_id>`.
pub fn admin_client(event: &AuditEvent) -> Option<&str> {
    event
        .actor
        .strip_prefix(ADMIN_ACTOR_PREFIX)
        .filter(|id| !id.is_empty())
}

/// How an admin action breaks the policy (off hours first, then off network); empty for a
/// compliant action or an event that is not an admin action.
pub fn admin_violations(event: &AuditEvent, policy: &AdminPolicy) -> Vec<AdminViolation> {
    if admin_client(event).is_none() {
        return Vec::new();
    }
    [
        policy.time_violation(event.at),
        policy.network_violation(source_address(event)),
    ]
    .into_iter()
    .flatten()
    .collect()
}
