//! `portcullis migrate` and `portcullis store copy`: explicit schema migration, and moving a
//! deployment from one store to another (typically the embedded SQLite default to
//! PostgreSQL) with its audit chain intact.

use portcullis_store::Store;

use super::{CommandError, StoreArg};
use crate::bootstrap::{unix_now, ALL_SETTINGS, ISSUER_SETTING};
use crate::cli::StoreCommand;

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

/// `portcullis store ...`.
pub fn run(cmd: StoreCommand) -> Result<(), CommandError> {
    match cmd {
        StoreCommand::Copy {
            from,
            to,
            from_password_file,
            to_password_file,
            issuer,
        } => crate::runtime()?.block_on(copy(
            &StoreArg::new(&from, from_password_file.as_deref()),
            &StoreArg::new(&to, to_password_file.as_deref()),
            issuer.as_deref(),
        )),
    }
}

/// Says which store an error came from: both may be PostgreSQL, with the same user, and
/// "password authentication failed" alone does not tell the operator which file is wrong.
fn side(flag: &str, e: CommandError) -> CommandError {
    match e {
        CommandError::Usage(m) => CommandError::Usage(format!("{flag}: {m}")),
        CommandError::Failed(m) => CommandError::Failed(format!("{flag}: {m}")),
    }
}

/// Copies everything from `from` into the empty store `to`; `issuer` (`--issuer`) is
/// recorded as the target's issuer when the source keeps none (see [`check_issuer`]).
///
/// Table by table (the migrations in `crates/store/migrations`):
///
/// - copied: `settings` (every row, whatever its name: see [`copy_settings`]), `clients`,
///   `signing_keys`, `revoked_tokens` (those not yet expired; the others are purged anyway),
///   `devices`, `certificates`, `device_keys`, `device_counters`, `commands` and
///   `command_sequences`, `update_reports`, `alerts`, the unexpired single-use ids of
///   `assertion_jtis` and `spent_ids` (see [`copy_single_use`]), `audit_log` (re-linked hash
///   for hash) and the newest `audit_archives` anchor (the chain continues from it; older
///   anchors describe segments the archive files themselves chain together).
/// - deliberately not copied, being transient: `leases` (who runs a leader-only job now: a
///   copied lease would name a node of the old deployment, and the new nodes take theirs
///   within seconds), `detection_counts` (attack-detection counters over a sliding window of
///   minutes, rebuilt by the traffic the new nodes see; the alerts they raised are copied).
pub async fn copy(
    from: &StoreArg<'_>,
    to: &StoreArg<'_>,
    issuer: Option<&str>,
) -> Result<(), CommandError> {
    if let Some(issuer) = issuer {
        check_issuer_flag(issuer, to)?;
    }
    let _from_lock = from.claim_for_copy(true).map_err(|e| side("--from", e))?;
    let _to_lock = to.claim_for_copy(false).map_err(|e| side("--to", e))?;
    let src = from.open().await.map_err(|e| side("--from", e))?;
    let dst = to.open().await.map_err(|e| side("--to", e))?;
    let target_empty = dst.list_clients(None, 1).await.map_err(failed)?.is_empty()
        && dst.list_signing_keys().await.map_err(failed)?.is_empty()
        && dst.list_audit(0, 1).await.map_err(failed)?.is_empty()
        && dst.list_settings(None, 1).await.map_err(failed)?.is_empty()
        && dst.list_devices(None, 1).await.map_err(failed)?.is_empty();
    if !target_empty {
        return Err(CommandError::Failed(
            "the target store is not empty; copy only into a fresh database".into(),
        ));
    }
    let kept_issuer = check_issuer(src.as_ref(), issuer).await?;
    // An archived chain continues from its newest anchor: the target starts from the same
    // one, so re-linking the live records reproduces every hash (checked below), and
    // `audit verify` on the target proves it from the anchor's checkpoint as on the source.
    let anchor = src.audit_anchor().await.map_err(failed)?;
    if let Some(anchor) = &anchor {
        dst.import_audit_anchor(anchor).await.map_err(failed)?;
    }
    let settings = copy_settings(src.as_ref(), dst.as_ref()).await?;
    let recorded_issuer = match (&kept_issuer, issuer) {
        (None, Some(issuer)) => {
            dst.put_setting_if_absent(ISSUER_SETTING, issuer.as_bytes())
                .await
                .map_err(failed)?;
            Some(issuer)
        }
        _ => None,
    };
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
    let commands = copy_commands(src.as_ref(), dst.as_ref()).await?;
    let sequences = copy_command_sequences(src.as_ref(), dst.as_ref()).await?;
    let update_reports = copy_update_reports(src.as_ref(), dst.as_ref()).await?;
    let alerts = copy_alerts(src.as_ref(), dst.as_ref()).await?;
    let spent = copy_single_use(src.as_ref(), dst.as_ref()).await?;
    let audit = copy_audit(src.as_ref(), dst.as_ref()).await?;
    println!(
        "copied {settings} settings, {clients} clients, {} signing keys, {} revocations, \
         {devices} devices, {certificates} certificates, {device_keys} device keys, {counters} \
         device message counters, {commands} commands, {sequences} device command sequences, \
         {update_reports} update reports, {alerts} alerts, {spent} spent single-use ids and \
         {audit} audit records (chain identical{})",
        keys.len(),
        revocations.len(),
        anchor.map_or(String::new(), |a| format!(
            ", continuing from the archive anchor at record {}",
            a.seq
        ))
    );
    match (kept_issuer, recorded_issuer) {
        (Some(kept), _) => println!("the target keeps the source's issuer {kept}"),
        (None, Some(recorded)) => println!("recorded the issuer {recorded} in the target"),
        (None, None) => eprintln!(
            "Note: the source keeps no issuer (an SQLite store's is its node's [server] issuer \
             or http://<listen address>). Start the new nodes with [server] issuer = <the old \
             node's issuer>, or copy again into a fresh database with --issuer <it>: nodes that \
             take another issuer find every token issued before the copy inactive."
        ),
    }
    eprintln!(
        "Give the new nodes the same master key file: the signing and CA keys are sealed under it."
    );
    Ok(())
}

