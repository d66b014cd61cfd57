//! First-start and every-start preparation of a node: the data directory, the master key,
//! the store, the secret pepper, the signing key, and (first start only) the bootstrap admin
//! client whose credential is written to a 0600 file.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_core::client::{AuthMethod, Client, DEFAULT_TOKEN_TTL_SECS};
use portcullis_core::issuer::{check_recorded, decide_issuer, IssuerDecision};
use portcullis_core::{ClientId, ScopeSet, Secret, SecretHash, UnixTime};
use portcullis_keys::software::MasterKey;
use portcullis_keys::{random::random_array, KeyRing};
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::Store;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::key_custody::{check_custody_matches, open_custody};
use crate::key_lifecycle::KeyLifecycle;

use portcullis_admin::{ADMIN_SCOPE, AUDIT_READ_SCOPE};
use portcullis_gateway::commands::COMMANDS_READ_SCOPE;
use portcullis_gateway::device_settings::{SETTINGS_READ_SCOPE, SETTINGS_WRITE_SCOPE};
use portcullis_gateway::http::TELEMETRY_READ_SCOPE;
use portcullis_gateway::updates::{UPDATES_READ_SCOPE, UPDATES_WRITE_SCOPE};
/// The client id of the bootstrap admin client.
pub const BOOTSTRAP_ADMIN_ID: &str = "portcullis-admin";
/// The setting holding the pepper client secrets are HMACed under.
pub const PEPPER_SETTING: &str = "secret_pepper";
/// The setting that records that the bootstrap admin client was created.
pub const BOOTSTRAP_SETTING: &str = "bootstrap_admin_created";
/// The settings a node's first start writes: the pepper and the bootstrap marker (`store
/// copy` checks that they reached the target intact).
pub const ALL_SETTINGS: [&str; 2] = [PEPPER_SETTING, BOOTSTRAP_SETTING];

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("master key: {0}")]
    MasterKey(portcullis_keys::KeyError),
    #[error(
        "master key {path} does not exist, but the store already holds keys sealed under a \
         master key: give this node that key (every node of a deployment shares one, \
         [keys] master_key_file); no new one was made"
    )]
    MasterKeyMissing { path: PathBuf },
    #[error("signing key: {0}")]
    SigningKey(portcullis_keys::KeyError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::key_lifecycle::KeyManagerError),
    #[error("key custody: {0}")]
    Custody(portcullis_keys::KeyError),
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("store: {0}")]
    Store(#[from] portcullis_store::StoreError),
    #[error("issuer: {0}")]
    Issuer(#[from] portcullis_core::issuer::IssuerConflict),
    #[error(
        "the embedded store {path} is in use by another running node or command; a SQLite \
         store serves one node (several nodes share a PostgreSQL store)"
    )]
    InUse { path: PathBuf },
    #[error("bootstrap admin credential {path}: {source}")]
    AdminFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a started node holds.
pub struct Node {
    /// The `iss` of its tokens and the base of its endpoint URLs (see [`resolve_issuer`]).
    pub issuer: String,
    pub store: Arc<dyn Store>,
    pub master: Arc<MasterKey>,
    pub pepper: Zeroizing<Vec<u8>>,
    pub keys: Arc<KeyRing>,
    /// The kids `keys` publishes (the key manager reloads the ring only when they change).
    pub published_kids: Vec<portcullis_core::Kid>,
    /// The signing-key lifecycle (and the key custody every key of this node goes through).
    pub lifecycle: KeyLifecycle,
    /// Set on the first start: where the bootstrap admin credential was written.
    pub admin_credential_written: Option<PathBuf>,
}

/// A fresh name for this node in leases.
fn new_node_id() -> Result<String, BootstrapError> {
    let bytes = random_array::<8>().map_err(BootstrapError::MasterKey)?;
    Ok(format!("node-{:016x}", u64::from_be_bytes(bytes)))
}

/// Current Unix time.
pub fn unix_now() -> UnixTime {
    portcullis_core::time::unix_seconds(std::time::SystemTime::now())
}

