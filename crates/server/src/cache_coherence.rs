//! Keeps this node's caches coherent with changes any node commits (issue #5): a client
//! update, delete or disable drops the cached client; a revocation joins the revocation set;
//! a device change drops the cached device; a certificate revocation refreshes OCSP and the
//! CRL; a lost feed flushes everything and reloads revocations from the store.

use std::sync::Arc;

use portcullis_core::client::MAX_TOKEN_TTL_SECS;
use portcullis_gateway::commands::RULES_SETTING;
use portcullis_gateway::device_settings::device_of_setting;
use portcullis_gateway::Gateway;
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
    gateway: Option<Arc<Gateway>>,
    blocklist: Option<Arc<crate::blocklist::Blocklist>>,
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
            Change::Certificate(serial) => pki.pki.certificate_revoked_elsewhere(&serial).await,
            // The CRL builder published: followers serve the new one.
            Change::Setting(name) if name == portcullis_pki::crl::CRL_SETTING => {
                pki.pki.crl.mark_published();
            }
            // Another node changed the command rules of the admin API.
            Change::Setting(name) if name == RULES_SETTING => {
                if let Some(gateway) = &gateway {
                    reload_command_rules(gateway).await;
                }
            }
            // Another node changed a device's desired settings: wake its feed or poll here.
            Change::Setting(name) if device_of_setting(&name).is_some() => {
                if let (Some(gateway), Some(id)) = (&gateway, device_of_setting(&name)) {
                    gateway.commands().wake(Some(&id));
                }
            }
            // Another node changed the federation trust of the admin API.
            Change::Setting(name) if name == portcullis_oauth::federation::TRUST_SETTING => {
                reload_federation(&server).await;
            }
            // Another node rotated the audit data key: seal new records with it here too.
            Change::Setting(name) if name == portcullis_audit::sealing::DATA_KEYS_SETTING => {
                if let Err(e) = server.audit_trail().reload_data_keys().await {
                    tracing::warn!(error = %e, "reloading the audit data keys after a change failed");
                }
            }
            // Another node blocked an address (attack detection).
            Change::Setting(name) if name == crate::blocklist::BLOCKED_SETTING => {
                if let Some(list) = &blocklist {
                    if let Err(e) = list.reload().await {
                        tracing::warn!(error = %e, "reloading the blocked addresses failed");
                    }
                }
            }
            Change::Setting(_) => {}
            // A command queued on another node: wake this node's connection or long poll of
            // that device, if it has one.
            Change::Commands(id) => {
                if let Some(gateway) = &gateway {
                    gateway.commands().wake(Some(&id));
                }
            }
            Change::Device(id) => pki.pki.device_changed(&id),
            Change::AllDevices => pki.pki.devices_changed(),
            Change::Everything => {
                pki.ocsp.invalidate_all();
                pki.pki.crl.mark_stale();
                pki.pki.crl.mark_published();
                server.clients_changed();
                reload_federation(&server).await;
                pki.pki.devices_changed();
                if let Some(gateway) = &gateway {
                    gateway.commands().wake(None);
                    reload_command_rules(gateway).await;
                }
                if let Err(e) = server.reload_revocations().await {
                    tracing::warn!(error = %e, "reloading revocations after a lost change feed failed");
                }
                // A key made or moved meanwhile: its `key:<kid>` went with the connection.
                if let Err(e) = keys.reload().await {
                    tracing::warn!(error = %e, "reloading signing keys after a lost change feed failed");
                }
            }
        }
    }
}

async fn reload_federation(server: &portcullis_oauth::AuthServer) {
    if let Err(e) = server.federation().reload().await {
        tracing::warn!(error = %e, "reloading the federation trust after a change failed; the previous trust stays in force");
    }
}

async fn reload_command_rules(gateway: &Gateway) {
    if let Err(e) = gateway.commands().reload_rules().await {
        tracing::warn!(error = %e, "reloading the command rules after a change failed; the previous rules stay in force");
    }
}

#[cfg(test)]
mod tests {
    //! The node's real services on a SQLite store, fed changes as another node's NOTIFYs
    //! would arrive: what the cache holds must follow the change, not the cache's TTL.

    use std::time::Duration;

