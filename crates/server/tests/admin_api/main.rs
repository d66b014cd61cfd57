//! Router-level tests of the admin API, wired to the real authorization server through its
//! ports as `serve` wires it: SQLite in a tempdir, a software ES256 key ring and a real audit
//! log. One test binary (modules below) so the
//! workspace links it once.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod audit_and_openapi;
mod auth;
mod clients;
mod harness;
mod hostile;
