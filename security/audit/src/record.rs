//! One audit line:
//!
//! ```text
//! {"seq":7,"ts":"2026-11-22T14:00:29.123Z","event":"permission.denied","data":{…},"prev":"<64 hex>"}
//! ```
//!
//! `seq` counts from 1 across every file of the log; `prev` is the SHA-256 (lowercase
//! hex) of the previous line's exact bytes, without its newline — [`GENESIS`] for the
//! first. A line's own hash is [`line_hash`] of its bytes.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The `prev` of the first line of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The SHA-256 of `line` (without its newline), in lowercase hex.
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// Builds the line for an event.
pub fn build(seq: u64, ts: &str, event: &str, data: &serde_json::Value, prev: &str) -> String {
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"seq\":{seq},\"ts\":{},\"event\":{},\"data\":{data},\"prev\":{}}}",
        quoted(ts),
        quoted(event),
        quoted(prev)
    )
}

/// The fields of a line the chain and export need.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When, RFC 3339 in UTC.
    pub ts: String,
    /// What happened, such as `permission.denied`.
    pub event: String,
    /// The event's details.
    #[serde(default)]
    pub data: serde_json::Value,
    /// The hash of the line before.
    pub prev: String,
}

impl Record {
    /// Reads a line; `Err` says what is wrong with it.
    pub fn parse(line: &[u8]) -> Result<Record, String> {
        let record: Record =
            serde_json::from_slice(line).map_err(|e| format!("not an audit record ({e})"))?;
        if record.prev.len() != 64 || !record.prev.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("its `prev` is not a SHA-256 in hex".into());
        }
        if record.seq == 0 {
            return Err("its `seq` is 0 (they count from 1)".into());
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_line_parses_back_and_escapes_its_strings() {
        let data = serde_json::json!({"appId": "a\"b", "n": 1});
        let line = build(3, "2026-11-22T14:00:29.123Z", "app.\nstart", &data, GENESIS);
        assert!(!line.contains('\n'));
        let r = Record::parse(line.as_bytes()).unwrap();
        assert_eq!(
            (r.seq, r.event.as_str(), r.prev.as_str()),
            (3, "app.\nstart", GENESIS)
        );
        assert_eq!(r.data, data);
        assert_eq!(line_hash(b"").len(), 64);
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(
            Record::parse(b"{")
                .unwrap_err()
                .contains("not an audit record")
        );
        let bad_prev = build(1, "t", "e", &serde_json::json!({}), "xyz");
        assert!(
            Record::parse(bad_prev.as_bytes())
                .unwrap_err()
                .contains("prev")
        );
    }
}
