//! Keeps this node's caches coherent with changes any node commits (issue #5): a client
//! update, delete or disable drops the cached client; a revocation joins the revocation set;
//! a device change drops the cached device; a certificate revocation refreshes OCSP and the
//! CRL; a lost feed flushes everything and reloads revocations from the store.

use std::sync::Arc;

use portcullis_core::client::MAX_TOKEN_TTL_SECS;
use portcullis_oauth::AuthServer;
use portcullis_store::{Change, ChangeFeed};

use crate::bootstrap::unix_now;
use crate::key_manager::KeyManager;
use crate::pki_setup::NodePki;

/// Applies changes until the feed ends.
pub async fn follow_changes(
    server: Arc<AuthServer>,
    keys: Arc<KeyManager>,
    pki: Arc<NodePki>,
    mut feed: ChangeFeed,
) {
    while let Some(change) = feed.recv().await {
        match change {
            Change::Client(id) => server.client_changed(&id),
            // The notification names the jti but not the token's expiry: remember it for the
            // longest token lifetime; the periodic purge forgets it after that.
            Change::Revocation(jti) => {
                server.token_revoked_elsewhere(jti, unix_now() + i64::from(MAX_TOKEN_TTL_SECS))
            }
            Change::Key(kid) => {
                if let Err(e) = keys.reload().await {
                    tracing::warn!(%kid, error = %e, "reloading signing keys after a change failed");
                }
            }
            // A certificate revoked on another node: re-sign its OCSP answer; the CRL builder
            // rebuilds the CRL.
            Change::Certificate(serial) => pki.pki.certificate_changed(&serial),
            // The CRL builder published: followers serve the new one.
            Change::Setting(name) if name == portcullis_pki::crl::CRL_SETTING => {
                pki.pki.crl.mark_published();
            }
            Change::Setting(_) => {}
            Change::Device(id) => pki.pki.device_changed(&id),
            Change::AllDevices => pki.pki.devices_changed(),
            Change::Everything => {
                pki.ocsp.invalidate_all();
                pki.pki.crl.mark_stale();
                pki.pki.crl.mark_published();
                server.clients_changed();
                pki.pki.devices_changed();
                if let Err(e) = server.reload_revocations().await {
                    tracing::warn!(error = %e, "reloading revocations after a lost change feed failed");
                }
            }
        }
    }
}
