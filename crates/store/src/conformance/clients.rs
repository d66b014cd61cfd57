//! Client rows: CRUD, pagination and bulk loads.

use portcullis_core::client::{AuthMethod, Client, TlsClientAuthMatch};
use portcullis_core::{ClientId, ScopeSet, SecretHash};

use super::{client_id, sample_client};
use crate::{Store, StoreError};

/// Every optional field set, so a column that is dropped or mangled shows up.
fn fully_populated_client(id: &str) -> Client {
    Client {
        auth_method: AuthMethod::ClientSecretJwt,
        scopes: ScopeSet::parse("a b:c urn:x").expect("valid scopes"),
        audiences: vec!["https://one.example".into(), "urn:plant:line2".into()],
        secret_hashes: vec![
            SecretHash {
                mac: "current".into(),
                expires_at: None,
            },
            SecretHash {
                mac: "previous".into(),
                expires_at: Some(1_700_003_600),
            },
        ],
        sealed_secret: Some(vec![0, 1, 2, 255]),
        jwks: Some(r#"{"keys":[]}"#.into()),
        jwks_uri: Some("https://keys.example/jwks.json".into()),
        token_ttl_secs: 60,
        updated_at: 1_700_000_100,
        ..sample_client(id)
    }
}

/// Insert, get, update, delete and get again; every column survives the round trip.
pub async fn client_crud_round_trips_every_field(store: &dyn Store) {
    let mut client = fully_populated_client("crud-1");
    store.insert_client(&client).await.expect("insert");
    assert_eq!(
        store.get_client(&client.client_id).await.expect("get"),
        Some(client.clone())
    );

    client.name = "renamed".into();
    client.enabled = false;
    client.sealed_secret = None;
    client.secret_hashes.clear();
    store.update_client(&client).await.expect("update");
    assert_eq!(
        store.get_client(&client.client_id).await.expect("get"),
        Some(client.clone())
    );

    assert!(store
        .delete_client(&client.client_id)
        .await
        .expect("delete"));
    assert!(!store
        .delete_client(&client.client_id)
        .await
        .expect("second delete"));
    assert_eq!(
        store.get_client(&client.client_id).await.expect("get"),
        None
    );

    certificate_clients_round_trip(store).await;
}

/// RFC 8705 clients: the certificate match of a `tls_client_auth` client survives insert,
/// bulk insert, update (including a change of kind) and listing; other clients read back none.
pub async fn certificate_clients_round_trip(store: &dyn Store) {
    let tls = |id: &str, m: TlsClientAuthMatch| Client {
        auth_method: AuthMethod::TlsClientAuth,
        secret_hashes: vec![],
        tls_client_auth: Some(m),
        ..sample_client(id)
    };
    let mut single = tls(
        "mtls-1",
        TlsClientAuthMatch::SubjectDn(r"CN=meter\, 7,O=Plant ✓".into()),
    );
    store.insert_client(&single).await.expect("insert");
    assert_eq!(
        store.get_client(&single.client_id).await.expect("get"),
        Some(single.clone())
    );
    single.tls_client_auth = Some(TlsClientAuthMatch::SanIp("fd00::7".into()));
    store.update_client(&single).await.expect("update");
    assert_eq!(
        store.get_client(&single.client_id).await.expect("get"),
        Some(single.clone())
    );

    let bulk = vec![
        tls(
            "mtls-bulk-1",
            TlsClientAuthMatch::SanUri("spiffe://plant/meter\t7".into()),
        ),
        tls(
            "mtls-bulk-2",
            TlsClientAuthMatch::SanEmail("meter@plant.example".into()),
        ),
        Client {
            auth_method: AuthMethod::SelfSignedTlsClientAuth,
            secret_hashes: vec![],
            jwks: Some(r#"{"keys":[{"x5c":["AAEC"]}]}"#.into()),
            ..sample_client("mtls-bulk-3")
        },
    ];
    store.insert_clients(&bulk).await.expect("bulk insert");
    for c in &bulk {
        assert_eq!(
            store.get_client(&c.client_id).await.expect("get").as_ref(),
            Some(c)
        );
    }
    let listed = store
        .list_clients(Some(&client_id("mtls-")), 10)
        .await
        .expect("list");
    let found: Vec<_> = listed
        .iter()
        .filter(|c| c.client_id.as_str().starts_with("mtls-"))
        .collect();
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found
        .iter()
        .all(|c| (c.auth_method == AuthMethod::TlsClientAuth) == c.tls_client_auth.is_some()));
    for c in bulk.iter().chain([&single]) {
        assert!(store.delete_client(&c.client_id).await.expect("delete"));
    }
}

/// A second insert of the same id is a `Conflict`.
pub async fn duplicate_client_conflicts(store: &dyn Store) {
    let client = sample_client("dup-1");
    store.insert_client(&client).await.expect("insert");
    let again = store.insert_client(&client).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

/// Updating an id that was never inserted is `NotFound`.
pub async fn update_of_missing_client_is_not_found(store: &dyn Store) {
    let result = store.update_client(&sample_client("never-inserted")).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

/// Keyset pages come back in id order with nothing skipped or repeated.
pub async fn list_clients_pages_in_id_order(store: &dyn Store) {
    // Inserted out of order, so the order seen can only come from the query.
    let mut wanted: Vec<Client> = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5]
        .iter()
        .map(|i| sample_client(&format!("pg-{i:02}")))
        .collect();
    store.insert_clients(&wanted).await.expect("insert");
    wanted.sort_by(|a, b| a.client_id.cmp(&b.client_id));

    assert!(store
        .list_clients(None, 0)
        .await
        .expect("empty page")
        .is_empty());
    let mut seen: Vec<Client> = Vec::new();
    let mut after: Option<ClientId> = None;
    loop {
        let page = store.list_clients(after.as_ref(), 3).await.expect("page");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.client_id.clone());
        seen.extend(page);
    }
    assert!(
        seen.windows(2).all(|w| w[0].client_id < w[1].client_id),
        "strictly ascending"
    );
    let ours: Vec<Client> = seen
        .into_iter()
        .filter(|c| c.client_id.as_str().starts_with("pg-"))
        .collect();
    assert_eq!(ours, wanted);
}

/// A bulk insert stores every client, or none when one id clashes.
pub async fn bulk_insert_is_all_or_nothing(store: &dyn Store) {
    let clients: Vec<Client> = (0..1000)
        .map(|i| sample_client(&format!("bulk-{i:04}")))
        .collect();
    store.insert_clients(&clients).await.expect("bulk insert");
    let probe = client_id("bulk-0500");
    assert_eq!(
        store.get_client(&probe).await.expect("get"),
        Some(clients[500].clone())
    );

    let clashing = [sample_client("bulk-new"), sample_client("bulk-0001")];
    let result = store.insert_clients(&clashing).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    let partial = store.get_client(&client_id("bulk-new")).await.expect("get");
    assert_eq!(partial, None, "a failed bulk insert leaves nothing behind");
    store.insert_clients(&[]).await.expect("empty bulk insert");
}
