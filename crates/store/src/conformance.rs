//! The behaviour every [`Store`] backend must show, written once against the trait so SQLite
//! and PostgreSQL are held to the same contract (`tests/sqlite_conformance.rs` runs it).
//!
//! Each check uses its own ids and tolerates rows left by the others, so they can run in any
//! order against one store. They panic on failure, like any test.

use portcullis_core::audit::{AuditEvent, AuditRecord, ChainVerifier};
use portcullis_core::client::{AuthMethod, Client};
use portcullis_core::{ClientId, Kid, ScopeSet, SecretHash};

use crate::{RevokedToken, Store, StoreError, StoredKey};

/// Far enough ahead that nothing written with it expires during a test run.
const FAR_FUTURE: i64 = 4_000_000_000;

/// Runs every check below.
pub async fn run_all(store: &dyn Store) {
    store.ping().await.expect("ping");
    client_crud_round_trips_every_field(store).await;
    duplicate_client_conflicts(store).await;
    update_of_missing_client_is_not_found(store).await;
    list_clients_pages_in_id_order(store).await;
    bulk_insert_is_all_or_nothing(store).await;
    setting_put_if_absent_keeps_the_first_value(store).await;
    signing_keys_are_listed_and_change_state(store).await;
    revocation_is_idempotent_listed_until_expiry_and_purged(store).await;
    assertion_jti_replay_is_refused(store).await;
    audit_chain_spans_batches_and_verifies(store).await;
    concurrent_audit_appends_form_one_chain(store).await;
    audit_pages_in_both_directions(store).await;
}

fn client_id(s: &str) -> ClientId {
    ClientId::parse(s).expect("valid test client id")
}

