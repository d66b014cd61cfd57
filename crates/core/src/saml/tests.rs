use super::*;

const NOW: i64 = 1_800_000_000;
const ENDPOINT: &str = "https://auth.example/oauth2/token";
const AUDIENCES: [&str; 2] = ["https://auth.example", ENDPOINT];

fn idp() -> SamlIssuer {
    SamlIssuer {
        name: "corp-idp".into(),
        entity_id: "https://idp.example/saml".into(),
        certificates: vec!["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".into()],
        audience: None,
        max_lifetime_secs: 600,
    }
}

fn assertion() -> SamlAssertion {
    SamlAssertion {
        id: "_a1".into(),
        issuer: "https://idp.example/saml".into(),
        issue_instant: NOW - 5,
        name_id: "billing-batch".into(),
        name_id_format: Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        conditions: Some(Conditions {
            not_before: Some(NOW - 5),
            not_on_or_after: Some(NOW + 300),
            audience_restrictions: vec![vec!["https://auth.example".into()]],
        }),
        confirmations: vec![SubjectConfirmation {
            method: BEARER_METHOD.into(),
            recipient: Some(ENDPOINT.into()),
            not_before: None,
            not_on_or_after: Some(NOW + 200),
            has_data: true,
        }],
        attributes: vec![
            ("department".into(), vec!["finance".into()]),
            ("groups".into(), vec!["a".into(), "b".into()]),
            ("sub".into(), vec!["forged".into()]),
        ],
    }
}

fn check(a: &SamlAssertion) -> Result<UnixTime, SamlRuleError> {
    a.check(
        &idp(),
        Destination {
            audiences: &AUDIENCES,
            token_endpoint: ENDPOINT,
        },
        NOW,
    )
}

#[test]
fn a_good_assertion_expires_with_the_earlier_not_on_or_after() {
    assert_eq!(check(&assertion()), Ok(NOW + 200));
    let mut a = assertion();
    a.conditions.as_mut().unwrap().not_on_or_after = Some(NOW + 100);
    assert_eq!(check(&a), Ok(NOW + 100));
    a.conditions.as_mut().unwrap().not_on_or_after = None;
    assert_eq!(check(&a), Ok(NOW + 200));
}

#[test]
fn each_rule_refuses_with_its_own_reason() {
    use SamlRuleError::*;
    type Bend = Box<dyn Fn(&mut SamlAssertion)>;
    let cases: Vec<(SamlRuleError, Bend)> = vec![
        (
            WrongIssuer,
            Box::new(|a| a.issuer = "https://idp.example/saml/".into()),
        ),
        (EmptySubject, Box::new(|a| a.name_id = "  ".into())),
        (NoConditions, Box::new(|a| a.conditions = None)),
        (
            NoConditions,
            Box::new(|a| a.conditions.as_mut().unwrap().audience_restrictions.clear()),
        ),
        (
            WrongAudience,
            Box::new(|a| {
                a.conditions.as_mut().unwrap().audience_restrictions =
                    vec![vec!["https://other.example".into()]]
            }),
        ),
        (
            // Every restriction must name us, not just one of them.
            WrongAudience,
            Box::new(|a| {
                a.conditions
                    .as_mut()
                    .unwrap()
                    .audience_restrictions
                    .push(vec!["https://other.example".into()])
            }),
        ),
        (
            Expired,
            Box::new(|a| a.conditions.as_mut().unwrap().not_on_or_after = Some(NOW - SKEW_SECS)),
        ),
        (
            NotYetValid,
            Box::new(|a| a.conditions.as_mut().unwrap().not_before = Some(NOW + SKEW_SECS + 1)),
        ),
        (
            NotYetValid,
            Box::new(|a| a.issue_instant = NOW + SKEW_SECS + 1),
        ),
        (NoBearerConfirmation, Box::new(|a| a.confirmations.clear())),
        (
            NoBearerConfirmation,
            Box::new(|a| {
                a.confirmations[0].method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key".into()
            }),
        ),
        (
            NoBearerConfirmation,
            Box::new(|a| a.confirmations[0].not_on_or_after = None),
        ),
        (
            NoBearerConfirmation,
            Box::new(|a| a.confirmations[0].has_data = false),
        ),
        (
            WrongRecipient,
            Box::new(|a| a.confirmations[0].recipient = None),
        ),
        (
            WrongRecipient,
            Box::new(|a| {
                a.confirmations[0].recipient = Some("https://auth.example/oauth2/token/".into())
            }),
        ),
        (
            Expired,
            Box::new(|a| a.confirmations[0].not_on_or_after = Some(NOW - 61)),
        ),
        (
            NotYetValid,
            Box::new(|a| a.confirmations[0].not_before = Some(NOW + 61)),
        ),
        (TooLong, Box::new(|a| a.issue_instant = NOW - 500)),
    ];
    for (i, (want, bend)) in cases.iter().enumerate() {
        let mut a = assertion();
        bend(&mut a);
        assert_eq!(check(&a), Err(*want), "case {i}");
    }
}