/// `--issuer` before anything is opened: an issuer URL as `[server] issuer` takes it, and a
/// PostgreSQL target (an SQLite store serves one node, whose issuer is its configuration's or
/// its listen address, and keeps none).
fn check_issuer_flag(issuer: &str, to: &StoreArg<'_>) -> Result<(), CommandError> {
    if !(issuer.starts_with("http://") || issuer.starts_with("https://")) || issuer.ends_with('/') {
        return Err(CommandError::Usage(format!(
            "--issuer {issuer:?} must be an http(s) URL without a trailing slash, as [server] \
             issuer"
        )));
    }
    if to.url.starts_with("sqlite:") {
        return Err(CommandError::Usage(
            "--issuer applies to a PostgreSQL target only: a node on an SQLite store takes its \
             issuer from its [server] issuer or listen address"
                .into(),
        ));
    }
    Ok(())
}

/// The issuer the source keeps (a PostgreSQL source's `server.issuer`, copied with the other
/// settings), refusing an `--issuer` that contradicts it: the source's tokens were issued
/// under the kept one. Moving to a new issuer is `serve --adopt-issuer` on the target, as
/// without a copy.
async fn check_issuer(
    src: &dyn Store,
    issuer: Option<&str>,
) -> Result<Option<String>, CommandError> {
    let kept = src
        .get_setting(ISSUER_SETTING)
        .await
        .map_err(failed)?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    match (&kept, issuer) {
        (Some(kept), Some(issuer)) if kept != issuer => Err(CommandError::Usage(format!(
            "--issuer {issuer:?}: the source keeps the issuer {kept:?}, under which its tokens \
             were issued, and the copy takes it; leave --issuer out (to move the cluster to a \
             new issuer afterwards, start one node with `serve --adopt-issuer`)"
        ))),
        _ => Ok(kept),
    }
}

/// Settings read per page: few rows, but a device's desired settings or a model's releases
/// may each be some kilobytes, and there is one row per device that has any.
const SETTINGS_PAGE: u32 = 1_000;

