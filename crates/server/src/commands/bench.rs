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