#[test]
fn an_expiry_gets_no_skew_so_the_issued_token_cannot_outlive_the_assertion() {
    let expiring = |conditions: i64, confirmation: i64| {
        let mut a = assertion();
        a.conditions.as_mut().unwrap().not_on_or_after = Some(conditions);
        a.confirmations[0].not_on_or_after = Some(confirmation);
        check(&a)
    };
    use SamlRuleError::Expired;
    assert_eq!(expiring(NOW - 30, NOW - 30), Err(Expired));
    assert_eq!(expiring(NOW - 30, NOW + 200), Err(Expired));
    assert_eq!(expiring(NOW + 200, NOW - 30), Err(Expired));
    // NotOnOrAfter is exclusive: at that very second the assertion is no longer valid.
    assert_eq!(expiring(NOW, NOW + 200), Err(Expired));
    assert_eq!(expiring(NOW + 200, NOW), Err(Expired));
    // Expiring in 30 s: accepted, and the expiry the token is held to is that one.
    assert_eq!(expiring(NOW + 30, NOW + 200), Ok(NOW + 30));
    assert_eq!(expiring(NOW + 200, NOW + 30), Ok(NOW + 30));
    // NotBefore and IssueInstant keep their skew: a clock 30 s ahead of ours is fine.
    let mut ahead = assertion();
    ahead.issue_instant = NOW + 30;
    ahead.conditions.as_mut().unwrap().not_before = Some(NOW + 30);
    assert_eq!(check(&ahead), Ok(NOW + 200));
}

#[test]
fn a_second_good_confirmation_rescues_a_bad_one() {
    let mut a = assertion();
    let mut bad = a.confirmations[0].clone();
    bad.recipient = Some("https://elsewhere.example/token".into());
    a.confirmations.insert(0, bad);
    assert_eq!(check(&a), Ok(NOW + 200));
}

#[test]
fn a_configured_audience_is_the_only_one_when_given() {
    let a = assertion();
    let only = ["urn:portcullis:prod"];
    let to = Destination {
        audiences: &only,
        token_endpoint: ENDPOINT,
    };
    assert_eq!(a.check(&idp(), to, NOW), Err(SamlRuleError::WrongAudience));
}

#[test]
fn claims_name_the_subject_and_never_let_an_attribute_replace_it() {
    let claims = assertion().claims();
    assert_eq!(claims["sub"], "billing-batch");
    assert_eq!(claims["iss"], "https://idp.example/saml");
    assert_eq!(claims["department"], "finance");
    assert_eq!(claims["groups"], serde_json::json!(["a", "b"]));
    assert_eq!(
        claims["name_id_format"],
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    );
}

#[test]
fn instants_parse_in_utc_only() {
    assert_eq!(parse_instant("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_instant("2027-01-15T08:00:00Z"), Some(1_800_000_000));
    assert_eq!(parse_instant("2000-02-29T23:59:59.999Z"), Some(951_868_799));
    for bad in [
        "",
        "2027-01-15T08:00:00",
        "2027-01-15T08:00:00+01:00",
        "2027-01-15 08:00:00Z",
        "2027-13-01T00:00:00Z",
        "2027-02-29T00:00:00Z",
        "2027-01-15T24:00:00Z",
        "2027-01-15T08:60:00Z",
        "2027-01-15T08:00:00.Z",
        "2027-01-15T08:00:00.1234567890Z",
        "+027-01-15T08:00:00Z",
        "2027-01-15T08:00:0xZ",
        "２027-01-15T08:00:00Z",
    ] {
        assert_eq!(parse_instant(bad), None, "{bad}");
    }
}

#[test]
fn issuer_settings_are_checked() {
    assert!(idp().validate().is_ok());
    let mut i = idp();
    i.certificates.clear();
    assert!(i.validate().is_err());
    let mut i = idp();
    i.certificates = vec!["MIIB".into()];
    assert!(i.validate().is_err());
    let mut i = idp();
    i.max_lifetime_secs = 10;
    assert!(i.validate().is_err());
    let mut i = idp();
    i.name = "bad name".into();
    assert!(i.validate().is_err());
}
