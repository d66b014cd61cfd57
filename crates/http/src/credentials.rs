//! Credentials in the `Authorization` header: `Basic` (RFC 7617) for client secrets and EST
//! enrollment secrets, `Bearer` (RFC 6750) for access tokens and device tokens.
//!
//! Only the syntax is here. What the user part means (an OAuth client id, form-encoded per
//! RFC 6749 §2.3.1, or a device id) is the endpoint's to decide.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use zeroize::Zeroizing;

/// Standard Base64 (RFC 7617 §2 uses RFC 4648 §4) that accepts the padding left off, as some
/// HTTP libraries send it.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The user and password of a `Basic` header: the decoded `user:password` octets, wiped on
/// drop, and where the first `:` is. Both parts are borrowed from that one buffer, so the
/// token endpoint copies nothing before its own form-decoding (the user part of an OAuth
/// request is still form-encoded; the password is a secret).
pub struct BasicCredentials {
    decoded: Zeroizing<Vec<u8>>,
    colon: usize,
}

impl BasicCredentials {
    /// The user id as sent.
    pub fn user(&self) -> &[u8] {
        self.decoded.get(..self.colon).unwrap_or_default()
    }

    /// The password as sent (everything after the first `:`).
    pub fn password(&self) -> &[u8] {
        self.decoded.get(self.colon + 1..).unwrap_or_default()
    }
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &String::from_utf8_lossy(self.user()))
            .finish_non_exhaustive()
    }
}

/// Why an `Authorization` header could not be read as `Basic` credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedCredentials {
    /// Another scheme (`Bearer`, `Digest`, ...).
    OtherScheme,
    /// More than one `Authorization` header.
    Repeated,
    /// The header is not visible ASCII.
    NotText,
    /// The credentials are not Base64.
    NotBase64,
    /// No `:` between user and password.
    NoColon,
}

impl MalformedCredentials {
    /// What is wrong, for the caller (it names no value).
    pub const fn describe(self) -> &'static str {
        match self {
            Self::OtherScheme => "unsupported Authorization scheme; use Basic",
            Self::Repeated => "more than one Authorization header",
            Self::NotText => "malformed Authorization header",
            Self::NotBase64 => "malformed Basic credentials: not Base64",
            Self::NoColon => "malformed Basic credentials: no ':' between user and password",
        }
    }
}

impl std::fmt::Display for MalformedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// The one `Authorization` header's scheme and parameters; the scheme compares
/// case-insensitively (RFC 9110 §11.1).
fn authorization(headers: &HeaderMap) -> Result<Option<(&str, &str)>, MalformedCredentials> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(MalformedCredentials::Repeated);
    }
    let text = value
        .to_str()
        .map_err(|_| MalformedCredentials::NotText)?
        .trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    Ok(Some((scheme, rest.trim_matches(' '))))
}

/// The `Basic` credentials of the request: `None` without an `Authorization` header.
pub fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<BasicCredentials>, MalformedCredentials> {
    let Some((scheme, encoded)) = authorization(headers)? else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(MalformedCredentials::OtherScheme);
    }
    let decoded = Zeroizing::new(
        BASIC_BASE64
            .decode(encoded)
            .map_err(|_| MalformedCredentials::NotBase64)?,
    );
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or(MalformedCredentials::NoColon)?;
    Ok(Some(BasicCredentials { decoded, colon }))
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1). Anything else, including
/// a second header or an empty token, counts as no token.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    match access_token(headers)? {
        (TokenScheme::Bearer, token) => Some(token),
        (TokenScheme::Dpop, _) => None,
    }
}

/// How an access token is presented in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScheme {
    /// `Bearer` (RFC 6750 §2.1).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): a `DPoP` proof header must come with it.
    Dpop,
}

