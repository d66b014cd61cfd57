//! Router-level tests of the admin API against a real server state: SQLite in a tempdir, a
//! software ES256 key ring and a real audit log. One test binary (modules below) so the
//! workspace links it once.

mod audit_and_openapi;
mod auth;
mod clients;
mod harness;
mod hostile;
