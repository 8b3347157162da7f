//! Tests of whole streams on disk: recovery, damage, encryption, retention, rotation.

use std::{fs, path::Path, sync::Arc};

use crate::*;

fn open(dir: &Path, keys: &Arc<KeySet>, retention: Retention) -> SegmentLog {
    let mut config = StreamConfig::new("orders.#", retention);
    config.segment_bytes = 64 * 1024;
    SegmentLog::open(dir, config, keys.clone()).unwrap()
}

fn payload(seq: u64) -> Vec<u8> {
    format!("{{\"order\":{seq},\"pad\":\"{}\"}}", "x".repeat(200)).into_bytes()
}

fn fill(log: &mut SegmentLog, n: u64, ts: u64) {
    for i in 0..n {
        let seq = log.last_seq() + 1;
        let stored = log
            .append(ts, format!("orders.{seq}").as_bytes(), &payload(seq))
            .unwrap();
        assert_eq!(stored, seq);
        if i % 50 == 49 {
            log.write().unwrap();
        }
    }
    log.write().unwrap();
    log.sync().unwrap();
}

fn read_all(reader: &dyn StreamRead) -> Vec<StoredRecord> {
    let mut out = vec![];
    let mut seq = 1;
    loop {
        let before = out.len();
        seq = reader
            .read(seq, u64::MAX, 100, &mut |_| true, &mut out)
            .unwrap();
        if out.len() == before {
            return out;
        }
    }
}

fn seqs(records: &[StoredRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn segment_paths(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    found.sort();
    found
}

#[test]
fn records_survive_rolls_and_reopening_in_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeySet::generate());
    let mut log = open(dir.path(), &keys, Retention::default());
    fill(&mut log, 1000, 10);
    assert!(
        segment_paths(dir.path()).len() > 3,
        "64 KiB segments rolled"
    );
    let got = read_all(&*log.reader());
    assert_eq!(seqs(&got), (1..=1000).collect::<Vec<_>>());
    assert_eq!(got[41].secret, payload(42));
    assert_eq!(got[41].meta, b"orders.42");
    drop(log);

    let mut log = open(dir.path(), &keys, Retention::default());
    assert_eq!(log.last_seq(), 1000);
    fill(&mut log, 10, 20);
    let reader = log.reader();
    assert_eq!(seqs(&read_all(&*reader)), (1..=1010).collect::<Vec<_>>());
    let mut middle = vec![];
    let next = reader
        .read(500, 505, 100, &mut |_| true, &mut middle)
        .unwrap();
    assert_eq!((seqs(&middle), next), ((500..=505).collect(), 506));
    let mut filtered = vec![];
    reader
        .read(
            1,
            u64::MAX,
            10,
            &mut |meta| meta.ends_with(b"7"),
            &mut filtered,
        )
        .unwrap();
    assert_eq!(seqs(&filtered)[..3], [7, 17, 27]);
    assert_eq!(reader.seq_for_time(5), 1);
    assert_eq!(
        reader.seq_for_time(15),
        1001,
        "the first record stored at 20"
    );
    assert_eq!(reader.seq_for_time(25), 1011, "nothing stored that late");
    drop(log);
    let reopened = open(dir.path(), &keys, Retention::default());
    assert_eq!(
        reopened.reader().seq_for_time(15),
        1001,
        "past an empty segment"
    );
    assert!(reader.damage().is_empty());
}

