//! Public JSON Web Keys (RFC 7517) and their thumbprints (RFC 7638).
//!
//! [`Jwk`] has no fields for private members, so serializing one can never leak a private
//! key; parsing a *public* key set goes further and rejects any key that carries one,
//! because a client that publishes its private key has lost it (RFC 7517 §9.2).

use crate::KeyError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// Largest JWK Set accepted from outside (a client's `jwks`).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys accepted in one JWK Set.
pub const MAX_JWKS_KEYS: usize = 100;

/// A public JWK (RFC 7517 §4, RFC 7518 §6). Unknown members are ignored (RFC 7517 §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `EC`, `RSA`, `OKP` (RFC 7517 §4.1, RFC 8037 §2).
    pub kty: String,
    /// Curve for `EC` and `OKP` keys (RFC 7518 §6.2.1.1, RFC 8037 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// x coordinate (`EC`) or public key (`OKP`), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (`EC`), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus, base64url (RFC 7518 §6.3.1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url (RFC 7518 §6.3.1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Key id (RFC 7517 §4.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended algorithm (RFC 7517 §4.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Public key use, `sig` for every key here (RFC 7517 §4.2).
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl Jwk {
    /// The RFC 7638 thumbprint: base64url SHA-256 of the required members, sorted, with no
    /// whitespace (§3.2; OKP members from RFC 8037 §2).
    pub fn thumbprint(&self) -> Result<String, KeyError> {
        let kty = Some(self.kty.as_str());
        let (crv, x, y) = (self.crv.as_deref(), self.x.as_deref(), self.y.as_deref());
        let (n, e) = (self.n.as_deref(), self.e.as_deref());
        // Required members in lexicographic order (RFC 7638 §3.3).
        let members: Vec<(&str, Option<&str>)> = match self.kty.as_str() {
            "EC" => vec![("crv", crv), ("kty", kty), ("x", x), ("y", y)],
            "OKP" => vec![("crv", crv), ("kty", kty), ("x", x)],
            "RSA" => vec![("e", e), ("kty", kty), ("n", n)],
            other => return Err(KeyError::UnsupportedAlgorithm(crate::error::shorten(other))),
        };
        let mut canonical = String::from("{");
        for (name, value) in members {
            let value = value.ok_or_else(|| {
                KeyError::Malformed(format!("{} key is missing \"{name}\"", self.kty))
            })?;
            if canonical.len() > 1 {
                canonical.push(',');
            }
            // Member values are JSON strings; `Value`'s Display escapes them infallibly.
            canonical.push_str(&format!(
                "\"{name}\":{}",
                serde_json::Value::String(value.to_owned())
            ));
        }
        canonical.push('}');
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        Ok(URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }

    /// Decodes a base64url member that must be present.
    pub(crate) fn decode_member(
        &self,
        name: &'static str,
        value: &Option<String>,
    ) -> Result<Vec<u8>, KeyError> {
        let text = value.as_deref().ok_or_else(|| {
            KeyError::Malformed(format!("{} key is missing \"{name}\"", self.kty))
        })?;
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| KeyError::Malformed(format!("\"{name}\" is not base64url")))
    }

    /// A signing JWK with `kid`, `alg` and `use: sig`, from its type-specific members.
    pub(crate) fn for_signing(
        kty: &str,
        members: KeyMembers,
        kid: Option<&str>,
        alg: crate::Algorithm,
    ) -> Jwk {
        let encode = |bytes: &[u8]| Some(URL_SAFE_NO_PAD.encode(bytes));
        let mut jwk = Jwk {
            kty: kty.to_owned(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: kid.map(str::to_owned),
            alg: Some(alg.as_str().to_owned()),
            use_: Some("sig".to_owned()),
        };
        match members {
            KeyMembers::Ec { crv, x, y } => {
                jwk.crv = Some(crv.to_owned());
                jwk.x = encode(x);
                jwk.y = encode(y);
            }
            KeyMembers::Okp { crv, x } => {
                jwk.crv = Some(crv.to_owned());
                jwk.x = encode(x);
            }
            KeyMembers::Rsa { n, e } => {
                jwk.n = encode(n);
                jwk.e = encode(e);
            }
        }
        jwk
    }
}

/// The raw public members of a key, before base64url encoding.
pub(crate) enum KeyMembers<'a> {
    Ec {
        crv: &'static str,
        x: &'a [u8],
        y: &'a [u8],
    },
    Okp {
        crv: &'static str,
        x: &'a [u8],
    },
    Rsa {
        n: &'a [u8],
        e: &'a [u8],
    },
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys, in published order.
    pub keys: Vec<Jwk>,
}

/// A key as it arrives from outside: the public members plus every private member name of
/// RFC 7518 §6, so their mere presence can be detected and refused.
#[derive(Deserialize)]
pub(crate) struct IncomingJwk {
    #[serde(flatten)]
    pub(crate) public: Jwk,
    d: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
    q: Option<IgnoredAny>,
    dp: Option<IgnoredAny>,
    dq: Option<IgnoredAny>,
    qi: Option<IgnoredAny>,
    oth: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
}