/// Every settings row, whatever its name, so a setting added later is never left behind by a
/// list of names that forgot it (the federation trust set, the command rules, each device's
/// desired settings and each model's releases, the blocklist once were). Nothing is left out:
///
/// - `server.issuer` (a PostgreSQL source's) moves too: it is the issuer the copied tokens,
///   keys and clients were issued under, and without it the first node on the target would
///   record its own default (`http://<listen address>`) and make every outstanding token
///   inactive. A cluster moving to a new issuer says so with `serve --adopt-issuer`, as it
///   would without a copy; a node configured with another issuer refuses to start, naming
///   both, rather than silently splitting the cluster.
/// - `gateway.counters_flushed_seq` (the embedded telemetry log position up to which the
///   store holds every device counter) moves with the counters it describes: a node that
///   keeps the same log reads on from there, one with a new (shorter) log reads it all.
///
/// The target must be empty ([`copy`] checks), so each row is inserted, never merged; a value
/// that differs afterwards (a node started on the target meanwhile) stops the copy.
async fn copy_settings(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let (mut after, mut count) = (None::<String>, 0u64);
    loop {
        let page = src
            .list_settings(after.as_deref(), SETTINGS_PAGE)
            .await
            .map_err(failed)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (name, value) in &page {
            let stored = dst
                .put_setting_if_absent(name, value)
                .await
                .map_err(failed)?;
            if stored != *value {
                return Err(CommandError::Failed(format!(
                    "the target store already holds another value of setting {name:?}: was a \
                     node started on it during the copy?"
                )));
            }
        }
        count += page.len() as u64;
    }
    // Read back the way a node reads them at its start, the settings a node's first start
    // writes: without the same pepper no copied client secret would verify, and without the
    // bootstrap marker a node on the target would try to make a second bootstrap admin.
    for name in ALL_SETTINGS {
        let (want, got) = (
            src.get_setting(name).await.map_err(failed)?,
            dst.get_setting(name).await.map_err(failed)?,
        );
        if want != got {
            return Err(CommandError::Failed(format!(
                "setting {name:?} did not reach the target store intact"
            )));
        }
    }
    Ok(count)
}

/// Commands in every state with every field (number, signed bytes, times, output), one
/// transaction per page; their devices were copied before them.
async fn copy_commands(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let (mut after, mut count) = (None, 0u64);
    loop {
        let page = src
            .list_commands(None, after.as_ref(), PAGE)
            .await
            .map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = Some(last.command_id.clone());
        dst.import_commands(&page).await.map_err(failed)?;
        count += page.len() as u64;
    }
}

/// Each device's last command number, deleted devices' included (an id registered again
/// continues from it): a device refuses a command numbered at or below the last it executed,
/// so without these every device would refuse the target's commands, numbered from 1 again.
async fn copy_command_sequences(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let (mut after, mut count) = (None, 0u64);
    loop {
        let page = src
            .list_command_sequences(after.as_ref(), PAGE)
            .await
            .map_err(failed)?;
        let Some((last, _)) = page.last() else {
            return Ok(count);
        };
        after = Some(last.clone());
        dst.raise_command_sequences(&page).await.map_err(failed)?;
        count += page.len() as u64;
    }
}

/// What each device last reported about each release (the rollout views).
async fn copy_update_reports(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let mut after: Option<(portcullis_core::device::DeviceId, String, u64)> = None;
    let mut count = 0u64;
    loop {
        let page = src
            .list_all_update_reports(after.as_ref().map(|(d, m, r)| (d, m.as_str(), *r)), PAGE)
            .await
            .map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = Some((last.device_id.clone(), last.model.clone(), last.release));
        for report in &page {
            dst.record_update_report(report).await.map_err(failed)?;
        }
        count += page.len() as u64;
    }
}