/// The token of an `Authorization: Bearer` or `Authorization: DPoP` header, with its scheme.
/// Anything else, including a second header or an empty token, counts as no token.
pub fn access_token(headers: &HeaderMap) -> Option<(TokenScheme, &str)> {
    let (scheme, token) = authorization(headers).ok()??;
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((TokenScheme::Bearer, token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((TokenScheme::Dpop, token))
    } else {
        None
    }
}

/// The one `DPoP` header of the request (RFC 9449 §4.1): `Ok(None)` without one, `Err(())`
/// when there are several or it is not text (§4.3 step 1 refuses both).
#[allow(clippy::result_unit_err)]
pub fn dpop_proof(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let mut values = headers.get_all("dpop").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    value.to_str().map(|v| Some(v.trim())).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn dpop_tokens_are_told_apart_from_bearer_tokens() {
        assert_eq!(
            access_token(&headers(&["DPoP abc"])),
            Some((TokenScheme::Dpop, "abc"))
        );
        assert_eq!(
            access_token(&headers(&["dpop abc"])),
            Some((TokenScheme::Dpop, "abc"))
        );
        assert_eq!(bearer_token(&headers(&["DPoP abc"])), None);
        assert_eq!(access_token(&headers(&["DPoP "])), None);
        let mut h = HeaderMap::new();
        assert_eq!(dpop_proof(&h), Ok(None));
        h.append("dpop", HeaderValue::from_static("a.b.c"));
        assert_eq!(dpop_proof(&h), Ok(Some("a.b.c")));
        h.append("dpop", HeaderValue::from_static("d.e.f"));
        assert_eq!(dpop_proof(&h), Err(()));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Some("abc"));
        assert_eq!(bearer_token(&headers(&["bearer abc"])), Some("abc"));
    }

    #[test]
    fn other_schemes_empty_tokens_and_repeated_headers_are_no_bearer_token() {
        assert_eq!(bearer_token(&headers(&[])), None);
        assert_eq!(bearer_token(&headers(&["Basic YTpi"])), None);
        assert_eq!(bearer_token(&headers(&["Bearer "])), None);
        assert_eq!(bearer_token(&headers(&["Bearer"])), None);
        assert_eq!(bearer_token(&headers(&["Bearer a", "Bearer b"])), None);
    }

    #[test]
    fn basic_splits_at_the_first_colon_and_accepts_missing_padding() {
        // "dev-1:se:cret" and "a:b" without its padding.
        let c = basic_credentials(&headers(&["Basic ZGV2LTE6c2U6Y3JldA=="]))
            .unwrap()
            .unwrap();
        assert_eq!(c.user(), b"dev-1");
        assert_eq!(c.password(), b"se:cret");
        let c = basic_credentials(&headers(&["basic YTpi"]))
            .unwrap()
            .unwrap();
        assert_eq!((c.user(), c.password()), (&b"a"[..], &b"b"[..]));
        assert!(basic_credentials(&headers(&[])).unwrap().is_none());
    }

    #[test]
    fn malformed_basic_headers_say_what_is_wrong() {
        let cases = [
            ("Bearer abc", MalformedCredentials::OtherScheme),
            ("Basic !!!notbase64", MalformedCredentials::NotBase64),
            ("Basic YWJj", MalformedCredentials::NoColon),
        ];
        for (value, why) in cases {
            assert_eq!(
                basic_credentials(&headers(&[value])).unwrap_err(),
                why,
                "{value}"
            );
        }
        assert_eq!(
            basic_credentials(&headers(&["Basic YTpi", "Basic YTpi"])).unwrap_err(),
            MalformedCredentials::Repeated
        );
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Basic \xff").unwrap(),
        );
        assert_eq!(
            basic_credentials(&h).unwrap_err(),
            MalformedCredentials::NotText
        );
    }

    #[test]
    fn debug_never_prints_the_password() {
        let c = basic_credentials(&headers(&["Basic ZGV2LTE6c2U6Y3JldA=="]))
            .unwrap()
            .unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("dev-1") && !shown.contains("se:cret"),
            "{shown}"
        );
    }
}
