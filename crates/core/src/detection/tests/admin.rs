use serde_json::json;

use super::*;
use crate::forwarded::IpCidr;

/// 2023-11-14 (a Tuesday) at `h:m` UTC.
fn tuesday(h: i64, m: i64) -> UnixTime {
    1_699_920_000 + h * 3600 + m * 60
}

fn hours(start: u8, end: u8) -> AdminPolicy {
    AdminPolicy {
        hours: Some((start, end)),
        ..AdminPolicy::default()
    }
}

fn off_hours(policy: &AdminPolicy, at: UnixTime) -> bool {
    admin_violations(&admin_change("ops", at), policy)
        .iter()
        .any(|v| matches!(v, AdminViolation::OffHours { .. }))
}

#[test]
fn weekdays_are_counted_from_a_thursday() {
    assert_eq!(Weekday::of(0), Weekday::Thu);
    assert_eq!(Weekday::of(4 * 86_400), Weekday::Mon);
    assert_eq!(Weekday::of(-1), Weekday::Wed);
    assert_eq!(Weekday::of(tuesday(23, 59)), Weekday::Tue);
    assert_eq!(Weekday::of(T0), Weekday::Tue);
}

#[test]
fn hours_are_start_inclusive_end_exclusive() {
    let p = hours(7, 19);
    assert!(!off_hours(&p, tuesday(7, 0)));
    assert!(!off_hours(&p, tuesday(18, 59)));
    assert!(off_hours(&p, tuesday(19, 0)));
    assert!(off_hours(&p, tuesday(6, 59)));
    assert!(!off_hours(&hours(0, 24), tuesday(23, 59)));
}

#[test]
fn hours_may_wrap_midnight() {
    let night_shift = hours(22, 6);
    assert!(!off_hours(&night_shift, tuesday(23, 0)));
    assert!(!off_hours(&night_shift, tuesday(5, 59)));
    assert!(off_hours(&night_shift, tuesday(6, 0)));
    assert!(off_hours(&night_shift, tuesday(21, 59)));
}

#[test]
fn weekdays_and_the_offset_apply_to_local_time() {
    let weekdays = AdminPolicy {
        weekdays: Some(vec![Weekday::Mon, Weekday::Tue]),
        ..AdminPolicy::default()
    };
    assert!(!off_hours(&weekdays, tuesday(23, 0)));
    let shifted = AdminPolicy {
        utc_offset_minutes: 120,
        ..weekdays.clone()
    };
    assert!(off_hours(&shifted, tuesday(23, 0)), "01:00 on Wednesday");
    let v = admin_violations(&admin_change("ops", tuesday(23, 0)), &shifted);
    assert_eq!(
        v,
        [AdminViolation::OffHours {
            weekday: Weekday::Wed,
            hour: 1
        }]
    );
    let west = AdminPolicy {
        utc_offset_minutes: -300,
        ..hours(7, 19)
    };
    assert!(!off_hours(&west, tuesday(23, 0)), "18:00 local");
}

#[test]
fn networks_are_checked_when_the_event_carries_its_source() {
    let p = AdminPolicy {
        networks: vec![
            IpCidr::parse("10.0.0.0/8").unwrap(),
            IpCidr::parse("2001:db8::/32").unwrap(),
        ],
        ..AdminPolicy::default()
    };
    let from = |source: &str| {
        let mut e = admin_change("ops", T0);
        e.detail["source"] = json!(source);
        admin_violations(&e, &p)
    };
    assert_eq!(from("10.1.2.3"), []);
    assert_eq!(from("::ffff:10.1.2.3"), []);
    assert_eq!(from("2001:db8::7"), []);
    assert_eq!(
        from("192.0.2.1"),
        [AdminViolation::OffNetwork {
            source: ip("192.0.2.1")
        }]
    );
    // Admin events carry no source today: the check cannot fire, it does not guess.
    assert_eq!(admin_violations(&admin_change("ops", T0), &p), []);
}

#[test]
fn only_admin_actors_are_checked() {
    let p = hours(7, 19);
    assert_eq!(admin_client(&admin_change("ops", T0)), Some("ops"));
    let mut e = admin_change("ops", T0);
    e.actor = "ops".into();
    assert_eq!(admin_violations(&e, &p), []);
    e.actor = "admin:".into();
    assert_eq!(admin_client(&e), None);
    assert_eq!(admin_violations(&e, &p), []);
    e.actor = "system".into();
    assert_eq!(admin_violations(&e, &p), []);
}

#[test]
fn an_empty_policy_allows_everything() {
    let p = AdminPolicy::default();
    p.validate().unwrap();
    for h in 0..24 {
        assert_eq!(
            admin_violations(&admin_change("ops", tuesday(h, 30)), &p),
            []
        );
    }
}
