//! Hidden benchmark helpers: bulk-load a stopped node's store so latency can be measured with
//! a million registered clients (docs/benchmarks.md). All bulk clients share one secret, which
//! is printed, so a load generator can spread requests over every client id and exercise
//! cache misses, not just one hot entry.

use std::collections::BTreeMap;

use portcullis_core::client::{AuthMethod, Client, DEFAULT_TOKEN_TTL_SECS};
use portcullis_core::device::{Device, DeviceId, DeviceState};
use portcullis_core::{ClientId, ScopeSet, Secret, SecretHash};
use portcullis_keys::random::random_array;

use super::CommandError;
use crate::bootstrap::{unix_now, PEPPER_SETTING};

const BATCH: u64 = 10_000;

/// The store of a node that has started once, and its pepper (secrets are HMACed under it).
async fn open_with_pepper(
    store_url: &str,
) -> Result<(std::sync::Arc<dyn portcullis_store::Store>, Vec<u8>), CommandError> {
    let fail = |e: String| CommandError::Failed(e);
    let store = portcullis_store::open(store_url)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let pepper = store
        .get_setting(PEPPER_SETTING)
        .await
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("start the node once first: no pepper in this store".into()))?;
    Ok((store, pepper))
}

/// Inserts `count` clients named `bulk-<8 digits>` sharing one random secret, and prints
/// `{"prefix":"bulk-","count":N,"client_secret":"..."}` for the load generator.
pub async fn load_clients(store_url: &str, count: u64) -> Result<(), CommandError> {
    let fail = |e: String| CommandError::Failed(e);
    let (store, pepper) = open_with_pepper(store_url).await?;
    let secret = Secret::from_random_bytes(&random_array::<32>().map_err(|e| fail(e.to_string()))?);
    let hash = SecretHash::of(&pepper, &secret, None);
    let scopes = ScopeSet::parse("read write").map_err(|e| fail(e.to_string()))?;
    let now = unix_now();
    let started = std::time::Instant::now();
    let mut done = 0;
    while done < count {
        let n = BATCH.min(count - done);
        let batch: Vec<Client> = (done..done + n)
            .map(|i| Client {
                client_id: ClientId::parse(format!("bulk-{i:08}"))
                    .unwrap_or_else(|_| unreachable!()),
                name: format!("bulk client {i}"),
                auth_method: AuthMethod::ClientSecretBasic,
                scopes: scopes.clone(),
                audiences: vec![],
                token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
                enabled: true,
                secret_hashes: vec![hash.clone()],
                sealed_secret: None,
                jwks: None,
                jwks_uri: None,
                tls_client_auth: None,
                created_at: now,
                updated_at: now,
                dpop_bound_access_tokens: false,
                token_epoch: 0,
            })
            .collect();
        store
            .insert_clients(&batch)
            .await
            .map_err(|e| fail(e.to_string()))?;
        done += n;
        eprint!("\rloaded {done}/{count}");
    }
    eprintln!(
        "\nloaded {count} clients in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let summary =
        serde_json::json!({"prefix": "bulk-", "count": count, "client_secret": secret.expose()});
    println!("{summary}");
    Ok(())
}

/// Inserts `count` registered devices named `dev-<8 digits>` (model `TH-20`, one attribute),
/// each with its own random one-time enrollment secret (only its HMAC is stored, as
/// `device register` does; the secrets are not kept), in transactions of [`BATCH`]. Devices
/// already present are skipped, so a rerun tops up. Prints `{"prefix":"dev-","count":N}`.
pub async fn load_devices(store_url: &str, count: u64) -> Result<(), CommandError> {
    let fail = |e: String| CommandError::Failed(e);
    let (store, pepper) = open_with_pepper(store_url).await?;
    let now = unix_now();
    let started = std::time::Instant::now();
    let (mut done, mut inserted) = (0, 0);
    while done < count {
        let n = BATCH.min(count - done);
        let batch = (done..done + n)
            .map(|i| {
                let secret = Secret::from_random_bytes(
                    &random_array::<32>().map_err(|e| fail(e.to_string()))?,
                );
                Ok(Device {
                    device_id: DeviceId::parse(format!("dev-{i:08}"))
                        .unwrap_or_else(|_| unreachable!()),
                    model: Some("TH-20".to_owned()),
                    attrs: BTreeMap::from([("site".to_owned(), format!("plant-{}", i % 100))]),
                    state: DeviceState::Registered,
                    enrollment_secret: Some(SecretHash::of(&pepper, &secret, None)),
                    created_at: now,
                    updated_at: now,
                })
            })
            .collect::<Result<Vec<Device>, CommandError>>()?;
        inserted += store
            .insert_devices(&batch)
            .await
            .map_err(|e| fail(e.to_string()))?
            .len();
        done += n;
        eprint!("\rloaded {done}/{count}");
    }
    eprintln!(
        "\nloaded {count} devices ({inserted} new) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("{}", serde_json::json!({"prefix": "dev-", "count": count}));
    Ok(())
}

/// A fresh software key for the bench helpers, its public JWK (key members only), and a
/// signer of `header.claims` compact JWS with it.
struct BenchKey {
    signer: portcullis_keys::software::SoftwareSigner,
    alg: portcullis_keys::Algorithm,
}

impl BenchKey {
    fn generate(alg: &str) -> Result<BenchKey, CommandError> {
        let alg = portcullis_keys::Algorithm::parse(alg)
            .map_err(|e| CommandError::Usage(e.to_string()))?;
        let (signer, _pkcs8) = portcullis_keys::software::SoftwareSigner::generate(alg)
            .map_err(|e| CommandError::Failed(e.to_string()))?;
        Ok(BenchKey { signer, alg })
    }

    fn public_jwk(&self) -> serde_json::Value {
        use portcullis_keys::Signer as _;
        serde_json::to_value(self.signer.public_jwk()).unwrap_or_default()
    }

    /// `base64url(header).base64url(claims).base64url(signature)`.
    fn sign(&self, header_b64: &str, claims: &serde_json::Value) -> Result<String, CommandError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        use portcullis_keys::Signer as _;
        let input = format!(
            "{header_b64}.{}",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .signer
            .sign(input.as_bytes())
            .map_err(|e| CommandError::Failed(e.to_string()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    fn header(&self, header: serde_json::Value) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let mut header = header;
        header["alg"] = self.alg.as_str().into();
        URL_SAFE_NO_PAD.encode(header.to_string())
    }
}

/// Writes `count` DPoP proofs for `POST htu`, one per line, signed by one fresh `alg` key,
/// each with its own `jti` and `iat` now; prints the key's thumbprint. A node that takes them
/// over a whole benchmark needs `[dpop] max_age_secs` above the run's length.
pub fn dpop_proofs(
    htu: &str,
    count: u64,
    alg: &str,
    out: &std::path::Path,
) -> Result<(), CommandError> {
    use std::io::Write as _;

    let fail = |e: String| CommandError::Failed(e);
    let key = BenchKey::generate(alg)?;
    let mut jwk = key.public_jwk();
    if let Some(map) = jwk.as_object_mut() {
        map.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "x" | "y" | "n" | "e"));
    }
    let header = key.header(serde_json::json!({"typ": "dpop+jwt", "jwk": jwk}));
    let file = std::fs::File::create(out).map_err(|e| fail(format!("{}: {e}", out.display())))?;
    let mut w = std::io::BufWriter::new(file);
    let iat = unix_now();
    for i in 0..count {
        let claims =
            serde_json::json!({"jti": format!("bench-{i}"), "htm": "POST", "htu": htu, "iat": iat});
        writeln!(w, "{}", key.sign(&header, &claims)?).map_err(|e| fail(e.to_string()))?;
    }
    w.flush().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Prints `{"jwks": ..., "assertion": ...}`: a fresh key's JWK Set and an outside token it
/// signed, shaped like a Kubernetes service-account token (no `jti`, so a load generator may
/// send it again and again) for the JWT bearer grant's benchmark.
pub fn external_token(
    issuer: &str,
    audience: &str,
    sub: &str,
    lifetime_secs: i64,
) -> Result<(), CommandError> {
    let key = BenchKey::generate("ES256")?;
    let jwk = key.public_jwk();
    let header = key.header(serde_json::json!({"typ": "JWT", "kid": jwk["kid"]}));
    let now = unix_now();
    let claims = serde_json::json!({
        "iss": issuer, "sub": sub, "aud": [audience],
        "iat": now, "nbf": now, "exp": now + lifetime_secs,
    });
    let out =
        serde_json::json!({"jwks": {"keys": [jwk]}, "assertion": key.sign(&header, &claims)?});
    println!("{out}");
    Ok(())
}
