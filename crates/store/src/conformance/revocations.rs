//! Expiring "already seen" state: revoked tokens and assertion jtis.

use super::{client_id, FAR_FUTURE};
use crate::{
    RevokedToken,
    SingleUseScopes::{All, Outside},
    Store,
};

/// The accepting node's clock in the assertion jti cases.
const NOW: i64 = 1_000;

/// Revoking twice is harmless; expired revocations leave the list and the purge removes them.
pub async fn revocation_is_idempotent_listed_until_expiry_and_purged(store: &dyn Store) {
    let now = 2_000;
    let live = RevokedToken {
        jti: "rev-live".into(),
        client_id: client_id("c"),
        expires_at: now + 60,
    };
    let dead = RevokedToken {
        jti: "rev-dead".into(),
        client_id: client_id("c"),
        expires_at: now,
    };
    for token in [&live, &live, &dead] {
        store
            .revoke_token(token)
            .await
            .expect("revoke is idempotent");
    }
    assert!(store.is_token_revoked("rev-live").await.expect("check"));
    assert!(!store.is_token_revoked("rev-never").await.expect("check"));

    let listed = store.list_revoked_tokens(now).await.expect("list");
    assert!(listed.contains(&live));
    assert!(
        !listed.iter().any(|t| t.jti == "rev-dead"),
        "expired at now is not listed"
    );

    assert!(store.purge_expired(now).await.expect("purge") >= 1);
    assert!(!store.is_token_revoked("rev-dead").await.expect("check"));
    assert!(store.is_token_revoked("rev-live").await.expect("check"));
}

/// RFC 7523 §3 item 7: a client may use an assertion jti once until it expires.
pub async fn assertion_jti_replay_is_refused(store: &dyn Store) {
    let a = client_id("jti-client-a");
    let b = client_id("jti-client-b");
    assert!(store
        .record_single_use(a.as_str(), "jti-1", FAR_FUTURE, NOW)
        .await
        .expect("first"));
    assert!(!store
        .record_single_use(a.as_str(), "jti-1", FAR_FUTURE, NOW)
        .await
        .expect("replay"));
    assert!(store
        .record_single_use(b.as_str(), "jti-1", FAR_FUTURE, NOW)
        .await
        .expect("other client"));
    assert!(
        store
            .record_single_use("#dpop", "jti-1", FAR_FUTURE, NOW)
            .await
            .expect("other scope"),
        "a `#` scope is apart from every client's"
    );
    // A batch: one commit, answers in order, an id twice in it new only the first time.
    let spend = |id: &str| crate::SingleUse {
        scope: "#dpop".into(),
        id: id.into(),
        expires_at: FAR_FUTURE,
    };
    assert_eq!(
        store
            .record_single_use_batch(
                &[spend("b-1"), spend("jti-1"), spend("b-2"), spend("b-1")],
                NOW
            )
            .await
            .expect("batch"),
        [true, false, true, false]
    );
    // What an embedded node loads at start: the unexpired ids of `#` scopes only.
    let loaded = store.list_single_use(Outside, NOW).await.expect("list");
    assert!(loaded.iter().all(|u| u.scope.starts_with('#')));
    for id in ["jti-1", "b-1", "b-2"] {
        assert!(loaded.iter().any(|u| u.id == id), "{id} listed");
    }
    // What `store copy` moves: every scope's, clients' assertion ids included.
    let every = store.list_single_use(All, NOW).await.expect("list all");
    assert!(every
        .iter()
        .any(|u| u.scope == a.as_str() && u.id == "jti-1"));
    assert_eq!(
        every.iter().filter(|u| u.scope.starts_with('#')).count(),
        loaded.len()
    );

    // A row already expired (not purged yet) does not block a new assertion with that jti.
    assert!(store
        .record_single_use(a.as_str(), "jti-stale", 10, NOW)
        .await
        .expect("first"));
    assert!(store
        .record_single_use(a.as_str(), "jti-stale", FAR_FUTURE, NOW)
        .await
        .expect("replaces"));
    assert!(!store
        .record_single_use(a.as_str(), "jti-stale", FAR_FUTURE, NOW)
        .await
        .expect("replay"));

    assert!(store
        .record_single_use(a.as_str(), "jti-purged", 20, NOW)
        .await
        .expect("first"));
    // Kept a grace period past expiry, for nodes whose clocks lag.
    assert_eq!(store.purge_expired(30).await.expect("purge"), 0);
    assert!(
        !store
            .record_single_use(a.as_str(), "jti-purged", FAR_FUTURE, 15)
            .await
            .expect("lagging clock"),
        "a node whose clock still calls it unexpired cannot replay it"
    );
    assert!(
        store
            .purge_expired(20 + crate::ASSERTION_JTI_GRACE_SECS)
            .await
            .expect("purge")
            >= 1
    );
    assert!(!store
        .record_single_use(a.as_str(), "jti-1", FAR_FUTURE, NOW)
        .await
        .expect("still live"));
}

/// Ids a node decided in memory and keeps for a restart (`keep_spent`) are listed while
/// unexpired and purged a grace period after.
pub async fn kept_ids_are_listed_until_expiry_and_purged(store: &dyn Store) {
    let kept = |id: &str, expires_at| crate::SingleUse {
        scope: "#dpop".into(),
        id: id.into(),
        expires_at,
    };
    store
        .keep_spent(&[kept("kept-live", FAR_FUTURE), kept("kept-old", 50)], NOW)
        .await
        .expect("keep");
    let listed = |rows: &[crate::SingleUse], id: &str| rows.iter().any(|u| u.id == id);
    let loaded = store.list_single_use(Outside, NOW).await.expect("list");
    assert!(
        listed(&loaded, "kept-live"),
        "an unexpired kept id is listed"
    );
    assert!(!listed(&loaded, "kept-old"), "an expired one is not");
    assert!(listed(
        &store.list_single_use(Outside, 10).await.expect("list"),
        "kept-old"
    ));

    assert!(
        store
            .purge_expired(50 + crate::ASSERTION_JTI_GRACE_SECS)
            .await
            .expect("purge")
            >= 1
    );
    let loaded = store.list_single_use(Outside, 10).await.expect("list");
    assert!(!listed(&loaded, "kept-old"), "purged");
    assert!(listed(&loaded, "kept-live"), "not purged before it expires");
}
