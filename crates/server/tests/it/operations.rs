//! Operations: health, readiness, metrics, discovery, abuse limits, OpenAPI.

use crate::support;

use support::Node;

#[test]
fn health_readiness_and_metrics() {
    let node = Node::start();
    assert_eq!(node.get("/healthz").status, 200);
    let ready = node.get("/readyz");
    assert_eq!(
        (ready.status, ready.json["status"].as_str()),
        (200, Some("ready"))
    );
    let (id, secret) = node.create_client(&[]);
    assert_eq!(node.token(&id, &secret, "").status, 200);
    assert_eq!(node.token(&id, "bad", "").status, 401);
    assert_eq!(node.get("/pki/crl.pem").status, 200);
    let m = node.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    for needle in [
        "portcullis_http_requests_total{endpoint=\"token\",status=\"200\"}",
        "portcullis_http_request_duration_seconds_bucket{endpoint=\"token\",outcome=\"success\"",
        "portcullis_tokens_issued_total",
        "portcullis_client_auth_failures_total",
        // Every surface is counted under its own route, not "other".
        "portcullis_http_requests_total{endpoint=\"crl\",status=\"200\"}",
    ] {
        assert!(
            m.text.contains(needle),
            "metrics lack {needle}:\n{}",
            m.text
        );
    }
}

/// `main` turns transparent huge pages off for the process: under the gateway's load their
/// faults and splits stalled acknowledgements for tens of milliseconds (docs/benchmarks.md).
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let node = Node::start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).expect("status");
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .expect("the kernel reports THP_enabled in /proc/PID/status (Linux 5.0 and later)");
    assert_eq!(thp.trim(), "0", "{status}");
}

