//! The media type a request declares in `Content-Type`. Media types compare
//! case-insensitively and may carry parameters (`; charset=UTF-8`), RFC 9110 §8.3.1.

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;

/// The declared type without parameters, as sent; `None` without a readable header. No
/// allocation: the token endpoint checks this on every request.
pub fn essence(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim())
}

/// Whether the request declares `expected`.
pub fn has_media_type(headers: &HeaderMap, expected: &str) -> bool {
    essence(headers).is_some_and(|e| e.eq_ignore_ascii_case(expected))
}

/// Whether the request declares JSON: `application/json` or an `application/*+json` type
/// (RFC 6839 §3.1, e.g. `application/merge-patch+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    essence(headers).is_some_and(|e| {
        let e = e.to_ascii_lowercase();
        e == "application/json" || (e.starts_with("application/") && e.ends_with("+json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(ct: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    }

    #[test]
    fn parameters_and_case_are_ignored() {
        let form = "application/x-www-form-urlencoded";
        assert!(has_media_type(
            &with("application/x-www-form-urlencoded"),
            form
        ));
        assert!(has_media_type(
            &with("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
            form
        ));
        for bad in [
            "application/json",
            "multipart/form-data",
            "application/x-www-form-urlencodedx",
        ] {
            assert!(!has_media_type(&with(bad), form), "{bad}");
        }
        assert!(!has_media_type(&HeaderMap::new(), form));
    }

    #[test]
    fn json_includes_plus_json_suffixes() {
        assert!(is_json(&with("application/json; charset=utf-8")));
        assert!(is_json(&with("application/merge-patch+json")));
        assert!(!is_json(&with("text/json")));
        assert!(!is_json(&with("application/jsonx")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
