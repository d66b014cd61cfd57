//! Parsing of `application/x-www-form-urlencoded` request bodies with the OAuth rules:
//! RFC 6749 §3.2 "request and response parameters MUST NOT be included more than once",
//! except those a later RFC defines as repeatable (`resource`, RFC 8707 §2), and §3.1
//! "parameters sent without a value MUST be treated as if they were omitted".

use crate::OAuthError;

/// Largest number of parameters accepted in one form; real requests have fewer than ten.
const MAX_PARAMS: usize = 64;

/// A parsed form: parameter names with their values, in order of appearance.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Parses a body. `repeatable` names the parameters that may appear more than once.
    pub fn parse(body: &[u8], repeatable: &[&str]) -> Result<Self, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            if pairs.len() >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            if !repeatable.contains(&name.as_ref()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter '{}' is included more than once",
                    printable(&name)
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// The value of a single-valued parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable parameter.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A required parameter, or `invalid_request` naming it.
    pub fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter '{name}'")))
    }
}

/// A parameter name made safe to echo in an error description (no control characters, short).
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let f = Form::parse(b"grant_type=client_credentials&scope=a+b%20c", &[]).unwrap();
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.get("scope"), Some("a b c"));
        assert_eq!(f.get("nope"), None);
    }

    #[test]
    fn repeated_parameter_is_invalid_request() {
        let e = Form::parse(b"scope=a&scope=b", &[]).unwrap_err();
        assert!(e.description.contains("'scope'"));
    }

    #[test]
    fn repeatable_parameters_collect_all_values() {
        let f = Form::parse(b"resource=urn:a&resource=urn:b", &["resource"]).unwrap();
        assert_eq!(
            f.get_all("resource").collect::<Vec<_>>(),
            ["urn:a", "urn:b"]
        );
    }

    #[test]
    fn empty_values_count_as_absent() {
        let f = Form::parse(b"scope=&scope=a", &[]).unwrap();
        assert_eq!(f.get("scope"), Some("a"));
        assert!(f.require("grant_type").is_err());
    }

    #[test]
    fn hostile_bodies_do_not_panic() {
        for body in [
            &b"%"[..],
            b"%zz=%",
            b"&&&==&",
            b"\xff\xfe=\x00",
            b"a=%E2%82",
        ] {
            let _ = Form::parse(body, &[]);
        }
        let many: String = (0..100).map(|i| format!("p{i}=v&")).collect();
        assert!(Form::parse(many.as_bytes(), &[]).is_err());
    }
}
