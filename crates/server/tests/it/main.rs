//! The server's integration tests, in one binary: two cores link one test executable instead
//! of seventeen. Most modules start the real `portcullis` binary on random ports (`support`)
//! and speak HTTP, the CLI, openssl, curl and foreign clients to it; `admin_api` drives the
//! admin router wired to the real authorization server through its ports.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod pki;
mod support;

mod admin_api;
mod audit_archive;
mod audit_chain;
mod audit_encryption;
mod audit_export;
mod audit_syslog;
mod cli_tls;
mod command_rules_admin;
mod detection;
mod device_keys;
mod dpop;
mod federation;
mod forwarded_for;
mod gateway_certificates;
mod gateway_commands;
mod gateway_http;
mod gateway_mqtt;
mod gateway_nats;
mod gateway_rabbitmq;
mod gateway_settings;
mod gateway_trust;
mod gateway_updates;
mod hostile_inputs;
mod hsm;
mod interop;
mod key_rotation;
mod offline_store;
mod operations;
mod pki_broker;
mod pki_enrollment;
mod pki_hostile;
mod pki_mtls;
mod pki_registry;
mod pki_trust;
mod postgres_nodes;
#[cfg(feature = "saml")]
mod saml;
mod security_findings;
mod settings_update_cli;
mod tls_renewal;
mod token_exchange;
mod token_flow;
