//! Anchors: the chain's head written somewhere the log's files are not, so that a cut
//! tail or a whole rewritten log can be told from the real one.
//!
//! Every anchor is the same line of text, `weft-audit anchor log=<id> seq=<n>
//! sha256=<hash>`, where `<id>` names the log (a hash of its directory's path) so that
//! anchors of several logs can share one system log. [`AnchorRecord::find_in`] reads
//! them back out of any text that contains them: a syslog file, `journalctl` output, a
//! collector's export.

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// The chain's head at some moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The log it belongs to (see [`log_id`]).
    pub log: String,
    /// The last line's seq.
    pub seq: u64,
    /// The last line's hash.
    pub hash: String,
}

impl Head {
    /// The anchor line for this head.
    pub fn text(&self) -> String {
        format!(
            "weft-audit anchor log={} seq={} sha256={}",
            self.log, self.seq, self.hash
        )
    }
}

/// Somewhere heads are written.
pub trait Anchor: Send {
    /// What it is, for messages (`syslog /dev/log`).
    fn describe(&self) -> String;
    /// Writes `head`.
    fn anchor(&mut self, head: &Head) -> Result<(), String>;
}

/// An anchor read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorRecord {
    /// The line it was read from, as found.
    pub source: String,
    /// The seq it records.
    pub seq: u64,
    /// The hash it records for that seq.
    pub hash: String,
}

impl AnchorRecord {
    /// Every anchor of log `log` in `text`.
    pub fn find_in(text: &str, log: &str) -> Vec<AnchorRecord> {
        text.lines()
            .filter_map(|line| {
                let at = line.find("weft-audit anchor ")?;
                let mut seq = None;
                let mut hash = None;
                let mut this_log = false;
                for field in line[at..].split_whitespace() {
                    match field.split_once('=') {
                        Some(("log", id)) => this_log = id == log,
                        Some(("seq", n)) => seq = n.parse().ok(),
                        Some(("sha256", h)) if h.len() == 64 => hash = Some(h.to_owned()),
                        _ => {}
                    }
                }
                Some(AnchorRecord {
                    source: line.trim().to_owned(),
                    seq: seq?,
                    hash: hash.filter(|_| this_log)?,
                })
            })
            .collect()
    }
}

/// The id of the log kept in `dir`: the first 12 hex digits of the SHA-256 of its
/// canonical path.
pub fn log_id(dir: &Path) -> String {
    let path = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    hex::encode(&Sha256::digest(path.as_os_str().as_encoded_bytes())[..6])
}

/// The system log, over its local datagram socket (`/dev/log`, where journald and
/// rsyslog listen), as facility `authpriv`, severity `info`.
pub struct SyslogAnchor {
    socket: PathBuf,
}

/// The default system log socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";

impl SyslogAnchor {
    /// Writes to the syslog socket at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }
}

impl Anchor for SyslogAnchor {
    fn describe(&self) -> String {
        format!("the system log at {}", self.socket.display())
    }

    fn anchor(&mut self, head: &Head) -> Result<(), String> {
        // authpriv (10) × 8 + info (6); the RFC 3164 header, which journald and rsyslog
        // read from local sockets.
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let message = format!(
            "<86>{stamp} weft-audit[{}]: {}",
            std::process::id(),
            head.text()
        );
        let socket = UnixDatagram::unbound().map_err(|e| e.to_string())?;
        socket
            .send_to(message.as_bytes(), &self.socket)
            .map(drop)
            .map_err(|e| format!("cannot write to {}: {e}", self.socket.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_found_in_any_text_and_only_for_their_log() {
        let head = Head {
            log: "abc".into(),
            seq: 42,
            hash: "f".repeat(64),
        };
        let text = format!(
            "Nov 22 14:00:29 host weft-audit[7]: {}\nnoise\n{}\n",
            head.text(),
            Head {
                log: "other".into(),
                ..head.clone()
            }
            .text()
        );
        let found = AnchorRecord::find_in(&text, "abc");
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].seq, found[0].hash.as_str()),
            (42, &*"f".repeat(64))
        );
    }

    #[test]
    fn the_syslog_anchor_sends_one_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let head = Head {
            log: "abc".into(),
            seq: 1,
            hash: "0".repeat(64),
        };
        SyslogAnchor::new(&path).anchor(&head).unwrap();
        let mut buf = [0; 512];
        let n = listener.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("<86>"), "{text}");
        assert_eq!(AnchorRecord::find_in(text, "abc").len(), 1);
        let missing = SyslogAnchor::new(dir.path().join("none")).anchor(&head);
        assert!(missing.unwrap_err().contains("none"));
    }
}