/// The data directory, the master key and the store, each created if missing: what a node
/// and the offline commands (`ca import`) both need first.
pub async fn open_storage(
    config: &Config,
) -> Result<(Arc<MasterKey>, Arc<dyn Store>), BootstrapError> {
    create_data_dir(config)?;
    let store: Arc<dyn Store> = match &config.store.url {
        Some(url) if !url.starts_with("sqlite:") => {
            // `[store] password_file`: the password stays out of the URL (and of every error).
            let password = config.store_password().map_err(|e| {
                BootstrapError::Store(portcullis_store::StoreError::Unavailable(e.to_string()))
            })?;
            portcullis_store::open_with_password(url, password.as_ref().map(|p| p.as_str())).await?
        }
        _ => {
            create_private_file(&config.sqlite_path())?;
            Arc::new(SqliteStore::open(&config.sqlite_path()).await?)
        }
    };
    // A store that already holds sealed secrets needs the master key they are sealed under;
    // a new one would only be a second, useless key file (and on a shared store, the sign of
    // a node not given the deployment's `master_key_file`).
    let path = config.master_key_file();
    if !path.exists() && store.get_setting(PEPPER_SETTING).await?.is_some() {
        return Err(BootstrapError::MasterKeyMissing { path });
    }
    let (master, created) = MasterKey::load_or_create(&path).map_err(BootstrapError::MasterKey)?;
    if created {
        tracing::info!(path = %path.display(), "generated a new master key (mode 0600); back it up: without it the stored keys are useless");
    }
    Ok((Arc::new(master), store))
}

fn create_data_dir(config: &Config) -> Result<(), BootstrapError> {
    let data_dir = &config.server.data_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| BootstrapError::DataDir {
            path: data_dir.clone(),
            source,
        })
}

