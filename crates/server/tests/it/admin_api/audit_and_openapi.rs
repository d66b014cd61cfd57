//! Reading and verifying the audit chain, and the OpenAPI document.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::admin_api::harness::Harness;

#[tokio::test]
async fn audit_is_paged_newest_first() {
    let h = Harness::new().await;
    for i in 0..5 {
        h.create(json!({"name": "n", "client_id": format!("a{i}")}))
            .await;
    }
    let first = h.call(Method::GET, "/audit?limit=2", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let seqs = |r: &crate::admin_api::harness::Reply| -> Vec<i64> {
        r.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["seq"].as_i64().unwrap())
            .collect()
    };
    let page1 = seqs(&first);
    assert_eq!(page1.len(), 2);
    assert!(page1[0] > page1[1]);
    let next = first.body["next"].as_i64().unwrap();
    let second = h
        .call(Method::GET, &format!("/audit?limit=2&before={next}"), None)
        .await;
    let page2 = seqs(&second);
    assert!(page2[0] < page1[1]);
    let record = &first.body["records"][0];
    for member in [
        "seq",
        "at",
        "actor",
        "action",
        "subject",
        "outcome",
        "detail",
        "prev_hash",
        "hash",
    ] {
        assert!(record.get(member).is_some(), "{member}");
    }
    let all = h.call(Method::GET, "/audit?limit=1000", None).await;
    assert_eq!(all.body["next"], serde_json::Value::Null);
    h.call(Method::GET, "/audit?limit=0", None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    h.call(Method::GET, "/audit?limit=1001", None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    h.call(Method::GET, "/audit?before=x", None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    h.call(Method::GET, "/audit?sort=asc", None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn intact_chain_verifies_including_just_made_changes() {
    let h = Harness::new().await;
    let empty = h.call(Method::POST, "/audit/verify", None).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(empty.body["ok"], true);
    h.create(json!({"name": "n", "client_id": "v1"})).await;
    h.call(Method::DELETE, "/clients/v1", None).await;
    let r = h.call(Method::POST, "/audit/verify", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["ok"], true);
    assert_eq!(
        r.body["records"].as_u64().unwrap(),
        empty.body["records"].as_u64().unwrap() + 2
    );
    assert!(r.body["last_seq"].as_i64().unwrap() >= 2);
}

#[tokio::test]
async fn edited_record_makes_verification_a_409_naming_it() {
    let h = Harness::new().await;
    h.create(json!({"name": "n", "client_id": "e1"})).await;
    h.create(json!({"name": "n", "client_id": "e2"})).await;
    h.server.audit_trail().flush().await;
    // What an attacker with write access to the file can do: drop the append-only trigger and
    // rewrite history.
    let url = format!("sqlite://{}", h.db_path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET subject = 'forged' WHERE subject = 'e1'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let r = h.call(Method::POST, "/audit/verify", None).await;
    let detail = r.assert_problem(StatusCode::CONFLICT);
    assert!(
        detail.contains("record ") && detail.contains("edited"),
        "{detail}"
    );
    assert_eq!(r.body["type"], "urn:portcullis:problem:audit-chain-broken");
}

#[tokio::test]
async fn openapi_document_is_3_1_public_and_lists_every_path() {
    let h = Harness::new().await;
    let req = Request::builder()
        .uri("/openapi.json")
        .body(Body::empty())
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.unwrap().starts_with("application/json"));
    let doc = r.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/clients", &["post", "get"][..]),
        ("/clients/{id}", &["get", "patch", "delete"][..]),
        ("/clients/{id}/rotate-secret", &["post"][..]),
        ("/audit", &["get"][..]),
        ("/audit/verify", &["post"][..]),
        ("/openapi.json", &["get"][..]),
        ("/keys", &["get"][..]),
        ("/keys/rotate", &["post"][..]),
        ("/keys/{kid}/retire", &["post"][..]),
        ("/devices", &["post", "get"][..]),
        ("/devices/import", &["post"][..]),
        ("/devices/{id}", &["get", "patch"][..]),
        ("/devices/{id}/revoke", &["post"][..]),
        ("/devices/{id}/keys", &["post", "get"][..]),
        ("/devices/{id}/keys/rotate", &["post"][..]),
        ("/devices/{id}/keys/{key_id}", &["delete"][..]),
        ("/certificates", &["get"][..]),
        ("/certificates/{serial}", &["get"][..]),
        ("/certificates/{serial}/revoke", &["post"][..]),
        ("/ca", &["get"][..]),
        ("/trust/keys", &["get", "post"][..]),
        ("/trust/keys/{kid}/retire", &["post"][..]),
        ("/trust/publish", &["post"][..]),
        ("/commands/rules", &["get", "put"][..]),
        ("/trust/keys/import", &["post"][..]),
        ("/trust/draft", &["post"][..]),
        ("/trust/upload", &["post"][..]),
    ] {
        for m in methods {
            assert!(paths[path].get(*m).is_some(), "{m} {path} missing");
        }
    }
    assert_eq!(paths.len(), 27);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert_eq!(paths["/openapi.json"]["get"]["security"], json!([{}]));
    let problem =
        &paths["/clients"]["post"]["responses"]["409"]["content"]["application/problem+json"];
    assert!(problem.is_object());
    for schema in [
        "CreateClientRequest",
        "ClientView",
        "CreatedClient",
        "Problem",
        "AuditPage",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }
    // RFC 8705: the certificate match fields and the two methods are documented.
    for schema in ["CreateClientRequest", "UpdateClientRequest", "ClientView"] {
        let properties = &doc["components"]["schemas"][schema]["properties"];
        for field in [
            "tls_client_auth_subject_dn",
            "tls_client_auth_san_dns",
            "tls_client_auth_san_uri",
            "tls_client_auth_san_ip",
            "tls_client_auth_san_email",
        ] {
            assert!(properties.get(field).is_some(), "{schema}.{field}");
        }
    }
    let text = doc.to_string();
    assert!(text.contains("\"self_signed_tls_client_auth\""));
    assert!(text.contains("\"tls_client_auth\""));
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems_too() {
    let h = Harness::new().await;
    h.call(Method::GET, "/nope", None)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    h.call(Method::PUT, "/clients", None)
        .await
        .assert_problem(StatusCode::METHOD_NOT_ALLOWED);
}