/// `portcullis audit list | head -1`: the reader closes the pipe, and the CLI ends quietly
/// with 141 (128 + SIGPIPE, as a shell reports a killed writer) instead of a panic and a
/// backtrace (a README walk saw "failed printing to stdout: Broken pipe").
#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let node = Node::start();
    let mut child = std::process::Command::new(support::BIN)
        .args(["--server", &node.base, "--admin-credential"])
        .arg(node.admin_credential())
        .args(["audit", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn admin_flags_are_accepted_before_or_after_the_subcommand() {
    let node = Node::start();
    let credential = node.admin_credential();
    let credential = credential.to_str().expect("a UTF-8 path");
    let before = [
        "--json",
        "--server",
        node.base.as_str(),
        "--admin-credential",
        credential,
        "client",
        "list",
    ];
    let after = [
        "client",
        "list",
        "--json",
        "--server",
        node.base.as_str(),
        "--admin-credential",
        credential,
    ];
    for args in [before, after] {
        let out = std::process::Command::new(support::BIN)
            .args(args)
            .output()
            .expect("run portcullis");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let page: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert!(page["clients"].is_array(), "{args:?}: {page}");
    }
}

#[test]
fn discovery_lists_every_endpoint_and_capability() {
    let node = Node::start();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let d = node.get(path);
        assert_eq!(d.status, 200, "{path}");
        let j = &d.json;
        assert_eq!(j["issuer"], node.base.as_str());
        for (k, suffix) in [
            ("token_endpoint", "/oauth2/token"),
            ("jwks_uri", "/jwks.json"),
            ("introspection_endpoint", "/oauth2/introspect"),
            ("revocation_endpoint", "/oauth2/revoke"),
        ] {
            assert_eq!(j[k], format!("{}{suffix}", node.base), "{path} {k}");
            let reachable = node.request(
                if k == "jwks_uri" { "GET" } else { "POST" },
                suffix,
                None,
                &[],
                b"",
            );
            assert_ne!(reachable.status, 404, "{k} is served");
        }
        // The SAML 2.0 bearer grant is listed by builds that verify SAML (feature `saml`).
        let mut grants = vec![
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ];
        if cfg!(feature = "saml") {
            grants.push("urn:ietf:params:oauth:grant-type:saml2-bearer");
        }
        assert_eq!(j["grant_types_supported"], serde_json::json!(grants));
        let methods = j["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        for m in [
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
        ] {
            assert!(methods.iter().any(|x| x == m), "{path} lists {m}");
        }
        // Every algorithm the token endpoint accepts for assertions, the client_secret_jwt
        // HMACs included.
        let algs = j["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap();
        for alg in ["ES256", "HS256", "HS384", "HS512"] {
            assert!(algs.iter().any(|a| a == alg), "{path} lists {alg}");
        }
    }
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let node = Node::start_with_env(&[("PORTCULLIS_RATE_LIMIT__PER_CLIENT", "3")]);
    let (id, secret) = node.create_client(&[]);
    let statuses: Vec<u16> = (0..10)
        .map(|_| node.token(&id, &secret, "").status)
        .collect();
    assert!(statuses.iter().take(3).all(|s| *s == 200), "{statuses:?}");
    let limited = node.token(&id, &secret, "");
    assert_eq!(limited.status, 429, "{statuses:?}");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(limited.error(), "slow_down");
    std::thread::sleep(std::time::Duration::from_secs(retry + 1));
    assert_eq!(node.token(&id, &secret, "").status, 200, "the limit lifts");
}

#[test]
fn repeated_authentication_failures_from_one_address_are_slowed_down() {
    let node = Node::start();
    let (id, secret) = node.create_client(&[]);
    let statuses: Vec<u16> = (0..30)
        .map(|_| node.token(&id, "guess", "").status)
        .collect();
    assert!(statuses.contains(&401));
    assert!(
        statuses.contains(&429),
        "a guessing address is throttled: {statuses:?}"
    );
    let a = node.token(&id, &secret, "");
    assert_eq!(
        a.status, 429,
        "even a right secret waits while the address is throttled"
    );
}

#[test]
fn openapi_document_describes_the_admin_api() {
    let node = Node::start();
    let doc = node.get("/admin/v1/openapi.json");
    assert_eq!(doc.status, 200);
    assert!(doc.json["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc.json["paths"].as_object().unwrap();
    for p in [
        "/clients",
        "/clients/{id}",
        "/clients/{id}/rotate-secret",
        "/audit",
        "/audit/verify",
    ] {
        assert!(
            paths.keys().any(|k| k.ends_with(p)),
            "openapi lists {p}: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
}

#[test]
fn bad_configuration_is_a_usage_error() {
    let out = support::serve_to_exit(
        std::path::Path::new("/nonexistent-never"),
        &[("PORTCULLIS_KEYS__ALGORITHM", "none")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keys.algorithm"));
}

#[test]
fn config_file_configures_the_node_and_environment_overrides_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("portcullis.toml");
    std::fs::write(
        &config,
        "[keys]\nalgorithm = \"EdDSA\"\n[rate_limit]\nper_client = 2\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let node = Node::start_with_args(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[("PORTCULLIS_RATE_LIMIT__PER_CLIENT", "1")],
    );
    let (id, secret) = node.create_client(&[]);
    let first = node.token(&id, &secret, "");
    assert_eq!(first.status, 200, "{}", first.text);
    let header = support::jwt_header(first.json["access_token"].as_str().unwrap());
    assert_eq!(header["alg"], "EdDSA", "the file chose the algorithm");
    assert_eq!(
        node.token(&id, &secret, "").status,
        429,
        "the environment (1/s) overrode the file (2/s)"
    );
    assert!(
        node.log().lines().any(|l| l.starts_with('{')),
        "the file chose JSON logs"
    );
}

#[test]
fn a_truncated_or_wrong_master_key_stops_the_node_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = Node::start_in(&dir, &[]);
    assert!(node.stop().success());
    let master = dir.join("master.key");
    let good = std::fs::read_to_string(&master).unwrap();
    let serve = || support::serve_to_exit(&dir, &[]);
    std::fs::write(&master, &good[..10]).unwrap();
    let out = serve();
    assert_eq!(out.status.code(), Some(1), "truncated master key");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
    assert!(
        !stderr.contains(&good[..10]),
        "no key material in the message"
    );

    std::fs::write(&master, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    let out = serve();
    assert_eq!(out.status.code(), Some(1), "a different master key");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signing key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A missing key is not replaced by a new one the stored keys are not sealed under.
    std::fs::remove_file(&master).unwrap();
    let out = serve();
    assert_eq!(out.status.code(), Some(1), "a missing master key");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no new one was made"), "{stderr}");
    assert!(!master.exists(), "no useless key file left behind");

    std::fs::write(&master, &good).unwrap();
    let node = Node::start_in(&dir, &[]);
    assert_eq!(
        node.get("/readyz").status,
        200,
        "the right key brings it back, nothing lost"
    );
}

/// A supervisor may stop a node the moment it reports listening (tests do): the signal
/// handlers are in place before that line, so the stop is always a clean exit (0), never a
/// death by SIGTERM's default action.
#[test]
fn a_node_stopped_as_soon_as_it_listens_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let node = Node::start_in(&tmp.path().join("data"), &[]);
        let status = node.stop();
        assert!(status.success(), "round {round}: {status:?}");
    }
}

#[test]
fn with_the_plain_listener_off_the_node_serves_https_and_discovery_names_https_endpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let node = support::https_only::HttpsOnlyNode::start(&tmp.path().join("data"));
    let base = node.base.clone();
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            &format!("{base}/.well-known/oauth-authorization-server"),
        ])
        .output()
        .unwrap();
    drop(node);
    let discovery: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(discovery["issuer"], base.as_str());
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    assert!(token_endpoint.starts_with("https://"), "{token_endpoint}");
}

#[test]
fn both_listeners_off_is_a_usage_error() {
    let out = std::process::Command::new(support::BIN)
        .args(["serve", "--data-dir", "/nonexistent-never"])
        .env("PORTCULLIS_SERVER__LISTEN", "off")
        .env("PORTCULLIS_SERVER__LISTEN_TLS", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("both off"));
}

/// A SQLite store serves one node: a second node on the same file is refused before it
/// listens (the two would decide revocations and replays each in its own memory), and starts
/// once the first has stopped.
#[test]
fn a_second_node_on_the_same_embedded_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let first = support::Node::start_in(&dir, &[]);
    let second = support::serve_to_exit(&dir, &[]);
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("is in use by another running node"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&second.stdout).contains("listening"));
    // Still the first node's store, working.
    assert_eq!(first.get("/readyz").status, 200);
    assert!(first.stop().success());
    let again = support::Node::start_in(&dir, &[]);
    assert_eq!(again.get("/readyz").status, 200);
}

