//! The networked backend: many stateless Portcullis nodes sharing one PostgreSQL database
//! (issue #5). It keeps the SQLite backend's semantics exactly — the same conformance suite
//! runs against both — and adds what several nodes need:
//!
//! - **One audit chain across nodes**: appenders serialize on a transaction-scoped advisory
//!   lock keyed by the `audit_log` table (`audit.rs`), so no two nodes link to the same tail.
//! - **One clock**: assertion-jti expiry is judged by the database's `now()`, not the node's.
//! - **Change announcements**: `update_client`, `delete_client`, `revoke_token`,
//!   `update_signing_key_state`, `update_device`, `consume_enrollment_secret`,
//!   `revoke_certificate`, `revoke_device_certificates`, every device-key write (insert,
//!   rotate, delete, reseal: `device:<id>`), `queue_command` (`command:<device id>`, waking
//!   the device's connection or long poll) and the settings writes call
//!   `pg_notify('portcullis_changes', '<kind>:<id>')` in the writing statement (kinds `client`,
//!   `revocation`, `key`, `device`, `command`, `cert`, `setting`; an id too long for a NOTIFY
//!   payload is sent as `<kind>:*`, meaning "flush every entry of that kind"). PostgreSQL
//!   delivers it only if the write commits; `listen.rs` turns it into the node's change feed.
//!   The channel is database-wide, so schemas sharing a database (test runs) hear each other —
//!   harmless for invalidation.
//!
//! One file per concern, like `sqlite/`; this one connects, migrates and wires the [`Store`]
//! methods to them. `test_schema.rs` is the shared test harness (a fresh schema per run).

mod audit;
mod certificates;
mod clients;
mod commands;
mod copy_text;
mod counters;
mod detection;
mod device_keys;
mod devices;
mod enrollment;
mod keys;
mod leases;
mod listen;
mod revocations;
mod settings;
/// A fresh schema per test run; for tests only (the `test-support` feature).
#[cfg(any(test, feature = "test-support"))]
pub mod test_schema;
mod update_reports;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::audit::{AuditEvent, AuditRecord};
use portcullis_core::client::Client;
use portcullis_core::command::{CommandId, CommandRecord, CommandState, ResultRecorded};
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::device_key::DeviceKeyId;
use portcullis_core::rotation::StoredKeyState;
use portcullis_core::update::UpdateStatus;
use portcullis_core::{ClientId, Kid, UnixTime};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::{
    AuditArchiveAnchor, CertificateFilter, CommandSigner, Enrollment, IssuedCertificate,
    RevokedCertificate, RevokedToken, Store, StoreError, StoredDeviceKey, StoredKey, UpdateReport,
};

/// The schema, compiled into the binary so an upgrade needs no files beside it.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Per node. Token requests are served from caches, so the pool mostly carries writes (audit
/// batches, revocations) and cache misses; ten connections per node keeps a three-node cluster
/// far below PostgreSQL's default `max_connections` of 100.
const MAX_CONNECTIONS: u32 = 10;

