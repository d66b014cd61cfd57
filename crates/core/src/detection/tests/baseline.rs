use super::*;

fn warmed(mean_of: u64, samples: u64) -> Baseline {
    let mut b = Baseline::default();
    for _ in 0..samples {
        b.update(mean_of, 0.1);
    }
    b
}

#[test]
fn the_first_interval_sets_the_mean_and_later_ones_move_it_by_alpha() {
    let mut b = Baseline::default();
    b.update(10, 0.1);
    assert_eq!((b.mean, b.samples), (10.0, 1));
    b.update(20, 0.1);
    assert!((b.mean - 11.0).abs() < 1e-9);
    assert_eq!(b.samples, 2);
}

#[test]
fn nothing_fires_during_the_warm_up() {
    let b = warmed(10, 29);
    assert!(!b.is_anomalous(1_000, 5.0, 30, 30));
    assert!(warmed(10, 30).is_anomalous(1_000, 5.0, 30, 30));
}

#[test]
fn fires_above_factor_times_the_mean() {
    let b = warmed(10, 30);
    assert_eq!(b.limit(5.0, 30), 51);
    assert!(
        !b.is_anomalous(50, 5.0, 30, 30),
        "five times the mean is not above it"
    );
    assert!(b.is_anomalous(51, 5.0, 30, 30));
}

#[test]
fn never_fires_under_the_minimum_rate() {
    let quiet = warmed(0, 30);
    assert!(!quiet.is_anomalous(29, 5.0, 30, 30));
    assert!(quiet.is_anomalous(30, 5.0, 30, 30));
    let busy = warmed(100, 30);
    assert!(!busy.is_anomalous(400, 5.0, 30, 30));
}

#[test]
fn observing_an_interval_twice_changes_nothing_and_gaps_count_as_empty() {
    let mut b = Baseline::default();
    assert!(b.observe(600, 60, 10, 0.5));
    assert!(
        !b.observe(600, 60, 10, 0.5),
        "the same interval, from another node"
    );
    assert!(!b.observe(540, 60, 99, 0.5), "an older interval");
    assert_eq!((b.mean, b.samples, b.last_interval), (10.0, 1, Some(600)));
    // Two empty intervals (660, 720), then 780 with 10.
    assert!(b.observe(789, 60, 10, 0.5));
    assert_eq!(b.samples, 4);
    assert_eq!(b.last_interval, Some(780));
    assert!((b.mean - (10.0 * 0.25 + 0.5 * (10.0 - 2.5))).abs() < 1e-9);
    // A very long silence decays the mean to nothing without overflowing.
    assert!(b.observe(780 + 60 * 1_000_000, 60, 0, 0.5));
    assert!(b.mean < 1e-9);
}

#[test]
fn a_baseline_round_trips_through_json() {
    let mut b = Baseline::default();
    b.observe(600, 60, 7, 0.1);
    let json = serde_json::to_string(&b).unwrap();
    assert_eq!(serde_json::from_str::<Baseline>(&json).unwrap(), b);
    let old: Baseline = serde_json::from_str(r#"{"mean":3.5,"samples":4}"#).unwrap();
    assert_eq!(old.last_interval, None);
}

#[test]
fn the_rate_rule_fires_with_the_baselines_limit() {
    let config = DetectionConfig::default();
    let r = config.rule(RuleKind::TokenRateAnomaly).unwrap();
    let key = SignalKey::Client("svc".into());
    let b = warmed(10, 30);
    assert_eq!(decide_rate(r, &config.token_rate, &key, &b, 50, T0), None);
    let f = decide_rate(r, &config.token_rate, &key, &b, 51, T0).unwrap();
    assert_eq!(
        (f.rule, f.total, f.threshold, f.key),
        (RuleKind::TokenRateAnomaly, 51, 51, key.clone())
    );
    let off = RuleConfig {
        enabled: false,
        ..*r
    };
    assert_eq!(
        decide_rate(&off, &config.token_rate, &key, &b, 5_000, T0),
        None
    );
    assert_eq!(
        decide_rate(r, &config.token_rate, &key, &warmed(10, 3), 5_000, T0),
        None
    );
}
