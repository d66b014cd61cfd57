//! `portcullis migrate` and `portcullis store copy`: explicit schema migration, and moving a
//! deployment from one store to another (typically the embedded SQLite default to
//! PostgreSQL) with its audit chain intact.

use portcullis_store::Store;

use super::{CommandError, StoreArg};
use crate::bootstrap::{unix_now, ALL_SETTINGS};

const PAGE: u32 = 10_000;

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// Opens (and so migrates) the store at `url`.
pub async fn migrate(store: &StoreArg<'_>) -> Result<(), CommandError> {
    let store = store.open().await?;
    store.ping().await.map_err(failed)?;
    println!("store migrated to the current schema");
    Ok(())
}

/// Copies everything from `from` into the empty store `to`.
pub async fn copy(from: &StoreArg<'_>, to: &StoreArg<'_>) -> Result<(), CommandError> {
    let src = from.open().await?;
    let dst = to.open().await?;
    let target_empty = dst.list_clients(None, 1).await.map_err(failed)?.is_empty()
        && dst.list_signing_keys().await.map_err(failed)?.is_empty()
        && dst.list_audit(0, 1).await.map_err(failed)?.is_empty();
    if !target_empty {
        return Err(CommandError::Failed(
            "the target store is not empty; copy only into a fresh database".into(),
        ));
    }
    // An archived chain continues from its newest anchor: the target starts from the same
    // one, so re-linking the live records reproduces every hash (checked below), and
    // `audit verify` on the target proves it from the anchor's checkpoint as on the source.
    let anchor = src.audit_anchor().await.map_err(failed)?;
    if let Some(anchor) = &anchor {
        dst.import_audit_anchor(anchor).await.map_err(failed)?;
    }
    for name in ALL_SETTINGS.iter().copied().chain([
        portcullis_pki::ca::CA_SETTING,
        portcullis_gateway::signed::OPERATOR_KEYS_SETTING,
        portcullis_gateway::signed::TRUST_LIST_SETTING,
        // The audit data keys: without them the copied records could not be read.
        portcullis_audit::sealing::DATA_KEYS_SETTING,
    ]) {
        if let Some(value) = src.get_setting(name).await.map_err(failed)? {
            dst.put_setting_if_absent(name, &value)
                .await
                .map_err(failed)?;
        }
    }
    let keys = src.list_signing_keys().await.map_err(failed)?;
    for key in &keys {
        dst.insert_signing_key(key).await.map_err(failed)?;
    }
    let clients = copy_clients(src.as_ref(), dst.as_ref()).await?;
    let revocations = src.list_revoked_tokens(unix_now()).await.map_err(failed)?;
    for r in &revocations {
        dst.revoke_token(r).await.map_err(failed)?;
    }
    let devices = copy_devices(src.as_ref(), dst.as_ref()).await?;
    let certificates = copy_certificates(src.as_ref(), dst.as_ref()).await?;
    let device_keys = copy_device_keys(src.as_ref(), dst.as_ref()).await?;
    let counters = copy_device_counters(src.as_ref(), dst.as_ref()).await?;
    let audit = copy_audit(src.as_ref(), dst.as_ref()).await?;
    println!(
        "copied {clients} clients, {} signing keys, {} revocations, {devices} devices, \
         {certificates} certificates, {device_keys} device keys, {counters} device message \
         counters and {audit} audit records (chain identical{})",
        keys.len(),
        revocations.len(),
        anchor.map_or(String::new(), |a| format!(
            ", continuing from the archive anchor at record {}",
            a.seq
        ))
    );
    eprintln!(
        "Give the new nodes the same master key file: the signing and CA keys are sealed under it."
    );
    Ok(())
}

/// Device keys stay sealed as they are (under the same master key).
async fn copy_device_keys(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let mut copied = 0;
    let mut after: Option<(
        portcullis_core::device::DeviceId,
        portcullis_core::device_key::DeviceKeyId,
    )> = None;
    loop {
        let page = src
            .list_all_device_keys(after.as_ref().map(|(d, k)| (d, k)), PAGE)
            .await
            .map_err(failed)?;
        let Some(last) = page.last() else { break };
        after = Some((last.info.device_id.clone(), last.info.key_id.clone()));
        for key in &page {
            dst.insert_device_key(key).await.map_err(failed)?;
        }
        copied += page.len() as u64;
    }
    Ok(copied)
}

/// The gateway's replay counters: without them every device's old messages would be new
/// again on the target.
async fn copy_device_counters(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let mut copied = 0;
    let mut after = None;
    loop {
        let page = src
            .list_device_counters(after.as_ref(), PAGE)
            .await
            .map_err(failed)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        dst.advance_device_counters(&page).await.map_err(failed)?;
        copied += page.len() as u64;
    }
    Ok(copied)
}

/// Devices keep their state and unspent enrollment secrets.
async fn copy_devices(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let (mut after, mut count) = (None, 0u64);
    loop {
        let page = src
            .list_devices(after.as_ref(), PAGE)
            .await
            .map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = Some(last.device_id.clone());
        dst.insert_devices(&page).await.map_err(failed)?;
        count += page.len() as u64;
    }
}

/// Every issued certificate, revoked ones with their revocation (the CRL and OCSP answers of
/// the new nodes come from these rows).
async fn copy_certificates(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let mut filter = portcullis_store::CertificateFilter::default();
    let mut count = 0u64;
    loop {
        let page = src.list_certificates(&filter, PAGE).await.map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        filter.after_serial = Some(last.serial.clone());
        for cert in &page {
            dst.insert_certificate(cert).await.map_err(failed)?;
        }
        count += page.len() as u64;
    }
}

async fn copy_clients(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let (mut after, mut count) = (None, 0u64);
    loop {
        let page = src
            .list_clients(after.as_ref(), PAGE)
            .await
            .map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = Some(last.client_id.clone());
        dst.insert_clients(&page).await.map_err(failed)?;
        count += page.len() as u64;
    }
}

/// Re-appends the events in order: each hash depends only on the previous hash, the sequence
/// number and the event, so an empty target reproduces the source chain hash for hash — and
/// this checks that it did.
async fn copy_audit(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let (mut after, mut count) = (0i64, 0u64);
    loop {
        let page = src.list_audit(after, PAGE).await.map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = last.seq;
        let copied = dst
            .append_audit(page.iter().map(|r| r.event.clone()).collect())
            .await
            .map_err(failed)?;
        if let Some((want, got)) = page
            .iter()
            .zip(&copied)
            .find(|(w, g)| w.seq != g.seq || w.hash != g.hash)
        {
            return Err(CommandError::Failed(format!(
                "audit record {} did not reproduce its hash in the target (source chain broken at or before it?) — got seq {}",
                want.seq, got.seq
            )));
        }
        count += page.len() as u64;
    }
}
