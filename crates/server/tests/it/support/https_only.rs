//! A node serving HTTPS only (`--listen off`), for what must work without the plain listener.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use super::BIN;

/// A node with the plain listener off, killed when dropped.
pub struct HttpsOnlyNode {
    child: Child,
    /// `https://127.0.0.1:PORT`, as the node announced it.
    pub base: String,
}

impl HttpsOnlyNode {
    pub fn start(data_dir: &Path) -> HttpsOnlyNode {
        let mut child = Command::new(BIN)
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
    pub fn cli(&self, data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(BIN)
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