/// Raised alerts, open or acknowledged (by whom, when), their sealed detail as it is: it is
/// sealed under the audit data keys, copied with the settings.
async fn copy_alerts(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let mut before: Option<(i64, String)> = None;
    let mut count = 0u64;
    loop {
        let page = src
            .list_alerts(
                None,
                before.as_ref().map(|(at, id)| (*at, id.as_str())),
                PAGE,
            )
            .await
            .map_err(failed)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        before = Some((last.raised_at, last.id.clone()));
        for alert in &page {
            if !dst.insert_alert(alert).await.map_err(failed)? {
                return Err(CommandError::Failed(format!(
                    "alert {} is already in the target store",
                    alert.id
                )));
            }
        }
        count += page.len() as u64;
    }
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

/// Ids spent per batch on the target: one commit each.
const SPENT_BATCH: usize = 5_000;

/// The unexpired single-use ids — client assertion `jti`s, DPoP proof `jti`s, outside
/// tokens' `jti`s and SAML assertion IDs, of every scope — so that nothing spent on the
/// source can be spent again on the target. An outside token may live a day (its issuer's
/// `max_lifetime_secs`, 86 400 by default), so "the nodes were stopped a while" does not
/// cover it. Read at once, as an embedded node loads them at start; expired rows stay behind.
async fn copy_single_use(src: &dyn Store, dst: &dyn Store) -> Result<u64, CommandError> {
    let now = unix_now();
    let spent = src
        .list_single_use(portcullis_store::SingleUseScopes::All, now)
        .await
        .map_err(failed)?;
    for batch in spent.chunks(SPENT_BATCH) {
        dst.record_single_use_batch(batch, now)
            .await
            .map_err(failed)?;
    }
    Ok(spent.len() as u64)
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

#[cfg(test)]
mod tests {
    //! The copy between two embedded stores, filled through the store itself: every table
    //! it moves arrives whole (the PostgreSQL target is `tests/it/postgres_nodes.rs`).

    use portcullis_core::command::{CommandState, ResultRecorded};
    use portcullis_core::device::DeviceId;
    use portcullis_core::update::UpdateStatus;
    use portcullis_store::conformance::{command_id, sample_command, sample_device};
    use portcullis_store::{StoredAlert, UpdateReport};

    use super::*;

    const FAR_FUTURE: i64 = 4_000_000_000;

    fn sign(seq: u64) -> Result<Vec<u8>, String> {
        Ok(format!("signed-{seq}").into_bytes())
    }

    async fn all_settings(store: &dyn Store) -> Vec<(String, Vec<u8>)> {
        store.list_settings(None, u32::MAX).await.unwrap()
    }

    #[tokio::test]
    async fn every_setting_command_number_report_and_alert_reaches_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let from = format!("sqlite:{}", dir.path().join("from.db").display());
        let to = format!("sqlite:{}", dir.path().join("to.db").display());
        let (from, to) = (StoreArg::new(&from, None), StoreArg::new(&to, None));
        let src = from.open().await.unwrap();

        // Settings under names no list knows, as later features add them.
        for (name, value) in [
            (
                portcullis_oauth::federation::TRUST_SETTING,
                &b"{\"issuers\":[]}"[..],
            ),
            (
                portcullis_gateway::commands::RULES_SETTING,
                b"[{\"name\":\"ops\"}]",
            ),
            ("gateway.device_settings.copy-dev", b"{\"interval\":30}"),
            ("a.setting.added.later", b"\0\xff"),
        ] {
            src.put_setting_if_absent(name, value).await.unwrap();
        }
        let device = DeviceId::parse("copy-dev").unwrap();
        src.insert_device(&sample_device("copy-dev")).await.unwrap();
        // Three commands: answered (number 1), queued (2), waiting for its approver.
        let answered = sample_command(command_id(1, 0), "copy-dev", 1_000, FAR_FUTURE);
        src.queue_command(&answered, 1_010, &sign).await.unwrap();
        assert!(src
            .mark_command_delivered(&answered.command_id, 1_020)
            .await
            .unwrap());
        assert_eq!(
            src.record_command_result(
                &answered.command_id,
                &device,
                CommandState::Succeeded,
                Some(&serde_json::json!({"took_ms": 12})),
                1_030,
            )
            .await
            .unwrap(),
            ResultRecorded::Recorded
        );
        let queued = sample_command(command_id(1, 1), "copy-dev", 1_100, FAR_FUTURE);
        src.queue_command(&queued, 1_110, &sign).await.unwrap();
        src.insert_command(&sample_command(
            command_id(1, 2),
            "copy-dev",
            1_200,
            FAR_FUTURE,
        ))
        .await
        .unwrap();
        // A number outlives its device: an id registered again continues from it.
        let gone = DeviceId::parse("copy-gone").unwrap();
        src.raise_command_sequences(&[(gone.clone(), 41)])
            .await
            .unwrap();
        src.record_update_report(&UpdateReport {
            device_id: device.clone(),
            model: "meter-x2".into(),
            release: 3,
            status: UpdateStatus::Failed,
            detail: Some("disk full".into()),
            reported_at: 1_300,
        })
        .await
        .unwrap();
        for (id, acked) in [("alert-1", None), ("alert-2", Some(("ops", 1_500)))] {
            src.insert_alert(&StoredAlert {
                id: id.into(),
                rule: "auth_failures_per_client".into(),
                raised_at: 1_400,
                state: if acked.is_some() {
                    "acknowledged"
                } else {
                    "open"
                }
                .into(),
                detail: format!("sealed detail of {id}"),
                acked_by: acked.map(|(by, _)| by.to_owned()),
                acked_at: acked.map(|(_, at)| at),
            })
            .await
            .unwrap();
        }

        // Spent ids: a client's assertion jti (decided by the store), a DPoP proof's kept
        // behind by the embedded node (`spent_ids`), and one that has expired.
        let spent = |scope: &str, id: &str, expires_at| portcullis_store::SingleUse {
            scope: scope.into(),
            id: id.into(),
            expires_at,
        };
        assert!(src
            .record_single_use("copy-client", "assertion-1", FAR_FUTURE, 1_000)
            .await
            .unwrap());
        src.keep_spent(
            &[
                spent("#dpop", "proof-1", FAR_FUTURE),
                spent("#dpop", "proof-old", 1_700),
            ],
            1_000,
        )
        .await
        .unwrap();

        copy(&from, &to, None).await.unwrap();

        let dst = to.open().await.unwrap();
        let mut moved = dst
            .list_single_use(portcullis_store::SingleUseScopes::All, 1_800)
            .await
            .unwrap();
        moved.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(
            moved,
            [
                spent("copy-client", "assertion-1", FAR_FUTURE),
                spent("#dpop", "proof-1", FAR_FUTURE)
            ],
            "the unexpired ids of every scope, the expired one left behind"
        );
        assert!(
            !dst.record_single_use("copy-client", "assertion-1", FAR_FUTURE, 1_800)
                .await
                .unwrap(),
            "an assertion spent on the source is a replay on the target"
        );
        assert_eq!(
            all_settings(dst.as_ref()).await,
            all_settings(src.as_ref()).await
        );
        assert_eq!(all_settings(dst.as_ref()).await.len(), 4);
        assert_eq!(
            dst.list_commands(None, None, 100).await.unwrap(),
            src.list_commands(None, None, 100).await.unwrap(),
            "every command, every field (state, number, signed bytes, times, output)"
        );
        assert_eq!(dst.list_commands(None, None, 100).await.unwrap().len(), 3);
        assert_eq!(
            dst.list_command_sequences(None, 100).await.unwrap(),
            vec![(device.clone(), 2), (gone, 41)]
        );
        assert_eq!(
            dst.list_all_update_reports(None, 100).await.unwrap(),
            src.list_all_update_reports(None, 100).await.unwrap()
        );
        assert_eq!(
            dst.list_all_update_reports(None, 100).await.unwrap().len(),
            1
        );
        assert_eq!(
            dst.list_alerts(None, None, 100).await.unwrap(),
            src.list_alerts(None, None, 100).await.unwrap()
        );
        assert_eq!(dst.list_alerts(None, None, 100).await.unwrap().len(), 2);
        // The device's next command is numbered above what it has executed.
        let next = sample_command(command_id(1, 3), "copy-dev", 1_600, FAR_FUTURE);
        let next = dst
            .queue_command(&next, 1_610, &sign)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.seq, Some(3));

        // A target holding anything, even a single setting, is refused.
        let third = format!("sqlite:{}", dir.path().join("third.db").display());
        let third = StoreArg::new(&third, None);
        third
            .open()
            .await
            .unwrap()
            .put_setting_if_absent("server.issuer", b"https://elsewhere.example")
            .await
            .unwrap();
        let err = copy(&from, &third, None).await.unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}