impl IncomingJwk {
    pub(crate) fn has_private_member(&self) -> bool {
        [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.oth, &self.k,
        ]
        .iter()
        .any(|m| m.is_some())
    }
}

#[derive(Deserialize)]
struct IncomingJwkSet {
    keys: Vec<IncomingJwk>,
}

impl JwkSet {
    /// Parses a public JWK Set from outside: at most 64 KiB and 100 keys, and no key may carry
    /// private or symmetric material (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`).
    pub fn parse(json: &str) -> Result<JwkSet, KeyError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(KeyError::Malformed("JWK Set is larger than 64 KiB".into()));
        }
        if !json.trim_start().starts_with('{') {
            return Err(KeyError::Malformed("JWK Set is not a JSON object".into()));
        }
        let incoming: IncomingJwkSet = serde_json::from_str(json)
            .map_err(|e| KeyError::Malformed(format!("JWK Set: {}", e.classify_name())))?;
        if incoming.keys.len() > MAX_JWKS_KEYS {
            return Err(KeyError::Malformed("JWK Set has more than 100 keys".into()));
        }
        let mut keys = Vec::with_capacity(incoming.keys.len());
        for key in incoming.keys {
            if key.has_private_member() {
                return Err(KeyError::PrivateKeyMaterial("a key of the JWK Set"));
            }
            keys.push(key.public);
        }
        Ok(JwkSet { keys })
    }
}

/// Names a serde_json error category without echoing the input.
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "wrong shape",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1 example key.
    const RFC7638_RSA: &str = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#;

    #[test]
    fn rsa_thumbprint_matches_rfc7638_example() {
        let jwk: Result<Jwk, _> = serde_json::from_str(RFC7638_RSA);
        let thumbprint = jwk.ok().map(|j| j.thumbprint());
        assert_eq!(
            thumbprint,
            Some(Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".to_owned()))
        );
    }

    #[test]
    fn okp_thumbprint_matches_rfc8037_example() {
        // RFC 8037 Appendix A.3.
        let jwk =
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        let thumbprint = serde_json::from_str::<Jwk>(jwk)
            .ok()
            .map(|j| j.thumbprint());
        assert_eq!(
            thumbprint,
            Some(Ok("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".to_owned()))
        );
    }

    #[test]
    fn thumbprint_of_incomplete_or_symmetric_key_is_an_error() {
        let ec_without_y = r#"{"kty":"EC","crv":"P-256","x":"AAAA"}"#;
        let jwk = serde_json::from_str::<Jwk>(ec_without_y).ok();
        assert!(matches!(
            jwk.map(|j| j.thumbprint()),
            Some(Err(KeyError::Malformed(_)))
        ));
        let oct = serde_json::from_str::<Jwk>(r#"{"kty":"oct"}"#).ok();
        assert!(matches!(
            oct.map(|j| j.thumbprint()),
            Some(Err(KeyError::UnsupportedAlgorithm(_)))
        ));
    }

    #[test]
    fn public_set_parses_and_ignores_unknown_members() {
        let json = format!(r#"{{"keys":[{RFC7638_RSA}],"extra":1}}"#);
        let set = JwkSet::parse(&json);
        assert_eq!(set.map(|s| s.keys.len()), Ok(1));
    }

    #[test]
    fn set_with_private_or_symmetric_material_is_rejected() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let json = format!(
                r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"AA","y":"AA","{member}":"AA"}}]}}"#
            );
            assert!(
                matches!(JwkSet::parse(&json), Err(KeyError::PrivateKeyMaterial(_))),
                "member {member} must be rejected"
            );
        }
    }

    #[test]
    fn hostile_sets_are_rejected() {
        let too_many = format!(
            r#"{{"keys":[{}]}}"#,
            vec![r#"{"kty":"OKP","crv":"Ed25519","x":"AA"}"#; 101].join(",")
        );
        let too_big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "a".repeat(MAX_JWKS_BYTES));
        for json in [
            too_many.as_str(),
            too_big.as_str(),
            "",
            "[]",
            r#"[{"kty":"RSA"}]"#,
            r#"{"keys":{}}"#,
            r#"{"keys":[{"crv":"P-256"}]}"#,
            r#"{"keys":[{"kty":"RSA"}]"#,
        ] {
            assert!(
                JwkSet::parse(json).is_err(),
                "{:.60} must be rejected",
                json
            );
        }
    }

    #[test]
    fn serialization_skips_absent_members_and_names_use() {
        let jwk = Jwk::for_signing(
            "OKP",
            KeyMembers::Okp {
                crv: "Ed25519",
                x: &[1, 2, 3],
            },
            Some("k1"),
            crate::Algorithm::EdDSA,
        );
        assert_eq!(
            serde_json::to_string(&jwk).ok().as_deref(),
            Some(
                r#"{"kty":"OKP","crv":"Ed25519","x":"AQID","kid":"k1","alg":"EdDSA","use":"sig"}"#
            )
        );
    }
}
