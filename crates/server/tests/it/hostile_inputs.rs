//! A table of hostile requests against the OAuth endpoints and the admin API: each gets its
//! exact error, and the node keeps serving afterwards.

use crate::support;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_keys::jws::JwtSigner;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, Signer};
use serde_json::{json, Value};
use support::{basic_header, Node};

const FORM: &str = "application/x-www-form-urlencoded";
const ASSERTION_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

/// A hostile form request: name, content type, headers, body, expected status and error.
type FormCase<'a> = (
    &'a str,
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    u16,
    &'a str,
);
/// A hostile admin request: name, method, path, authorization, content type, body, status.
type AdminCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Vec<u8>,
    u16,
);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A private_key_jwt client registered with a fresh ES256 key (also used by `detection.rs`).
pub(crate) struct KeyClient {
    pub(crate) id: String,
    signer: Arc<dyn Signer>,
}

impl KeyClient {
    pub(crate) fn register(node: &Node) -> KeyClient {
        let (signer, _pkcs8) = SoftwareSigner::generate(Algorithm::ES256).unwrap();
        let jwks = json!({"keys": [signer.public_jwk()]});
        let file = node.data_dir.with_extension("jwks.json");
        std::fs::write(&file, jwks.to_string()).unwrap();
        let (id, secret) = node.create_client(&[
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            file.to_str().unwrap(),
        ]);
        assert!(secret.is_empty(), "private_key_jwt clients get no secret");
        KeyClient {
            id,
            signer: Arc::new(signer),
        }
    }

    pub(crate) fn claims(&self, node: &Node) -> Value {
        json!({"iss": self.id, "sub": self.id, "aud": format!("{}/oauth2/token", node.base), "iat": now(), "exp": now() + 60, "jti": format!("j-{}", rand_suffix())})
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        JwtSigner::new(self.signer.clone(), "JWT")
            .sign(claims)
            .unwrap()
    }

    pub(crate) fn request(&self, node: &Node, assertion: &str) -> support::Answer {
        node.post_form(
            "/oauth2/token",
            &format!("grant_type=client_credentials&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}"),
            None,
        )
    }
}

fn rand_suffix() -> String {
    URL_SAFE_NO_PAD.encode(portcullis_keys::random::random_array::<9>().unwrap())
}

#[test]
fn hostile_token_requests_get_exact_errors() {
    let node = Node::start();
    let (id, secret) = node.create_client(&["--scope", "read"]);
    let basic = basic_header(&id, &secret);
    let auth = [("Authorization", basic.as_str())];
    let big = vec![b'a'; 70 * 1024];
    let cases: Vec<FormCase> = vec![
        (
            "no grant_type",
            Some(FORM),
            auth.to_vec(),
            b"scope=read".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "repeated parameter",
            Some(FORM),
            auth.to_vec(),
            b"grant_type=client_credentials&scope=read&scope=read".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "wrong content type",
            Some("application/json"),
            auth.to_vec(),
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "no content type",
            None,
            auth.to_vec(),
            b"grant_type=client_credentials".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "oversized body",
            Some(FORM),
            auth.to_vec(),
            big.clone(),
            413,
            "invalid_request",
        ),
        (
            "password grant",
            Some(FORM),
            auth.to_vec(),
            b"grant_type=password&username=a&password=b".to_vec(),
            400,
            "unsupported_grant_type",
        ),
        (
            "implicit grant",
            Some(FORM),
            auth.to_vec(),
            b"response_type=token&client_id=x".to_vec(),
            400,
            "unsupported_response_type",
        ),
        (
            "unknown grant",
            Some(FORM),
            auth.to_vec(),
            b"grant_type=urn:x".to_vec(),
            400,
            "unsupported_grant_type",
        ),
        (
            "unallowed scope",
            Some(FORM),
            auth.to_vec(),
            b"grant_type=client_credentials&scope=admin".to_vec(),
            400,
            "invalid_scope",
        ),
        (
            "bad scope characters",
            Some(FORM),
            auth.to_vec(),
            b"grant_type=client_credentials&scope=%22x%22".to_vec(),
            400,
            "invalid_scope",
        ),
        (
            "unallowed resource",
            Some(FORM),
            auth.to_vec(),
            b"grant_type=client_credentials&resource=https://evil".to_vec(),
            400,
            "invalid_target",
        ),
        (
            "no client authentication",
            Some(FORM),
            vec![],
            b"grant_type=client_credentials".to_vec(),
            401,
            "invalid_client",
        ),
        (
            "unknown client",
            Some(FORM),
            vec![],
            b"grant_type=client_credentials&client_id=nobody&client_secret=x".to_vec(),
            401,
            "invalid_client",
        ),
        (
            "wrong secret",
            Some(FORM),
            vec![],
            format!("grant_type=client_credentials&client_id={id}&client_secret=nope").into_bytes(),
            401,
            "invalid_client",
        ),
        (
            "malformed basic",
            Some(FORM),
            vec![("Authorization", "Basic !!!")],
            b"grant_type=client_credentials".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "basic without colon",
            Some(FORM),
            vec![("Authorization", "Basic YWJj")],
            b"grant_type=client_credentials".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "two authentication methods",
            Some(FORM),
            auth.to_vec(),
            format!("grant_type=client_credentials&client_id={id}&client_secret={secret}")
                .into_bytes(),
            400,
            "invalid_request",
        ),
        (
            "invalid utf-8",
            Some(FORM),
            auth.to_vec(),
            b"grant_type=\xff\xfe".to_vec(),
            400,
            "unsupported_grant_type",
        ),
    ];
    for (name, ct, headers, body, status, error) in cases {
        let a = node.request("POST", "/oauth2/token", ct, &headers, &body);
        assert_eq!((a.status, a.error()), (status, error), "{name}: {}", a.text);
        assert!(
            a.json["error_description"].is_string() || status == 413,
            "{name}: has a description"
        );
        if status == 401 {
            assert!(
                a.header("www-authenticate").is_some(),
                "{name}: 401 carries WWW-Authenticate"
            );
        }
        assert!(!a.text.contains(&secret), "{name}: no secret echoed");
        assert_eq!(
            node.token(&id, &secret, "").status,
            200,
            "still serving after {name}"
        );
    }
}

