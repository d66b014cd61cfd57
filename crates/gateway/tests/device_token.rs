//! Device tokens: the JWS a device signs itself. The algorithm comes from the credential;
//! every hostile token of RFC 8725 §2 is refused with its own reason.

mod common;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use portcullis_gateway::device_token::{self, DeviceTokenRules, VerifiedDeviceToken};
use portcullis_gateway::{CredentialMethod, DeviceCredentials, GatewayError};
use serde_json::{json, Value};

const AUDIENCE: &str = "https://auth.example.test";

fn rules() -> DeviceTokenRules {
    DeviceTokenRules {
        audience: AUDIENCE.to_owned(),
        max_lifetime_secs: 3600,
        skew_secs: 60,
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims(device: &str) -> Value {
    json!({"iss": device, "sub": device, "aud": AUDIENCE, "iat": NOW - 10, "exp": NOW + 600})
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn hs256(kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    let header = match kid {
        Some(kid) => json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
        None => json!({"alg": "HS256", "typ": "JWT"}),
    };
    let input = signing_input(&header, claims);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

fn es256(
    alg: &str,
    kid: Option<&str>,
    claims: &Value,
    pair: &aws_lc_rs::signature::EcdsaKeyPair,
) -> String {
    let header = match kid {
        Some(kid) => json!({"alg": alg, "kid": kid}),
        None => json!({"alg": alg}),
    };
    let input = signing_input(&header, claims);
    format!("{input}.{}", b64(&es256_sign(pair, input.as_bytes())))
}

fn check(token: &str, creds: &DeviceCredentials) -> Result<VerifiedDeviceToken, GatewayError> {
    device_token::peek(token).and_then(|t| t.verify(creds, &rules(), NOW))
}

fn outcome(result: &Result<VerifiedDeviceToken, GatewayError>) -> (&'static str, &'static str) {
    match result {
        Ok(_) => ("ok", ""),
        Err(e @ GatewayError::Malformed(_)) => ("malformed", e.reason()),
        Err(e @ GatewayError::Unauthenticated(_)) => ("unauthenticated", e.reason()),
        Err(e) => ("other", e.reason()),
    }
}

#[test]
fn hs256_and_es256_tokens_verify_with_the_devices_credentials() {
    let pair = p256();
    let creds = credentials(
        "sensor-1",
        vec![symmetric(KEY_ID, KEY)],
        vec![certificate(SERIAL, &spki_of(&pair))],
    );
    let expected = |key_id: &str| VerifiedDeviceToken {
        device_id: device("sensor-1"),
        key_id: key_id.to_owned(),
        method: CredentialMethod::DeviceToken,
        expires_at: NOW + 600,
    };
    let hs = hs256(Some(KEY_ID), &claims("sensor-1"), &KEY);
    assert_eq!(check(&hs, &creds).ok(), Some(expected(KEY_ID)));
    let es = es256("ES256", Some(SERIAL), &claims("sensor-1"), &pair);
    assert_eq!(check(&es, &creds).ok(), Some(expected(SERIAL)));
    let es = es256("ES256", None, &claims("sensor-1"), &pair);
    assert_eq!(check(&es, &creds).ok(), Some(expected(SERIAL)));
}

#[test]
fn peek_tells_a_device_token_from_an_access_token() {
    let token = hs256(Some(KEY_ID), &claims("sensor-1"), &KEY);
    let Ok(peeked) = device_token::peek(&token) else {
        panic!("peek")
    };
    assert_eq!(peeked.issuer(), Some("sensor-1"));
    assert_eq!(peeked.kid(), Some(KEY_ID));
    assert_eq!(peeked.device_id().ok(), Some(device("sensor-1")));

    let access = json!({"iss": AUDIENCE, "sub": "sensor-1", "aud": "api", "exp": NOW + 60});
    let Ok(peeked) = device_token::peek(&hs256(None, &access, &KEY)) else {
        panic!("peek")
    };
    assert_eq!(peeked.issuer(), Some(AUDIENCE));
    assert!(matches!(
        peeked.device_id(),
        Err(GatewayError::Malformed(_))
    ));
}

#[test]
fn hostile_tokens_are_refused_with_their_reason() {
    let pair = p256();
    let spki = spki_of(&pair);
    let creds = credentials(
        "sensor-1",
        vec![symmetric(KEY_ID, KEY)],
        vec![certificate(SERIAL, &spki)],
    );
    let other = p256();
    let good = claims("sensor-1");
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = good.clone();
        if let Some(map) = c.as_object_mut() {
            map.remove(key);
        }
        c
    };
    let good_hs = hs256(Some(KEY_ID), &good, &KEY);
    let (head, rest) = good_hs.split_once('.').unwrap_or_default();
    let (_, signature) = rest.split_once('.').unwrap_or_default();
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(good.to_string().as_bytes())
    );
    let x_coordinate = spki
        .get(spki.len() - 64..spki.len() - 32)
        .unwrap_or_default()
        .to_vec();

    let m = "malformed";
    let u = "unauthenticated";
    let table: Vec<(&str, String, (&str, &str))> = vec![
        ("a good HS256 token", good_hs.clone(), ("ok", "")),
        ("alg none", none.clone(), (u, "alg_not_allowed")),
        (
            "alg none with a signature",
            format!("{none}{signature}"),
            (u, "alg_not_allowed"),
        ),
        (
            "HS256 keyed with the certificate's SPKI",
            hs256(Some(SERIAL), &good, &spki),
            (u, "unknown_key"),
        ),
        (
            "HS256 keyed with the public key's x",
            hs256(Some(SERIAL), &good, &x_coordinate),
            (u, "unknown_key"),
        ),
        (
            "HS256 without kid",
            hs256(None, &good, &KEY),
            (u, "unknown_key"),
        ),
        (
            "HS256 with an unknown kid",
            hs256(Some("k9"), &good, &KEY),
            (u, "unknown_key"),
        ),
        (
            "HS256 under another key",
            hs256(Some(KEY_ID), &good, &[0x24; 32]),
            (u, "bad_signature"),
        ),
        (
            "ES256 by another key",
            es256("ES256", Some(SERIAL), &good, &other),
            (u, "bad_signature"),
        ),
        (
            "ES256 naming an unknown serial",
            es256("ES256", Some("ffff"), &good, &pair),
            (u, "unknown_key"),
        ),
        (
            "ES384 header on a P-256 key",
            es256("ES384", Some(SERIAL), &good, &pair),
            (u, "alg_not_allowed"),
        ),
        (
            "RS256 header on a P-256 key",
            es256("RS256", None, &good, &pair),
            (u, "alg_not_allowed"),
        ),
        (
            "HS384",
            format!(
                "{}.{}.{signature}",
                b64(br#"{"alg":"HS384","kid":"k1"}"#),
                b64(good.to_string().as_bytes())
            ),
            (u, "alg_not_allowed"),
        ),
        (
            "another device's token",
            hs256(Some(KEY_ID), &claims("sensor-2"), &KEY),
            (u, "wrong_device"),
        ),
        (
            "iss is not sub",
            hs256(Some(KEY_ID), &with("sub", json!("sensor-2")), &KEY),
            (m, "sub_not_iss"),
        ),
        (
            "sub missing",
            hs256(Some(KEY_ID), &without("sub"), &KEY),
            (m, "sub_not_iss"),
        ),
        (
            "iss missing",
            hs256(Some(KEY_ID), &without("iss"), &KEY),
            (m, "missing_iss"),
        ),
        (
            "iss not a device id",
            hs256(Some(KEY_ID), &json!({"iss": "a b", "sub": "a b"}), &KEY),
            (m, "bad_iss"),
        ),
        (
            "wrong audience",
            hs256(Some(KEY_ID), &with("aud", json!("https://other")), &KEY),
            (u, "wrong_audience"),
        ),
        (
            "audience in an array",
            hs256(Some(KEY_ID), &with("aud", json!(["x", AUDIENCE])), &KEY),
            ("ok", ""),
        ),
        (
            "audience missing",
            hs256(Some(KEY_ID), &without("aud"), &KEY),
            (u, "wrong_audience"),
        ),
        (
            "iat missing",
            hs256(Some(KEY_ID), &without("iat"), &KEY),
            (m, "missing_iat"),
        ),
        (
            "exp missing",
            hs256(Some(KEY_ID), &without("exp"), &KEY),
            (m, "missing_exp"),
        ),
        (
            "iat as text",
            hs256(Some(KEY_ID), &with("iat", json!("0")), &KEY),
            (m, "bad_claims"),
        ),
        (
            "exp as a float",
            hs256(Some(KEY_ID), &with("exp", json!(1e10)), &KEY),
            (m, "bad_claims"),
        ),
        (
            "expired beyond the skew",
            hs256(
                Some(KEY_ID),
                &json!({"iss": "sensor-1", "sub": "sensor-1", "aud": AUDIENCE, "iat": NOW - 700, "exp": NOW - 60}),
                &KEY,
            ),
            (u, "expired"),
        ),
        (
            "expired within the skew",
            hs256(
                Some(KEY_ID),
                &json!({"iss": "sensor-1", "sub": "sensor-1", "aud": AUDIENCE, "iat": NOW - 700, "exp": NOW - 59}),
                &KEY,
            ),
            ("ok", ""),
        ),
        (
            "issued in the future",
            hs256(Some(KEY_ID), &with("iat", json!(NOW + 61)), &KEY),
            (u, "not_yet_valid"),
        ),
        (
            "issued within the skew",
            hs256(Some(KEY_ID), &with("iat", json!(NOW + 60)), &KEY),
            ("ok", ""),
        ),
        (
            "lifetime too long",
            hs256(Some(KEY_ID), &with("exp", json!(NOW - 10 + 3601)), &KEY),
            (u, "lifetime_too_long"),
        ),
        (
            "exp before iat",
            hs256(Some(KEY_ID), &with("exp", json!(NOW - 20)), &KEY),
            (m, "exp_not_after_iat"),
        ),
        (
            "extreme times",
            hs256(Some(KEY_ID), &with("iat", json!(i64::MIN)), &KEY),
            (u, "lifetime_too_long"),
        ),
        (
            "signature stripped",
            format!("{head}.{}.", b64(good.to_string().as_bytes())),
            (m, "bad_token"),
        ),
        (
            "two segments",
            format!("{head}.{signature}"),
            (m, "bad_token"),
        ),
        (
            "claims not JSON",
            format!("{head}.{}.{signature}", b64(b"{")),
            (m, "bad_token"),
        ),
        (
            "duplicate claim",
            format!("{head}.{}.{signature}", b64(br#"{"iss":"a","iss":"b"}"#)),
            (m, "bad_claims"),
        ),
        ("empty", String::new(), (m, "bad_token")),
        (
            "longer than 8 KiB",
            format!("{head}.{}.{signature}", "A".repeat(8192)),
            (m, "token_too_long"),
        ),
    ];
    for (what, token, expected) in table {
        assert_eq!(outcome(&check(&token, &creds)), expected, "{what}");
    }
}

#[test]
fn an_expired_device_key_or_certificate_no_longer_verifies() {
    let pair = p256();
    let mut creds = credentials(
        "sensor-1",
        vec![symmetric(KEY_ID, KEY)],
        vec![certificate(SERIAL, &spki_of(&pair))],
    );
    creds.keys[0].not_after = Some(NOW);
    creds.certificates[0].not_after = NOW;
    for token in [
        hs256(Some(KEY_ID), &claims("sensor-1"), &KEY),
        es256("ES256", None, &claims("sensor-1"), &pair),
    ] {
        assert_eq!(
            outcome(&check(&token, &creds)),
            ("unauthenticated", "unknown_key")
        );
    }
}