#[test]
fn a_segment_deleted_behind_the_streams_back_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeySet::generate());
    let mut log = open(dir.path(), &keys, Retention::default());
    fill(&mut log, 1000, 10);
    let gone = segment_paths(dir.path())[1].clone();
    fs::remove_file(&gone).unwrap();
    let got = read_all(&*log.reader());
    assert!(got.len() < 1000 && got.len() > 500, "{} read", got.len());
    assert_eq!(
        got.last().unwrap().seq,
        1000,
        "read on past the missing segment"
    );
    assert!(seqs(&got).windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_torn_tail_is_quarantined_and_cut_off_and_writing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeySet::generate());
    let mut log = open(dir.path(), &keys, Retention::default());
    fill(&mut log, 100, 10);
    drop(log);
    let last = segment_paths(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    let cut = bytes.len() - 100;
    bytes.truncate(cut);
    fs::write(&last, &bytes).unwrap();

    let mut log = open(dir.path(), &keys, Retention::default());
    let reader = log.reader();
    let damage = reader.damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!(damage[0].kind, DamageKind::TornTail);
    let copy = damage[0].quarantined.clone().unwrap();
    assert!(copy.starts_with(dir.path().join("quarantine")));
    assert_eq!(fs::metadata(&copy).unwrap().len(), damage[0].len);
    assert_eq!(log.last_seq(), 99, "the torn record is gone");
    fill(&mut log, 5, 20);
    assert_eq!(seqs(&read_all(&*reader)), (1..=104).collect::<Vec<_>>());
    assert!(
        check_stream(dir.path(), &keys)
            .unwrap()
            .damage
            .iter()
            .all(|d| d.kind == DamageKind::Quarantined)
    );
}

#[test]
fn a_flipped_byte_in_the_middle_loses_one_record_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeySet::generate());
    let mut log = open(dir.path(), &keys, Retention::default());
    fill(&mut log, 1000, 10);
    drop(log);
    let middle = &segment_paths(dir.path())[1];
    let mut bytes = fs::read(middle).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    fs::write(middle, &bytes).unwrap();

    let report = check_stream(dir.path(), &keys).unwrap();
    assert_eq!(report.records, 999);
    assert_eq!(report.damage.len(), 1, "{report:?}");
    assert_eq!(report.damage[0].kind, DamageKind::Checksum);
    assert_eq!(&report.damage[0].segment, middle);

    let log = open(dir.path(), &keys, Retention::default());
    let got = read_all(&*log.reader());
    assert_eq!(got.len(), 999, "everything else is served");
    let missing: Vec<u64> = (1..=1000).filter(|s| !seqs(&got).contains(s)).collect();
    assert_eq!(missing.len(), 1);
    let damage = log.reader().damage();
    assert_eq!(damage.len(), 1);
    assert!(damage[0].quarantined.as_ref().unwrap().exists());
}

#[test]
fn payloads_are_encrypted_and_swapped_records_fail_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(KeySet::generate());
    let mut log = open(dir.path(), &keys, Retention::default());
    let secret = b"ACCOUNT-4711 buys 1000 ACME at 12.34";
    for _ in 0..2 {
        log.append(5, b"orders.a", secret).unwrap();
    }
    log.write().unwrap();
    drop(log);
    let seg = segment_paths(dir.path())[0].clone();
    let mut bytes = fs::read(&seg).unwrap();
    assert!(!bytes.windows(12).any(|w| w == b"ACCOUNT-4711"));
    assert!(!bytes.windows(4).any(|w| w == b"ACME"));
    // Both records have the same length: swap their sealed parts.
    let record_len = (bytes.len() - 72) / 2;
    let (first, second) = (72..72 + record_len, 72 + record_len..bytes.len());
    let sealed = record_len - secret.len() - 16..record_len;
    let a = bytes[first.start + sealed.start..first.start + sealed.end].to_vec();
    let b = bytes[second.start + sealed.start..second.start + sealed.end].to_vec();
    assert_ne!(a, b, "each record has its own nonce");
    bytes[first.start + sealed.start..first.start + sealed.end].copy_from_slice(&b);
    bytes[second.start + sealed.start..second.start + sealed.end].copy_from_slice(&a);
    // Make the checksums right again: the tampering is what authentication must find.
    for range in [first, second] {
        let rec = &mut bytes[range];
        let crc = crc32c::crc32c_append(crc32c::crc32c(&rec[4..8]), &rec[12..]);
        rec[8..12].copy_from_slice(&crc.to_le_bytes());
    }
    fs::write(&seg, &bytes).unwrap();
    let report = check_stream(dir.path(), &keys).unwrap();
    let kinds: Vec<_> = report.damage.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [DamageKind::Authentication, DamageKind::Authentication]
    );
    let log = open(dir.path(), &keys, Retention::default());
    assert!(read_all(&*log.reader()).is_empty());
    assert_eq!(log.reader().damage().len(), 2);
}

