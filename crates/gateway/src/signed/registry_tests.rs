#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::signed::{cbor_from_json, CommandObject};
use portcullis_keys::software::MasterKey;
use portcullis_keys::verify::VerifyingKey;

const NOW: i64 = 1_800_000_000;

fn now() -> UnixTime {
    NOW
}

/// Real parts: an SQLite store in a fresh directory, software custody under a new master key.
async fn registry() -> (OperatorKeys, Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("store.db").display());
    let store = portcullis_store::open(&url).await.unwrap();
    let custody = KeyCustody::Software(Arc::new(MasterKey::generate().unwrap()));
    (
        OperatorKeys::new(Arc::clone(&store), custody, now),
        store,
        dir,
    )
}

fn root_of(keys: &[StoredOperatorKey]) -> VerifyingKey {
    let root = keys.iter().find(|k| k.role == Role::Root).unwrap();
    VerifyingKey::from_jwk(&root.public_jwk, &Algorithm::ALL).unwrap()
}

fn command(seq: u64) -> CommandObject {
    CommandObject {
        dev: "valve-7".into(),
        cid: format!("c-{seq}"),
        name: "valve.open".into(),
        args: cbor_from_json(&serde_json::json!({})).unwrap(),
        iat: NOW,
        exp: NOW + 60,
        seq,
    }
}

#[tokio::test]
async fn a_published_trust_list_lets_a_device_verify_commands_of_the_active_key() {
    let (registry, _, _dir) = registry().await;
    registry.create(Role::Root, Algorithm::ES384).await.unwrap();
    registry
        .create(Role::Commands, Algorithm::ES256)
        .await
        .unwrap();
    registry
        .create(Role::Settings, Algorithm::EdDSA)
        .await
        .unwrap();
    registry
        .create(Role::Updates, Algorithm::ES256)
        .await
        .unwrap();
    let signed = registry.publish_trust_list(86_400).await.unwrap().signed;
    assert_eq!(registry.trust_list().await.unwrap(), Some(signed.clone()));

    let keys = registry.list().await.unwrap();
    let trust = TrustList::open(&signed, &root_of(&keys), NOW, None).unwrap();
    assert_eq!(trust.ver, 1);
    assert_eq!(trust.keys.len(), 3, "the root is pinned, not listed");

    let signer = registry.signer(Role::Commands).await.unwrap();
    let bytes = sign(Kind::Command, &command(1), signer.as_ref()).unwrap();
    assert!(CommandObject::open(&bytes, &trust, "valve-7", NOW, 0).is_ok());
}

#[tokio::test]
async fn a_rotation_publishes_a_higher_list_without_the_retired_key() {
    let (registry, _, _dir) = registry().await;
    registry.create(Role::Root, Algorithm::ES256).await.unwrap();
    let old = registry
        .create(Role::Commands, Algorithm::ES256)
        .await
        .unwrap();
    registry.publish_trust_list(86_400).await.unwrap();
    let old_signer = registry.signer(Role::Commands).await.unwrap();

    let new = registry
        .create(Role::Commands, Algorithm::EdDSA)
        .await
        .unwrap();
    assert_eq!(
        registry
            .signer(Role::Commands)
            .await
            .unwrap()
            .kid()
            .as_str(),
        new.kid,
        "the newest active key signs"
    );
    let retired = registry.retire(&old.kid).await.unwrap();
    assert_eq!(retired.state, OperatorKeyState::Retired);
    let signed = registry.publish_trust_list(86_400).await.unwrap().signed;
    let keys = registry.list().await.unwrap();
    let trust = TrustList::open(&signed, &root_of(&keys), NOW, Some(1)).unwrap();
    assert_eq!(trust.ver, 2);

    let by_old = sign(Kind::Command, &command(1), old_signer.as_ref()).unwrap();
    let refused = CommandObject::open(&by_old, &trust, "valve-7", NOW, 0).unwrap_err();
    assert_eq!(refused.reason(), "unknown_kid");
    let new_signer = registry.signer(Role::Commands).await.unwrap();
    let by_new = sign(Kind::Command, &command(1), new_signer.as_ref()).unwrap();
    assert!(CommandObject::open(&by_new, &trust, "valve-7", NOW, 0).is_ok());
}

#[tokio::test]
async fn what_cannot_be_done_is_refused_with_a_reason() {
    let (registry, _, _dir) = registry().await;
    let err = registry.publish_trust_list(86_400).await.unwrap_err();
    assert!(matches!(err, GatewayError::Unavailable(_)), "{err:?}");
    let err = registry.signer(Role::Commands).await.unwrap_err();
    assert!(matches!(err, GatewayError::Unavailable(_)), "{err:?}");
    let err = registry
        .create(Role::Commands, Algorithm::RS256)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "operator_key_algorithm");
    let root = registry.create(Role::Root, Algorithm::ES256).await.unwrap();
    assert_eq!(
        registry.retire(&root.kid).await.unwrap_err().reason(),
        "last_trust_root"
    );
    assert_eq!(
        registry.retire("no-such-key").await.unwrap_err().reason(),
        "unknown_operator_key"
    );
    for secs in [0, 59, 401 * 86_400] {
        let err = registry.publish_trust_list(secs).await.unwrap_err();
        assert_eq!(err.reason(), "trust_list_validity", "{secs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_all_land_in_the_record() {
    let (registry, _, _dir) = registry().await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            registry.create(Role::Commands, Algorithm::ES256).await
        }));
    }
    let mut kids = Vec::new();
    for task in tasks {
        kids.push(task.await.unwrap().unwrap().kid);
    }
    let listed: Vec<String> = registry
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    for kid in kids {
        assert!(listed.contains(&kid), "{kid} lost");
    }
}

