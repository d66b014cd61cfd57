//! The PKCS#11 backend against a real SoftHSM2 token, initialised by the test itself.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once, when the module is initialised, and a module is
//! initialised once per process; so one token directory serves every test in this file, and
//! the tests run one at a time under [`SERIAL`] (the environment is process-wide). Without
//! SoftHSM2 the tests print a skip message, unless `CI` is set: there they fail.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use portcullis_core::Kid;
use portcullis_keys::pkcs11::{Pkcs11Config, Pkcs11Signer, Pkcs11Token};
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{conformance, Algorithm, KeyError, Signer, VerifyingKey};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;
use zeroize::Zeroizing;

/// SoftHSM2's module as Debian/Ubuntu install it; `PORTCULLIS_SOFTHSM_MODULE` overrides.
const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "portcullis-test";
const PIN: &str = "1234";
/// A second token that nobody logs in to successfully: PKCS#11 login state is per token and
/// per process, so a wrong PIN is only detectable on a token not yet logged in.
const LOCKED_TOKEN: &str = "portcullis-pin-test";
const WRONG_PIN: &str = "wrong-pin-4321";
/// A third token whose PIN a test changes under a running backend.
const PIN_CHANGE_TOKEN: &str = "portcullis-pin-change";

static SERIAL: Mutex<()> = Mutex::new(());

/// A token directory per test process (nextest runs each test in its own), under cargo's
/// target tmp dir; directories of processes that have exited are removed on the next run,
/// since a static is never dropped.
fn token_root() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("softhsm");
    std::fs::create_dir_all(&root).expect("softhsm root");
    for entry in std::fs::read_dir(&root)
        .expect("read softhsm root")
        .flatten()
    {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix("pid-"));
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = root.join(format!("pid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("token root");
    dir
}

fn module() -> PathBuf {
    std::env::var_os("PORTCULLIS_SOFTHSM_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE))
}

fn softhsm_installed() -> bool {
    module().exists()
        && Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
}

/// Initialises the tokens once; `None` (after a skip message) if SoftHSM2 is absent.
fn softhsm() -> Option<MutexGuard<'static, ()>> {
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    static SETUP: OnceLock<Option<PathBuf>> = OnceLock::new();
    let setup = SETUP.get_or_init(|| {
        if !softhsm_installed() {
            assert!(
                std::env::var_os("CI").is_none(),
                "SoftHSM2 is not installed ({}, softhsm2-util): apt-get install -y softhsm2",
                module().display()
            );
            return None;
        }
        let dir = token_root();
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        // Safe here: SERIAL is held, so no other test thread reads the environment.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        for label in [TOKEN, LOCKED_TOKEN, PIN_CHANGE_TOKEN] {
            let status = Command::new("softhsm2-util")
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", PIN, "--so-pin", "5678"])
                .env("SOFTHSM2_CONF", &conf)
                .output()
                .expect("softhsm2-util runs");
            assert!(status.status.success(), "init-token: {status:?}");
        }
        Some(dir)
    });
    match setup {
        Some(_) => Some(guard),
        None => {
            eprintln!("SKIPPED: SoftHSM2 is not installed (apt-get install -y softhsm2)");
            None
        }
    }
}

fn config(label: &str, pin: &str) -> Pkcs11Config {
    Pkcs11Config {
        module_path: module(),
        token_label: label.into(),
        pin: Zeroizing::new(pin.into()),
    }
}

fn open_token() -> Pkcs11Token {
    Pkcs11Token::open(&config(TOKEN, PIN)).expect("token opens")
}

fn generate(token: &Pkcs11Token, alg: Algorithm) -> Pkcs11Signer {
    token.generate(alg).unwrap_or_else(|e| panic!("{alg}: {e}"))
}

#[test]
fn softhsm_backend_passes_the_conformance_suite() {
    let Some(_serial) = softhsm() else { return };
    let token = open_token();
    let make = |alg| -> Result<Arc<dyn Signer>, KeyError> { Ok(Arc::new(token.generate(alg)?)) };
    // SoftHSM 2.6.1 here implements CKM_EDDSA and CKM_EC_EDWARDS_KEY_PAIR_GEN, so EdDSA runs
    // too; a SoftHSM built without EdDSA support would fail this line with a clear error.
    conformance::run_all(
        &make,
        &[
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::EdDSA,
        ],
    );
}

