//! Rules for JWT client assertions (RFC 7523 §3, used by `private_key_jwt` and
//! `client_secret_jwt`, RFC 7521 §4.2). The signature is checked by the `keys` crate; this
//! module checks the claims once the signature is known good.

use crate::{ClientId, OAuthError, UnixTime};
use serde::Deserialize;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const CLOCK_SKEW_SECS: i64 = 30;
/// Longest lifetime an assertion may claim; short lifetimes keep the replay cache small.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 600;

/// The claims of a client assertion.
#[derive(Debug, Clone, Deserialize)]
pub struct AssertionClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<serde_json::Value>,
    pub exp: Option<serde_json::Value>,
    pub nbf: Option<serde_json::Value>,
    pub iat: Option<serde_json::Value>,
    pub jti: Option<String>,
}

/// What a valid assertion proves: who it is from and until when its `jti` must be remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedAssertion {
    pub client_id: ClientId,
    pub jti: String,
    pub exp: UnixTime,
}

fn numeric_date(v: &Option<serde_json::Value>, name: &str) -> Result<Option<i64>, OAuthError> {
    match v {
        None => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| {
                OAuthError::invalid_client(format!(
                    "client assertion '{name}' is not a NumericDate"
                ))
            }),
        Some(_) => Err(OAuthError::invalid_client(format!(
            "client assertion '{name}' is not a NumericDate"
        ))),
    }
}

/// Reads the unverified `iss`/`sub` so the server knows whose keys to check the signature with.
pub fn claimed_client_id(claims: &AssertionClaims) -> Result<ClientId, OAuthError> {
    let sub = claims
        .sub
        .as_deref()
        .or(claims.iss.as_deref())
        .ok_or_else(|| OAuthError::invalid_client("client assertion has no 'sub'"))?;
    ClientId::parse(sub)
        .map_err(|_| OAuthError::invalid_client("client assertion 'sub' is not a valid client_id"))
}

/// RFC 7523 §3: `iss` and `sub` are the client id; `aud` names this server (the token
/// endpoint or the issuer); `exp` is present, in the future and not too far ahead; `nbf` and
/// `iat` are not in the future; `jti` is present (its single use is enforced by the caller).
pub fn check_assertion_claims(
    claims: &AssertionClaims,
    client_id: &ClientId,
    accepted_audiences: &[&str],
    now: UnixTime,
) -> Result<CheckedAssertion, OAuthError> {
    if claims.iss.as_deref() != Some(client_id.as_str())
        || claims.sub.as_deref() != Some(client_id.as_str())
    {
        return Err(OAuthError::invalid_client(
            "client assertion 'iss' and 'sub' must both be the client_id",
        ));
    }
    let aud_ok = match &claims.aud {
        Some(serde_json::Value::String(a)) => accepted_audiences.contains(&a.as_str()),
        Some(serde_json::Value::Array(v)) => v
            .iter()
            .any(|a| a.as_str().is_some_and(|a| accepted_audiences.contains(&a))),
        _ => false,
    };
    if !aud_ok {
        return Err(OAuthError::invalid_client(
            "client assertion 'aud' must be the token endpoint or the issuer",
        ));
    }
    let exp = numeric_date(&claims.exp, "exp")?
        .ok_or_else(|| OAuthError::invalid_client("client assertion has no 'exp'"))?;
    if exp + CLOCK_SKEW_SECS <= now {
        return Err(OAuthError::invalid_client("client assertion has expired"));
    }
    if exp - now > MAX_ASSERTION_LIFETIME_SECS {
        return Err(OAuthError::invalid_client(format!(
            "client assertion 'exp' is more than {MAX_ASSERTION_LIFETIME_SECS} seconds ahead"
        )));
    }
    if let Some(nbf) = numeric_date(&claims.nbf, "nbf")? {
        if nbf > now + CLOCK_SKEW_SECS {
            return Err(OAuthError::invalid_client(
                "client assertion is not yet valid ('nbf')",
            ));
        }
    }
    if let Some(iat) = numeric_date(&claims.iat, "iat")? {
        if iat > now + CLOCK_SKEW_SECS {
            return Err(OAuthError::invalid_client(
                "client assertion 'iat' is in the future",
            ));
        }
    }
    // Printable only: the jti is stored to refuse replays, and a NUL cannot be stored in a
    // PostgreSQL TEXT column (the insert would fail as if the database were down).
    let jti = match claims.jti.as_deref() {
        Some(j) if !j.is_empty() && j.len() <= 256 && !j.chars().any(char::is_control) => {
            j.to_owned()
        }
        _ => {
            return Err(OAuthError::invalid_client(
                "client assertion needs a 'jti' of 1-256 printable characters",
            ))
        }
    };
    Ok(CheckedAssertion {
        client_id: client_id.clone(),
        jti,
        exp: exp + CLOCK_SKEW_SECS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AUD: &[&str] = &["https://as/oauth2/token", "https://as"];

    fn claims(v: serde_json::Value) -> AssertionClaims {
        serde_json::from_value(v).unwrap()
    }

    fn good() -> serde_json::Value {
        json!({"iss": "c1", "sub": "c1", "aud": "https://as/oauth2/token", "exp": 1060, "iat": 1000, "jti": "j1"})
    }

    fn check(v: serde_json::Value) -> Result<CheckedAssertion, OAuthError> {
        check_assertion_claims(&claims(v), &ClientId::parse("c1").unwrap(), AUD, 1000)
    }

    #[test]
    fn good_assertion_passes() {
        let c = check(good()).unwrap();
        assert_eq!(c.jti, "j1");
        assert!(c.exp >= 1060);
    }

    #[test]
    fn audience_may_be_issuer_or_array() {
        let mut v = good();
        v["aud"] = json!(["x", "https://as"]);
        assert!(check(v).is_ok());
    }

    #[test]
    fn hostile_claims_are_rejected() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("iss", json!("c2")),
            ("sub", json!("c2")),
            ("aud", json!("https://elsewhere")),
            ("aud", json!(42)),
            ("exp", json!(900)),
            ("exp", json!(100_000)),
            ("exp", json!("soon")),
            ("nbf", json!(2000)),
            ("iat", json!(5000)),
            ("jti", json!("")),
            ("jti", json!("a\u{0}b")),
            ("jti", json!("a\nb")),
            ("jti", json!("x".repeat(257))),
        ];
        for (name, value) in cases {
            let mut v = good();
            v[name] = value.clone();
            assert!(check(v).is_err(), "{name}={value} should be rejected");
        }
        for missing in ["exp", "jti", "aud", "iss"] {
            let mut v = good();
            v.as_object_mut().unwrap().remove(missing);
            assert!(check(v).is_err(), "missing {missing} should be rejected");
        }
    }

    #[test]
    fn claimed_client_id_prefers_sub() {
        assert_eq!(claimed_client_id(&claims(good())).unwrap().as_str(), "c1");
        assert!(claimed_client_id(&claims(json!({"sub": "bad id"}))).is_err());
        assert!(claimed_client_id(&claims(json!({}))).is_err());
    }
}
