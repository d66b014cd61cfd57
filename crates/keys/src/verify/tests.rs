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
fn header_jwk_with_private_or_symmetric_members_is_named_as_such() {
    let good = sign(&signer(Algorithm::ES256), br#"{"sub":"x"}"#);
    let (c, s) = good
        .split_once('.')
        .map(|(_, rest)| rest.split_once('.').unwrap_or_default())
        .unwrap_or_default();
    for member in ["d", "k"] {
        let header = format!(
            r#"{{"alg":"ES256","jwk":{{"kty":"EC","crv":"P-256","x":"AA","y":"AA","{member}":"AA"}}}}"#
        );
        let token = format!("{}.{c}.{s}", b64(header.as_bytes()));
        assert_eq!(
            decode(&token).err(),
            Some(KeyError::PrivateKeyMaterial("the header's jwk")),
            "member {member}"
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

/// SubjectPublicKeyInfo fixtures made with OpenSSL 3.0 (`openssl genpkey`, `openssl pkey
/// -pubout -outform DER`, `openssl pkeyutl -sign -rawin`, `openssl dgst -sha256 -sign`), so
/// the DER reader is checked against an encoder that is not aws-lc.
mod openssl_spki {
    pub const MESSAGE: &[u8] = b"portcullis spki fixture";
    pub const ED25519: &str = "MCowBQYDK2VwAyEAGocTuJKRS3gAxxgdnzF4bcXCImsN3Nx/6a+22q1V9kI=";
    pub const ED25519_SIG: &str =
        "Bqvu7bryyNaRHUfr6TkSLl5rwxriDwGVO4jex1tLbJUiWpIrRycwHl9TPwcs1GLMgoxGMy0IH7E+qbxoT6JMDA==";
    pub const RSA_2048: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAsSPf3/H7jnIxxXYsDfpsuY6Cwknzth89pagmvEwlZmSh0v0Ier1/zG8rrCONrT+ewWAb09jZj7snMwmqsYihSR0O9KkhJNaBVLPdN6GXD/vpUpbHeCTyQY9ySs8Uc9NGq/7gtfD1uFmlXntQw+oYpQioNQykQO7wMDvlBIVlGAyiF9XIDmJA/5EtnjEg6WenBSFOUo+X+fJyhhNxXNFcveyLRNffRX9sRiUMaNsh54t5FYoWQcJwWne+21zCP9RhoJaIJyzUumOPUrOgOS7oj8yRaMDhAhYseNV6qelgtk2ceLnVaP5nOzJrtnACSnnHWwQ0mKjngVzaenOnBhT0TQIDAQAB";
    pub const RSA_2048_RS256_SIG: &str = "YA2oxpW00nCyOENGc5BgXujHZIo6TJRmJ5+K0UY+Eqc2nCStllnwECzyXIaSe1nr3IrSOQDNHIUc6yxfBaCAQ06Y8bQSB3nN0yRwTB8CEC0o9/54Vwq5dODGQON7qcE0Hzr7f1ioIMbAV/WgnP273Tm1ZpYWWT8r1o8cvK7zq+V1c+0Fp2k21qLajqzPKGuxZw5NmYQ0HyCiX/pu23O6PGujqNHda842R0/MhChaLDIrNZMmI7dhA8duGk+PKjZCVfSoLtLga9AxcOWUrTP630YmYwyj+WnuFRvbNtZa+2MsAg6HakvWlbE2kvss2n2Ov7EpGQ/WwCrH6JQ5Xx8sVg==";
    /// `-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32`.
    pub const RSA_2048_PS256_SIG: &str = "Tnd//eJdJZdka9J7Aog0IFQKw6ztLW0OfYDyQ9x4Gup2vZnW0OFsdsZ7Lv5Iv6GYid/NpLIfLbN2mFEpEu4IAE4vwRb9DWP8U1/BfTTPfMBGFy2LBO7DEygyPLKg0+EXFiEaF+ZfBgDu0hwEtHx/YFEsn0DDIHLCLUJ0b+vLc7sR2ZsAbCG8wSGZNkrNnYmGtc8QkYNQViwvuFww0cyVymuqTVfGQLfa4Vs50v7hZ9QmTmgAbmSyPJsll403J/DQd29Z9YqN390kR/ioS/gpezw8wwtiHaaO5ZIt2VNoiVvXzBGIX7cRf8xeU2Lv2tB3D0LZl29/oPGbBvzqTxmSpA==";
    pub const P384: &str = "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEhJfxkmNh7gQHvZTUDX6W2RdjMzWNm/jCReXcrEUK53xmrk2kbGtuOK0ttS/o1XHwVBFKWljwapqWkyJGGwlGm/AgHqc07cXU4rkHtQnTPngAPDX6AVJJ9AI7bqDF4hfS";
    pub const SECP256K1: &str = "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEJVmHuaSyLUDq/nNPX+Kk/ldW9O9BWyMMkrOO9WUpfyQhTMAk24wP5s4RqQraLJGUmP5pXPzy46Gr/etsNRfFFw==";
    pub const RSA_1024: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDXGjKsdBobzpLzF8hG8kmyF1eIEa9/Ck3BzGETgzfrFXoGCsGexk6I01HaGTeTfMZzBWcGqysJDT/A0BxDDtz0NbU20Ta5ri2yYm4zfu2Z1Porl0WDmwtEOnvFEj/MYdgXQjlf4SgwmN3CetM8sLpLD6nz6Y6m7RRCfoxvRjcPQQIDAQAB";
    /// An `id-RSASSA-PSS` key (RFC 4055): not one a device certificate may carry here.
    pub const RSASSA_PSS: &str = "MIIBIDALBgkqhkiG9w0BAQoDggEPADCCAQoCggEBAL6igUdBlh3iIaaj/CZy7um7FrzBRL4pxqUSsoPfIphdul02BbKS9nTlR8G+uecF8nJEXwFgiqFag/tx1dXpzJtNBqv6vFqnkT6jgD95QQWvAfzZd954sNBZVIOHOqCOQNlqJWl9vJvumhGeAFCGxmz6CN/+oInXVmKoDSG9k+hh/gQal0YPj3yt1iIrnn8SVklNj0kjQDwhPwk1YFVCQzJmWVpng0lmr5273DQPEw3o5iQjoo54pI1oXPDhCjNMF9DsvXQW1bLwmnZZvDslDzYBVBpLlzdjuXFBqjyLZvhwz8hD6dzbIB2Cx0sk9rDsrbmV/2hhJFxX/XIl/Ascq90CAwEAAQ==";

    pub fn der(b64: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default()
    }
}

fn spki_keys(der: &[u8], allowed: &[Algorithm]) -> Vec<VerifyingKey> {
    match VerifyingKey::from_spki_der(der, allowed) {
        Ok(keys) => keys,
        Err(e) => panic!("{e}"),
    }
}

fn algorithms(keys: &[VerifyingKey]) -> Vec<Algorithm> {
    keys.iter().map(VerifyingKey::algorithm).collect()
}

#[test]
fn spki_of_every_generated_key_type_verifies_its_own_signatures() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
        ECDSA_P384_SHA384_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    };
    let rng = SystemRandom::new();
    let message = b"a device reading";
    let der = |d: Result<aws_lc_rs::encoding::PublicKeyX509Der<'static>, _>| match d {
        Ok(d) => d.as_ref().to_vec(),
        Err(e) => panic!("{e:?}"),
    };

    for (curve, alg) in [
        (&ECDSA_P256_SHA256_FIXED_SIGNING, Algorithm::ES256),
        (&ECDSA_P384_SHA384_FIXED_SIGNING, Algorithm::ES384),
    ] {
        let Ok(pair) = EcdsaKeyPair::generate(curve) else {
            panic!("ec keygen")
        };
        let keys = spki_keys(&der(pair.public_key().as_der()), &Algorithm::ALL);
        assert_eq!(algorithms(&keys), vec![alg]);
        let Ok(sig) = pair.sign(&rng, message) else {
            panic!("ec sign")
        };
        assert_eq!(keys[0].verify(message, sig.as_ref()), Ok(()), "{alg}");
        assert_eq!(
            keys[0].verify(b"another reading", sig.as_ref()),
            Err(KeyError::BadSignature)
        );
    }

    let Ok(ed) = Ed25519KeyPair::generate() else {
        panic!("ed keygen")
    };
    let keys = spki_keys(&der(ed.public_key().as_der()), &Algorithm::ALL);
    assert_eq!(algorithms(&keys), vec![Algorithm::EdDSA]);
    assert_eq!(keys[0].verify(message, ed.sign(message).as_ref()), Ok(()));

    let Ok(rsa) = RsaKeyPair::generate(KeySize::Rsa2048) else {
        panic!("rsa keygen")
    };
    let keys = spki_keys(&der(rsa.public_key().as_der()), &Algorithm::ALL);
    assert_eq!(algorithms(&keys), vec![Algorithm::RS256, Algorithm::PS256]);
    for (key, padding) in keys.iter().zip([&RSA_PKCS1_SHA256, &RSA_PSS_SHA256]) {
        let mut sig = vec![0u8; rsa.public_modulus_len()];
        assert!(rsa.sign(padding, &rng, message, &mut sig).is_ok());
        assert_eq!(key.verify(message, &sig), Ok(()), "{}", key.algorithm());
    }
    // Each RSA verifier checks its own padding only.
    let mut pkcs1 = vec![0u8; rsa.public_modulus_len()];
    assert!(rsa
        .sign(&RSA_PKCS1_SHA256, &rng, message, &mut pkcs1)
        .is_ok());
    assert_eq!(keys[1].verify(message, &pkcs1), Err(KeyError::BadSignature));
}

#[test]
fn spki_from_openssl_parses_and_verifies() {
    use openssl_spki::*;
    let keys = spki_keys(&der(ED25519), &Algorithm::ALL);
    assert_eq!(keys[0].verify(MESSAGE, &der(ED25519_SIG)), Ok(()));

    let keys = spki_keys(&der(RSA_2048), &Algorithm::ALL);
    assert_eq!(keys[0].verify(MESSAGE, &der(RSA_2048_RS256_SIG)), Ok(()));
    assert_eq!(keys[1].verify(MESSAGE, &der(RSA_2048_PS256_SIG)), Ok(()));

    assert_eq!(
        algorithms(&spki_keys(&der(P384), &Algorithm::ALL)),
        vec![Algorithm::ES384]
    );
}

#[test]
fn spki_algorithms_are_filtered_by_the_allow_list() {
    use openssl_spki::*;
    assert_eq!(
        algorithms(&spki_keys(&der(RSA_2048), &[Algorithm::PS256])),
        vec![Algorithm::PS256]
    );
    assert!(matches!(
        VerifyingKey::from_spki_der(&der(ED25519), &[Algorithm::ES256]),
        Err(KeyError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn hostile_spki_is_refused() {
    use openssl_spki::*;
    let ed = der(ED25519);
    let mut trailing = ed.clone();
    trailing.push(0);
    let mut long_form = vec![0x30, 0x81, 0x2a];
    long_form.extend_from_slice(&ed[2..]);
    let mut wrong_len = ed.clone();
    wrong_len[1] = 0x2b;
    let mut unused_bits = ed.clone();
    unused_bits[11] = 1;
    let mut ed_with_params = vec![
        0x30, 0x2c, 0x30, 0x07, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x05, 0x00,
    ];
    ed_with_params.extend_from_slice(&ed[9..]);
    let p256_point = {
        let Ok(pair) = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        ) else {
            panic!("keygen")
        };
        use aws_lc_rs::signature::KeyPair as _;
        pair.public_key().as_ref().to_vec()
    };
    let table: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("secp256k1", der(SECP256K1)),
        ("RSA below 2048 bits", der(RSA_1024)),
        ("id-RSASSA-PSS key", der(RSASSA_PSS)),
        ("trailing byte", trailing),
        ("non-minimal length", long_form),
        ("length past the end", wrong_len),
        ("unused bits in the key", unused_bits),
        ("Ed25519 with parameters", ed_with_params),
        ("truncated", ed[..ed.len() - 1].to_vec()),
        ("indefinite length", vec![0x30, 0x80, 0x00, 0x00]),
        ("a bare EC point, not an SPKI", p256_point),
        ("a bare Ed25519 key, not an SPKI", ed[12..].to_vec()),
        ("a JWK", br#"{"kty":"OKP"}"#.to_vec()),
    ];
    for (what, input) in table {
        assert!(
            VerifyingKey::from_spki_der(&input, &Algorithm::ALL).is_err(),
            "{what}"
        );
    }
    for cut in 0..ed.len() {
        assert!(VerifyingKey::from_spki_der(&ed[..cut], &Algorithm::ALL).is_err());
    }
}