/// How long to wait for a connection (including establishing a new one) before the operation
/// fails with `Unavailable`, so a database outage turns into quick errors and a failing
/// `/readyz` rather than requests that hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL implementation of [`Store`]. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db?...`) and migrates the database's
    /// default schema (normally `public`) to the current version.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        Self::connect_with_password(url, None).await
    }

    /// Like [`connect`](Self::connect), with the password given apart from the URL (read from
    /// a secret file, `[store] password_file`), so the URL in the configuration carries none.
    /// It replaces any password of the URL, `PGPASSWORD` or a pgpass file. Errors never
    /// contain it: PostgreSQL's "password authentication failed" names only the user.
    pub async fn connect_with_password(
        url: &str,
        password: Option<&str>,
    ) -> Result<PostgresStore, StoreError> {
        let mut options = connect_options(url)?;
        if let Some(password) = password {
            options = options.password(password);
        }
        Self::connect_with_options(options).await
    }

    /// Like [`connect`](Self::connect), but every pooled connection works in `schema`
    /// (created if missing): its `search_path` is set when the connection starts, so tables,
    /// trigger functions and the migration history all live there. Test runs each take a
    /// fresh schema, so parallel runs on one database never see each other's rows.
    ///
    /// The name must be a plain lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes):
    /// it is spliced into `CREATE SCHEMA`, which cannot take a bound parameter.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<PostgresStore, StoreError> {
        if !is_plain_identifier(schema) {
            return Err(StoreError::Unavailable(
                "schema name must match [a-z_][a-z0-9_]* and be at most 63 bytes".to_owned(),
            ));
        }
        let options = connect_options(url)?;
        let mut conn = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
            .await
            .map_err(|_| StoreError::Unavailable("PostgreSQL connection timed out".to_owned()))??;
        // Look first, create only if missing: `CREATE SCHEMA IF NOT EXISTS` checks the CREATE
        // privilege on the database even when the schema exists, and a production role that
        // was handed a ready schema may not have it.
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
                .bind(schema)
                .fetch_optional(&mut conn)
                .await?;
        if exists.is_none() {
            let created = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&mut conn)
                .await;
            match created {
                Ok(_) => {}
                // Two first connections creating the same schema at once may both pass
                // `IF NOT EXISTS`; the loser meets the winner's catalog row: the schema is there.
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {}
                Err(err) => return Err(err.into()),
            }
        }
        let _ = conn.close().await;
        // A startup parameter rather than a `SET` in `after_connect`: the server applies it
        // before the first query on every connection the pool ever opens (reconnects
        // included), at no extra round trip.
        Self::connect_with_options(options.options([("search_path", schema)])).await
    }

    async fn connect_with_options(options: PgConnectOptions) -> Result<PostgresStore, StoreError> {
        check_first_connection(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(PostgresStore { pool })
    }

    /// Closes every connection; later calls fail with `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Opens and closes one connection before the pool does. The pool retries a refused or
/// unreachable server until its acquire timeout and then says only "pool timed out while
/// waiting for an open connection"; this says which server and why (connection refused,
/// unknown host, authentication failed, no such database). The password is never in it:
/// neither the address nor the causes quote it, and a configuration error is not echoed.
async fn check_first_connection(options: &PgConnectOptions) -> Result<(), StoreError> {
    let server = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let unavailable =
        |cause: String| StoreError::Unavailable(format!("PostgreSQL at {server}: {cause}"));
    let conn = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
        .await
        .map_err(|_| {
            unavailable(format!(
                "no connection within {} s",
                ACQUIRE_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| {
            unavailable(match e {
                sqlx::Error::Io(io) => io.to_string(),
                sqlx::Error::Database(db) => db.message().to_owned(),
                sqlx::Error::Configuration(_) => "invalid database configuration".to_owned(),
                other => other.to_string(),
            })
        })?;
    let _ = conn.close().await;
    Ok(())
}

/// Parses the URL without echoing it on failure: it may carry a password.
fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Unavailable("invalid PostgreSQL URL".to_owned()))
}

fn is_plain_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'_'));
    first_ok && name.len() <= 63 && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

#[async_trait]
impl Store for PostgresStore {
    async fn change_feed(&self) -> Result<Option<crate::ChangeFeed>, StoreError> {
        Ok(Some(listen::change_feed(self.pool.clone()).await?))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get_setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        settings::get(&self.pool, name).await
    }

    async fn put_setting_if_absent(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        settings::put_if_absent(&self.pool, name, value).await
    }

    async fn replace_setting(
        &self,
        name: &str,
        expected: &[u8],
        value: &[u8],
    ) -> Result<bool, StoreError> {
        settings::replace(&self.pool, name, expected, value).await
    }

    async fn list_settings(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        settings::list(&self.pool, after, limit).await
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        clients::insert_one(&self.pool, client).await
    }

    async fn insert_clients(&self, clients: &[Client]) -> Result<(), StoreError> {
        clients::insert_many(&self.pool, clients).await
    }

