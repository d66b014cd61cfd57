//! Round trips for every algorithm and a table of hostile tokens (RFC 8725 §2 attacks).

use super::*;
use crate::jws::JwtSigner;
use crate::test_keys::generated_signer as signer;
use crate::{Algorithm, Signer};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::Arc;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key_for(signer: &dyn Signer) -> VerifyingKey {
    match VerifyingKey::from_jwk(&signer.public_jwk(), &Algorithm::ALL) {
        Ok(key) => key,
        Err(e) => panic!("{e}"),
    }
}

fn sign(signer: &Arc<dyn Signer>, claims: &[u8]) -> String {
    match JwtSigner::new(Arc::clone(signer), "at+jwt").sign_claims_json(claims) {
        Ok(token) => token,
        Err(e) => panic!("{e}"),
    }
}

/// A token with an HMAC over `header.payload`, as an attacker would forge one.
fn hmac_token(header: &str, claims: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

fn decode_ok(token: &str) -> Decoded {
    match decode(token) {
        Ok(decoded) => decoded,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn every_algorithm_round_trips_through_the_public_jwk() {
    for alg in Algorithm::ALL {
        let signer = signer(alg);
        let token = sign(&signer, br#"{"sub":"sensor-1","exp":2000000000}"#);
        let decoded = decode_ok(&token);
        assert_eq!(decoded.header.alg, alg.as_str());
        assert_eq!(decoded.header.kid.as_deref(), Some(signer.kid().as_str()));
        assert_eq!(decoded.verify(&key_for(&*signer)), Ok(()), "{alg}");
        let claims: Result<serde_json::Value, _> = decoded.claims_as();
        assert_eq!(
            claims
                .ok()
                .and_then(|c| c["sub"].as_str().map(str::to_owned))
                .as_deref(),
            Some("sensor-1")
        );
    }
}

#[test]
fn hostile_tokens_are_rejected_by_decode() {
    let good = sign(&signer(Algorithm::ES256), br#"{"sub":"x"}"#);
    let parts: Vec<&str> = good.split('.').collect();
    let (h, c, s) = (parts[0], parts[1], parts[2]);
    let obj = b64(br#"{"sub":"x"}"#);
    let with_header = |json: &str| format!("{}.{c}.{s}", b64(json.as_bytes()));
    let with_claims = |json: &str| format!("{h}.{}.{s}", b64(json.as_bytes()));
    let huge = format!("{h}.{}.{s}", "A".repeat(MAX_TOKEN_BYTES));

    let table: Vec<(&str, String)> = vec![
        (
            "alg none, empty signature",
            format!("{}.{obj}.", b64(br#"{"alg":"none"}"#)),
        ),
        (
            "alg none, some signature",
            format!("{}.{obj}.AAAA", b64(br#"{"alg":"none"}"#)),
        ),
        ("empty signature", format!("{h}.{c}.")),
        ("empty token", String::new()),
        ("two segments", format!("{h}.{c}")),
        ("four segments", format!("{good}.{s}")),
        ("truncated to the header", h.to_owned()),
        ("padding", format!("{h}=.{c}.{s}")),
        // Always a '+', even for a signature with no '-' or '_' to swap (6 % of ES256 ones).
        ("standard alphabet", format!("{h}.{c}.+{}", &s[1..])),
        (
            "standard alphabet, '/'",
            format!("{h}.{c}.{}/", &s[..s.len() - 1]),
        ),
        ("space", format!("{h}.{c} .{s}")),
        // "{}" is "e30"; "e31" decodes the same but sets bits that must be zero.
        ("non-canonical trailing bits", format!("{h}.e31.{s}")),
        ("header is an array", with_header(r#"["ES256"]"#)),
        ("header is a string", with_header(r#""ES256""#)),
        ("header is null", with_header("null")),
        ("header without alg", with_header(r#"{"kid":"a"}"#)),
        ("alg is a number", with_header(r#"{"alg":256}"#)),
        (
            "duplicate alg",
            with_header(r#"{"alg":"ES256","alg":"none"}"#),
        ),
        (
            "crit header",
            with_header(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#),
        ),
        ("header not JSON", with_header("{alg:ES256}")),
        ("claims are an array", with_claims("[]")),
        ("claims are a string", with_claims(r#""x""#)),
        ("claims are null", with_claims("null")),
        ("claims not JSON", with_claims("{\"a\":")),
        ("claims with trailing data", with_claims("{}{}")),
        ("oversized", huge),
    ];
    for (what, token) in table {
        assert!(
            matches!(
                decode(&token),
                Err(KeyError::Malformed(_) | KeyError::UnsupportedAlgorithm(_))
            ),
            "{what}: {:?}",
            decode(&token).map(|d| d.header)
        );
    }
}

#[test]
fn hmac_keyed_with_the_public_key_is_rejected_by_asymmetric_keys() {
    for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA] {
        let signer = signer(alg);
        let jwk = signer.public_jwk();
        let key = key_for(&*signer);
        let header = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, signer.kid());
        // Every plausible byte form of "the public key" an attacker could key the HMAC with.
        let forms = [
            serde_json::to_vec(&jwk).unwrap_or_default(),
            jwk.x
                .clone()
                .or(jwk.n.clone())
                .unwrap_or_default()
                .into_bytes(),
        ];
        for secret in forms {
            let decoded = decode_ok(&hmac_token(&header, r#"{"sub":"admin"}"#, &secret));
            assert_eq!(
                decoded.verify(&key),
                Err(KeyError::AlgorithmMismatch),
                "{alg}"
            );
            assert!(verify_with_any(&decoded, std::slice::from_ref(&key)).is_err());
        }
    }
}

#[test]
fn header_alg_other_than_the_keys_is_rejected() {
    let es384 = signer(Algorithm::ES384);
    let es256_key = key_for(&*signer(Algorithm::ES256));
    let decoded = decode_ok(&sign(&es384, b"{}"));
    assert_eq!(decoded.verify(&es256_key), Err(KeyError::AlgorithmMismatch));

    // Same key material, header relabelled: PS256 key, RS256 header.
    let ps = signer(Algorithm::PS256);
    let token = sign(&ps, b"{}");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[0] = b64(format!(r#"{{"alg":"RS256","kid":"{}"}}"#, ps.kid()).as_bytes());
    let decoded = decode_ok(&parts.join("."));
    assert_eq!(
        decoded.verify(&key_for(&*ps)),
        Err(KeyError::AlgorithmMismatch)
    );
}

#[test]
fn tampered_claims_or_signature_fail_verification() {
    let signer = signer(Algorithm::EdDSA);
    let key = key_for(&*signer);
    let token = sign(&signer, br#"{"scope":"read"}"#);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(br#"{"scope":"admin"}"#), parts[2]);
    assert_eq!(decode_ok(&forged).verify(&key), Err(KeyError::BadSignature));
    for cut in 1..=8 {
        let truncated = &token[..token.len() - cut];
        assert!(
            decode(truncated).and_then(|d| d.verify(&key)).is_err(),
            "cut {cut}"
        );
    }
}

#[test]
fn ecdsa_der_signature_is_rejected() {
    // RFC 7518 §3.4: JWS uses r||s; a DER-encoded signature is not accepted.
    let signer = signer(Algorithm::ES256);
    let key = key_for(&*signer);
    let token = sign(&signer, b"{}");
    let parts: Vec<&str> = token.split('.').collect();
    let rs = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    let mut der = vec![0x30, 0x46, 0x02, 0x21, 0x00];
    der.extend_from_slice(&rs[..32]);
    der.extend_from_slice(&[0x02, 0x21, 0x00]);
    der.extend_from_slice(&rs[32..]);
    let token = format!("{}.{}.{}", parts[0], parts[1], b64(&der));
    assert_eq!(decode_ok(&token).verify(&key), Err(KeyError::BadSignature));
}

#[test]
fn verify_with_any_picks_by_kid_then_by_alg() {
    let a = signer(Algorithm::ES256);
    let b = signer(Algorithm::RS256);
    let keys = [key_for(&*a), key_for(&*b)];
    let decoded = decode_ok(&sign(&b, b"{}"));
    assert_eq!(
        verify_with_any(&decoded, &keys).map(|k| k.kid()),
        Ok(Some(b.kid().as_str()))
    );

    // Unknown kid: not even tried against the other keys.
    let stranger = signer(Algorithm::ES256);
    let decoded = decode_ok(&sign(&stranger, b"{}"));
    assert_eq!(
        verify_with_any(&decoded, &keys).err(),
        Some(KeyError::UnknownKid)
    );

    // No kid: tried against keys of the header's algorithm only.
    let mut jwk = a.public_jwk();
    jwk.kid = None;
    let no_kid_keys = VerifyingKey::from_jwk(&jwk, &Algorithm::ALL).map(|k| vec![k]);
    let Ok(no_kid_keys) = no_kid_keys else {
        panic!("key")
    };
    let token = sign(&a, b"{}");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[0] = b64(br#"{"alg":"ES256"}"#);
    // The signature covered the original header, so re-sign with a kid-less header.
    let input = format!("{}.{}", parts[0], parts[1]);
    let sig = a.sign(input.as_bytes()).unwrap_or_default();
    let decoded = decode_ok(&format!("{input}.{}", b64(&sig)));
    assert!(verify_with_any(&decoded, &no_kid_keys).is_ok());
    assert_eq!(
        verify_with_any(&decoded, &keys[1..]).err(),
        Some(KeyError::AlgorithmMismatch)
    );
}

#[test]
fn verify_hmac_accepts_the_right_secret_only() {
    let secret = [0x5a_u8; 32];
    let token = hmac_token(r#"{"alg":"HS256"}"#, r#"{"iss":"client"}"#, &secret);
    let decoded = decode_ok(&token);
    assert_eq!(verify_hmac(&decoded, &secret), Ok(()));
    assert_eq!(
        verify_hmac(&decoded, &[0x5b_u8; 32]),
        Err(KeyError::BadSignature)
    );
    assert!(matches!(
        verify_hmac(&decoded, &secret[..16]),
        Err(KeyError::Malformed(_))
    ));
}

#[test]
fn verify_hmac_rejects_asymmetric_and_unknown_headers() {
    let secret = [1u8; 64];
    for alg in ["RS256", "ES256", "EdDSA", "HS1", "hs256"] {
        let token = hmac_token(&format!(r#"{{"alg":"{alg}"}}"#), "{}", &secret);
        let decoded = decode_ok(&token);
        assert!(
            matches!(
                verify_hmac(&decoded, &secret),
                Err(KeyError::AlgorithmNotAllowed(_))
            ),
            "{alg}"
        );
    }
}