#[test]
fn generated_private_keys_are_sensitive_and_never_extractable() {
    let Some(_serial) = softhsm() else { return };
    let token = open_token();
    for alg in Algorithm::ALL {
        let signer = generate(&token, alg);
        let protection = signer.protection().expect("attributes readable");
        assert!(protection.sensitive, "{alg}: {protection:?}");
        assert!(!protection.extractable, "{alg}: {protection:?}");
        assert!(protection.always_sensitive, "{alg}: {protection:?}");
        assert!(protection.never_extractable, "{alg}: {protection:?}");
        token.destroy(signer.kid()).expect("destroy");
    }
}

/// A session on the test token opened through `cryptoki` directly, as an operator's tool
/// would; it shares this process's login state with the backend.
fn direct_session() -> cryptoki::session::Session {
    direct_session_on(TOKEN)
}

fn direct_session_on(label: &str) -> cryptoki::session::Session {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    let context = Pkcs11::new(module()).expect("module");
    // Already initialised by the backend in this process; that error is expected.
    let _ = context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = context
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|slot| {
            context
                .get_token_info(*slot)
                .is_ok_and(|info| info.label().trim_end() == label)
        })
        .expect("test token");
    context.open_rw_session(slot).expect("session")
}

/// Both objects of a pair are named by the kid, and the private value cannot be read.
#[test]
fn token_objects_are_named_by_kid_and_private_values_are_unreadable() {
    use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};

    let Some(_serial) = softhsm() else { return };
    let token = open_token();
    let session = direct_session();
    for alg in Algorithm::ALL {
        let signer = generate(&token, alg);
        let kid = signer.kid().as_str().as_bytes().to_vec();
        let objects = session
            .find_objects(&[Attribute::Label(kid.clone()), Attribute::Id(kid.clone())])
            .expect("find");
        assert_eq!(objects.len(), 2, "{alg}: public and private object");
        let private = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(kid),
            ])
            .expect("find");
        let secret = match alg {
            Algorithm::PS256 | Algorithm::RS256 => AttributeType::PrivateExponent,
            _ => AttributeType::Value,
        };
        let info = session
            .get_attribute_info(private[0], &[secret])
            .expect("attribute info");
        assert!(
            matches!(info.as_slice(), [AttributeInfo::Sensitive]),
            "{alg}: {info:?}"
        );
        token.destroy(signer.kid()).expect("destroy");
    }
}

