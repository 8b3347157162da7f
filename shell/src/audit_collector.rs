//! Anchoring the audit log's head at the remote collector the desktop owner's policy
//! names (`[audit] collector`): each head is POSTed as JSON `{"log", "seq", "sha256",
//! "host", "anchor"}` (`anchor` being the line `weft audit verify --anchors` reads) with
//! the platform's trust store, within [`TIMEOUT`].
//!
//! Anchoring runs on the audit log's writer thread: while a collector is unreachable,
//! events wait in memory for up to that long each anchoring period, and none is lost.

use std::time::Duration;

use weft_audit::{Anchor, Head};

/// How long one POST may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The collector, as an anchor.
pub struct CollectorAnchor {
    url: url::Url,
    agent: ureq::Agent,
    host: String,
}

impl CollectorAnchor {
    /// Posts heads to `url`.
    pub fn new(url: url::Url) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .tls_config(tls)
            .build()
            .into();
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Self { url, agent, host }
    }

    /// The URL without credentials, for messages.
    fn shown(&self) -> String {
        let mut shown = self.url.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        shown.to_string()
    }
}

impl Anchor for CollectorAnchor {
    fn describe(&self) -> String {
        format!("the audit collector {}", self.shown())
    }

    fn anchor(&mut self, head: &Head) -> Result<(), String> {
        let body = serde_json::json!({
            "log": head.log,
            "seq": head.seq,
            "sha256": head.hash,
            "host": self.host,
            "anchor": head.text(),
        });
        let response = self
            .agent
            .post(self.url.as_str())
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("it answered HTTP {status}"))
        }
    }
}
