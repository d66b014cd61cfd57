//! Settings written once, and signing keys through their rotation states.

use portcullis_core::rotation::StoredKeyState;
use portcullis_core::Kid;

use crate::{Store, StoreError, StoredKey};

/// The first value stored under a name wins; later puts return it.
pub async fn setting_put_if_absent_keeps_the_first_value(store: &dyn Store) {
    assert_eq!(store.get_setting("conf-missing").await.expect("get"), None);
    let first = store
        .put_setting_if_absent("conf-pepper", b"first\0\xff")
        .await
        .expect("put");
    assert_eq!(first, b"first\0\xff");
    let second = store
        .put_setting_if_absent("conf-pepper", b"second")
        .await
        .expect("put");
    assert_eq!(second, b"first\0\xff", "the first value wins");
    let stored = store.get_setting("conf-pepper").await.expect("get");
    assert_eq!(stored.as_deref(), Some(&b"first\0\xff"[..]));
    // Replacing is a compare-and-swap: a stale expectation changes nothing.
    assert!(!store
        .replace_setting("conf-pepper", b"stale", b"third")
        .await
        .expect("replace"));
    assert!(store
        .replace_setting("conf-pepper", b"first\0\xff", b"third")
        .await
        .expect("replace"));
    assert_eq!(
        store
            .get_setting("conf-pepper")
            .await
            .expect("get")
            .as_deref(),
        Some(&b"third"[..])
    );
    assert!(!store
        .replace_setting("conf-nothing", b"", b"x")
        .await
        .expect("replace"));
}

fn stored_key(kid: &str, state: StoredKeyState, created_at: i64) -> StoredKey {
    StoredKey {
        kid: Kid::parse(kid).expect("valid kid"),
        alg: "ES256".into(),
        backend: "software".into(),
        sealed_private: vec![9, 8, 7, 0],
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        state,
        created_at,
        state_changed_at: created_at,
    }
}

/// Keys list oldest first, move between states, and unknown kids are `NotFound`.
pub async fn signing_keys_are_listed_and_change_state(store: &dyn Store) {
    let older = stored_key("key-old", StoredKeyState::Active, 100);
    let newer = stored_key("key-new", StoredKeyState::Next, 200);
    store.insert_signing_key(&newer).await.expect("insert");
    store.insert_signing_key(&older).await.expect("insert");
    let dup = store.insert_signing_key(&older).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");

    let ours = |keys: Vec<StoredKey>| -> Vec<StoredKey> {
        keys.into_iter()
            .filter(|k| k.kid.as_str().starts_with("key-"))
            .collect()
    };
    let listed = ours(store.list_signing_keys().await.expect("list"));
    assert_eq!(listed, vec![older.clone(), newer.clone()], "oldest first");

    store
        .update_signing_key_state(&newer.kid, StoredKeyState::Active, 300)
        .await
        .expect("promote");
    store
        .update_signing_key_state(&older.kid, StoredKeyState::Retired, 300)
        .await
        .expect("retire");
    let listed = ours(store.list_signing_keys().await.expect("list"));
    let states: Vec<(StoredKeyState, i64)> = listed
        .iter()
        .map(|k| (k.state, k.state_changed_at))
        .collect();
    assert_eq!(
        states,
        vec![
            (StoredKeyState::Retired, 300),
            (StoredKeyState::Active, 300)
        ]
    );

    let missing = Kid::parse("key-missing").expect("valid kid");
    let result = store
        .update_signing_key_state(&missing, StoredKeyState::Active, 1)
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");

    store
        .update_signing_key_sealed(&newer.kid, b"resealed")
        .await
        .expect("reseal");
    let resealed = ours(store.list_signing_keys().await.expect("list"));
    let newer_now = resealed
        .iter()
        .find(|k| k.kid == newer.kid)
        .expect("still there");
    assert_eq!(newer_now.sealed_private, b"resealed");
    let result = store.update_signing_key_sealed(&missing, b"x").await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

/// Every setting is listed, in byte order of its name, page after page: what `store copy`
/// moves, whatever the names (binary values kept as they are).
pub async fn settings_are_listed_by_name_in_pages(store: &dyn Store) {
    let written: [(&str, &[u8]); 4] = [
        ("conf-list/B", b"upper"),
        ("conf-list/a", b"\0\xff binary"),
        ("conf-list/a.b", b""),
        ("conf-list/device.dev-ü", b"{\"x\":1}"),
    ];
    for (name, value) in written {
        store.put_setting_if_absent(name, value).await.expect("put");
    }
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_settings(after.as_deref(), 2)
            .await
            .expect("list");
        assert!(page.len() <= 2, "a page holds at most its limit");
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        all.extend(page);
    }
    assert!(
        all.windows(2)
            .all(|w| w[0].0.as_bytes() < w[1].0.as_bytes()),
        "names in byte order, each once: {:?}",
        all.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let mine: Vec<(String, Vec<u8>)> = all
        .into_iter()
        .filter(|(name, _)| name.starts_with("conf-list/"))
        .collect();
    let mut expected: Vec<(String, Vec<u8>)> = written
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
        .collect();
    expected.sort();
    assert_eq!(mine, expected);
    // A page starts strictly after its cursor.
    let page = store
        .list_settings(Some("conf-list/a"), 1)
        .await
        .expect("after");
    assert_eq!(page, vec![("conf-list/a.b".to_owned(), Vec::new())]);
    assert!(store
        .list_settings(Some("\u{10ffff}"), 10)
        .await
        .expect("past the end")
        .is_empty());
}
