//! `weft audit export`: the records since a time, as JSON lines or as text.

use std::{path::Path, time::SystemTime};

use crate::{files, record::Record};

/// Every record of the log in `dir` stamped at or after `since`, in order, with its
/// line as written. Lines that do not read as records are skipped (`verify` names them).
pub fn since(dir: &Path, since: SystemTime) -> std::io::Result<Vec<(Record, String)>> {
    let mut out = Vec::new();
    for path in files::list(dir)? {
        let text = std::fs::read_to_string(&path)?;
        for line in text.lines() {
            let Ok(record) = Record::parse(line.as_bytes()) else {
                continue;
            };
            let at = humantime::parse_rfc3339_weak(&record.ts).unwrap_or(SystemTime::UNIX_EPOCH);
            if at >= since {
                out.push((record, line.to_owned()));
            }
        }
    }
    Ok(out)
}

/// A record as one line of text: time, event, then the data's fields as `key=value`.
pub fn as_text(record: &Record) -> String {
    let mut text = format!("{}  {}", record.ts, record.event);
    if let serde_json::Value::Object(fields) = &record.data {
        for (key, value) in fields {
            match value {
                serde_json::Value::String(s) => text.push_str(&format!(" {key}={s}")),
                other => text.push_str(&format!(" {key}={other}")),
            }
        }
    }
    text
}
