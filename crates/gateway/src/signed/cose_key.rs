//! Public keys as COSE_Key maps (RFC 9052 §7, RFC 9053 §7): the form the trust list carries,
//! which a constrained device's COSE library reads directly (pycose's `CoseKey`, coset's
//! `CoseKey`). Converted from and to the JWKs the key custody publishes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use coset::cbor::value::Value;
use portcullis_keys::Jwk;

use crate::error::GatewayError;

const KTY: i64 = 1;
const KID: i64 = 2;
const ALG: i64 = 3;
const CRV: i64 = -1;
const X: i64 = -2;
const Y: i64 = -3;
const RSA_N: i64 = -1;
const RSA_E: i64 = -2;

const KTY_OKP: i64 = 1;
const KTY_EC2: i64 = 2;
const KTY_RSA: i64 = 3;

/// (JWK crv, COSE crv) pairs (RFC 9053 §7.1).
const CURVES: [(&str, i64); 3] = [("P-256", 1), ("P-384", 2), ("Ed25519", 6)];
/// (JWS alg, COSE alg) pairs (RFC 9053 §2, RFC 8230 §2).
const ALGS: [(&str, i64); 5] = [
    ("ES256", -7),
    ("ES384", -35),
    ("EdDSA", -8),
    ("PS256", -37),
    ("RS256", -257),
];

fn b64(field: &Option<String>, name: &'static str) -> Result<Vec<u8>, GatewayError> {
    let text = field.as_deref().ok_or(GatewayError::Malformed(name))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| GatewayError::Malformed(name))
}

/// The COSE_Key of a public JWK (`kid` and `alg` carried over).
pub fn cose_key_from_jwk(jwk: &Jwk) -> Result<Value, GatewayError> {
    let mut map = Vec::new();
    match jwk.kty.as_str() {
        "EC" | "OKP" => {
            let crv = jwk.crv.as_deref().unwrap_or_default();
            let cose_crv = CURVES
                .iter()
                .find(|(name, _)| *name == crv)
                .map(|(_, id)| *id)
                .ok_or(GatewayError::Malformed("unsupported_curve"))?;
            let kty = if jwk.kty == "EC" { KTY_EC2 } else { KTY_OKP };
            map.push((Value::from(KTY), Value::from(kty)));
            map.push((Value::from(CRV), Value::from(cose_crv)));
            map.push((Value::from(X), Value::Bytes(b64(&jwk.x, "jwk_x")?)));
            if kty == KTY_EC2 {
                map.push((Value::from(Y), Value::Bytes(b64(&jwk.y, "jwk_y")?)));
            }
        }
        "RSA" => {
            map.push((Value::from(KTY), Value::from(KTY_RSA)));
            map.push((Value::from(RSA_N), Value::Bytes(b64(&jwk.n, "jwk_n")?)));
            map.push((Value::from(RSA_E), Value::Bytes(b64(&jwk.e, "jwk_e")?)));
        }
        _ => return Err(GatewayError::Malformed("unsupported_key_type")),
    }
    if let Some(kid) = &jwk.kid {
        map.push((Value::from(KID), Value::Bytes(kid.as_bytes().to_vec())));
    }
    if let Some(alg) = &jwk.alg {
        let id = ALGS
            .iter()
            .find(|(name, _)| name == alg)
            .map(|(_, id)| *id)
            .ok_or(GatewayError::Malformed("unsupported_alg"))?;
        map.push((Value::from(ALG), Value::from(id)));
    }
    Ok(Value::Map(map))
}

/// The public JWK of a COSE_Key (the reverse of [`cose_key_from_jwk`]).
pub fn jwk_from_cose_key(key: &Value) -> Result<Jwk, GatewayError> {
    let Value::Map(entries) = key else {
        return Err(GatewayError::Malformed("cose_key_not_map"));
    };
    let field = |label: i64| {
        entries.iter().find_map(|(k, v)| match k {
            Value::Integer(i) if i64::try_from(*i).ok() == Some(label) => Some(v),
            _ => None,
        })
    };
    let int = |label: i64, name: &'static str| -> Result<i64, GatewayError> {
        match field(label) {
            Some(Value::Integer(i)) => i64::try_from(*i).map_err(|_| GatewayError::Malformed(name)),
            _ => Err(GatewayError::Malformed(name)),
        }
    };
    let bytes = |label: i64, name: &'static str| -> Result<String, GatewayError> {
        match field(label) {
            Some(Value::Bytes(b)) => Ok(URL_SAFE_NO_PAD.encode(b)),
            _ => Err(GatewayError::Malformed(name)),
        }
    };
    let kid = match field(KID) {
        Some(Value::Bytes(b)) => Some(
            String::from_utf8(b.clone()).map_err(|_| GatewayError::Malformed("cose_key_kid"))?,
        ),
        None => None,
        Some(_) => return Err(GatewayError::Malformed("cose_key_kid")),
    };
    let alg = match field(ALG) {
        None => None,
        Some(_) => {
            let id = int(ALG, "cose_key_alg")?;
            let name = ALGS
                .iter()
                .find(|(_, i)| *i == id)
                .map(|(name, _)| (*name).to_owned())
                .ok_or(GatewayError::Malformed("cose_key_alg"))?;
            Some(name)
        }
    };
    let mut jwk = Jwk {
        kty: String::new(),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
        kid,
        alg,
        use_: Some("sig".into()),
    };
    match int(KTY, "cose_key_kty")? {
        kty @ (KTY_EC2 | KTY_OKP) => {
            let crv = int(CRV, "cose_key_crv")?;
            let name = CURVES
                .iter()
                .find(|(_, id)| *id == crv)
                .map(|(name, _)| *name)
                .ok_or(GatewayError::Malformed("cose_key_crv"))?;
            jwk.kty = if kty == KTY_EC2 { "EC" } else { "OKP" }.into();
            jwk.crv = Some(name.into());
            jwk.x = Some(bytes(X, "cose_key_x")?);
            if kty == KTY_EC2 {
                jwk.y = Some(bytes(Y, "cose_key_y")?);
            }
        }
        KTY_RSA => {
            jwk.kty = "RSA".into();
            jwk.n = Some(bytes(RSA_N, "cose_key_n")?);
            jwk.e = Some(bytes(RSA_E, "cose_key_e")?);
        }
        _ => return Err(GatewayError::Malformed("cose_key_kty")),
    }
    Ok(jwk)
}
