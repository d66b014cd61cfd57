//! `portcullis ca export|import`.

use std::path::Path;

use super::api::AdminApi;
use super::CommandError;
use crate::cli::ApiArgs;
use crate::cli_pki::{CaCommand, OfflineArgs};
use crate::config::Config;

pub fn run(cmd: CaCommand, api: &ApiArgs) -> Result<(), CommandError> {
    match cmd {
        CaCommand::Export { chain } => {
            let ca = AdminApi::connect(api)?.call("GET", "/ca", None)?;
            let field = if chain { "chain_pem" } else { "root_pem" };
            let pem = ca[field]
                .as_str()
                .ok_or_else(|| CommandError::Failed(format!("the server returned no {field}")))?;
            print!("{pem}");
            Ok(())
        }
        CaCommand::Import { .. } => Err(CommandError::Usage(
            "ca import runs offline; main dispatches it".into(),
        )),
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, CommandError> {
    std::fs::read(path).map_err(|e| CommandError::Usage(format!("{what} {}: {e}", path.display())))
}

/// Imports an existing CA into the configured store, before the first start.
pub async fn import(
    offline: &OfflineArgs,
    cert: &Path,
    key: &Path,
    chain: Option<&Path>,
) -> Result<(), CommandError> {
    let mut config = Config::load(offline.config.as_deref(), std::env::vars())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    if let Some(dir) = &offline.data_dir {
        config.server.data_dir = dir.clone();
    }
    let cert_pem = read(cert, "certificate")?;
    let key_pem = zeroize::Zeroizing::new(read(key, "key")?);
    let chain_pem = chain.map(|c| read(c, "chain")).transpose()?;
    // Not while a node runs on this store: it would keep serving its own CA.
    let _embedded_store = crate::bootstrap::claim_embedded_store(&config)
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let (master, store) = crate::bootstrap::open_storage(&config)
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let custody = crate::key_custody::open_custody(&config, master)
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let stored = portcullis_pki::ca::import(
        store.as_ref(),
        &custody,
        &cert_pem,
        &key_pem,
        chain_pem.as_deref(),
        crate::bootstrap::unix_now(),
    )
    .await
    .map_err(|e| CommandError::Failed(e.to_string()))?;
    eprintln!(
        "imported the CA (key {} sealed under the master key); nodes issue with it from their next start",
        stored.issuing_key.kid
    );
    Ok(())
}
