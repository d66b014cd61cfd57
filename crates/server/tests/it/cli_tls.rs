//! The CLI over HTTPS: it trusts the system's CAs (`SSL_CERT_FILE` included) and those of
//! `--cacert`, so a node serving its own CA's certificate (HTTPS only) can be administered.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::support::{self, Node};

/// A node with the plain listener off, killed when dropped.
struct HttpsOnlyNode {
    child: Child,
    base: String,
}

impl HttpsOnlyNode {
    fn start(data_dir: &Path) -> HttpsOnlyNode {
        let mut child = Command::new(support::BIN)
            .args(["serve", "--listen", "off", "--listen-tls", "127.0.0.1:0"])
            .args(["--listen-mqtts", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let base = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("portcullis listening on ")
                    .map(str::to_owned)
            })
            .unwrap();
        assert!(base.starts_with("https://"), "{base}");
        HttpsOnlyNode { child, base }
    }

    /// Runs `portcullis --server <https> --admin-credential <its> <args>` with `env`.
    fn cli(&self, data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(support::BIN)
            .args(["--server", &self.base, "--admin-credential"])
            .arg(data_dir.join("admin.json"))
            .args(args)
            .env_remove("PORTCULLIS_CACERT")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
}

impl Drop for HttpsOnlyNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
