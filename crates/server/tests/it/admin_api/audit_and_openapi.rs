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
async fn reading_the_trail_needs_audit_read_and_every_read_is_audited() {
    let h = Harness::new().await;
    h.create(json!({"name": "n", "client_id": "watched-client"}))
        .await;
    let admin_only = h.token("admin-cli", Some("portcullis:admin"), 300);
    let auditor = h.token("reader", Some("audit:read"), 300);
    // Administering does not open the trail, on any read path.
    for (method, path) in [(Method::GET, "/audit"), (Method::GET, "/audit?limit=5")] {
        let r = h.call_with(&admin_only, method, path, None).await;
        r.assert_problem(StatusCode::FORBIDDEN);
        assert!(r
            .www_authenticate
            .as_deref()
            .is_some_and(|c| c.contains(r#"scope="audit:read""#)));
    }
    // Auditing does not administer, nor rotate the audit keys.
    h.call_with(&auditor, Method::GET, "/clients", None)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    h.call_with(&auditor, Method::POST, "/audit/keys/rotate", None)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    // Verification reads no contents: both may.
    for token in [&admin_only, &auditor] {
        let r = h
            .call_with(token, Method::POST, "/audit/verify", None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // The auditor reads decrypted records; the read lands in the trail with its range.
    let page = h
        .call_with(&auditor, Method::GET, "/audit?limit=3", None)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let records = page.body["records"].as_array().unwrap();
    let created = records
        .iter()
        .find(|r| r["action"] == "client.created")
        .unwrap();
    assert_eq!(created["subject"], "watched-client");
    assert_eq!(created["encrypted"], true);
    let first_seq = records.iter().map(|r| r["seq"].as_i64().unwrap()).min();
    let last_seq = records.iter().map(|r| r["seq"].as_i64().unwrap()).max();
    let next = h.call(Method::GET, "/audit?limit=1", None).await;
    let read = &next.body["records"][0];
    assert_eq!(read["action"], "audit.read");
    assert_eq!(read["actor"], "admin:reader");
    assert_eq!(read["detail"]["limit"], 3);
    assert_eq!(read["detail"]["first_seq"].as_i64(), first_seq);
    assert_eq!(read["detail"]["last_seq"].as_i64(), last_seq);
    // The audit table holds none of it in the clear.
    h.server.audit_trail().flush().await;
    let url = format!("sqlite://{}", h.db_path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT actor || subject || detail FROM audit_log")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(rows.len() >= 3);
    for (text,) in rows {
        assert!(
            !text.contains("watched-client") && !text.contains("reader"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn audit_data_keys_rotate_and_old_records_stay_readable() {
    let h = Harness::new().await;
    h.create(json!({"name": "n", "client_id": "before-rotation"}))
        .await;
    let keys = h.call(Method::GET, "/audit/keys", None).await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
    let first = keys.body["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(keys.body["keys"][0]["active"], true);
    assert_eq!(keys.body["keys"][0]["backend"], "software");
    assert!(keys.body["keys"][0].get("sealed").is_none());
    let rotated = h.call(Method::POST, "/audit/keys/rotate", None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let listed = rotated.body["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["kid"], first.as_str());
    assert_eq!(listed[0]["active"], false);
    assert_eq!(listed[1]["active"], true);
    h.create(json!({"name": "n", "client_id": "after-rotation"}))
        .await;
    let page = h.call(Method::GET, "/audit?limit=100", None).await;
    let subjects: Vec<&str> = page.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "client.created")
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["after-rotation", "before-rotation"]);
    let rotation = page.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "audit.key_rotated")
        .unwrap();
    assert_eq!(rotation["subject"], listed[1]["kid"]);
    assert_eq!(
        h.call(Method::POST, "/audit/verify", None).await.status,
        StatusCode::OK
    );
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
    // Records are encrypted: the attacker edits the ciphertext of the first client.created.
    sqlx::query(
        "UPDATE audit_log SET detail = substr(detail, 1, length(detail) - 3) || CASE substr(detail, length(detail) - 2, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(detail, length(detail) - 1) \
         WHERE seq = (SELECT MIN(seq) FROM audit_log WHERE action = 'client.created')",
    )
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
        ("/federation", &["get", "put"][..]),
        ("/trust/keys/import", &["post"][..]),
        ("/trust/draft", &["post"][..]),
        ("/trust/upload", &["post"][..]),
        ("/audit/keys", &["get"][..]),
        ("/audit/keys/rotate", &["post"][..]),
        ("/audit/stream", &["get"][..]),
        ("/audit/archive", &["get"][..]),
        ("/audit/archive/purge", &["post"][..]),
        ("/alerts", &["get"][..]),
        ("/alerts/{id}", &["get"][..]),
        ("/alerts/{id}/ack", &["post"][..]),
    ] {
        for m in methods {
            assert!(paths[path].get(*m).is_some(), "{m} {path} missing");
        }
    }
    assert_eq!(paths.len(), 36);
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