/// A valid secret-based client named after its id.
pub fn sample_client(id: &str) -> Client {
    Client {
        client_id: client_id(id),
        name: format!("client {id}"),
        auth_method: AuthMethod::ClientSecretBasic,
        scopes: ScopeSet::parse("read write").expect("valid scopes"),
        audiences: vec!["https://api.example".into()],
        token_ttl_secs: 3600,
        enabled: true,
        secret_hashes: vec![SecretHash { mac: format!("mac-of-{id}"), expires_at: None }],
        sealed_secret: None,
        jwks: None,
        jwks_uri: None,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

/// Every optional field set, so a column that is dropped or mangled shows up.
fn fully_populated_client(id: &str) -> Client {
    Client {
        auth_method: AuthMethod::ClientSecretJwt,
        scopes: ScopeSet::parse("a b:c urn:x").expect("valid scopes"),
        audiences: vec!["https://one.example".into(), "urn:plant:line2".into()],
        secret_hashes: vec![
            SecretHash { mac: "current".into(), expires_at: None },
            SecretHash { mac: "previous".into(), expires_at: Some(1_700_003_600) },
        ],
        sealed_secret: Some(vec![0, 1, 2, 255]),
        jwks: Some(r#"{"keys":[]}"#.into()),
        jwks_uri: Some("https://keys.example/jwks.json".into()),
        token_ttl_secs: 60,
        updated_at: 1_700_000_100,
        ..sample_client(id)
    }
}

pub async fn client_crud_round_trips_every_field(store: &dyn Store) {
    let mut client = fully_populated_client("crud-1");
    store.insert_client(&client).await.expect("insert");
    assert_eq!(store.get_client(&client.client_id).await.expect("get"), Some(client.clone()));

    client.name = "renamed".into();
    client.enabled = false;
    client.sealed_secret = None;
    client.secret_hashes.clear();
    store.update_client(&client).await.expect("update");
    assert_eq!(store.get_client(&client.client_id).await.expect("get"), Some(client.clone()));

    assert!(store.delete_client(&client.client_id).await.expect("delete"));
    assert!(!store.delete_client(&client.client_id).await.expect("second delete"));
    assert_eq!(store.get_client(&client.client_id).await.expect("get"), None);
}

pub async fn duplicate_client_conflicts(store: &dyn Store) {
    let client = sample_client("dup-1");
    store.insert_client(&client).await.expect("insert");
    let again = store.insert_client(&client).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

pub async fn update_of_missing_client_is_not_found(store: &dyn Store) {
    let result = store.update_client(&sample_client("never-inserted")).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

pub async fn list_clients_pages_in_id_order(store: &dyn Store) {
    // Inserted out of order, so the order seen can only come from the query.
    let mut wanted: Vec<Client> =
        [7, 2, 9, 0, 4, 1, 8, 3, 6, 5].iter().map(|i| sample_client(&format!("pg-{i:02}"))).collect();
    store.insert_clients(&wanted).await.expect("insert");
    wanted.sort_by(|a, b| a.client_id.cmp(&b.client_id));

    assert!(store.list_clients(None, 0).await.expect("empty page").is_empty());
    let mut seen: Vec<Client> = Vec::new();
    let mut after: Option<ClientId> = None;
    loop {
        let page = store.list_clients(after.as_ref(), 3).await.expect("page");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.client_id.clone());
        seen.extend(page);
    }
    assert!(seen.windows(2).all(|w| w[0].client_id < w[1].client_id), "strictly ascending");
    let ours: Vec<Client> =
        seen.into_iter().filter(|c| c.client_id.as_str().starts_with("pg-")).collect();
    assert_eq!(ours, wanted);
}

pub async fn bulk_insert_is_all_or_nothing(store: &dyn Store) {
    let clients: Vec<Client> = (0..1000).map(|i| sample_client(&format!("bulk-{i:04}"))).collect();
    store.insert_clients(&clients).await.expect("bulk insert");
    let probe = client_id("bulk-0500");
    assert_eq!(store.get_client(&probe).await.expect("get"), Some(clients[500].clone()));

    let clashing = [sample_client("bulk-new"), sample_client("bulk-0001")];
    let result = store.insert_clients(&clashing).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    let partial = store.get_client(&client_id("bulk-new")).await.expect("get");
    assert_eq!(partial, None, "a failed bulk insert leaves nothing behind");
    store.insert_clients(&[]).await.expect("empty bulk insert");
}

pub async fn setting_put_if_absent_keeps_the_first_value(store: &dyn Store) {
    assert_eq!(store.get_setting("conf-missing").await.expect("get"), None);
    let first = store.put_setting_if_absent("conf-pepper", b"first\0\xff").await.expect("put");
    assert_eq!(first, b"first\0\xff");
    let second = store.put_setting_if_absent("conf-pepper", b"second").await.expect("put");
    assert_eq!(second, b"first\0\xff", "the first value wins");
    let stored = store.get_setting("conf-pepper").await.expect("get");
    assert_eq!(stored.as_deref(), Some(&b"first\0\xff"[..]));
}

fn stored_key(kid: &str, state: &str, created_at: i64) -> StoredKey {
    StoredKey {
        kid: Kid::parse(kid).expect("valid kid"),
        alg: "ES256".into(),
        backend: "software".into(),
        sealed_private: vec![9, 8, 7, 0],
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        state: state.into(),
        created_at,
        state_changed_at: created_at,
    }
}

pub async fn signing_keys_are_listed_and_change_state(store: &dyn Store) {
    let older = stored_key("key-old", "active", 100);
    let newer = stored_key("key-new", "next", 200);
    store.insert_signing_key(&newer).await.expect("insert");
    store.insert_signing_key(&older).await.expect("insert");
    let dup = store.insert_signing_key(&older).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let ours = |keys: Vec<StoredKey>| -> Vec<StoredKey> {
        keys.into_iter().filter(|k| k.kid.as_str().starts_with("key-")).collect()
    };
    let listed = ours(store.list_signing_keys().await.expect("list"));
    assert_eq!(listed, vec![older.clone(), newer.clone()], "oldest first");

    store.update_signing_key_state(&newer.kid, "active", 300).await.expect("promote");
    store.update_signing_key_state(&older.kid, "retired", 300).await.expect("retire");
    let listed = ours(store.list_signing_keys().await.expect("list"));
    let states: Vec<(&str, i64)> =
        listed.iter().map(|k| (k.state.as_str(), k.state_changed_at)).collect();
    assert_eq!(states, vec![("retired", 300), ("active", 300)]);

    let missing = Kid::parse("key-missing").expect("valid kid");
    let result = store.update_signing_key_state(&missing, "active", 1).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

pub async fn revocation_is_idempotent_listed_until_expiry_and_purged(store: &dyn Store) {
    let now = 2_000;
    let live = RevokedToken { jti: "rev-live".into(), client_id: client_id("c"), expires_at: now + 60 };
    let dead = RevokedToken { jti: "rev-dead".into(), client_id: client_id("c"), expires_at: now };
    for token in [&live, &live, &dead] {
        store.revoke_token(token).await.expect("revoke is idempotent");
    }
    assert!(store.is_token_revoked("rev-live").await.expect("check"));
    assert!(!store.is_token_revoked("rev-never").await.expect("check"));

    let listed = store.list_revoked_tokens(now).await.expect("list");
    assert!(listed.contains(&live));
    assert!(!listed.iter().any(|t| t.jti == "rev-dead"), "expired at now is not listed");

    assert!(store.purge_expired(now).await.expect("purge") >= 1);
    assert!(!store.is_token_revoked("rev-dead").await.expect("check"));
    assert!(store.is_token_revoked("rev-live").await.expect("check"));
}

pub async fn assertion_jti_replay_is_refused(store: &dyn Store) {
    let a = client_id("jti-client-a");
    let b = client_id("jti-client-b");
    assert!(store.record_assertion_jti(&a, "jti-1", FAR_FUTURE).await.expect("first"));
    assert!(!store.record_assertion_jti(&a, "jti-1", FAR_FUTURE).await.expect("replay"));
    assert!(store.record_assertion_jti(&b, "jti-1", FAR_FUTURE).await.expect("other client"));

    // A row already expired (not purged yet) does not block a new assertion with that jti.
    assert!(store.record_assertion_jti(&a, "jti-stale", 10).await.expect("first"));
    assert!(store.record_assertion_jti(&a, "jti-stale", FAR_FUTURE).await.expect("replaces"));
    assert!(!store.record_assertion_jti(&a, "jti-stale", FAR_FUTURE).await.expect("replay"));

    assert!(store.record_assertion_jti(&a, "jti-purged", 20).await.expect("first"));
    assert!(store.purge_expired(30).await.expect("purge") >= 1);
    assert!(!store.record_assertion_jti(&a, "jti-1", FAR_FUTURE).await.expect("still live"));
}

fn audit_event(batch: usize, i: usize) -> AuditEvent {
    AuditEvent {
        at: 1_700_000_000 + i as i64,
        actor: format!("client-{batch}"),
        action: "token.issued".into(),
        subject: format!("jti-{batch}-{i}"),
        outcome: if i % 7 == 0 { "failure" } else { "success" }.into(),
        // Floats, nesting and non-ASCII text: the stored JSON must hash exactly as appended.
        detail: serde_json::json!({
            "scope": "read write", "n": i, "ratio": 0.1 + i as f64 / 3.0,
            "tiny": 1e-7, "nested": {"z": [1, 2.5, null], "a": "ünïcode ✓"},
        }),
    }
}

async fn audit_tail(store: &dyn Store) -> i64 {
    let newest = store.list_audit_desc(i64::MAX, 1).await.expect("tail");
    newest.first().map_or(0, |r| r.seq)
}

/// Walks the whole chain from the first record through [`ChainVerifier`].
async fn assert_chain_verifies(store: &dyn Store) -> u64 {
    let mut verifier = ChainVerifier::default();
    let mut after = 0;
    loop {
        let page = store.list_audit(after, 500).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            verifier.check(record).expect("chain verifies");
        }
    }
    verifier.count
}

fn assert_consecutive(records: &[AuditRecord], first_seq: i64) {
    for (offset, record) in records.iter().enumerate() {
        assert_eq!(record.seq, first_seq + offset as i64);
    }
}

pub async fn audit_chain_spans_batches_and_verifies(store: &dyn Store) {
    assert!(store.append_audit(Vec::new()).await.expect("empty append").is_empty());
    let mut next_seq = audit_tail(store).await + 1;
    for (batch, size) in [1usize, 700, 5].into_iter().enumerate() {
        let events: Vec<AuditEvent> = (0..size).map(|i| audit_event(batch, i)).collect();
        let records = store.append_audit(events.clone()).await.expect("append");
        assert_consecutive(&records, next_seq);
        assert!(records.iter().map(|r| &r.event).eq(events.iter()));
        let stored = store.list_audit(next_seq - 1, size as u32).await.expect("read back");
        assert_eq!(stored, records);
        next_seq += size as i64;
    }
    assert_eq!(assert_chain_verifies(store).await, (next_seq - 1) as u64);
}

pub async fn concurrent_audit_appends_form_one_chain(store: &dyn Store) {
    let before = audit_tail(store).await;
    let appender = |writer: usize| async move {
        for batch in 0..10 {
            let events = (0..50).map(|i| audit_event(100 + writer * 10 + batch, i)).collect();
            store.append_audit(events).await.expect("concurrent append");
        }
    };
    tokio::join!(appender(0), appender(1), appender(2), appender(3));
    assert_eq!(audit_tail(store).await, before + 4 * 10 * 50);
    assert_chain_verifies(store).await;
}

pub async fn audit_pages_in_both_directions(store: &dyn Store) {
    let before = audit_tail(store).await;
    let events: Vec<AuditEvent> = (0..25).map(|i| audit_event(900, i)).collect();
    store.append_audit(events.clone()).await.expect("append");

    let mut forward = Vec::new();
    let mut after = before;
    loop {
        let page = store.list_audit(after, 10).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        forward.extend(page);
    }
    assert_consecutive(&forward, before + 1);
    assert!(forward.iter().map(|r| &r.event).eq(events.iter()));

    let mut backward = Vec::new();
    let mut before_seq = i64::MAX;
    while backward.len() < 25 {
        let page = store.list_audit_desc(before_seq, 10).await.expect("page");
        let Some(last) = page.last() else { break };
        before_seq = last.seq;
        backward.extend(page);
    }
    backward.reverse();
    assert_eq!(backward.len(), 25);
    assert_eq!(backward, forward, "newest first, the same records");
}
