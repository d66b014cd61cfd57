//! DPoP proofs (RFC 9449 §4.2) for the tests: a client key and proofs signed with it, well
//! formed or bent in one way at a time for the hostile tables.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, Signer};
use serde_json::{json, Value};

/// A client's DPoP key pair.
pub struct DpopKey {
    signer: SoftwareSigner,
    pub alg: Algorithm,
}

impl DpopKey {
    pub fn new(alg: Algorithm) -> DpopKey {
        let (signer, _pkcs8) = SoftwareSigner::generate(alg).expect("generate a DPoP key");
        DpopKey { signer, alg }
    }

    /// The public JWK as a proof header carries it (`kty` and the key members only).
    pub fn jwk(&self) -> Value {
        let mut jwk = serde_json::to_value(self.signer.public_jwk()).expect("jwk");
        if let Some(map) = jwk.as_object_mut() {
            map.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "x" | "y" | "n" | "e"));
        }
        jwk
    }

    /// RFC 7638 thumbprint: what a bound token's `cnf.jkt` must be.
    pub fn thumbprint(&self) -> String {
        self.signer.public_jwk().thumbprint().expect("thumbprint")
    }

    /// The usual header: `typ dpop+jwt`, this key's `alg` and public `jwk`.
    pub fn header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": self.alg.as_str(), "jwk": self.jwk() })
    }

    /// A fresh proof for `htm` `htu`, with `ath` for a presented token and an optional nonce.
    pub fn proof(&self, htm: &str, htu: &str, token: Option<&str>, nonce: Option<&str>) -> String {
        self.sign(&self.header(), &claims(htm, htu, token, nonce))
    }

    /// Signs any header and claims with this key (the hostile tables bend one of them).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature = self.signer.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Fresh proof claims: a random `jti`, `iat` now.
pub fn claims(htm: &str, htu: &str, token: Option<&str>, nonce: Option<&str>) -> Value {
    let mut claims = json!({
        "jti": URL_SAFE_NO_PAD.encode(portcullis_keys::random_array::<16>().expect("random")),
        "htm": htm,
        "htu": htu,
        "iat": super::gateway::now(),
    });
    if let Some(token) = token {
        claims["ath"] = Value::from(ath(token));
    }
    if let Some(nonce) = nonce {
        claims["nonce"] = Value::from(nonce);
    }
    claims
}

/// base64url SHA-256 of an access token (RFC 9449 §4.2 `ath`).
pub fn ath(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}
