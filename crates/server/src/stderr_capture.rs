//! Keeps a JSON log JSON: with `[log] format = "json"`, whatever is written to the process's
//! standard error by anything but our logger — libxmlsec1's own error lines on every refused
//! SAML signature, a panic message, a C library's warning — becomes a log event instead of a
//! bare line that breaks a log shipper's parser.
//!
//! The logger keeps a duplicate of the original standard error and writes there; file
//! descriptor 2 becomes a pipe whose lines a thread reads and logs. libxmlsec1 offers a switch
//! for its messages (`xmlSecErrorsSetCallback`), but only through FFI, an `unsafe` the crate
//! rules do not allow outside the PKCS#11 boundary; moving file descriptors needs none.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

/// Longest line logged whole; a longer one is cut (at a character boundary) and marked.
const MAX_LINE: usize = 4096;

/// How long dropping the capture waits for the lines already written to be logged.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Where the logger writes (the original standard error) and the capture that ends when
/// dropped.
pub struct StderrCapture {
    original: OwnedFd,
    drained: mpsc::Receiver<()>,
}

impl StderrCapture {
    /// Duplicates standard error for the logger and turns descriptor 2 into a pipe read by a
    /// thread that logs each line. `None` (standard error left as it is) when any step fails:
    /// a log with stray lines is better than no log.
    pub fn start() -> Option<(StderrCapture, File)> {
        let original = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
        let for_logger = File::from(original.try_clone().ok()?);
        let (reader, writer) = std::io::pipe().ok()?;
        nix::unistd::dup2_stderr(&writer).ok()?;
        drop(writer);
        let (done, drained) = mpsc::channel();
        let started = std::thread::Builder::new()
            .name("stderr-capture".into())
            .spawn(move || {
                let mut lines = BufReader::new(reader);
                let mut line = Vec::new();
                while matches!(lines.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    log_line(&line);
                    line.clear();
                }
                let _ = done.send(());
            });
        if started.is_err() {
            // Nobody would read the pipe: give standard error back before anything blocks on it.
            let _ = nix::unistd::dup2_stderr(&original);
            return None;
        }
        Some((StderrCapture { original, drained }, for_logger))
    }
}

impl Drop for StderrCapture {
    /// Gives descriptor 2 back (closing the pipe's last writer) and waits, briefly, for the
    /// lines still in the pipe to be logged — so a fatal error printed as the node stops is
    /// not lost, and what `main` prints after this goes straight out.
    fn drop(&mut self) {
        if nix::unistd::dup2_stderr(&self.original).is_ok() {
            let _ = self.drained.recv_timeout(DRAIN_WAIT);
        }
    }
}

/// Logs one captured line. libxmlsec1's lines (`func=xmlSec...:file=...:error=...`) come with
/// a refusal that is already answered, audited and counted, one per bad request: they go to
/// debug, so an attacker sending bad signatures cannot fill the log at the default level.
/// Anything else is unexpected and stays visible at warn.
fn log_line(raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return;
    }
    let (text, cut) = match text.char_indices().nth(MAX_LINE) {
        Some((at, _)) => (text.get(..at).unwrap_or(text), true),
        None => (text, false),
    };
    if is_libxmlsec(text) {
        tracing::debug!(target: "portcullis::stderr", source = "libxmlsec1", cut, "{text}");
    } else {
        tracing::warn!(target: "portcullis::stderr", cut, "{text}");
    }
}

fn is_libxmlsec(line: &str) -> bool {
    line.starts_with("func=xmlSec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libxmlsec_lines_are_recognised_by_their_shape() {
        assert!(is_libxmlsec(
            "func=xmlSecOpenSSLEvpDigestVerify:file=digests.c:line=250:obj=sha256:subj=unknown:\
             error=12:invalid data:data and digest do not match"
        ));
        assert!(!is_libxmlsec("thread 'main' panicked at src/main.rs:1:1"));
        assert!(!is_libxmlsec(" func=xmlSec indented is not theirs"));
    }
}