#[test]
fn hostile_client_assertions_are_refused() {
    let node = Node::start();
    let client = KeyClient::register(&node);
    let good = client.claims(&node);
    let ok = client.request(&node, &client.sign(&good));
    assert_eq!(ok.status, 200, "a good assertion works: {}", ok.text);
    let replay = client.request(&node, &client.sign(&good));
    assert_eq!(
        (replay.status, replay.error()),
        (401, "invalid_client"),
        "replayed jti"
    );

    let public_jwk = client.signer.public_jwk();
    let kid = client.signer.kid().as_str().to_owned();
    let none_token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": kid})),
        b64(&client.claims(&node))
    );
    // The classic confusion: HS256 keyed with the public key the verifier knows.
    let hs_input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "kid": kid})),
        b64(&client.claims(&node))
    );
    let hs_key = serde_json::to_vec(&public_jwk).unwrap();
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &hs_key),
        hs_input.as_bytes(),
    );
    let hs_token = format!("{hs_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    let mut expired = client.claims(&node);
    expired["exp"] = json!(now() - 3600);
    expired["iat"] = json!(now() - 3700);
    let mut wrong_aud = client.claims(&node);
    wrong_aud["aud"] = json!("https://someone-else/token");
    let mut too_long = client.claims(&node);
    too_long["exp"] = json!(now() + 86_400);
    let mut other_sub = client.claims(&node);
    other_sub["sub"] = json!("portcullis-admin");
    let (stranger, _) = SoftwareSigner::generate(Algorithm::ES256).unwrap();
    let unknown_kid_token = {
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": "ES256", "kid": "no-such-kid"})),
            b64(&client.claims(&node))
        );
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(stranger.sign(input.as_bytes()).unwrap())
        )
    };
    let foreign_key = JwtSigner::new(Arc::new(stranger), "JWT")
        .sign(&client.claims(&node))
        .unwrap();

    let cases = [
        ("alg none", none_token),
        ("HS256 keyed with the public key", hs_token),
        ("expired", client.sign(&expired)),
        ("wrong aud", client.sign(&wrong_aud)),
        ("exp too far ahead", client.sign(&too_long)),
        ("sub names another client", client.sign(&other_sub)),
        ("unknown kid", unknown_kid_token),
        ("signed by a foreign key", foreign_key),
        (
            "truncated",
            client.sign(&client.claims(&node))[..40].to_owned(),
        ),
        ("not a JWT", "hello".into()),
    ];
    for (name, assertion) in cases {
        let a = client.request(&node, &assertion);
        assert_eq!(
            (a.status, a.error()),
            (401, "invalid_client"),
            "{name}: {}",
            a.text
        );
    }
    let fresh = client.request(&node, &client.sign(&client.claims(&node)));
    assert_eq!(fresh.status, 200, "still serving: {}", fresh.text);
}