/// `--adopt-issuer` says what it needs instead of being ignored: a new issuer, and a shared
/// store that keeps one.
#[test]
fn adopt_issuer_without_an_issuer_or_on_sqlite_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let sqlite = support::serve_to_exit_with_args(
        &dir,
        &["--listen-tls", "off", "--adopt-issuer"],
        &[("PORTCULLIS_SERVER__ISSUER", "https://auth.example")],
    );
    assert_eq!(sqlite.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&sqlite.stderr).contains("a SQLite store keeps none"));
    let no_issuer = support::serve_to_exit_with_args(
        &dir,
        &["--listen-tls", "off", "--adopt-issuer"],
        &[(
            "PORTCULLIS_STORE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )],
    );
    assert_eq!(no_issuer.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_issuer.stderr).contains("needs the new issuer"));
    assert!(!dir.exists(), "nothing created");
}

/// `--version` says which optional features the binary has; `--help` what it is.
#[test]
fn version_names_the_features_and_help_says_what_portcullis_is() {
    let version = std::process::Command::new(support::BIN)
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(version.contains("(features: "), "{version}");
    assert_eq!(
        version.contains("features: saml"),
        cfg!(feature = "saml"),
        "{version}"
    );
    let help = std::process::Command::new(support::BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.starts_with("Portcullis: authentication for machines"),
        "{help}"
    );
}