#[test]
fn retention_by_count_bytes_and_age() {
    let keys = Arc::new(KeySet::generate());
    let dir = tempfile::tempdir().unwrap();
    let count = Retention {
        max_messages: Some(300),
        ..Retention::default()
    };
    let mut log = open(dir.path(), &keys, count);
    fill(&mut log, 1000, 10);
    log.retain(10).unwrap();
    let got = read_all(&*log.reader());
    assert_eq!(seqs(&got), (701..=1000).collect::<Vec<_>>());
    // Whole segments go: what is kept is the 300 records plus at most one segment.
    let kept = log.reader().disk_bytes();
    assert!(
        kept < 300 * 300 + 2 * 64 * 1024,
        "old segments deleted: {kept}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bytes = Retention {
        max_bytes: Some(200_000),
        ..Retention::default()
    };
    let mut log = open(dir.path(), &keys, bytes);
    fill(&mut log, 2000, 10);
    log.retain(10).unwrap();
    assert!(log.reader().disk_bytes() <= 200_000);
    let got = read_all(&*log.reader());
    assert_eq!(got.last().unwrap().seq, 2000);
    assert!(got.len() > 300, "kept as much as fits: {}", got.len());

    let dir = tempfile::tempdir().unwrap();
    let age = Retention {
        max_age_ms: Some(1000),
        ..Retention::default()
    };
    let mut log = open(dir.path(), &keys, age);
    fill(&mut log, 500, 1_000);
    fill(&mut log, 500, 5_000);
    log.retain(5_500).unwrap();
    let got = read_all(&*log.reader());
    assert_eq!(seqs(&got), (501..=1000).collect::<Vec<_>>());
    let first = log.reader().seq_for_time(4_000);
    assert!(first <= 501, "{first}");
}

#[test]
fn rotated_keys_keep_old_segments_readable_and_a_missing_key_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = KeySet::generate();
    let old = Arc::new(set.clone());
    let mut log = open(dir.path(), &old, Retention::default());
    fill(&mut log, 10, 1);
    drop(log);
    set.rotate();
    let rotated = Arc::new(set);
    let mut log = open(dir.path(), &rotated, Retention::default());
    fill(&mut log, 10, 2);
    assert_eq!(
        seqs(&read_all(&*log.reader())),
        (1..=20).collect::<Vec<_>>()
    );
    drop(log);
    let new_only = Arc::new(
        KeySet::from_text(
            &rotated
                .to_text()
                .lines()
                .filter(|l| !l.starts_with("1 "))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap(),
    );
    let log = open(dir.path(), &new_only, Retention::default());
    assert_eq!(
        seqs(&read_all(&*log.reader())),
        (11..=20).collect::<Vec<_>>()
    );
    let damage = log.reader().damage();
    assert!(damage.iter().all(|d| d.kind == DamageKind::MissingKey(1)) && !damage.is_empty());
}

/// A filesystem of 1 MiB, unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a 1 MiB tmpfs needs root");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_fails_the_write_and_keeps_what_was_stored() {
    let disk = SmallDisk::mount();
    let dir = disk.0.path().join("orders");
    let keys = Arc::new(KeySet::generate());
    let mut config = StreamConfig::new("orders.#", Retention::default());
    config.segment_bytes = 4 << 20;
    let mut log = SegmentLog::open(&dir, config.clone(), keys.clone()).unwrap();
    let mut stored = 0;
    let failure = loop {
        for _ in 0..10 {
            log.append(1, b"orders.x", &payload(0)).unwrap();
        }
        match log.write() {
            Ok(()) => stored += 10,
            Err(e) => break e,
        }
    };
    assert!(matches!(failure, StoreError::DiskFull { .. }), "{failure}");
    assert!(failure.to_string().contains("disk is full"));
    assert_eq!(log.last_seq(), stored);
    assert_eq!(read_all(&*log.reader()).len() as u64, stored);
    drop(log);
    let log = SegmentLog::open(&dir, config, keys.clone()).unwrap_or_else(|e| panic!("{e}"));
    let got = read_all(&*log.reader());
    assert_eq!(seqs(&got), (1..=stored).collect::<Vec<_>>());
    assert!(log.reader().damage().is_empty());
}