/// An HSM restart or an operator's logout drops the login of every session; the backend
/// logs in again with the PIN and the signature still succeeds.
#[test]
fn signing_survives_the_token_logging_the_application_out() {
    let Some(_serial) = softhsm() else { return };
    let token = open_token();
    let signer: Arc<dyn Signer> = Arc::new(generate(&token, Algorithm::ES256));
    let key = VerifyingKey::from_jwk(&signer.public_jwk(), &[Algorithm::ES256]).expect("jwk");
    let jwt = portcullis_keys::JwtSigner::new(Arc::clone(&signer), "at+jwt");
    for _ in 0..3 {
        direct_session().logout().expect("logout");
        let token = jwt
            .sign_claims_json(br#"{"sub":"a"}"#)
            .expect("signs after logout");
        let decoded = portcullis_keys::decode(&token).expect("decode");
        assert_eq!(decoded.verify(&key), Ok(()));
    }
    direct_session().logout().expect("logout");
    let listed = token.list().expect("lists after logout");
    assert!(listed.iter().any(|(kid, _)| kid == signer.kid()));
    direct_session().logout().expect("logout");
    assert!(token.find(signer.kid()).is_ok(), "finds after logout");
    token.destroy(signer.kid()).expect("destroy");
}

/// If the PIN changes while the server runs and the token logs out, the re-login fails once
/// and is then not retried: a real HSM locks a PIN after a few wrong attempts.
#[test]
fn a_pin_changed_under_a_running_server_is_tried_once_and_not_again() {
    use cryptoki::types::AuthPin;
    const NEW_PIN: &str = "new-pin-8765";

    let Some(_serial) = softhsm() else { return };
    let token = Pkcs11Token::open(&config(PIN_CHANGE_TOKEN, PIN)).expect("opens");
    let signer = generate(&token, Algorithm::ES256);
    let session = direct_session_on(PIN_CHANGE_TOKEN);
    session
        .set_pin(&AuthPin::from(PIN), &AuthPin::from(NEW_PIN))
        .expect("set_pin");
    session.logout().expect("logout");

    let first = signer.sign(b"m").expect_err("old PIN refused").to_string();
    assert!(first.contains("the PIN is incorrect"), "{first}");
    let second = signer.sign(b"m").expect_err("not retried").to_string();
    assert!(second.contains("not retried"), "{second}");
    for message in [first, second] {
        assert!(
            !message.contains(PIN) && !message.contains(NEW_PIN),
            "{message}"
        );
    }
}

#[test]
fn keys_are_listed_found_from_a_new_handle_and_destroyed() {
    let Some(_serial) = softhsm() else { return };
    let token = open_token();
    let signers: Vec<Pkcs11Signer> = Algorithm::ALL
        .into_iter()
        .map(|alg| generate(&token, alg))
        .collect();
    let listed = token.list().expect("list");
    for signer in &signers {
        assert!(
            listed.contains(&(signer.kid().clone(), signer.algorithm())),
            "{} missing from {listed:?}",
            signer.algorithm()
        );
    }

    // A second handle (as after a restart) finds each key with its algorithm — RS256 and
    // PS256 keys are told apart by CKA_ALLOWED_MECHANISMS — and signs verifiably.
    let reopened = open_token();
    for signer in &signers {
        let found = reopened.find(signer.kid()).expect("find");
        assert_eq!(found.algorithm(), signer.algorithm());
        assert_eq!(found.public_jwk(), signer.public_jwk());
        let key = VerifyingKey::from_jwk(&signer.public_jwk(), &Algorithm::ALL).expect("jwk");
        let jwt = portcullis_keys::JwtSigner::new(Arc::new(found), "at+jwt");
        let token = jwt.sign_claims_json(br#"{"sub":"a"}"#).expect("sign");
        let decoded = portcullis_keys::decode(&token).expect("decode");
        assert_eq!(decoded.verify(&key), Ok(()));
    }

    let gone = &signers[0];
    token.destroy(gone.kid()).expect("destroy");
    assert_eq!(token.find(gone.kid()).err(), Some(KeyError::UnknownKid));
    assert_eq!(token.destroy(gone.kid()), Err(KeyError::UnknownKid));
    assert!(!token
        .list()
        .expect("list")
        .iter()
        .any(|(k, _)| k == gone.kid()));
    // A signer whose key was destroyed fails cleanly.
    assert_eq!(gone.sign(b"m"), Err(KeyError::UnknownKid));

    let unknown = Kid::parse("no-such-key").expect("kid");
    assert_eq!(token.find(&unknown).err(), Some(KeyError::UnknownKid));
    for signer in &signers[1..] {
        token.destroy(signer.kid()).expect("destroy");
    }
}

#[test]
fn wrong_pin_missing_module_and_unknown_label_are_clear_errors_without_the_pin() {
    let Some(_serial) = softhsm() else { return };
    let cases = [
        (config(LOCKED_TOKEN, WRONG_PIN), "the PIN is incorrect"),
        (
            Pkcs11Config {
                module_path: PathBuf::from("/nonexistent/libpkcs11.so"),
                ..config(TOKEN, WRONG_PIN)
            },
            "/nonexistent/libpkcs11.so cannot be loaded",
        ),
        (
            config("no-such-token", WRONG_PIN),
            "no initialized PKCS#11 token labelled \"no-such-token\"",
        ),
    ];
    for (config, expected) in cases {
        let error = Pkcs11Token::open(&config).expect_err("must fail");
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains(WRONG_PIN), "PIN leaked: {message}");
        assert!(!format!("{error:?}").contains(WRONG_PIN));
        assert!(!format!("{config:?}").contains(WRONG_PIN));
    }
    let token = open_token();
    let signer = generate(&token, Algorithm::ES256);
    for shown in [format!("{token:?}"), format!("{signer:?}")] {
        assert!(!shown.contains(PIN), "{shown}");
    }
    token.destroy(signer.kid()).expect("destroy");
}

fn signatures_per_second(signer: &Arc<dyn Signer>, threads: usize, per_thread: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let signer = Arc::clone(signer);
            scope.spawn(move || {
                for i in 0..per_thread {
                    signer.sign(&i.to_le_bytes()).expect("sign");
                }
            });
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

/// `cargo test --release -p portcullis-keys --test softhsm -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; run explicitly"]
fn es256_signatures_per_second_softhsm_vs_software() {
    let Some(_serial) = softhsm() else { return };
    let token = open_token();
    let hsm: Arc<dyn Signer> = Arc::new(generate(&token, Algorithm::ES256));
    let (software, _) = SoftwareSigner::generate(Algorithm::ES256).expect("software key");
    let software: Arc<dyn Signer> = Arc::new(software);
    for (name, signer) in [("softhsm2", &hsm), ("software", &software)] {
        signatures_per_second(signer, 1, 200); // warm-up
        for threads in [1, 2, 4] {
            let rate = signatures_per_second(signer, threads, 4000 / threads);
            println!("ES256 {name:9} {threads} thread(s): {rate:8.0} signatures/s");
        }
    }
    token.destroy(hsm.kid()).expect("destroy");
}