#[tokio::test]
async fn a_sealed_key_moved_to_another_role_does_not_open() {
    let (registry, store, _dir) = registry().await;
    registry.create(Role::Root, Algorithm::ES256).await.unwrap();
    registry
        .create(Role::Commands, Algorithm::ES256)
        .await
        .unwrap();
    // Someone with database access relabels the command key as the trust root (and retires
    // the real root): the AAD names the role, so custody refuses to open it.
    let bytes = store
        .get_setting(OPERATOR_KEYS_SETTING)
        .await
        .unwrap()
        .unwrap();
    let mut record = StoredOperatorKeys::from_bytes(&bytes).unwrap();
    for key in &mut record.keys {
        key.role = match key.role {
            Role::Root => {
                key.state = OperatorKeyState::Retired;
                Role::Root
            }
            _ => Role::Root,
        };
    }
    assert!(store
        .replace_setting(OPERATOR_KEYS_SETTING, &bytes, &record.to_bytes())
        .await
        .unwrap());
    assert!(registry.signer(Role::Root).await.is_err());
    assert!(registry.publish_trust_list(86_400).await.is_err());
}

/// A root generated where Portcullis is not: its public JWK without a kid, as an operator
/// copies it from `portcullis trust root generate`.
fn offline_root(alg: Algorithm) -> (portcullis_keys::software::SoftwareSigner, Jwk) {
    let (signer, _) = portcullis_keys::software::SoftwareSigner::generate(alg).unwrap();
    let mut jwk = signer.public_jwk();
    jwk.kid = None;
    (signer, jwk)
}

#[tokio::test]
async fn an_offline_root_signs_drafts_elsewhere_and_its_uploads_are_verified() {
    let (registry, _, _dir) = registry().await;
    let (root, public) = offline_root(Algorithm::ES384);
    let imported = registry.import_root(&public).await.unwrap();
    assert_eq!(imported.backend, OFFLINE_BACKEND);
    assert_eq!(
        imported.kid,
        root.kid().as_str(),
        "the kid is the thumbprint"
    );
    assert_eq!(
        registry.import_root(&public).await.unwrap().kid,
        imported.kid,
        "importing twice records one key"
    );
    registry
        .create(Role::Commands, Algorithm::ES256)
        .await
        .unwrap();
    // The node cannot sign with a root it does not hold.
    let refused = registry.publish_trust_list(86_400).await.unwrap_err();
    assert!(refused.to_string().contains("offline"), "{refused}");

    let draft = registry.draft_trust_list(86_400).await.unwrap();
    assert_eq!(draft.ver, 1);
    assert_eq!(draft.keys.len(), 1);
    let signed = sign(Kind::Trust, &draft, &root).unwrap();
    let published = registry.upload_trust_list(&signed).await.unwrap();
    assert_eq!(published.list.ver, 1);
    assert_eq!(registry.trust_list().await.unwrap().unwrap(), signed);
    let device_view = TrustList::open(
        &signed,
        &VerifyingKey::from_jwk(&imported.public_jwk, &Algorithm::ALL).unwrap(),
        NOW,
        None,
    )
    .unwrap();
    assert_eq!(device_view.ver, 1);

    // The same list again, a list signed by another key, garbage: refused, nothing changes.
    assert!(registry.upload_trust_list(&signed).await.is_err());
    let (stranger, _) = offline_root(Algorithm::ES384);
    let next = registry.draft_trust_list(86_400).await.unwrap();
    assert_eq!(next.ver, 2);
    let forged = sign(Kind::Trust, &next, &stranger).unwrap();
    assert!(registry.upload_trust_list(&forged).await.is_err());
    assert!(registry.upload_trust_list(b"\xd2\x84").await.is_err());
    assert_eq!(registry.trust_list().await.unwrap().unwrap(), signed);
    // A command key signed as if it were the root: its kid is no active root.
    let commands = registry.signer(Role::Commands).await.unwrap();
    let relabelled = sign(Kind::Trust, &next, commands.as_ref()).unwrap();
    assert!(registry.upload_trust_list(&relabelled).await.is_err());
}

#[tokio::test]
async fn an_offline_root_must_be_a_public_key_of_an_operator_algorithm() {
    let (registry, _, _dir) = registry().await;
    let (_, mut with_wrong_kid) = offline_root(Algorithm::ES256);
    with_wrong_kid.kid = Some("not-the-thumbprint".into());
    assert!(registry.import_root(&with_wrong_kid).await.is_err());
    let (_, mut rsa) = offline_root(Algorithm::ES256);
    rsa.alg = Some("RS256".into());
    assert!(registry.import_root(&rsa).await.is_err());
    assert!(registry.list().await.unwrap().is_empty());
}