    use portcullis_core::token::{AccessTokenClaims, Audience};
    use portcullis_oauth::TokenRejection;
    use portcullis_store::Store;

    use super::*;
    use crate::config::Config;

    const ISSUER: &str = "http://127.0.0.1:1";

    struct TestNode {
        server: Arc<AuthServer>,
        store: Arc<dyn Store>,
        feed: tokio::sync::mpsc::Sender<Change>,
        _dir: tempfile::TempDir,
    }

    async fn node() -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_owned();
        let config =
            Config::load(None, [("PORTCULLIS_SERVER__DATA_DIR".to_owned(), data_dir)]).unwrap();
        let node = crate::bootstrap::prepare(&config, ISSUER, false)
            .await
            .unwrap();
        let services = crate::node_services::NodeServices::start(&config, node, None)
            .await
            .unwrap();
        let server = services.server;
        let (feed, changes) = tokio::sync::mpsc::channel(16);
        tokio::spawn(follow_changes(
            server.clone(),
            services.keys,
            services.pki,
            None,
            None,
            changes,
        ));
        TestNode {
            server,
            store: services.store,
            feed,
            _dir: dir,
        }
    }

    fn token(server: &AuthServer, client_id: &str, jti: &str) -> String {
        let now = unix_now();
        let claims = AccessTokenClaims {
            iss: ISSUER.into(),
            sub: client_id.into(),
            aud: Audience::One(ISSUER.into()),
            exp: now + 300,
            iat: now,
            jti: jti.into(),
            client_id: client_id.into(),
            scope: None,
            cnf: None,
            client_epoch: None,
            federated: None,
            act: None,
            exchanged_from: Vec::new(),
        };
        server.keys().active().sign(&claims).unwrap()
    }

    /// Polls until `check` holds (the feed is applied by a task), for at most 2 s.
    async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
        for _ in 0..200 {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_client_disabled_elsewhere_is_refused_once_its_change_arrives() {
        let n = node().await;
        let mut client = portcullis_store::conformance::sample_client("sensor-1");
        n.store.insert_clients(&[client.clone()]).await.unwrap();
        let t = token(&n.server, "sensor-1", "j1");
        // Cached as enabled by the first check.
        assert!(n.server.check_active_token(&t).await.is_ok());

        // Another node disables it: the store changes, this node's cache does not yet.
        client.enabled = false;
        n.store.update_client(&client).await.unwrap();
        assert!(
            n.server.check_active_token(&t).await.is_ok(),
            "without the change the cached copy still answers (so the test can fail)"
        );

        n.feed
            .send(Change::Client(client.client_id.clone()))
            .await
            .unwrap();
        assert!(
            eventually(async || {
                n.server.check_active_token(&t).await == Err(TokenRejection::ClientGone)
            })
            .await
        );
    }

    #[tokio::test]
    async fn a_revocation_elsewhere_and_a_lost_feed_both_reach_this_node() {
        let n = node().await;
        let client = portcullis_store::conformance::sample_client("sensor-2");
        n.store
            .insert_clients(std::slice::from_ref(&client))
            .await
            .unwrap();
        let revoked_here = token(&n.server, "sensor-2", "j-announced");
        n.feed
            .send(Change::Revocation("j-announced".into()))
            .await
            .unwrap();
        assert!(
            eventually(async || {
                n.server.check_active_token(&revoked_here).await == Err(TokenRejection::Revoked)
            })
            .await
        );

        // A revocation whose NOTIFY was lost is in the store only; a lost feed reloads it.
        let unannounced = token(&n.server, "sensor-2", "j-unannounced");
        let claims = n.server.validate_access_token(&unannounced).unwrap();
        n.store
            .revoke_token(&portcullis_store::RevokedToken {
                jti: claims.jti,
                client_id: client.client_id.clone(),
                expires_at: claims.exp,
            })
            .await
            .unwrap();
        assert!(n.server.check_active_token(&unannounced).await.is_ok());
        n.feed.send(Change::Everything).await.unwrap();
        assert!(
            eventually(async || {
                n.server.check_active_token(&unannounced).await == Err(TokenRejection::Revoked)
            })
            .await
        );
    }
}
