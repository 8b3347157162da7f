//! Arbitrary bytes as a journal segment (and as its index, and as a key set's text):
//! opening the stream, reading it and checking it must never panic, and whatever is
//! read back must have passed authentication.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use weft_journal::{KeySet, Retention, SegmentLog, StreamConfig, StreamLog, check_stream};

fn keys() -> &'static Arc<KeySet> {
    static KEYS: OnceLock<Arc<KeySet>> = OnceLock::new();
    KEYS.get_or_init(|| Arc::new(KeySet::generate()))
}

fuzz_target!(|data: &[u8]| {
    let _ = KeySet::from_text(&String::from_utf8_lossy(data));
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let stream = dir.path().join("s");
    let config = StreamConfig::new("orders.#", Retention::default());
    // A real segment first, so that the fuzzed bytes follow a valid header half the
    // time: appended to it, or replacing it.
    {
        let Ok(mut log) = SegmentLog::open(&stream, config.clone(), keys().clone()) else {
            return;
        };
        for i in 0..3u8 {
            let _ = log.append(1, b"meta", &[i; 16]);
        }
        let _ = log.write();
    }
    let segment = stream.join("00000000000000000001.seg");
    let Ok(mut bytes) = std::fs::read(&segment) else {
        return;
    };
    match data.first() {
        Some(b) if b % 2 == 0 => bytes.extend_from_slice(&data[1..]),
        Some(_) => {
            let at = 72.min(bytes.len());
            bytes.truncate(at);
            bytes.extend_from_slice(&data[1..]);
        }
        None => {}
    }
    let _ = std::fs::write(&segment, &bytes);
    let _ = std::fs::write(segment.with_extension("idx"), data);
    let _ = check_stream(&stream, keys());
    if let Ok(log) = SegmentLog::open(&stream, config, keys().clone()) {
        let reader = log.reader();
        let mut out = vec![];
        let _ = reader.read(1, u64::MAX, 1000, &mut |_| true, &mut out);
        // Only authenticated records come back: the ones written above, in place.
        for record in &out {
            let i = record.seq.wrapping_sub(1);
            assert!(i < 3 && record.secret == [i as u8; 16], "a forged record was read");
        }
        let _ = reader.seq_for_time(0);
    }
});