    async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        clients::get(&self.pool, id).await
    }

    async fn list_clients(
        &self,
        after: Option<&ClientId>,
        limit: u32,
    ) -> Result<Vec<Client>, StoreError> {
        clients::list(&self.pool, after, limit).await
    }

    async fn update_client(&self, client: &Client) -> Result<(), StoreError> {
        clients::update(&self.pool, client).await
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        clients::delete(&self.pool, id).await
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        keys::insert(&self.pool, key).await
    }

    async fn update_signing_key_state(
        &self,
        kid: &Kid,
        state: StoredKeyState,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        keys::update_state(&self.pool, kid, state, at).await
    }

    async fn list_signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        keys::list(&self.pool).await
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_secs: i64,
        _now: UnixTime,
    ) -> Result<bool, StoreError> {
        leases::try_acquire(&self.pool, name, holder, ttl_secs).await
    }

    async fn release_leases(&self, holder: &str) -> Result<u64, StoreError> {
        leases::release_all(&self.pool, holder).await
    }

    async fn update_signing_key_sealed(
        &self,
        kid: &Kid,
        sealed_private: &[u8],
    ) -> Result<(), StoreError> {
        keys::update_sealed(&self.pool, kid, sealed_private).await
    }

    async fn revoke_token(&self, token: &RevokedToken) -> Result<(), StoreError> {
        revocations::revoke(&self.pool, token).await
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        revocations::is_revoked(&self.pool, jti).await
    }

    async fn list_revoked_tokens(&self, now: UnixTime) -> Result<Vec<RevokedToken>, StoreError> {
        revocations::list_unexpired(&self.pool, now).await
    }

    async fn record_single_use(
        &self,
        scope: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        revocations::record_single_use(&self.pool, scope, id, expires_at, now).await
    }

    async fn list_single_use(
        &self,
        scopes: crate::SingleUseScopes,
        now: UnixTime,
    ) -> Result<Vec<crate::SingleUse>, StoreError> {
        revocations::list_single_use(&self.pool, scopes, now).await
    }

    async fn record_single_use_batch(
        &self,
        items: &[crate::SingleUse],
        now: UnixTime,
    ) -> Result<Vec<bool>, StoreError> {
        revocations::record_single_use_batch(&self.pool, items, now).await
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        revocations::purge_expired(&self.pool, now).await
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>, StoreError> {
        audit::append(&self.pool, events).await
    }

    async fn append_audit_batch(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        audit::append_batch(&self.pool, events).await
    }

    async fn list_audit(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        audit::list_ascending(&self.pool, after_seq, limit).await
    }

    async fn list_audit_desc(
        &self,
        before_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        audit::list_descending(&self.pool, before_seq, limit).await
    }

    async fn archive_audit(&self, anchor: &AuditArchiveAnchor) -> Result<u64, StoreError> {
        audit::archive(&self.pool, anchor).await
    }

    async fn audit_anchor(&self) -> Result<Option<AuditArchiveAnchor>, StoreError> {
        audit::anchor(&self.pool).await
    }

    async fn import_audit_anchor(&self, anchor: &AuditArchiveAnchor) -> Result<(), StoreError> {
        audit::import_anchor(&self.pool, anchor).await
    }

    async fn insert_device(&self, device: &Device) -> Result<(), StoreError> {
        devices::insert_one(&self.pool, device).await
    }

    async fn insert_devices(&self, devices: &[Device]) -> Result<Vec<DeviceId>, StoreError> {
        devices::insert_many(&self.pool, devices).await
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        devices::get(&self.pool, id).await
    }

    async fn list_devices(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<Device>, StoreError> {
        devices::list(&self.pool, after, limit).await
    }

    async fn update_device(&self, device: &Device) -> Result<bool, StoreError> {
        devices::update(&self.pool, device).await
    }

    async fn consume_enrollment_secret(
        &self,
        id: &DeviceId,
        expected_mac: &str,
        state: DeviceState,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        devices::consume_enrollment_secret(&self.pool, id, expected_mac, state, now).await
    }

    async fn record_enrollments(&self, batch: &[Enrollment]) -> Result<Vec<bool>, StoreError> {
        enrollment::record(&self.pool, batch).await
    }

    async fn insert_certificate(&self, cert: &IssuedCertificate) -> Result<(), StoreError> {
        certificates::insert(&self.pool, cert).await
    }

    async fn get_certificate(&self, serial: &str) -> Result<Option<IssuedCertificate>, StoreError> {
        certificates::get(&self.pool, serial).await
    }

    async fn list_certificates(
        &self,
        filter: &CertificateFilter,
        limit: u32,
    ) -> Result<Vec<IssuedCertificate>, StoreError> {
        certificates::list(&self.pool, filter, limit).await
    }

    async fn revoke_certificate(
        &self,
        serial: &str,
        reason: RevocationReason,
        at: UnixTime,
    ) -> Result<bool, StoreError> {
        certificates::revoke(&self.pool, serial, reason, at).await
    }

    async fn revoke_device_certificates(
        &self,
        id: &DeviceId,
        reason: RevocationReason,
        at: UnixTime,
    ) -> Result<Vec<String>, StoreError> {
        certificates::revoke_for_device(&self.pool, id, reason, at).await
    }

    async fn list_revoked_certificates(
        &self,
        now: UnixTime,
    ) -> Result<Vec<RevokedCertificate>, StoreError> {
        certificates::list_revoked(&self.pool, now).await
    }

    async fn insert_device_key(&self, key: &StoredDeviceKey) -> Result<(), StoreError> {
        device_keys::insert(&self.pool, key).await
    }

    async fn rotate_device_key(
        &self,
        new: &StoredDeviceKey,
        expire_others_at: UnixTime,
    ) -> Result<(), StoreError> {
        device_keys::rotate(&self.pool, new, expire_others_at).await
    }

    async fn list_device_keys(&self, id: &DeviceId) -> Result<Vec<StoredDeviceKey>, StoreError> {
        device_keys::list_for_device(&self.pool, id).await
    }

    async fn delete_device_key(
        &self,
        id: &DeviceId,
        key_id: &DeviceKeyId,
    ) -> Result<bool, StoreError> {
        device_keys::delete(&self.pool, id, key_id).await
    }

    async fn list_all_device_keys(
        &self,
        after: Option<(&DeviceId, &DeviceKeyId)>,
        limit: u32,
    ) -> Result<Vec<StoredDeviceKey>, StoreError> {
        device_keys::list_all(&self.pool, after, limit).await
    }

    async fn update_device_key_sealed(
        &self,
        id: &DeviceId,
        key_id: &DeviceKeyId,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        device_keys::update_sealed(&self.pool, id, key_id, sealed).await
    }

    async fn insert_command(&self, command: &CommandRecord) -> Result<(), StoreError> {
        commands::insert(&self.pool, command).await
    }

    async fn queue_command(
        &self,
        command: &CommandRecord,
        now: UnixTime,
        sign: &CommandSigner,
    ) -> Result<Option<CommandRecord>, StoreError> {
        commands::queue(&self.pool, command, now, sign).await
    }

    async fn get_command(&self, id: &CommandId) -> Result<Option<CommandRecord>, StoreError> {
        commands::get(&self.pool, id).await
    }

    async fn list_commands(
        &self,
        device: Option<&DeviceId>,
        after: Option<&CommandId>,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        commands::list(&self.pool, device, after, limit).await
    }

    async fn deliverable_commands(
        &self,
        device: &DeviceId,
        now: UnixTime,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        commands::deliverable(&self.pool, device, now, limit).await
    }

    async fn mark_command_delivered(
        &self,
        id: &CommandId,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        commands::mark_delivered(&self.pool, id, now).await
    }

    async fn record_command_result(
        &self,
        id: &CommandId,
        device: &DeviceId,
        state: CommandState,
        output: Option<&serde_json::Value>,
        now: UnixTime,
    ) -> Result<ResultRecorded, StoreError> {
        commands::record_result(&self.pool, id, device, state, output, now).await
    }

    async fn count_recent_commands(
        &self,
        device: &DeviceId,
        rule: &str,
        since: UnixTime,
    ) -> Result<u64, StoreError> {
        commands::count_recent(&self.pool, device, rule, since).await
    }

    async fn import_commands(&self, commands: &[CommandRecord]) -> Result<(), StoreError> {
        commands::import(&self.pool, commands).await
    }

    async fn list_command_sequences(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<(DeviceId, u64)>, StoreError> {
        commands::list_sequences(&self.pool, after, limit).await
    }

    async fn raise_command_sequences(&self, lasts: &[(DeviceId, u64)]) -> Result<(), StoreError> {
        commands::raise_sequences(&self.pool, lasts).await
    }

    async fn record_update_report(&self, report: &UpdateReport) -> Result<(), StoreError> {
        update_reports::record(&self.pool, report).await
    }

    async fn update_rollout(
        &self,
        model: &str,
    ) -> Result<Vec<(u64, UpdateStatus, u64)>, StoreError> {
        update_reports::rollout(&self.pool, model).await
    }

    async fn list_update_reports(
        &self,
        model: &str,
        release: u64,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<UpdateReport>, StoreError> {
        update_reports::list(&self.pool, model, release, after, limit).await
    }

    async fn list_all_update_reports(
        &self,
        after: Option<(&DeviceId, &str, u64)>,
        limit: u32,
    ) -> Result<Vec<UpdateReport>, StoreError> {
        update_reports::list_all(&self.pool, after, limit).await
    }

    async fn advance_device_counters(
        &self,
        batch: &[(DeviceId, u64)],
    ) -> Result<Vec<crate::CounterAdvance>, StoreError> {
        counters::advance(&self.pool, batch).await
    }

    async fn raise_device_counters(&self, highs: &[(DeviceId, u64)]) -> Result<(), StoreError> {
        counters::raise(&self.pool, highs).await
    }

    async fn revert_device_counter(
        &self,
        device: &DeviceId,
        counter: u64,
        previous: u64,
    ) -> Result<bool, StoreError> {
        counters::revert(&self.pool, device, counter, previous).await
    }

    async fn list_device_counters(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<(DeviceId, u64)>, StoreError> {
        counters::list(&self.pool, after, limit).await
    }

    async fn add_detection_counts(
        &self,
        increments: &[crate::DetectionIncrement],
    ) -> Result<Vec<crate::DetectionTotals>, StoreError> {
        detection::add_counts(&self.pool, increments).await
    }

    async fn purge_detection_counts(&self, before: i64) -> Result<u64, StoreError> {
        detection::purge_counts(&self.pool, before).await
    }

    async fn insert_alert(&self, alert: &crate::StoredAlert) -> Result<bool, StoreError> {
        detection::insert_alert(&self.pool, alert).await
    }

    async fn list_alerts(
        &self,
        state: Option<&str>,
        before: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<crate::StoredAlert>, StoreError> {
        detection::list_alerts(&self.pool, state, before, limit).await
    }

    async fn get_alert(&self, id: &str) -> Result<Option<crate::StoredAlert>, StoreError> {
        detection::get_alert(&self.pool, id).await
    }

    async fn ack_alert(&self, id: &str, by: &str, at: i64) -> Result<crate::AlertAck, StoreError> {
        detection::ack_alert(&self.pool, id, by, at).await
    }

    async fn set_alert_detail(&self, id: &str, detail: &str) -> Result<bool, StoreError> {
        detection::set_alert_detail(&self.pool, id, detail).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_accepted_as_schema_names() {
        for good in ["t_0a1b", "_x", "public", &"a".repeat(63)] {
            assert!(is_plain_identifier(good), "{good}");
        }
        for bad in [
            "",
            "T_upper",
            "1abc",
            "a-b",
            "a;drop schema public",
            "a\"b",
            "ü",
            &"a".repeat(64),
        ] {
            assert!(!is_plain_identifier(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_bad_url_is_unavailable_without_echoing_it() {
        let err = PostgresStore::connect("postgres://u:hunter2@[::1")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // Port 1 on localhost: connection refused at once, no waiting for a timeout.
        let err = PostgresStore::connect("postgres://postgres@127.0.0.1:1/none")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}

crate::rows::column_reader!(sqlx::postgres::PgRow);
