//! Router-level tests of the admin API, wired to the real authorization server through its
//! ports as `serve` wires it: SQLite in a tempdir, a software ES256 key ring and a real audit
//! log.

mod audit_and_openapi;
mod auth;
mod clients;
mod harness;
mod hostile;
