//! The CLI over HTTPS: it trusts the system's CAs (`SSL_CERT_FILE` included) and those of
//! `--cacert`, so a node serving its own CA's certificate (HTTPS only) can be administered.

use std::process::Output;

use crate::support::https_only::HttpsOnlyNode;
use crate::support::Node;

#[test]
fn the_cli_reaches_an_https_only_node_with_cacert_or_the_system_store_and_says_why_not_without() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // The node's CA, exported over a first start's plain listener.
    let first = Node::start_in(&dir, &[]);
    let exported = first.cli(&["ca", "export", "--chain"]);
    assert!(exported.status.success(), "{exported:?}");
    assert!(first.stop().success());
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, &exported.stdout).unwrap();
    let ca = ca.to_str().unwrap();

    let node = HttpsOnlyNode::start(&dir);
    let ok = |out: &Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    ok(&node.cli(&dir, &["--cacert", ca, "client", "list"], &[]));
    ok(&node.cli(&dir, &["client", "list"], &[("PORTCULLIS_CACERT", ca)]));
    let again = node.cli(&dir, &["ca", "export", "--chain", "--cacert", ca], &[]);
    ok(&again);
    assert_eq!(again.stdout, exported.stdout);
    // The system's store counts: OpenSSL's SSL_CERT_FILE names it here.
    ok(&node.cli(&dir, &["client", "list"], &[("SSL_CERT_FILE", ca)]));

    let refused = node.cli(&dir, &["client", "list"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("UnknownIssuer")
            && stderr.contains("not trusted")
            && stderr.contains("--cacert"),
        "{stderr}"
    );

    let not_pem = tmp.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let bad = node.cli(
        &dir,
        &["--cacert", not_pem.to_str().unwrap(), "client", "list"],
        &[],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no PEM certificate"),
        "{bad:?}"
    );
}
