//! `portcullis key rewrap`: re-encrypts every sealed secret under a new master key — software
//! signing keys, `client_secret_jwt` client secrets, the device CA's software keys, the
//! devices' symmetric keys and the audit data keys — with the nodes stopped. Idempotent: a blob that already opens
//! under the new key is left alone, so an interrupted run can simply be repeated. Keys in a
//! PKCS#11 token are not sealed here and are untouched.

use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use std::path::Path;

use portcullis_core::device::DeviceId;
use portcullis_core::device_key::{seal_aad, DeviceKeyId};
use portcullis_keys::software::{self, MasterKey};
use portcullis_keys::KeyPurpose;
use portcullis_store::Store;

use super::{CommandError, StoreArg};

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// Opens `sealed` with `old`, unless it already opens with `new` (done before); returns the
/// blob sealed under `new`, or `None` when nothing is to be done.
fn reseal(
    old: &MasterKey,
    new: &MasterKey,
    sealed: &[u8],
    aad: &[u8],
    what: &str,
) -> Result<Option<Vec<u8>>, CommandError> {
    if software::open(new, sealed, aad).is_ok() {
        return Ok(None);
    }
    let plain = software::open(old, sealed, aad).map_err(|e| {
        CommandError::Failed(format!(
            "{what}: cannot open it with the old master key ({e})"
        ))
    })?;
    software::seal(new, &plain, aad).map(Some).map_err(failed)
}

/// Rewraps everything in the store at `url`; creates `new_key_file` (0600) if missing.
pub async fn rewrap(
    store: &StoreArg<'_>,
    old_key_file: &Path,
    new_key_file: &Path,
) -> Result<(), CommandError> {
    let old = MasterKey::from_file(old_key_file)
        .map_err(|e| CommandError::Usage(format!("old master key: {e}")))?;
    let (new, created) = MasterKey::load_or_create(new_key_file)
        .map_err(|e| CommandError::Usage(format!("new master key: {e}")))?;
    if created {
        eprintln!(
            "generated a new master key in {} (mode 0600)",
            new_key_file.display()
        );
    }
    let store = store.open().await?;
    let mut keys_done = 0;
    for key in store.list_signing_keys().await.map_err(failed)? {
        if key.backend != "software" || key.sealed_private.is_empty() {
            continue;
        }
        let what = format!("signing key {}", key.kid);
        if let Some(sealed) = reseal(
            &old,
            &new,
            &key.sealed_private,
            &KeyPurpose::TokenSigning.aad(key.kid.as_str()),
            &what,
        )? {
            store
                .update_signing_key_sealed(&key.kid, &sealed)
                .await
                .map_err(failed)?;
            keys_done += 1;
        }
    }
    let clients_done = rewrap_client_secrets(store.as_ref(), &old, &new).await?;
    let ca_keys_done = rewrap_ca_keys(store.as_ref(), &old, &new).await?;
    let device_keys_done = rewrap_device_keys(store.as_ref(), &old, &new).await?;
    let operator_keys_done = rewrap_operator_keys(store.as_ref(), &old, &new).await?;
    let audit_keys_done = rewrap_audit_data_keys(store.as_ref(), &old, &new).await?;
    let event = AuditEvent {
        at: crate::bootstrap::unix_now(),
        actor: "cli:key-rewrap".into(),
        action: AuditAction::KeyRewrapped.into(),
        subject: "*".into(),
        outcome: Outcome::Success.into(),
        detail: serde_json::json!({"backend": "software", "signing_keys": keys_done, "client_secrets": clients_done, "ca_keys": ca_keys_done, "device_keys": device_keys_done, "operator_keys": operator_keys_done, "audit_data_keys": audit_keys_done}),
    };
    store.append_audit(vec![event]).await.map_err(failed)?;
    println!("rewrapped {keys_done} signing keys, {clients_done} client secrets and {ca_keys_done} CA keys, plus {device_keys_done} device keys, {operator_keys_done} operator keys and {audit_keys_done} audit data keys; start the nodes with the new master key");
    Ok(())
}

