//! Client management: the happy paths and the secret-rotation rules.

use axum::http::{Method, StatusCode};
use portcullis_core::secret::verify_secret;
use serde_json::json;

use crate::admin_api::harness::{Harness, T0};

const PEPPER: &[u8] = &[7u8; 32];

#[tokio::test]
async fn client_is_created_read_updated_and_deleted() {
    let h = Harness::new().await;
    let created = h
        .create(json!({"name": "sensor", "scopes": ["read", "write"], "audiences": ["https://api.test"]}))
        .await;
    let id = created["client_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("c-") && id.len() == 18, "{id}");
    assert_eq!(created["auth_method"], "client_secret_basic");
    assert_eq!(created["scopes"], json!(["read", "write"]));
    assert_eq!(created["token_ttl_secs"], 3600);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["created_at"], T0);
    let secret = created["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43);
    for hidden in [
        "secret_hashes",
        "sealed_secret",
        "jwks",
        "secret_rotation_deadline",
    ] {
        assert!(created.get(hidden).is_none(), "{hidden} must not be shown");
    }
    let stored = h.stored(&id).await.unwrap();
    assert!(verify_secret(
        PEPPER,
        secret.as_bytes(),
        &stored.secret_hashes,
        T0
    ));
    assert!(stored.sealed_secret.is_none());

    let got = h.call(Method::GET, &format!("/clients/{id}"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body.get("client_secret").is_none());
    assert_eq!(got.body["name"], "sensor");

    h.advance(10);
    let patched = h
        .call(
            Method::PATCH,
            &format!("/clients/{id}"),
            Some(json!({"name": "sensor-2", "scopes": ["read"], "enabled": false})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["name"], "sensor-2");
    assert_eq!(patched.body["scopes"], json!(["read"]));
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["updated_at"], T0 + 10);
    assert_eq!(patched.body["created_at"], T0);
    assert_eq!(h.stored(&id).await.unwrap().name, "sensor-2");

    let deleted = h
        .call(Method::DELETE, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    h.call(Method::GET, &format!("/clients/{id}"), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    h.call(Method::DELETE, &format!("/clients/{id}"), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    h.call(
        Method::PATCH,
        &format!("/clients/{id}"),
        Some(json!({"name": "x"})),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND);
    assert!(h.stored(&id).await.is_none());
}

#[tokio::test]
async fn every_change_is_audited_without_secrets() {
    let h = Harness::new().await;
    let created = h.create(json!({"name": "a", "client_id": "audited"})).await;
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    h.call(
        Method::PATCH,
        "/clients/audited",
        Some(json!({"token_ttl_secs": 60})),
    )
    .await;
    let rotated = h
        .call(Method::POST, "/clients/audited/rotate-secret", None)
        .await;
    let new_secret = rotated.body["client_secret"].as_str().unwrap().to_owned();
    h.call(Method::DELETE, "/clients/audited", None).await;

    let page = h.call(Method::GET, "/audit", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let records = page.body["records"].as_array().unwrap();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "client.deleted",
            "client.secret_rotated",
            "client.updated",
            "client.created"
        ]
    );
    for r in records {
        assert_eq!(r["actor"], "admin:admin-cli");
        assert_eq!(r["subject"], "audited");
        assert_eq!(r["outcome"], "success");
    }
    assert_eq!(records[2]["detail"], json!({"changed": ["token_ttl_secs"]}));
    let text = page.body.to_string();
    assert!(!text.contains(&secret) && !text.contains(&new_secret));
}

#[tokio::test]
async fn patch_without_changes_writes_nothing_and_null_clears_a_key_source() {
    let h = Harness::new().await;
    let jwks = crate::admin_api::hostile::public_jwks();
    h.create(json!({"name": "k", "client_id": "keyed", "auth_method": "private_key_jwt", "jwks": jwks, "jwks_uri": "https://k.test/jwks"}))
        .await;
    h.advance(5);
    let same = h
        .call(Method::PATCH, "/clients/keyed", Some(json!({"name": "k"})))
        .await;
    assert_eq!(same.body["updated_at"], T0);
    let cleared = h
        .call(Method::PATCH, "/clients/keyed", Some(json!({"jwks": null})))
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert!(cleared.body.get("jwks").is_none());
    // Clearing the last key source of a private_key_jwt client is refused.
    h.call(
        Method::PATCH,
        "/clients/keyed",
        Some(json!({"jwks_uri": null})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn clients_are_listed_in_pages_of_the_requested_size() {
    let h = Harness::new().await;
    for i in 0..7 {
        h.create(json!({"name": format!("n{i}"), "client_id": format!("client-{i}")}))
            .await;
    }
    let mut seen = Vec::new();
    let mut url = "/clients?limit=3".to_owned();
    let mut sizes = Vec::new();
    loop {
        let page = h.call(Method::GET, &url, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let clients = page.body["clients"].as_array().unwrap();
        sizes.push(clients.len());
        seen.extend(
            clients
                .iter()
                .map(|c| c["client_id"].as_str().unwrap().to_owned()),
        );
        assert!(clients.iter().all(|c| c.get("client_secret").is_none()));
        match page.body["next"].as_str() {
            Some(next) => url = format!("/clients?limit=3&after={next}"),
            None => break,
        }
    }
    // Besides the seven, the harness stores the two clients it mints tokens for.
    assert_eq!(sizes, [3, 3, 3]);
    let mut expected: Vec<String> = vec!["admin-cli".into()];
    expected.extend((0..7).map(|i| format!("client-{i}")));
    expected.push("reader".into());
    assert_eq!(seen, expected);
    // An exact multiple of the page size ends with next = null, not an empty extra page.
    let page = h.call(Method::GET, "/clients?limit=9", None).await;
    assert_eq!(page.body["next"], serde_json::Value::Null);
    let page = h.call(Method::GET, "/clients", None).await;
    assert_eq!(page.body["clients"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn rotated_secret_keeps_the_old_one_valid_until_the_deadline() {
    let h = Harness::new().await;
    let created = h.create(json!({"name": "r", "client_id": "rot"})).await;
    let old = created["client_secret"].as_str().unwrap().to_owned();
    let r = h
        .call(
            Method::POST,
            "/clients/rot/rotate-secret",
            Some(json!({"overlap_secs": 100})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["client_id"], "rot");
    assert_eq!(r.body["old_secret_expires_at"], T0 + 100);
    let new = r.body["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);

    let hashes = h.stored("rot").await.unwrap().secret_hashes;
    assert!(verify_secret(PEPPER, old.as_bytes(), &hashes, T0 + 99));
    assert!(!verify_secret(PEPPER, old.as_bytes(), &hashes, T0 + 100));
    assert!(verify_secret(
        PEPPER,
        new.as_bytes(),
        &hashes,
        T0 + 1_000_000
    ));
    let view = h.call(Method::GET, "/clients/rot", None).await;
    assert_eq!(view.body["secret_rotation_deadline"], T0 + 100);

    // Past the deadline the view no longer mentions it, and the next rotation drops the hash.
    h.advance(200);
    let view = h.call(Method::GET, "/clients/rot", None).await;
    assert!(view.body.get("secret_rotation_deadline").is_none());
    let r2 = h
        .call(
            Method::POST,
            "/clients/rot/rotate-secret",
            Some(json!({"overlap_secs": 0})),
        )
        .await;
    let newest = r2.body["client_secret"].as_str().unwrap().to_owned();
    let hashes = h.stored("rot").await.unwrap().secret_hashes;
    assert_eq!(
        hashes.len(),
        1,
        "overlap 0 ends the previous secret at once"
    );
    assert!(!verify_secret(PEPPER, new.as_bytes(), &hashes, h.now()));
    assert!(verify_secret(PEPPER, newest.as_bytes(), &hashes, h.now()));
}

#[tokio::test]
async fn rotation_overlap_defaults_to_a_day_and_is_capped_at_thirty() {
    let h = Harness::new().await;
    h.create(json!({"name": "r", "client_id": "rot"})).await;
    let r = h
        .call(Method::POST, "/clients/rot/rotate-secret", Some(json!({})))
        .await;
    assert_eq!(r.body["old_secret_expires_at"], T0 + 86_400);
    h.call(
        Method::POST,
        "/clients/rot/rotate-secret",
        Some(json!({"overlap_secs": 30 * 86_400 + 1})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST);
    h.call(Method::POST, "/clients/nope/rotate-secret", None)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn client_secret_jwt_secret_is_sealed_to_its_id_and_reseal_on_rotation() {
    let h = Harness::new().await;
    let created = h
        .create(json!({"name": "j", "client_id": "jwt-c", "auth_method": "client_secret_jwt"}))
        .await;
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let sealed = h.stored("jwt-c").await.unwrap().sealed_secret.unwrap();
    let opened = portcullis_keys::software::open(&h.master, &sealed, b"jwt-c").unwrap();
    assert_eq!(opened.as_slice(), secret.as_bytes());
    assert!(portcullis_keys::software::open(&h.master, &sealed, b"other").is_err());

    let r = h
        .call(
            Method::POST,
            "/clients/jwt-c/rotate-secret",
            Some(json!({"overlap_secs": 3600})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // The sealed copy is replaced, so the old secret stops at once and the answer says so.
    assert_eq!(r.body["old_secret_expires_at"], T0);
    let sealed = h.stored("jwt-c").await.unwrap().sealed_secret.unwrap();
    let opened = portcullis_keys::software::open(&h.master, &sealed, b"jwt-c").unwrap();
    assert_eq!(
        opened.as_slice(),
        r.body["client_secret"].as_str().unwrap().as_bytes()
    );
}

#[tokio::test]
async fn private_key_jwt_client_has_no_secret_to_rotate() {
    let h = Harness::new().await;
    let jwks = crate::admin_api::hostile::public_jwks();
    let created = h
        .create(json!({"name": "pk", "client_id": "pk", "auth_method": "private_key_jwt", "jwks": jwks.clone()}))
        .await;
    assert!(created.get("client_secret").is_none());
    assert_eq!(created["jwks"], jwks);
    assert!(h.stored("pk").await.unwrap().secret_hashes.is_empty());
    h.call(Method::POST, "/clients/pk/rotate-secret", None)
        .await
        .assert_problem(StatusCode::CONFLICT);
    let by_uri = h
        .create(json!({"name": "pk2", "auth_method": "private_key_jwt", "jwks_uri": "https://pk.test/jwks.json"}))
        .await;
    assert_eq!(by_uri["jwks_uri"], "https://pk.test/jwks.json");
}

/// A self-signed P-256 certificate (`CN=self-signed-meter`, valid until 2126), base64 DER.
pub const SELF_SIGNED_CERT: &str = "MIIBjzCCATWgAwIBAgIUcs1eRxAtCFAs2549r1tXBMCBgFgwCgYIKoZIzj0EAwIwHDEaMBgGA1UEAwwRc2VsZi1zaWduZWQtbWV0ZXIwIBcNMjYxMTI2MDcyMTQwWhgPMjEyNjExMDIwNzIxNDBaMBwxGjAYBgNVBAMMEXNlbGYtc2lnbmVkLW1ldGVyMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEK/Qjs/QrQoA1ai20CS9Se3uoYhOVqel9FrcabWx114ogsYp5kSSbXBfJirdZy6nsbd6mM80Grq2FDI42ixUlxaNTMFEwHQYDVR0OBBYEFAF1mvLpv5BU+Cbw11HAVaVxATt/MB8GA1UdIwQYMBaAFAF1mvLpv5BU+Cbw11HAVaVxATt/MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAORiOOP/V0ugd3c+BjTJz48cv/NThHCZPCJ5QFx4E1VIAiAq1RZy5l5yHRq+pTZUa0otglnRupxRwYYEsGDJ9Bwbbw==";

const TLS_FIELDS: [&str; 5] = [
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
];

#[tokio::test]
async fn tls_client_auth_client_has_a_certificate_match_and_no_secret() {
    use portcullis_core::client::TlsClientAuthMatch;
    let h = Harness::new().await;
    let created = h
        .create(json!({"name": "meter", "client_id": "meter-7", "auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=meter-7,O=Plant"}))
        .await;
    assert_eq!(created["auth_method"], "tls_client_auth");
    assert_eq!(created["tls_client_auth_subject_dn"], "CN=meter-7,O=Plant");
    assert!(created.get("client_secret").is_none(), "{created}");
    for f in &TLS_FIELDS[1..] {
        assert!(created.get(*f).is_none(), "{f}");
    }
    let stored = h.stored("meter-7").await.unwrap();
    assert_eq!(
        stored.tls_client_auth,
        Some(TlsClientAuthMatch::SubjectDn("CN=meter-7,O=Plant".into()))
    );
    assert!(stored.secret_hashes.is_empty() && stored.sealed_secret.is_none());
    h.call(Method::POST, "/clients/meter-7/rotate-secret", None)
        .await
        .assert_problem(StatusCode::CONFLICT);

    // The match can be replaced by one of another kind.
    let patched = h
        .call(
            Method::PATCH,
            "/clients/meter-7",
            Some(json!({"tls_client_auth_san_uri": "spiffe://plant/meter-7"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        patched.body["tls_client_auth_san_uri"],
        "spiffe://plant/meter-7"
    );
    assert!(patched.body.get("tls_client_auth_subject_dn").is_none());
    let shown = h.call(Method::GET, "/clients/meter-7", None).await;
    assert_eq!(
        shown.body["tls_client_auth_san_uri"],
        "spiffe://plant/meter-7"
    );
    // Two at once, or a bad value, changes nothing.
    for bad in [
        json!({"tls_client_auth_san_dns": "a.example", "tls_client_auth_san_ip": "10.0.0.1"}),
        json!({"tls_client_auth_san_ip": "10.0.0.256"}),
    ] {
        h.call(Method::PATCH, "/clients/meter-7", Some(bad))
            .await
            .assert_problem(StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        h.stored("meter-7").await.unwrap().tls_client_auth,
        Some(TlsClientAuthMatch::SanUri("spiffe://plant/meter-7".into()))
    );
}

#[tokio::test]
async fn self_signed_client_registers_x5c_certificates_and_has_no_secret() {
    let h = Harness::new().await;
    let jwks = json!({"keys": [{"kty": "EC", "x5c": [SELF_SIGNED_CERT]}]});
    let created = h
        .create(json!({"name": "self", "client_id": "self-1", "auth_method": "self_signed_tls_client_auth", "jwks": jwks.clone()}))
        .await;
    assert_eq!(created["auth_method"], "self_signed_tls_client_auth");
    assert_eq!(created["jwks"], jwks);
    assert!(created.get("client_secret").is_none(), "{created}");
    for f in TLS_FIELDS {
        assert!(created.get(f).is_none(), "{f}");
    }
    let stored = h.stored("self-1").await.unwrap();
    assert!(stored.secret_hashes.is_empty() && stored.tls_client_auth.is_none());
    h.call(Method::POST, "/clients/self-1/rotate-secret", None)
        .await
        .assert_problem(StatusCode::CONFLICT);
    // Replacing the certificates goes through the same check.
    h.call(
        Method::PATCH,
        "/clients/self-1",
        Some(json!({"jwks": {"keys": [{"x5c": ["AAEC"]}]}})),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST);
}