#[test]
fn hostile_introspection_and_revocation_requests() {
    let node = Node::start();
    let (id, secret) = node.create_client(&[]);
    let auth = basic_header(&id, &secret);
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let cases: Vec<FormCase> = vec![
            (
                "missing token",
                Some(FORM),
                vec![("Authorization", auth.as_str())],
                b"token_type_hint=access_token".to_vec(),
                400,
                "invalid_request",
            ),
            (
                "repeated token",
                Some(FORM),
                vec![("Authorization", auth.as_str())],
                b"token=a&token=b".to_vec(),
                400,
                "invalid_request",
            ),
            (
                "wrong content type",
                Some("text/plain"),
                vec![("Authorization", auth.as_str())],
                b"token=a".to_vec(),
                400,
                "invalid_request",
            ),
            (
                "oversized",
                Some(FORM),
                vec![("Authorization", auth.as_str())],
                vec![b'x'; 70 * 1024],
                413,
                "invalid_request",
            ),
            (
                "unauthenticated",
                Some(FORM),
                vec![],
                b"token=a".to_vec(),
                401,
                "invalid_client",
            ),
        ];
        for (name, ct, headers, body, status, error) in cases {
            let a = node.request("POST", path, ct, &headers, &body);
            assert_eq!(
                (a.status, a.error()),
                (status, error),
                "{path} {name}: {}",
                a.text
            );
        }
    }
    assert_eq!(node.token(&id, &secret, "").status, 200, "still serving");
}

#[test]
fn hostile_admin_requests_get_problem_details() {
    let node = Node::start();
    let token = node.admin_token();
    let bearer = format!("Bearer {token}");
    let (plain_id, plain_secret) = node.create_client(&["--scope", "read"]);
    let plain_token = node.token(&plain_id, &plain_secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let plain_bearer = format!("Bearer {plain_token}");
    let json_ct = Some("application/json");
    let cases: Vec<AdminCase> = vec![
        ("no token", "GET", "/admin/v1/clients", None, None, vec![], 401),
        ("garbage token", "GET", "/admin/v1/clients", Some("Bearer abc.def.ghi"), None, vec![], 401),
        ("token without admin scope", "GET", "/admin/v1/clients", Some(plain_bearer.as_str()), None, vec![], 403),
        ("malformed JSON", "POST", "/admin/v1/clients", Some(bearer.as_str()), json_ct, b"{\"name\":".to_vec(), 400),
        ("unknown field", "POST", "/admin/v1/clients", Some(bearer.as_str()), json_ct, br#"{"name":"x","colour":"red"}"#.to_vec(), 400),
        ("wrong type", "POST", "/admin/v1/clients", Some(bearer.as_str()), json_ct, br#"{"name":42}"#.to_vec(), 400),
        ("wrong content type", "POST", "/admin/v1/clients", Some(bearer.as_str()), Some("text/plain"), br#"{"name":"x"}"#.to_vec(), 400),
        ("oversized", "POST", "/admin/v1/clients", Some(bearer.as_str()), json_ct, vec![b' '; 70 * 1024], 413),
        ("bad scope", "POST", "/admin/v1/clients", Some(bearer.as_str()), json_ct, br#"{"name":"x","scopes":["a b"]}"#.to_vec(), 400),
        ("zero lifetime", "POST", "/admin/v1/clients", Some(bearer.as_str()), json_ct, br#"{"name":"x","token_ttl_secs":0}"#.to_vec(), 400),
        ("pkjwt without keys", "POST", "/admin/v1/clients", Some(bearer.as_str()), json_ct, br#"{"name":"x","auth_method":"private_key_jwt"}"#.to_vec(), 400),
        ("private key in jwks", "POST", "/admin/v1/clients", Some(bearer.as_str()), json_ct, br#"{"name":"x","auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}}"#.to_vec(), 400),
        ("duplicate id", "POST", "/admin/v1/clients", Some(bearer.as_str()), json_ct, br#"{"name":"x","client_id":"portcullis-admin"}"#.to_vec(), 409),
        ("unknown client", "GET", "/admin/v1/clients/nobody", Some(bearer.as_str()), None, vec![], 404),
    ];
    for (name, method, path, authz, ct, body, status) in cases {
        let headers: Vec<(&str, &str)> = authz.iter().map(|a| ("Authorization", *a)).collect();
        let a = node.request(method, path, ct, &headers, &body);
        assert_eq!(a.status, status, "{name}: {}", a.text);
        assert!(
            a.header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            "{name}: problem+json, got {:?}",
            a.header("content-type")
        );
        assert_eq!(a.json["status"], status, "{name}");
        assert!(a.json["title"].is_string(), "{name}");
    }
    let a = node.request(
        "GET",
        "/admin/v1/clients",
        None,
        &[("Authorization", bearer.as_str())],
        b"",
    );
    assert_eq!(a.status, 200, "still serving");
}
