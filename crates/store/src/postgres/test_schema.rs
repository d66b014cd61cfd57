//! Test harness for everything that needs a real PostgreSQL: each test gets a fresh schema
//! `t_<random hex>` on the test database, dropped afterwards (also when the test panics), so
//! parallel test runs on one server never see each other's rows. Written once here so the
//! store's tests and, later, the server's cluster tests share it.
//!
//! The database is `postgres://postgres@127.0.0.1:5432/test` (trust auth on the test machines),
//! or `$PORTCULLIS_TEST_POSTGRES_URL`. When it cannot be reached the test is skipped with a
//! message — unless `$CI` is set: CI (`scripts/test.sh`) starts PostgreSQL, so there a missing
//! server is a failure, never a silent skip.
//!
//! Test support: failures panic, like the assertions of the tests that call it.

// Test support: a failure here is a failed test, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::PostgresStore;
use crate::StoreError;

/// The test database when `$PORTCULLIS_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The environment variable that overrides [`DEFAULT_TEST_URL`].
pub const TEST_URL_ENV: &str = "PORTCULLIS_TEST_POSTGRES_URL";

/// How long the reachability probe waits before calling the server absent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A fresh schema on the test database. Cloning names the same schema (for a second "node").
#[derive(Debug, Clone)]
pub struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    /// Creates a schema with a random name, or returns `None` after printing why when
    /// PostgreSQL is unreachable outside CI. Panics when it is unreachable in CI.
    pub async fn create() -> Option<TestSchema> {
        let url = std::env::var(TEST_URL_ENV).unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned());
        let options = PgConnectOptions::from_str(&url)
            .unwrap_or_else(|_| panic!("{TEST_URL_ENV} is not a valid PostgreSQL URL"));
        let server = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let probe = tokio::time::timeout(PROBE_TIMEOUT, options.connect()).await;
        let mut conn = match probe {
            Ok(Ok(conn)) => conn,
            Ok(Err(err)) => return unreachable(&server, &StoreError::from(err).to_string()),
            Err(_) => return unreachable(&server, "connection timed out"),
        };
        let name = format!("t_{}", random_hex());
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create schema {name} on {server}: {e}"));
        let _ = conn.close().await;
        Some(TestSchema { url, name })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database URL (without the schema: for connections that need none, like `LISTEN`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A store (one "node") working in this schema; the first one migrates it.
    pub async fn connect(&self) -> PostgresStore {
        PostgresStore::connect_with_schema(&self.url, &self.name)
            .await
            .unwrap_or_else(|e| panic!("cannot open a store in schema {}: {e}", self.name))
    }

    /// Runs raw SQL in the schema on a connection of its own, bypassing the store (for tests
    /// that must do what Portcullis never does, such as editing the audit log). Returns the
    /// number of rows affected.
    pub async fn execute(&self, sql: &str) -> Result<u64, StoreError> {
        let mut conn = self.raw_connection().await?;
        let done = sqlx::query(sql).execute(&mut conn).await?;
        let _ = conn.close().await;
        Ok(done.rows_affected())
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        let dropped = self
            .execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await;
        if let Err(e) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }

    async fn raw_connection(&self) -> Result<PgConnection, StoreError> {
        let options =
            PgConnectOptions::from_str(&self.url)?.options([("search_path", self.name.as_str())]);
        Ok(options.connect().await?)
    }
}

/// Runs `test` against a fresh schema and drops the schema afterwards, also when the test
/// panics (the panic is then resumed, so the test still fails). Skips as
/// [`TestSchema::create`] does.
pub async fn with_test_schema<F, Fut>(test: F)
where
    F: FnOnce(TestSchema) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    // A task of its own, so a panic in the test is caught at the join and the cleanup runs.
    let outcome = tokio::spawn(test(schema.clone())).await;
    schema.drop_schema().await;
    if let Err(err) = outcome {
        if err.is_panic() {
            std::panic::resume_unwind(err.into_panic());
        }
        panic!("test task failed: {err}");
    }
}

fn unreachable(server: &str, why: &str) -> Option<TestSchema> {
    if std::env::var_os("CI").is_some() {
        panic!(
            "PostgreSQL at {server} is not reachable ({why}); CI requires it \
             (scripts/test.sh starts it; set {TEST_URL_ENV} to use another server)"
        );
    }
    eprintln!(
        "skipping: PostgreSQL at {server} is not reachable ({why}); \
         set {TEST_URL_ENV} or start it (scripts/test.sh does)"
    );
    None
}

/// 64 random bits as hex: `RandomState` is seeded from the OS per process and differs per
/// instance; the time and process id are mixed in for good measure.
fn random_hex() -> String {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}
