//! The tamper-evident audit log: one JSON line per security event, each carrying the
//! SHA-256 of the line before it, so that editing, inserting, deleting or reordering a
//! line breaks the chain at that line.
//!
//! - [`record`] — the line format and its hash.
//! - [`AuditLog`] — the writer: one thread appends, syncs, rotates by size (the chain
//!   runs on across files) and anchors the chain's head outside the file.
//! - [`anchor`] — where heads are anchored: the system log, or anything implementing
//!   [`Anchor`]; and reading anchors back from text (a syslog export, `journalctl`).
//! - [`verify()`] — walks every file, names the first bad line, and checks the anchors,
//!   which catch what a hash chain alone cannot: a cut tail or a rewritten file.
//! - [`export`] — the records since a time.
//!
//! The log defends against later editing of what was written; it cannot stop a
//! process running as the same user from appending lies or deleting the whole
//! directory — the anchors make the latter visible, nothing here prevents it.

pub mod anchor;
pub mod export;
mod files;
pub mod record;
pub mod verify;
mod writer;

pub use anchor::{Anchor, AnchorRecord, Head, SyslogAnchor};
pub use files::head_file;
pub use verify::{Break, Verified, verify};
pub use writer::{AuditLog, AuditSettings};

#[cfg(test)]
mod tests;
