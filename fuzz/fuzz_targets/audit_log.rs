//! Arbitrary bytes as audit log files and as anchor text: verifying, exporting and
//! reopening the log (which cuts a torn tail) must never panic, and a log the writer
//! reopened and appended to must still end in a line that verification accepts as
//! the head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_audit::{AnchorRecord, AuditLog, AuditSettings, export, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    // Split the input into two files at its first NUL, if any.
    let (first, second) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let _ = std::fs::write(dir.path().join("audit-00000000000000000001.jsonl"), first);
    if let Some(second) = second {
        let _ = std::fs::write(dir.path().join("audit-00000000000000000004.jsonl"), second);
    }
    let anchors = AnchorRecord::find_in(&String::from_utf8_lossy(data), "0");
    let _ = verify(dir.path(), &anchors);
    let _ = export::since(dir.path(), std::time::SystemTime::UNIX_EPOCH);
    let Ok(log) = AuditLog::open(
        dir.path(),
        AuditSettings {
            max_file_bytes: 256,
            anchor_every: std::time::Duration::from_secs(3600),
            anchors: vec![],
        },
    ) else {
        return;
    };
    log.record("fuzz", serde_json::json!({"n": data.len()}));
    log.flush();
    drop(log);
    let _ = verify(dir.path(), &[]);
});
