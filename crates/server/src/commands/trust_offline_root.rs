//! The root kept offline (TUF's offline root, issue #13): generated and used on a machine
//! that never talks to the node. `trust root generate` writes its private key (PKCS#8 PEM,
//! mode 0600) and prints the public JWK the node imports; `trust sign` shows a draft the node
//! wrote and signs it with that key. Nothing here opens a connection.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::{pem, Kid};
use portcullis_gateway::signed::{sign as sign_object, Kind, TrustList, TrustedKey};
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, Signer as _};
use zeroize::Zeroizing;

use super::{read, write};
use crate::commands::output::{print_json, rfc3339};
use crate::commands::CommandError;

/// The algorithms an operator key may use.
const ROOT_ALGS: [Algorithm; 3] = [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA];

fn failed(what: &str) -> impl Fn(portcullis_keys::KeyError) -> CommandError + '_ {
    move |e| CommandError::Failed(format!("{what}: {e}"))
}

/// `trust root generate --alg ALG --out FILE`.
pub fn generate(alg: &str, out: &Path, json: bool) -> Result<(), CommandError> {
    let alg = Algorithm::parse(alg)
        .ok()
        .filter(|a| ROOT_ALGS.contains(a))
        .ok_or_else(|| CommandError::Failed("the root is ES256, ES384 or EdDSA".into()))?;
    let (signer, pkcs8) = SoftwareSigner::generate(alg).map_err(failed("generating the root"))?;
    let pem = Zeroizing::new(pem::armor("PRIVATE KEY", &pkcs8));
    // create_new: an existing root key is never overwritten.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| CommandError::Failed(format!("cannot create {}: {e}", out.display())))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CommandError::Failed(format!("cannot write {}: {e}", out.display())))?;
    let jwk = serde_json::to_value(signer.public_jwk())
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    if json {
        print_json(&jwk);
    } else {
        // The message on stderr, the key alone on stdout: `> root.jwk` saves a JWK that
        // `trust key import --public-jwk` reads.
        eprintln!(
            "root {} written to {} (keep it offline); its public key, for `portcullis trust key \
             import --public-jwk FILE` and for devices to pin, follows on standard output:",
            signer.kid().as_str(),
            out.display()
        );
        println!("{jwk}");
    }
    Ok(())
}

/// The root key in a PKCS#8 PEM file, under its thumbprint kid.
fn load_root(path: &Path) -> Result<SoftwareSigner, CommandError> {
    let text = Zeroizing::new(
        String::from_utf8(read(path)?)
            .map_err(|_| CommandError::Failed(format!("{} is not a PEM file", path.display())))?,
    );
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = Zeroizing::new(STANDARD.decode(body.trim()).map_err(|_| {
        CommandError::Failed(format!(
            "{} holds no PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)",
            path.display()
        ))
    })?);
    let placeholder =
        Kid::parse("root".to_owned()).map_err(|e| CommandError::Failed(e.to_string()))?;
    for alg in ROOT_ALGS {
        let Ok(probe) = SoftwareSigner::from_pkcs8(alg, placeholder.clone(), &der) else {
            continue;
        };
        let thumbprint = probe
            .public_jwk()
            .thumbprint()
            .map_err(failed("the root's thumbprint"))?;
        let kid = Kid::parse(thumbprint).map_err(|e| CommandError::Failed(e.to_string()))?;
        return SoftwareSigner::from_pkcs8(alg, kid, &der).map_err(failed("the root key"));
    }
    Err(CommandError::Failed(format!(
        "{} is not an ES256, ES384 or EdDSA key",
        path.display()
    )))
}

/// `trust sign --root-key PEM --draft FILE --out FILE`: shows what is signed, then signs it.
pub fn sign(root_key: &Path, draft: &Path, out: &Path) -> Result<(), CommandError> {
    let root = load_root(root_key)?;
    let list = TrustList::from_payload(&read(draft)?).map_err(|_| {
        CommandError::Failed(format!("{} is not a trust list draft", draft.display()))
    })?;
    eprintln!(
        "signing trust list v{} (valid until {}) with root {}, listing:",
        list.ver,
        rfc3339(list.exp),
        root.kid().as_str()
    );
    for key in &list.keys {
        eprintln!(
            "  {} key {}",
            key.role.as_str(),
            TrustedKey::kid(key).unwrap_or_default()
        );
    }
    let signed = sign_object(Kind::Trust, &list, &root)
        .map_err(|e| CommandError::Failed(format!("signing: {e}")))?;
    write(out, &signed)?;
    eprintln!(
        "written to {}: `portcullis trust upload {}`",
        out.display(),
        out.display()
    );
    Ok(())
}
