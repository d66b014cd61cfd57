use super::*;

fn with_window(kind: RuleKind, window_secs: u64) -> RuleConfig {
    RuleConfig {
        window_secs,
        ..rule(kind)
    }
}

#[test]
fn buckets_are_a_sixth_of_the_window_and_at_least_a_second() {
    assert_eq!(bucket_secs(&with_window(RuleKind::MessageReplay, 60)), 10);
    assert_eq!(bucket_secs(&with_window(RuleKind::MessageReplay, 61)), 10);
    assert_eq!(bucket_secs(&with_window(RuleKind::MessageReplay, 5)), 1);
    assert_eq!(bucket_secs(&with_window(RuleKind::MessageReplay, 1)), 1);
    // The token rate counts whole intervals.
    assert_eq!(
        bucket_secs(&with_window(RuleKind::TokenRateAnomaly, 60)),
        60
    );
}

#[test]
fn bucket_starts_are_aligned_for_every_time() {
    let r = with_window(RuleKind::MessageReplay, 60);
    assert_eq!(bucket_start(1_000_000, &r), 1_000_000);
    assert_eq!(bucket_start(1_000_009, &r), 1_000_000);
    assert_eq!(bucket_start(1_000_010, &r), 1_000_010);
    assert_eq!(bucket_start(-1, &r), -10);
}

#[test]
fn the_window_is_the_current_bucket_and_those_before_it() {
    let r = with_window(RuleKind::MessageReplay, 60);
    assert_eq!(window_buckets(1_000_005, &r), 999_950..1_000_010);
    let odd = with_window(RuleKind::MessageReplay, 61);
    assert_eq!(
        window_buckets(1_000_005, &odd),
        999_940..1_000_010,
        "7 buckets cover 61 s"
    );
    let rate = with_window(RuleKind::TokenRateAnomaly, 60);
    assert_eq!(
        window_buckets(1_000_005, &rate),
        999_960..1_000_020,
        "the current interval"
    );
}

#[test]
fn an_event_leaves_the_window_between_window_and_window_plus_a_bucket_later() {
    let r = with_window(RuleKind::MessageReplay, 60);
    let at = 1_000_003;
    let b = bucket_start(at, &r);
    assert!(window_buckets(at + 56, &r).contains(&b));
    assert!(
        !window_buckets(at + 57, &r).contains(&b),
        "the bucket started 60 s before"
    );
    assert!(window_buckets(at, &r).contains(&b));
}

#[test]
fn a_tally_sums_per_rule_key_and_bucket_and_drains_empty() {
    let config = DetectionConfig::default();
    let mut tally = LocalTally::new();
    let e = token_refused(Some("svc"), "invalid_client", "203.0.113.9");
    for at in [T0, T0 + 1, T0 + 2] {
        tally.add_all(&signals(&e, &config), at, &config);
    }
    tally.add_all(&signals(&e, &config), T0 + 30, &config);
    assert_eq!(tally.len(), 4, "two keys, two buckets each");
    let drained = tally.drain();
    assert!(tally.is_empty());
    let per_client: Vec<_> = drained
        .iter()
        .filter(|i| i.rule == RuleKind::AuthFailuresPerClient)
        .map(|i| (i.bucket_start, i.count))
        .collect();
    let b = bucket_start(T0, config.rule(RuleKind::AuthFailuresPerClient).unwrap());
    assert_eq!(per_client, [(b, 3), (b + 30, 1)]);
    assert_eq!(tally.drain(), []);
}

#[test]
fn a_tally_adds_weights_and_drops_disabled_rules() {
    let mut config = DetectionConfig::default();
    let mut tally = LocalTally::new();
    let heavy = Signal {
        weight: 5,
        ..Signal::new(RuleKind::MessageReplay, SignalKey::Device("d".into()))
    };
    tally.add(&heavy, T0, &config);
    tally.add(&heavy, T0, &config);
    assert_eq!(tally.drain()[0].count, 10);
    config.enabled = false;
    tally.add(&heavy, T0, &config);
    assert!(tally.is_empty());
}

#[test]
fn counter_names_are_keyed_hashes_of_rule_and_key() {
    let inc = Increment {
        rule: RuleKind::AuthFailuresPerClient,
        key: SignalKey::Client("svc".into()),
        bucket_start: T0,
        count: 1,
    };
    let name = inc.counter_key(SECRET);
    assert_eq!(name.len(), 64);
    assert!(name.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        name,
        counter_key(
            RuleKind::AuthFailuresPerClient,
            &SignalKey::Client("svc".into()),
            SECRET
        )
    );
    assert_ne!(name, inc.counter_key(b"another secret"));
    assert_ne!(
        name,
        Increment {
            rule: RuleKind::AssertionReplay,
            ..inc.clone()
        }
        .counter_key(SECRET)
    );
    assert_eq!(inc.group_key(SECRET), name, "a client is its own group");
    let seen = |source: &str| Increment {
        rule: RuleKind::ClonedDevice,
        key: SignalKey::DeviceSource {
            device: "valve-7".into(),
            source: ip(source),
        },
        bucket_start: T0,
        count: 1,
    };
    let (a, b) = (seen("192.0.2.1"), seen("192.0.2.2"));
    assert_ne!(a.counter_key(SECRET), b.counter_key(SECRET));
    assert_eq!(a.group_key(SECRET), b.group_key(SECRET));
}
