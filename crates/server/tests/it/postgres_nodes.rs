//! Two stateless nodes on one PostgreSQL database: a client registered through one node gets
//! tokens from the other, both publish the same JWKS, and each introspects the other's tokens.
//! Each run uses its own fresh database, dropped at the end.

use crate::pki;
use crate::support;

use std::process::Command;

use support::Node;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn psql(sql: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// What every node of one deployment shares: the database, the master key and the issuer.
fn cluster_env<'a>(
    url: &'a str,
    master: &'a std::path::Path,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("PORTCULLIS_STORE__URL", url),
        (
            "PORTCULLIS_KEYS__MASTER_KEY_FILE",
            master.to_str().expect("utf-8 path"),
        ),
        ("PORTCULLIS_SERVER__ISSUER", "https://auth.cluster.example"),
    ];
    env.extend_from_slice(extra);
    env
}

/// A fresh database, dropped when the guard goes.
struct Database(String);

impl Database {
    fn create_named(test: &str) -> Option<Database> {
        let name = format!("portcullis_t_{test}_{}", std::process::id());
        psql(&format!("DROP DATABASE IF EXISTS {name}"));
        if !psql(&format!("CREATE DATABASE {name}")) {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL at 127.0.0.1:5432 is required in CI (scripts/test.sh starts it)"
            );
            eprintln!("skipping: no PostgreSQL at 127.0.0.1:5432");
            return None;
        }
        Some(Database(name))
    }
    fn url(&self) -> String {
        format!("{SERVER}/{}", self.0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

/// Two nodes of one deployment on a fresh database; `None` (the test skips) without
/// PostgreSQL outside CI. Fields drop in order: the nodes stop, then the directory and the
/// database go.
pub(crate) struct TwoNodes {
    pub(crate) a: Node,
    pub(crate) b: Node,
    tmp: tempfile::TempDir,
    db: Database,
}

impl TwoNodes {
    /// The name of the nodes' database (for `pg_dump`).
    pub(crate) fn database(&self) -> String {
        self.db.0.clone()
    }
}

pub(crate) fn two_nodes(test: &str, extra: &[(&str, &str)]) -> Option<TwoNodes> {
    let db = Database::create_named(test)?;
    let tmp = tempfile::tempdir().unwrap();
    let master = tmp.path().join("master.key");
    let url = db.url();
    let env = cluster_env(&url, &master, extra);
    let a = Node::start_in(&tmp.path().join("a"), &env);
    let b = Node::start_in(&tmp.path().join("b"), &env);
    Some(TwoNodes { a, b, tmp, db })
}

#[test]
fn two_nodes_share_one_postgres_database() {
    let Some(nodes) = two_nodes("nodes", &[]) else {
        return;
    };
    let (a, b, tmp) = (&nodes.a, &nodes.b, &nodes.tmp);
    assert!(
        !tmp.path().join("b/admin.json").exists(),
        "bootstrap happens once per database, not per node"
    );

    let (id, secret) = a.create_client(&["--scope", "read"]);
    let from_b = b.token(&id, &secret, "");
    assert_eq!(
        from_b.status, 200,
        "a client registered on A gets tokens from B: {}",
        from_b.text
    );
    assert_eq!(
        a.get("/jwks.json").json,
        b.get("/jwks.json").json,
        "every node publishes the same keys"
    );

    let token_a = a.token(&id, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token_b = from_b.json["access_token"].as_str().unwrap().to_owned();
    for (node, token) in [(&a, &token_b), (&b, &token_a)] {
        let i = node.post_form(
            "/oauth2/introspect",
            &format!("token={token}"),
            Some((&id, &secret)),
        );
        assert_eq!(i.json["active"], true, "{}", i.text);
    }
    assert_eq!(a.get("/readyz").status, 200);
    // B's admin API, with the credential A's first start wrote: one chain for both nodes.
    audit_verify(b, &tmp.path().join("a/admin.json"));
    // B's log names its node id (the leases table's holder) and not PostgreSQL's notices
    // about the migrations table it found.
    let log = b.log();
    assert!(log.contains("node_id"), "{log}");
    assert!(!log.contains("already exists, skipping"), "{log}");
}

/// `portcullis audit verify --json` through `node`'s admin API with the credential file
/// another node wrote (it must verify); the report.
fn audit_verify(node: &Node, credential: &std::path::Path) -> serde_json::Value {
    let verify = Command::new(support::BIN)
        .args(["audit", "verify", "--json", "--server", &node.base])
        .arg("--admin-credential")
        .arg(credential)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "the audit chain verifies: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    serde_json::from_slice(&verify.stdout).unwrap()
}

#[test]
fn revocation_and_disable_on_one_node_are_honoured_by_another_within_500_ms() {
    let Some(nodes) = two_nodes("coherence", &[]) else {
        return;
    };
    let (a, c) = (&nodes.a, &nodes.b);
    let (id, secret) = a.create_client(&["--id", "meter-7"]);
    let token = a.token(&id, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let active_at_c = || {
        c.post_form(
            "/oauth2/introspect",
            &format!("token={token}"),
            Some((&id, &secret)),
        )
        .json["active"]
            == true
    };
    assert!(
        active_at_c(),
        "C knows the token, and has the client cached now"
    );
    assert_eq!(c.token(&id, &secret, "").status, 200);

    let revoked = a.post_form(
        "/oauth2/revoke",
        &format!("token={token}"),
        Some((&id, &secret)),
    );
    assert_eq!(revoked.status, 200);
    honoured_within_500_ms("a token revocation", || !active_at_c());

    a.cli_json(&["client", "update", "meter-7", "--disable"]);
    honoured_within_500_ms("a client disable", || {
        c.token(&id, &secret, "").status != 200
    });

    // Lose every node's notification connection: they reconnect, flush and keep honouring
    // changes (notifications sent while a node was away are covered by its reload).
    let (id2, secret2) = a.create_client(&["--id", "meter-8"]);
    let token2 = a.token(&id2, &secret2, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let active2_at_c = || {
        c.post_form(
            "/oauth2/introspect",
            &format!("token={token2}"),
            Some((&id2, &secret2)),
        )
        .json["active"]
            == true
    };
    assert!(active2_at_c());
    assert!(psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND query ILIKE 'LISTEN%'",
        nodes.db.0
    )));
    assert_eq!(
        a.post_form(
            "/oauth2/revoke",
            &format!("token={token2}"),
            Some((&id2, &secret2))
        )
        .status,
        200
    );
    within(
        std::time::Duration::from_secs(5),
        "after a lost feed, a revocation on A honoured by C",
        || !active2_at_c(),
    );
    assert!(
        c.log().contains("change feed lost its connection"),
        "the feed really was cut: {}",
        c.log()
    );
}

#[test]
fn one_node_builds_the_crl_and_every_node_serves_the_same_one() {
    let Some(nodes) = two_nodes("crl", &[]) else {
        return;
    };
    let (a, b, tmp) = (&nodes.a, &nodes.b, &nodes.tmp);
    let first = a.get("/pki/crl.pem");
    assert_eq!(first.status, 200);
    assert_eq!(
        first.text,
        b.get("/pki/crl.pem").text,
        "one signed CRL for the whole cluster"
    );

    // Each node issued its own HTTPS certificate at start; revoke one through A.
    let serial = a.cli_json(&["cert", "list"])["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!pki::crl_lists(tmp.path(), &first.text, &serial));
    a.cli_json(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    within(
        std::time::Duration::from_secs(5),
        "a revocation on A listed in the one CRL both nodes serve",
        || {
            let (from_a, from_b) = (a.get("/pki/crl.pem").text, b.get("/pki/crl.pem").text);
            from_a == from_b && pki::crl_lists(tmp.path(), &from_b, &serial)
        },
    );
}

/// An archived embedded chain moves too: the target continues from the same anchor, so the
/// copy reproduces every live record's hash and `audit verify` proves it there from the
/// anchor's checkpoint.
#[test]
fn store_copy_moves_an_archived_chain_that_still_verifies_from_its_anchor() {
    let Some(db) = Database::create_named("copy_archived") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let master = tmp.path().join("master.key");
    let archive_dir = tmp.path().join("archive");
    let issuer = [
        ("PORTCULLIS_SERVER__ISSUER", "https://auth.example"),
        ("PORTCULLIS_KEYS__MASTER_KEY_FILE", master.to_str().unwrap()),
    ];
    let mut env = issuer.to_vec();
    env.extend([
        ("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "1"),
        ("PORTCULLIS_AUDIT__ARCHIVE_AFTER_DAYS", "0.0000347"),
        ("PORTCULLIS_AUDIT__ARCHIVE_INTERVAL_SECS", "1"),
        (
            "PORTCULLIS_AUDIT__ARCHIVE_DIR",
            archive_dir.to_str().unwrap(),
        ),
    ]);
    let dir = tmp.path().join("embedded");
    let node = Node::start_in(&dir, &env);
    let (id, secret) = node.create_client(&["--id", "archived-pump", "--scope", "read"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let through = loop {
        assert_eq!(node.token(&id, &secret, "").status, 200);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let verified = node.cli_json(&["audit", "verify"]);
        let through = verified["archived_through"].as_i64().unwrap_or_default();
        if through > 0 {
            break through;
        }
        assert!(std::time::Instant::now() < deadline, "nothing archived");
    };
    assert!(node.stop().success());

    let sqlite = format!("sqlite:{}", dir.join("portcullis.db").display());
    let copy = Command::new(support::BIN)
        .args(["store", "copy", "--from", &sqlite, "--to", &db.url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&copy.stdout);
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    assert!(stdout.contains("chain identical"), "{stdout}");
    assert!(
        stdout.contains("continuing from the archive anchor"),
        "{stdout}"
    );

    let url = db.url();
    let mut env = issuer.to_vec();
    env.push(("PORTCULLIS_STORE__URL", url.as_str()));
    let pg = Node::start_in(&tmp.path().join("pg"), &env);
    let report = audit_verify(&pg, &dir.join("admin.json"));
    assert_eq!(report["ok"], true, "{report}");
    let copied_through = report["archived_through"].as_i64().unwrap();
    // The target's own archiving is off; the source's last anchor is where it starts.
    assert!(copied_through >= through, "{report}");
    assert_eq!(report["anchor_verified"], true, "{report}");
    assert_eq!(pg.token(&id, &secret, "").status, 200);
}

/// An SQLite store keeps no issuer (its node's is its listen address here): `store copy
/// --issuer` records the old node's in the target, so a node on the copy without `[server]
/// issuer` takes it and tokens issued before the copy stay active; without `--issuer` the copy
/// says what to do.
#[test]
fn store_copy_from_sqlite_records_the_issuer_given_so_old_tokens_stay_active() {
    let Some(db) = Database::create_named("copy_issuer") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let master = tmp.path().join("master.key");
    let key = ("PORTCULLIS_KEYS__MASTER_KEY_FILE", master.to_str().unwrap());
    let dir = tmp.path().join("embedded");
    let node = Node::start_in(&dir, &[key]);
    let old_issuer = node.base.clone();
    let (id, secret) = node.create_client(&[]);
    let token = node.token(&id, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(node.stop().success());
    let sqlite = format!("sqlite:{}", dir.join("portcullis.db").display());
    let copy = |to: &str, extra: &[&str]| {
        Command::new(support::BIN)
            .args(["store", "copy", "--from", &sqlite, "--to", to])
            .args(extra)
            .output()
            .unwrap()
    };

    let plain = copy(
        &format!("sqlite:{}", tmp.path().join("plain.db").display()),
        &[],
    );
    assert!(plain.status.success(), "{plain:?}");
    let note = String::from_utf8_lossy(&plain.stderr);
    assert!(
        note.contains("the source keeps no issuer") && note.contains("[server] issuer"),
        "{note}"
    );
    let into_sqlite = copy(
        &format!("sqlite:{}", tmp.path().join("other.db").display()),
        &["--issuer", &old_issuer],
    );
    assert_eq!(into_sqlite.status.code(), Some(2), "{into_sqlite:?}");

    let copied = copy(&db.url(), &["--issuer", &old_issuer]);
    assert!(copied.status.success(), "{copied:?}");
    let stdout = String::from_utf8_lossy(&copied.stdout);
    assert!(
        stdout.contains(&format!("recorded the issuer {old_issuer}")),
        "{stdout}"
    );

    let url = db.url();
    let pg = Node::start_in(
        &tmp.path().join("pg"),
        &[("PORTCULLIS_STORE__URL", url.as_str()), key],
    );
    assert_eq!(
        pg.get("/.well-known/oauth-authorization-server").json["issuer"],
        old_issuer.as_str()
    );
    let introspected = pg.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&id, &secret)),
    );
    assert_eq!(introspected.json["active"], true, "{}", introspected.text);
}

#[test]
fn store_copy_moves_an_embedded_deployment_to_postgres_with_its_audit_chain() {
    let Some(db) = Database::create_named("copy") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let master = tmp.path().join("master.key");
    let issuer = [
        ("PORTCULLIS_SERVER__ISSUER", "https://auth.example"),
        ("PORTCULLIS_KEYS__MASTER_KEY_FILE", master.to_str().unwrap()),
    ];
    let dir = tmp.path().join("embedded");
    let node = Node::start_in(&dir, &issuer);
    let (id, secret) = node.create_client(&["--id", "pump-3", "--scope", "read"]);
    let kept = node.token(&id, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = node.token(&id, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        node.post_form(
            "/oauth2/revoke",
            &format!("token={revoked}"),
            Some((&id, &secret))
        )
        .status,
        200
    );
    // A DPoP proof spent before the move stays spent after it (its `jti` moves).
    let dpop_key = support::dpop::DpopKey::new(portcullis_keys::Algorithm::ES256);
    let proof = dpop_key.proof("POST", "https://auth.example/oauth2/token", None, None);
    let auth = support::basic_header(&id, &secret);
    let with_proof = |node: &Node| {
        node.request(
            "POST",
            "/oauth2/token",
            Some("application/x-www-form-urlencoded"),
            &[("Authorization", auth.as_str()), ("DPoP", proof.as_str())],
            b"grant_type=client_credentials",
        )
    };
    let bound = with_proof(&node);
    assert_eq!(bound.status, 200, "{}", bound.text);
    // The device PKI moves too: the CA, a registered device, issued and revoked certificates.
    node.cli_json(&["device", "register", "--id", "moved-1"]);
    // And the gateway's state: a device key (sealed) and the device's message counter.
    let key = node.cli_json(&["device", "key", "create", "moved-1"]);
    let (kid, key): (String, [u8; 32]) = {
        use base64::Engine as _;
        (
            key["key_id"].as_str().unwrap().to_owned(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key["key"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap(),
        )
    };
    let moved = portcullis_core::device::DeviceId::parse("moved-1").unwrap();
    let sent_before = portcullis_gateway::cose::seal_mac0(
        &moved,
        &kid,
        &key,
        7,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        b"before the move",
    );
    let post = support::gateway::post_cose;
    assert_eq!(post(&node, &sent_before), 202);
    let ca_before = node.cli(&["ca", "export", "--chain"]).stdout;
    let certs = node.cli_json(&["cert", "list"]);
    let server_cert = certs["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    node.cli_json(&["cert", "revoke", &server_cert, "--reason", "superseded"]);
    // Settings no fixed list of names held (a user found `federation show` empty after a
    // copy): the federation trust set and the command rules; and the commands themselves,
    // whose numbers the device checks (it refuses one at or below the last it executed).
    let trust = tmp.path().join("trust.toml");
    std::fs::write(
        &trust,
        r#"
[[issuers]]
name = "edge-cluster"
issuer = "https://k8s.edge.example"
jwks_uri = "https://k8s.edge.example/openid/v1/jwks"
audience = "portcullis-edge"

[[policies]]
name = "edge-pump"
issuer = "edge-cluster"
client_id = "pump-3"
scopes = ["read"]
claims = { sub = "system:serviceaccount:edge:pump" }
"#,
    )
    .unwrap();
    let trust_before =
        node.cli_json(&["federation", "set", trust.to_str().unwrap()])["admin"].clone();
    assert_eq!(
        trust_before["issuers"][0]["name"], "edge-cluster",
        "{trust_before}"
    );
    node.cli_json(&["trust", "key", "create", "--role", "commands"]);
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[[rules]]
name = "movers"
principals = { clients = ["portcullis-admin"] }
commands = ["valve.open"]
"#,
    )
    .unwrap();
    let rules_before =
        node.cli_json(&["command", "rules", "set", "--file", rules.to_str().unwrap()]);
    for expected_seq in [1, 2] {
        let sent = node.cli_json(&["command", "send", "moved-1", "valve.open"]);
        assert_eq!(sent["state"], "queued", "{sent}");
        assert_eq!(sent["seq"], expected_seq, "{sent}");
    }
    let commands_before = node.cli_json(&["command", "list", "--device", "moved-1"]);
    let records = node.cli_json(&["audit", "verify"])["records"]
        .as_u64()
        .unwrap();
    assert!(node.stop().success());

    let sqlite = format!("sqlite:{}", dir.join("portcullis.db").display());
    // A password file the commands read (this server trusts everyone, so the password is
    // only carried; store/src/lib.rs tests it against a server that demands one). An
    // unreadable file is a usage error naming the file.
    let password_file = tmp.path().join("db-password");
    let missing = Command::new(support::BIN)
        .args(["migrate", "--store-url", &db.url(), "--password-file"])
        .arg(&password_file)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("db-password"));
    std::fs::write(&password_file, "not-echoed-pw\n").unwrap();
    let migrate = Command::new(support::BIN)
        .args(["migrate", "--store-url", &db.url(), "--password-file"])
        .arg(&password_file)
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let copy = Command::new(support::BIN)
        .args(["store", "copy", "--from", &sqlite, "--to", &db.url()])
        .arg("--to-password-file")
        .arg(&password_file)
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let copied = String::from_utf8_lossy(&copy.stdout);
    assert!(copied.contains("chain identical"), "{copied}");
    assert!(
        copied.contains("2 commands, 1 device command sequences"),
        "{copied}"
    );
    assert!(copied.contains("1 spent single-use ids"), "{copied}");
    let again = Command::new(support::BIN)
        .args(["store", "copy", "--from", &sqlite, "--to", &db.url()])
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "copying into a non-empty store is refused"
    );

    let url = db.url();
    let mut env = issuer.to_vec();
    env.push(("PORTCULLIS_STORE__URL", url.as_str()));
    let pg = Node::start_in(&tmp.path().join("pg"), &env);
    let report = audit_verify(&pg, &dir.join("admin.json"));
    assert!(
        report["records"].as_u64().unwrap() >= records,
        "the copied chain verifies: {report}"
    );
    assert_eq!(
        pg.token(&id, &secret, "").status,
        200,
        "the client's secret still works (pepper copied)"
    );
    let introspect = |t: &str| {
        pg.post_form(
            "/oauth2/introspect",
            &format!("token={t}"),
            Some((&id, &secret)),
        )
        .json["active"]
            .clone()
    };
    assert_eq!(
        introspect(&kept),
        true,
        "tokens signed before the move still verify (keys copied)"
    );
    assert_eq!(introspect(&revoked), false, "revocations moved too");
    let replay = with_proof(&pg);
    assert_eq!(
        (replay.status, replay.error()),
        (400, "invalid_dpop_proof"),
        "a proof spent before the move is refused after it: {}",
        replay.text
    );
    assert_eq!(
        post(&pg, &sent_before),
        409,
        "the device's counter moved: its old message is still a replay"
    );
    let sent_after = portcullis_gateway::cose::seal_mac0(
        &moved,
        &kid,
        &key,
        8,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
        b"after the move",
    );
    assert_eq!(
        post(&pg, &sent_after),
        202,
        "the device key moved (still sealed)"
    );
    let api = |args: &[&str]| {
        let out = Command::new(support::BIN)
            .args(args)
            .args(["--json", "--server", &pg.base, "--admin-credential"])
            .arg(dir.join("admin.json"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let ca_after = Command::new(support::BIN)
        .args([
            "ca",
            "export",
            "--chain",
            "--server",
            &pg.base,
            "--admin-credential",
        ])
        .arg(dir.join("admin.json"))
        .output()
        .unwrap()
        .stdout;
    assert_eq!(ca_after, ca_before, "the same CA after the move");
    let device: serde_json::Value =
        serde_json::from_slice(&api(&["device", "show", "moved-1"])).unwrap();
    assert_eq!(device["enrollment_pending"], true, "{device}");
    let cert: serde_json::Value =
        serde_json::from_slice(&api(&["cert", "show", &server_cert])).unwrap();
    assert_eq!(cert["status"], "revoked", "{cert}");
    assert_eq!(cert["revocation_reason"], "superseded", "{cert}");
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_slice(&api(args)).unwrap() };
    assert_eq!(
        json(&["federation", "show"])["admin"],
        trust_before,
        "the federation trust set moved"
    );
    assert_eq!(
        json(&["command", "rules", "show"]),
        rules_before,
        "the command rules moved"
    );
    let commands_after = json(&["command", "list", "--device", "moved-1"]);
    let fields = |listing: &serde_json::Value| -> Vec<(String, String, i64, i64)> {
        listing["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["command_id"].as_str().unwrap().to_owned(),
                    c["state"].as_str().unwrap().to_owned(),
                    c["seq"].as_i64().unwrap(),
                    c["queued_at"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(fields(&commands_after), fields(&commands_before));
    assert_eq!(fields(&commands_after).len(), 2, "{commands_after}");
    let next = json(&["command", "send", "moved-1", "valve.open"]);
    assert_eq!(
        next["seq"], 3,
        "the device's number moved: the next command is above the ones it has: {next}"
    );
}

/// Polls `done` every 10 ms until it holds; fails naming `what` if that takes longer than
/// `limit`. Prints how long it took (the measurement the issue asks for).
fn within(limit: std::time::Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    eprintln!("{what}: after {:?}", started.elapsed());
}

/// [`within`] 500 ms: the issue's bound for a change on one node to reach another.
fn honoured_within_500_ms(what: &str, done: impl FnMut() -> bool) {
    within(
        std::time::Duration::from_millis(500),
        &format!("{what} on A honoured by C"),
        done,
    );
}

/// Devices are cached on every node (the admin API and EST read them through the cache), yet a
/// registration, suspension, resumption or bulk import on A is honoured by C within 500 ms.
#[test]
fn device_changes_on_one_node_are_honoured_by_another_within_500_ms() {
    let Some(nodes) = two_nodes("devices", &[]) else {
        return;
    };
    let (a, c, tmp) = (&nodes.a, &nodes.b, &nodes.tmp);
    let token = a.admin_token();
    let bearer = format!("Bearer {token}");
    let admin = |node: &Node, method: &str, path: &str, body: &str| {
        node.request(
            method,
            &format!("/admin/v1{path}"),
            Some("application/json"),
            &[("Authorization", &bearer)],
            body.as_bytes(),
        )
    };

    // C remembers that meter-9 does not exist; A registers it.
    assert_eq!(admin(c, "GET", "/devices/meter-9", "").status, 404);
    let secret = pki::register(a, "meter-9");
    honoured_within_500_ms("a registration", || {
        admin(c, "GET", "/devices/meter-9", "").status == 200
    });

    // C caches the registered device through EST too (a wrong secret is refused).
    let dev = pki::Device::new(&tmp.path().join("meter-9"), "meter-9");
    pki::provision_ca(a, &dev);
    let csr = dev.csr("first", "ec", "/CN=meter-9");
    let enroll_at_c = |secret: &str| {
        dev.est(c, "simpleenroll", &csr, Some(("meter-9", secret)), None)
            .0
    };
    assert_eq!(enroll_at_c("not-the-secret"), 401);

    // A suspends it: C refuses the right secret (403), and never issues meanwhile.
    let suspended = admin(a, "PATCH", "/devices/meter-9", r#"{"state":"suspended"}"#);
    assert_eq!(suspended.status, 200, "{}", suspended.text);
    honoured_within_500_ms("a suspension", || match enroll_at_c(&secret) {
        403 => true,
        200 => panic!("C enrolled a device suspended on A"),
        _ => false,
    });

    // A resumes it with a new secret: C accepts that one (its cached old secret is gone).
    let resumed = admin(a, "PATCH", "/devices/meter-9", r#"{"state":"registered"}"#);
    let new_secret = resumed.json["enrollment_secret"]
        .as_str()
        .unwrap_or_else(|| panic!("a new secret: {}", resumed.text))
        .to_owned();
    honoured_within_500_ms("a resumption", || enroll_at_c(&new_secret) == 200);
    assert_eq!(
        admin(a, "GET", "/devices/meter-9", "").json["state"],
        "enrolled",
        "A sees the enrollment C made"
    );

    // A bulk import (one `device:*` announcement) reaches ids C had cached as unknown.
    assert_eq!(admin(c, "GET", "/devices/imported-1", "").status, 404);
    let imported = admin(
        a,
        "POST",
        "/devices/import",
        r#"{"devices":[{"device_id":"imported-1"},{"device_id":"imported-2"}]}"#,
    );
    assert_eq!(imported.status, 200, "{}", imported.text);
    honoured_within_500_ms("a bulk import", || {
        admin(c, "GET", "/devices/imported-1", "").status == 200
    });
}

/// A key made by `key rotate` is pre-published: every node's JWKS lists it before any token
/// is signed with it, whichever node made it (the insert is announced like a state change).
#[test]
fn a_pre_published_key_is_in_every_nodes_jwks_at_once() {
    let Some(nodes) = two_nodes("prepublish", &[]) else {
        return;
    };
    let (a, b) = (&nodes.a, &nodes.b);
    let kids = |n: &Node| -> Vec<String> {
        n.get("/jwks.json").json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let next = support::pending_kid(&a.cli_json(&["key", "rotate"]));
    assert!(kids(a).contains(&next), "published where it was made");
    honoured_within_500_ms("a pre-published key", || kids(b).contains(&next));
    assert_eq!(kids(a), kids(b), "one JWKS on every node");
}

#[test]
fn one_node_carries_out_a_due_rotation_and_every_node_follows() {
    let Some(nodes) = two_nodes("rotation", &[("PORTCULLIS_KEYS__PREPUBLISH_SECS", "1")]) else {
        return;
    };
    let (a, b) = (&nodes.a, &nodes.b);
    let (id, secret) = a.create_client(&[]);
    let kid = |n: &Node| {
        support::jwt_header(
            n.token(&id, &secret, "").json["access_token"]
                .as_str()
                .unwrap(),
        )["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let keys = a.cli_json(&["key", "rotate"]);
    let next = support::pending_kid(&keys);
    let started = std::time::Instant::now();
    while kid(a) != next || kid(b) != next {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "both nodes sign with the new key"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        a.get("/jwks.json").json,
        b.get("/jwks.json").json,
        "one JWKS on every node"
    );
    let audit = a.cli_json(&["audit", "list", "--limit", "500"]);
    let activated = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "key.activated" && r["subject"] == next.as_str())
        .count();
    assert_eq!(
        activated, 1,
        "exactly one node carried out the due activation"
    );
}

#[test]
fn one_node_takes_the_audit_checkpoints_and_never_two_for_one_head() {
    let Some(nodes) = two_nodes(
        "checkpoints",
        &[("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")],
    ) else {
        return;
    };
    let (a, b, tmp) = (&nodes.a, &nodes.b, &nodes.tmp);
    let (id, secret) = a.create_client(&[]);
    // Something new on the chain from both nodes, again and again, for several intervals:
    // each tick finds a checkpoint due, on whichever node looks.
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(5) {
        assert_eq!(a.token(&id, &secret, "").status, 200);
        assert_eq!(b.token(&id, &secret, "").status, 200);
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let audit = a.cli_json(&["audit", "list", "--limit", "1000"]);
    let covered: Vec<i64> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "audit.checkpoint")
        .map(|r| r["detail"]["seq"].as_i64().unwrap())
        .collect();
    assert!(covered.len() >= 3, "a checkpoint every second: {covered:?}");
    let mut distinct = covered.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        covered.len(),
        "no head is checkpointed twice: {covered:?}"
    );
    let taken_by = |n: &Node| n.log().matches("audit checkpoint").count();
    let (by_a, by_b) = (taken_by(a), taken_by(b));
    assert!(
        (by_a == 0) != (by_b == 0),
        "one node holds the audit-checkpoint lease: A logged {by_a}, B {by_b}"
    );
    // The other node verifies them: the key table (and master key) is shared.
    let report = audit_verify(b, &tmp.path().join("a/admin.json"));
    assert!(
        report["checkpoints_verified"].as_u64().unwrap() >= covered.len() as u64,
        "{report}"
    );
    assert_eq!(report["checkpoints_unverifiable"], 0, "{report}");
}

#[test]
fn nodes_without_an_issuer_use_the_one_the_store_keeps_and_a_different_one_is_refused() {
    let Some(db) = Database::create_named("issuer") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let master = tmp.path().join("master.key");
    let url = db.url();
    let shared = [
        ("PORTCULLIS_STORE__URL", url.as_str()),
        (
            "PORTCULLIS_KEYS__MASTER_KEY_FILE",
            master.to_str().expect("utf-8 path"),
        ),
    ];
    // No [server] issuer: each node's default would be its own http://<address>.
    let a = Node::start_in(&tmp.path().join("a"), &shared);
    let b = Node::start_in(&tmp.path().join("b"), &shared);
    assert_ne!(a.base, b.base);
    let issuer_of = |node: &Node| {
        node.get("/.well-known/oauth-authorization-server").json["issuer"]
            .as_str()
            .expect("issuer")
            .to_owned()
    };
    assert_eq!(issuer_of(&a), a.base, "the first node records its issuer");
    assert_eq!(
        issuer_of(&b),
        a.base,
        "the second node uses the recorded one"
    );
    let (id, secret) = a.create_client(&[]);
    let token = a.token(&id, &secret, "").json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let seen_by_b = b.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&id, &secret)),
    );
    assert_eq!(seen_by_b.json["active"], true, "{}", seen_by_b.json);

    // A node configured with another issuer refuses to start, naming both.
    let mut refused = std::process::Command::new(support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--listen-tls", "off"])
        .arg("--data-dir")
        .arg(tmp.path().join("c"))
        .envs(shared)
        .env("PORTCULLIS_SERVER__ISSUER", "https://elsewhere.example")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn portcullis");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = refused.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = refused.kill();
            panic!("a node with a conflicting issuer kept running");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("https://elsewhere.example")
            && stderr.contains(&a.base)
            && stderr.contains("--adopt-issuer"),
        "{stderr}"
    );
    // Moving the cluster to a new issuer is said explicitly.
    let mut adopting = shared.to_vec();
    adopting.push(("PORTCULLIS_SERVER__ISSUER", "https://elsewhere.example"));
    let c = Node::start_with_args(&tmp.path().join("c"), &["--adopt-issuer"], &adopting);
    assert_eq!(issuer_of(&c), "https://elsewhere.example");
    let d = Node::start_in(&tmp.path().join("d"), &shared);
    assert_eq!(
        issuer_of(&d),
        "https://elsewhere.example",
        "later nodes follow"
    );
}

/// The gateway's replay guarantee across nodes: a device message accepted by one node is a
/// replay on the other, also when both get it at the same instant; a suspension made on one
/// node is honoured by the other within 500 ms.
#[test]
fn a_device_message_is_accepted_once_across_two_nodes() {
    use portcullis_core::device::DeviceId;
    use portcullis_gateway::cose::seal_mac0;

    let Some(nodes) = two_nodes("gateway", &[]) else {
        return;
    };
    let (a, b) = (&nodes.a, &nodes.b);
    let (kid, key) = crate::support::gateway::device_with_key(a, "meter-pg", &[]);
    let id = DeviceId::parse("meter-pg").unwrap();
    let now = crate::support::gateway::now;
    let post = support::gateway::post_cose;
    let first = seal_mac0(&id, &kid, &key, 1, now(), b"one");
    assert_eq!(post(a, &first), 202);
    assert_eq!(post(b, &first), 409, "replayed to the other node");

    // The same messages to both nodes at once: each is accepted exactly once.
    let messages: Vec<Vec<u8>> = (2..=41)
        .map(|c| seal_mac0(&id, &kid, &key, c, now(), b"race"))
        .collect();
    let accepted = std::thread::scope(|scope| {
        let runs: Vec<_> = [a, b]
            .into_iter()
            .map(|node| {
                let messages = &messages;
                scope.spawn(move || messages.iter().filter(|m| post(node, m) == 202).count())
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).sum::<usize>()
    });
    assert!(
        accepted <= messages.len(),
        "{accepted} acceptances for {} messages",
        messages.len()
    );
    assert!(accepted >= 1);
    let stored: usize = [a, b]
        .iter()
        .map(|node| {
            let out = if node.admin_credential().exists() {
                node.cli(&["telemetry", "tail", "--device", "meter-pg", "--json"])
            } else {
                Command::new(env!("CARGO_BIN_EXE_portcullis"))
                    .args([
                        "telemetry",
                        "tail",
                        "--device",
                        "meter-pg",
                        "--json",
                        "--server",
                        &node.base,
                        "--admin-credential",
                    ])
                    .arg(a.admin_credential())
                    .output()
                    .unwrap()
            };
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).lines().count()
        })
        .sum();
    assert_eq!(
        stored,
        accepted + 1,
        "each accepted message stored once, on the node that took it"
    );

    // Suspended through A: B refuses the device within 500 ms.
    a.cli_json(&["device", "suspend", "meter-pg"]);
    let start = std::time::Instant::now();
    let mut counter = 100;
    loop {
        counter += 1;
        let status = post(b, &seal_mac0(&id, &kid, &key, counter, now(), b"x"));
        if status == 403 {
            break;
        }
        assert_eq!(status, 202);
        assert!(
            start.elapsed() < std::time::Duration::from_millis(500),
            "B still admits the suspended device"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A node stopping on SIGTERM hands its leases over at once, even while a long request (an
/// audit stream) keeps its connections draining for the whole grace period: before, the
/// `crl` lease stayed with it for those 10 s, as long as with a killed node.
#[test]
fn a_stopping_node_hands_its_leases_over_before_its_connections_drain() {
    let Some(nodes) = two_nodes("handover", &[]) else {
        return;
    };
    let TwoNodes {
        a,
        b,
        tmp: _tmp,
        db,
    } = nodes;
    let crl_holder = || {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &db.0, "-tAc"])
            .arg("SELECT holder FROM leases WHERE name = 'crl'")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // A started first and claimed the CRL lease at once.
    let held_by_a = crl_holder();
    assert!(!held_by_a.is_empty());
    let token = a.admin_token_with_scope("audit:read");
    let mut stream = Command::new("curl")
        .args(["-sN", "-o", "/dev/null", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}/admin/v1/audit/stream", a.base))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let stopping = std::thread::spawn(move || a.stop());
    within(
        std::time::Duration::from_secs(4),
        "B holding the CRL lease while A drains its audit stream",
        || {
            let holder = crl_holder();
            !holder.is_empty() && holder != held_by_a
        },
    );
    assert!(stopping.join().unwrap().success());
    let _ = stream.kill();
    let _ = stream.wait();
    assert_eq!(b.get("/readyz").status, 200);
}