/// Claims the embedded store for this process: an exclusive `flock` on the SQLite file, held
/// as long as the returned file is (a process that ends, however, lets it go). Two nodes on
/// one SQLite file would each decide revocations, replays and single-use ids in their own
/// memory — a token revoked on one stays active on the other, a DPoP proof is spent once on
/// each — so the second is refused. `None` for a shared (PostgreSQL) store, made for many
/// nodes. SQLite's own locks are `fcntl` locks, which `flock` does not disturb.
pub fn claim_embedded_store(config: &Config) -> Result<Option<std::fs::File>, BootstrapError> {
    if config.shared_store() {
        return Ok(None);
    }
    create_data_dir(config)?;
    let path = config.sqlite_path();
    create_private_file(&path)?;
    let file = std::fs::File::open(&path).map_err(|source| BootstrapError::DataDir {
        path: path.clone(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(BootstrapError::InUse { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(BootstrapError::DataDir { path, source }),
    }
}

/// Prepares everything a node needs, creating what is missing.
pub async fn prepare(
    config: &Config,
    default_issuer: &str,
    adopt_issuer: bool,
) -> Result<Node, BootstrapError> {
    let (master, store) = open_storage(config).await?;
    let issuer = if config.shared_store() {
        resolve_issuer(
            store.as_ref(),
            config.server.issuer.as_deref(),
            default_issuer,
            adopt_issuer,
        )
        .await?
    } else {
        // One node per SQLite file: the issuer follows its configuration or listen address.
        config
            .server
            .issuer
            .clone()
            .unwrap_or_else(|| default_issuer.to_owned())
    };
    let issuer = issuer.as_str();
    let fresh_pepper = random_array::<32>().map_err(BootstrapError::MasterKey)?;
    let pepper = Zeroizing::new(
        store
            .put_setting_if_absent(PEPPER_SETTING, &fresh_pepper)
            .await?,
    );

    let custody = open_custody(config, master.clone()).map_err(BootstrapError::SigningKey)?;
    check_custody_matches(
        custody.backend(),
        store
            .get_setting(portcullis_pki::ca::CA_SETTING)
            .await?
            .as_deref(),
        store
            .get_setting(portcullis_audit::sealing::DATA_KEYS_SETTING)
            .await?
            .as_deref(),
    )
    .map_err(BootstrapError::Custody)?;
    let lifecycle = KeyLifecycle::new(
        store.clone(),
        custody,
        config.rotation_policy()?,
        config.signing_algorithm(),
        new_node_id()?,
    );
    let (ring, events) = lifecycle.start().await?;
    if !events.is_empty() {
        // The audit writer is not running yet at start-up: append to the chain directly.
        store.append_audit(events).await?;
    }
    let keys = Arc::new(KeyRing::new(ring.signer, ring.published));
    let published_kids = ring.kids;

    let admin_credential_written =
        ensure_bootstrap_admin(store.as_ref(), &pepper, config, issuer).await?;
    Ok(Node {
        issuer: issuer.to_owned(),
        store,
        master,
        pepper,
        keys,
        published_kids,
        lifecycle,
        admin_credential_written,
    })
}

/// The settings row that keeps a shared store's issuer.
pub(crate) const ISSUER_SETTING: &str = "server.issuer";

/// The issuer of a node on a shared store: the one the store keeps (recorded by the first
/// node), unless this node configures one, which must then be the same (or is adopted with
/// `serve --adopt-issuer`). The rule is `portcullis_core::issuer`.
async fn resolve_issuer(
    store: &dyn Store,
    configured: Option<&str>,
    default: &str,
    adopt: bool,
) -> Result<String, BootstrapError> {
    let stored = store
        .get_setting(ISSUER_SETTING)
        .await?
        .map(|raw| String::from_utf8_lossy(&raw).into_owned());
    match decide_issuer(configured, stored.as_deref(), default, adopt)? {
        IssuerDecision::Use(issuer) => Ok(issuer),
        IssuerDecision::Record(issuer) => {
            let recorded = store
                .put_setting_if_absent(ISSUER_SETTING, issuer.as_bytes())
                .await?;
            let recorded = String::from_utf8_lossy(&recorded).into_owned();
            check_recorded(configured, &recorded)?;
            if configured.is_none() && recorded != issuer {
                tracing::info!(issuer = %recorded, "using the issuer another node recorded in the store");
            }
            Ok(recorded)
        }
        IssuerDecision::Replace(issuer) => {
            let old = stored.unwrap_or_default();
            if !store
                .replace_setting(ISSUER_SETTING, old.as_bytes(), issuer.as_bytes())
                .await?
            {
                // Another node changed it meanwhile: say so rather than overwrite its choice.
                return Err(BootstrapError::Store(
                    portcullis_store::StoreError::Conflict(
                        "the stored issuer changed while this node adopted a new one; start again"
                            .into(),
                    ),
                ));
            }
            tracing::warn!(old = %old, new = %issuer, "adopted a new issuer for every node of this store");
            Ok(issuer)
        }
    }
}

/// Creates an empty database file with mode 0600 if none exists: it holds the pepper, client
/// hashes and sealed keys, and SQLite gives its `-wal` and `-shm` files the same mode.
pub(crate) fn create_private_file(path: &Path) -> Result<(), BootstrapError> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(BootstrapError::DataDir {
            path: path.to_owned(),
            source,
        }),
    }
}

/// On the very first start, creates the admin client and writes its credential to
/// `<data_dir>/admin.json` (mode 0600, never overwritten). Returns the path when written.
async fn ensure_bootstrap_admin(
    store: &dyn Store,
    pepper: &[u8],
    config: &Config,
    issuer: &str,
) -> Result<Option<PathBuf>, BootstrapError> {
    if store.get_setting(BOOTSTRAP_SETTING).await?.is_some() {
        return Ok(None);
    }
    let secret =
        Secret::from_random_bytes(&random_array::<32>().map_err(BootstrapError::MasterKey)?);
    let now = unix_now();
    let client_id = ClientId::parse(BOOTSTRAP_ADMIN_ID)
        .map_err(|e| BootstrapError::Store(portcullis_store::StoreError::Corrupt(e.to_string())))?;
    let client = Client {
        client_id: client_id.clone(),
        name: "bootstrap admin".into(),
        auth_method: AuthMethod::ClientSecretBasic,
        // Reading the audit trail (`audit:read`, kept apart from administering), device
        // telemetry (`portcullis telemetry tail`) and every command
        // (`portcullis command list`), devices' settings (`portcullis settings`) and software
        // updates (`portcullis update`) are the operator's too.
        scopes: ScopeSet::from_tokens([
            ADMIN_SCOPE.to_owned(),
            AUDIT_READ_SCOPE.to_owned(),
            TELEMETRY_READ_SCOPE.to_owned(),
            COMMANDS_READ_SCOPE.to_owned(),
            SETTINGS_READ_SCOPE.to_owned(),
            SETTINGS_WRITE_SCOPE.to_owned(),
            UPDATES_READ_SCOPE.to_owned(),
            UPDATES_WRITE_SCOPE.to_owned(),
        ])
        .unwrap_or_default(),
        audiences: vec![],
        token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
        enabled: true,
        secret_hashes: vec![SecretHash::of(pepper, &secret, None)],
        sealed_secret: None,
        jwks: None,
        jwks_uri: None,
        tls_client_auth: None,
        created_at: now,
        updated_at: now,
        dpop_bound_access_tokens: false,
        token_epoch: 0,
    };
    let path = config.server.data_dir.join("admin.json");
    // Written first (a credential stored but never written down could not be recovered), and
    // removed again when another node starting at the same moment on the same store created
    // the admin client first: its secret, not this one, is the one that works.
    write_admin_credential(&path, &client_id, &secret, issuer)?;
    let written = match store.insert_client(&client).await {
        Ok(()) => Some(path),
        Err(portcullis_store::StoreError::Conflict(_)) => {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove an admin credential that another node's made useless");
            }
            tracing::info!("another node created the bootstrap admin client; its credential is in that node's data directory");
            None
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
    };
    store.put_setting_if_absent(BOOTSTRAP_SETTING, b"1").await?;
    Ok(written)
}

fn write_admin_credential(
    path: &Path,
    id: &ClientId,
    secret: &Secret,
    issuer: &str,
) -> Result<(), BootstrapError> {
    let body = serde_json::json!({
        "client_id": id.as_str(),
        "client_secret": secret.expose(),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "scope": ADMIN_SCOPE,
    });
    let err = |source| BootstrapError::AdminFile {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(format!("{body:#}\n").as_bytes())
        .map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(dir: &Path) -> Config {
        let mut config = Config::load(None, Vec::new()).unwrap();
        config.server.data_dir = dir.join("data");
        config
    }

    #[tokio::test]
    async fn the_first_start_writes_the_admin_credential_once_and_restarts_keep_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let first = prepare(&config, "http://127.0.0.1:1", false).await.unwrap();
        let written = first.admin_credential_written.clone().unwrap();
        let mode = std::fs::metadata(&written).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let credential: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&written).unwrap()).unwrap();
        assert_eq!(credential["client_id"], BOOTSTRAP_ADMIN_ID);
        let admin = first
            .store
            .get_client(&ClientId::parse(BOOTSTRAP_ADMIN_ID).unwrap())
            .await
            .unwrap()
            .unwrap();
        for scope in [
            "portcullis:admin",
            "audit:read",
            "telemetry:read",
            "commands:read",
            "settings:read",
            "settings:write",
            "updates:read",
            "updates:write",
        ] {
            assert!(admin.scopes.contains(scope), "{scope}");
        }
        assert_eq!(
            credential["token_endpoint"],
            "http://127.0.0.1:1/oauth2/token"
        );
        let kid = first.keys.active().kid().clone();
        let pepper = first.pepper.clone();
        drop(first);

        let again = prepare(&config, "http://127.0.0.1:2", false).await.unwrap();
        assert!(again.admin_credential_written.is_none());
        assert_eq!(again.keys.active().kid(), &kid);
        assert_eq!(again.pepper, pepper);
        // One node per SQLite file: its issuer follows its own listen address.
        assert_eq!(again.issuer, "http://127.0.0.1:2");
        let mode = std::fs::metadata(config.sqlite_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn of_two_nodes_creating_the_admin_client_at_once_only_the_winner_keeps_a_credential() {
        let dir = tempfile::tempdir().unwrap();
        let winner = config(dir.path());
        let first = prepare(&winner, "http://127.0.0.1:1", false).await.unwrap();
        let id = ClientId::parse(BOOTSTRAP_ADMIN_ID).unwrap();
        let admin = first.store.get_client(&id).await.unwrap().unwrap();
        // The loser's store already has the winner's admin client, but not yet the setting
        // that says so: the moment of the race.
        let loser = config(&dir.path().join("loser"));
        let (_, store) = open_storage(&loser).await.unwrap();
        store.insert_client(&admin).await.unwrap();
        let written = ensure_bootstrap_admin(store.as_ref(), &first.pepper, &loser, "http://x")
            .await
            .unwrap();
        assert!(written.is_none());
        assert!(
            !loser.server.data_dir.join("admin.json").exists(),
            "no useless credential"
        );
        assert!(winner.server.data_dir.join("admin.json").exists());
    }

    #[tokio::test]
    async fn a_wrong_master_key_stops_the_start_without_touching_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let first = prepare(&config, "http://127.0.0.1:1", false).await.unwrap();
        let rows = first.store.list_signing_keys().await.unwrap();
        drop(first);
        std::fs::remove_file(config.master_key_file()).unwrap();
        let refused = prepare(&config, "http://127.0.0.1:1", false).await;
        assert!(
            matches!(&refused, Err(BootstrapError::MasterKeyMissing { .. })),
            "{:?}",
            refused.err()
        );
        assert!(!config.master_key_file().exists(), "no new master key made");
        // Another key than the one the stored keys are sealed under.
        std::fs::write(
            config.master_key_file(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        )
        .unwrap();
        let refused = prepare(&config, "http://127.0.0.1:1", false).await;
        assert!(
            matches!(&refused, Err(BootstrapError::Keys(_))),
            "{:?}",
            refused.err()
        );
        let (_, store) = open_storage(&config).await.unwrap();
        assert_eq!(store.list_signing_keys().await.unwrap(), rows);
    }
}