/// The audit data keys sealed under the master key (`audit.data_keys`), replaced by
/// compare-and-swap once all are re-sealed. Keys sealed by an HSM are left alone.
async fn rewrap_audit_data_keys(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize, CommandError> {
    use portcullis_audit::sealing::{StoredDataKeys, DATA_KEYS_SETTING};
    let Some(bytes) = store.get_setting(DATA_KEYS_SETTING).await.map_err(failed)? else {
        return Ok(0);
    };
    let mut set = StoredDataKeys::parse(&bytes).map_err(failed)?;
    let mut done = 0;
    for key in set.keys.iter_mut().filter(|k| k.backend == "software") {
        let what = format!("audit data key {}", key.kid);
        let aad = KeyPurpose::AuditData.aad(&key.kid);
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        if reseal_encoded(&engine, old, new, &mut key.sealed, &aad, &what)? {
            done += 1;
        }
    }
    if done > 0 {
        replace_record(
            store,
            DATA_KEYS_SETTING,
            &bytes,
            &set.to_bytes(),
            "the audit data keys",
        )
        .await?;
    }
    Ok(done)
}

/// Re-seals a sealed key kept as standard base64 in place; `false` if it was already under
/// the new key.
fn reseal_base64(
    old: &MasterKey,
    new: &MasterKey,
    sealed: &mut String,
    aad: &[u8],
    what: &str,
) -> Result<bool, CommandError> {
    reseal_encoded(
        &base64::engine::general_purpose::STANDARD,
        old,
        new,
        sealed,
        aad,
        what,
    )
}

/// [`reseal_base64`] for a blob kept in `engine`'s base64 alphabet.
fn reseal_encoded(
    engine: &impl base64::Engine,
    old: &MasterKey,
    new: &MasterKey,
    sealed: &mut String,
    aad: &[u8],
    what: &str,
) -> Result<bool, CommandError> {
    let bytes = engine.decode(sealed.as_str()).map_err(failed)?;
    match reseal(old, new, &bytes, aad, what)? {
        Some(resealed) => {
            *sealed = engine.encode(resealed);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Writes a re-sealed settings record over the one read (`expected`), refusing if someone
/// changed it meanwhile.
async fn replace_record(
    store: &dyn Store,
    name: &str,
    expected: &[u8],
    value: &[u8],
    what: &str,
) -> Result<(), CommandError> {
    if store
        .replace_setting(name, expected, value)
        .await
        .map_err(failed)?
    {
        Ok(())
    } else {
        Err(CommandError::Failed(format!(
            "{what} changed during the rewrap; run it again"
        )))
    }
}

/// The device CA's software keys live in one settings record; it is replaced by
/// compare-and-swap once both keys are re-sealed.
async fn rewrap_ca_keys(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<u64, CommandError> {
    use portcullis_pki::ca::{StoredCa, StoredCaKey, CA_SETTING};
    let Some(bytes) = store.get_setting(CA_SETTING).await.map_err(failed)? else {
        return Ok(0);
    };
    let mut ca = StoredCa::from_bytes(&bytes).map_err(failed)?;
    let mut done = 0u64;
    let mut reseal_key = |key: &mut StoredCaKey| -> Result<(), CommandError> {
        if key.backend != "software" {
            return Ok(());
        }
        let aad = KeyPurpose::CertificateAuthority.aad(&key.kid);
        let what = format!("CA key {}", key.kid);
        if reseal_base64(old, new, &mut key.sealed, &aad, &what)? {
            done += 1;
        }
        Ok(())
    };
    reseal_key(&mut ca.issuing_key)?;
    if let Some(root) = ca.root_key.as_mut() {
        reseal_key(root)?;
    }
    if done > 0 {
        replace_record(store, CA_SETTING, &bytes, &ca.to_bytes(), "the CA record").await?;
    }
    Ok(done)
}

/// The gateway's operator keys (trust root, command, settings and update keys) live in one
/// settings record, like the CA's; replaced by compare-and-swap once every key is re-sealed.
async fn rewrap_operator_keys(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<u64, CommandError> {
    use portcullis_gateway::signed::{StoredOperatorKeys, OPERATOR_KEYS_SETTING};
    let Some(bytes) = store
        .get_setting(OPERATOR_KEYS_SETTING)
        .await
        .map_err(failed)?
    else {
        return Ok(0);
    };
    let mut record = StoredOperatorKeys::from_bytes(&bytes).map_err(failed)?;
    let mut done = 0u64;
    for key in &mut record.keys {
        if key.backend != "software" || key.sealed.is_empty() {
            continue;
        }
        let aad = key.role.purpose().aad(&key.kid);
        let what = format!("{} key {}", key.role.as_str(), key.kid);
        if reseal_base64(old, new, &mut key.sealed, &aad, &what)? {
            done += 1;
        }
    }
    if done > 0 {
        let record = record.to_bytes();
        replace_record(
            store,
            OPERATOR_KEYS_SETTING,
            &bytes,
            &record,
            "the operator key record",
        )
        .await?;
    }
    Ok(done)
}

/// Every device's symmetric keys, page by page, each bound to its device and key id.
async fn rewrap_device_keys(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<u64, CommandError> {
    let (mut after, mut done): (Option<(DeviceId, DeviceKeyId)>, u64) = (None, 0);
    loop {
        let page = store
            .list_all_device_keys(after.as_ref().map(|(d, k)| (d, k)), 1000)
            .await
            .map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        after = Some((last.info.device_id.clone(), last.info.key_id.clone()));
        for key in page {
            let (device, key_id) = (&key.info.device_id, &key.info.key_id);
            let what = format!("key {key_id} of device {device}");
            if let Some(resealed) = reseal(old, new, &key.sealed, &seal_aad(device, key_id), &what)?
            {
                store
                    .update_device_key_sealed(device, key_id, &resealed)
                    .await
                    .map_err(failed)?;
                done += 1;
            }
        }
    }
}

async fn rewrap_client_secrets(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<u64, CommandError> {
    let (mut after, mut done) = (None, 0u64);
    loop {
        let page = store
            .list_clients(after.as_ref(), 1000)
            .await
            .map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        after = Some(last.client_id.clone());
        for mut client in page {
            let Some(sealed) = client.sealed_secret.as_deref() else {
                continue;
            };
            let what = format!("client {}", client.client_id);
            if let Some(resealed) = reseal(
                old,
                new,
                sealed,
                client.client_id.as_str().as_bytes(),
                &what,
            )? {
                client.sealed_secret = Some(resealed);
                store.update_client(&client).await.map_err(failed)?;
                done += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! A node's real services make a device key; the rewrap moves it to a new master key; a
    //! node started with the new key unseals the same bytes.

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use portcullis_ports::NewDevice;

    use super::*;
    use crate::config::Config;
    use crate::node_services::NodeServices;

    const ISSUER: &str = "http://127.0.0.1:1";

    async fn services(data_dir: &Path, master_key: Option<&Path>) -> (Config, NodeServices) {
        let mut env = vec![(
            "PORTCULLIS_SERVER__DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        )];
        if let Some(path) = master_key {
            env.push((
                "PORTCULLIS_KEYS__MASTER_KEY_FILE".to_owned(),
                path.display().to_string(),
            ));
        }
        let config = Config::load(None, env).unwrap();
        let node = crate::bootstrap::prepare(&config, ISSUER, false)
            .await
            .unwrap();
        let services = NodeServices::start(&config, node, None).await.unwrap();
        (config, services)
    }

    #[tokio::test]
    async fn device_keys_unseal_to_the_same_bytes_after_a_rewrap() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (config, before) = services(&data, None).await;
        let pki = before.pki.pki.clone();
        let device = DeviceId::parse("sensor-rewrap").unwrap();
        pki.register_device(
            "admin:test",
            NewDevice {
                device_id: device.clone(),
                model: None,
                attrs: Default::default(),
            },
        )
        .await
        .unwrap();
        let (old_info, _) = pki.create_device_key("admin:test", &device).await.unwrap();
        let (info, key) = pki.create_device_key("admin:test", &device).await.unwrap();
        let key = URL_SAFE_NO_PAD.decode(key.expose()).unwrap();
        assert!(pki
            .delete_device_key("admin:test", &device, &old_info.key_id)
            .await
            .unwrap());
        drop((pki, before));

        let url = format!("sqlite:{}", config.sqlite_path().display());
        let new_key = dir.path().join("new-master.key");
        let store = StoreArg::new(&url, None);
        rewrap(&store, &config.master_key_file(), &new_key)
            .await
            .unwrap();
        let sealed = store.open().await.unwrap();
        let stored = sealed.list_device_keys(&device).await.unwrap();
        let aad = seal_aad(&device, &info.key_id);
        let new_master = MasterKey::from_file(&new_key).unwrap();
        let old_master = MasterKey::from_file(&config.master_key_file()).unwrap();
        assert!(software::open(&new_master, &stored[0].sealed, &aad).is_ok());
        assert!(
            software::open(&old_master, &stored[0].sealed, &aad).is_err(),
            "the old master key no longer opens it"
        );
        // Idempotent: a second run leaves it alone.
        rewrap(&store, &config.master_key_file(), &new_key)
            .await
            .unwrap();
        assert_eq!(sealed.list_device_keys(&device).await.unwrap(), stored);

        let (_, after) = services(&data, Some(&new_key)).await;
        let material = after.pki.pki.device_key_material(&device).await.unwrap();
        assert_eq!(material.len(), 1);
        assert_eq!(material[0].info, info);
        assert_eq!(material[0].key.as_slice(), key.as_slice());
        let audit = after.store.list_audit(0, 1000).await.unwrap();
        let rewrapped = audit
            .iter()
            .find(|r| r.event.action == "key.rewrapped")
            .unwrap();
        assert_eq!(rewrapped.event.detail["device_keys"], 1);
    }

    #[tokio::test]
    async fn operator_keys_sign_again_after_a_rewrap_and_only_under_the_new_master_key() {
        use portcullis_gateway::signed::{OperatorKeys, Role};
        use portcullis_keys::{Algorithm, KeyCustody};
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (config, node) = services(&data, None).await;
        let custody =
            |path: &Path| KeyCustody::Software(Arc::new(MasterKey::from_file(path).unwrap()));
        let old_path = config.master_key_file();
        let keys = OperatorKeys::new(node.store.clone(), custody(&old_path), || 1_800_000_000);
        keys.create(Role::Root, Algorithm::ES256).await.unwrap();
        let command = keys.create(Role::Commands, Algorithm::EdDSA).await.unwrap();
        drop(node);

        let url = format!("sqlite:{}", config.sqlite_path().display());
        let new_path = dir.path().join("new-master.key");
        let store = StoreArg::new(&url, None);
        rewrap(&store, &old_path, &new_path).await.unwrap();
        let store = store.open().await.unwrap();
        let after = OperatorKeys::new(store.clone(), custody(&new_path), || 1_800_000_000);
        let signer = after.signer(Role::Commands).await.unwrap();
        assert_eq!(signer.kid().as_str(), command.kid);
        assert!(after.publish_trust_list(3600).await.is_ok());
        let before = OperatorKeys::new(store, custody(&old_path), || 1_800_000_000);
        assert!(
            before.signer(Role::Commands).await.is_err(),
            "the old master key no longer opens it"
        );
    }
}
