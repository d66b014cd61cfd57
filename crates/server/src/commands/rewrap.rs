//! `portcullis key rewrap`: re-encrypts every sealed secret under a new master key — software
//! signing keys and `client_secret_jwt` client secrets — with the nodes stopped. Idempotent:
//! a blob that already opens under the new key is left alone, so an interrupted run can simply
//! be repeated. Keys in a PKCS#11 token are not sealed here and are untouched.

use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use std::path::Path;

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
    let event = AuditEvent {
        at: crate::bootstrap::unix_now(),
        actor: "cli:key-rewrap".into(),
        action: AuditAction::KeyRewrapped.into(),
        subject: "*".into(),
        outcome: Outcome::Success.into(),
        detail: serde_json::json!({"backend": "software", "signing_keys": keys_done, "client_secrets": clients_done, "ca_keys": ca_keys_done}),
    };
    store.append_audit(vec![event]).await.map_err(failed)?;
    println!("rewrapped {keys_done} signing keys, {clients_done} client secrets and {ca_keys_done} CA keys; start the nodes with the new master key");
    Ok(())
}

/// The device CA's software keys live in one settings record; it is replaced by
/// compare-and-swap once both keys are re-sealed.
async fn rewrap_ca_keys(
    store: &dyn Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<u64, CommandError> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
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
        let sealed = STANDARD.decode(&key.sealed).map_err(failed)?;
        let what = format!("CA key {}", key.kid);
        if let Some(resealed) = reseal(
            old,
            new,
            &sealed,
            &KeyPurpose::CertificateAuthority.aad(&key.kid),
            &what,
        )? {
            key.sealed = STANDARD.encode(resealed);
            done += 1;
        }
        Ok(())
    };
    reseal_key(&mut ca.issuing_key)?;
    if let Some(root) = ca.root_key.as_mut() {
        reseal_key(root)?;
    }
    if done > 0
        && !store
            .replace_setting(CA_SETTING, &bytes, &ca.to_bytes())
            .await
            .map_err(failed)?
    {
        return Err(CommandError::Failed(
            "the CA record changed during the rewrap; run it again".into(),
        ));
    }
    Ok(done)
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
