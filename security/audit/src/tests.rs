//! The log against every kind of tampering the issue names, across rotated files.

use std::{
    fs,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    AnchorRecord, AuditLog, AuditSettings, SyslogAnchor,
    anchor::log_id,
    export, files,
    record::{self, Record},
    verify,
};

/// Writes `n` events into a log in `dir` whose files hold about four lines each.
fn write_log(dir: &Path, n: usize, anchors: Vec<Box<dyn crate::Anchor>>) {
    let log = AuditLog::open(
        dir,
        AuditSettings {
            max_file_bytes: 900,
            anchor_every: Duration::from_secs(3600),
            anchors,
        },
    )
    .unwrap();
    for i in 0..n {
        log.record("test.event", serde_json::json!({"i": i, "app": "a"}));
    }
    log.flush();
}

/// The log's lines, file by file.
fn read(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    files::list(dir)
        .unwrap()
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap();
            (p, text.lines().map(str::to_owned).collect())
        })
        .collect()
}

fn write_back(files: &[(PathBuf, Vec<String>)]) {
    for (path, lines) in files {
        let mut text = lines.join("\n");
        if !lines.is_empty() {
            text.push('\n');
        }
        fs::write(path, text).unwrap();
    }
}

/// The file and line of the `k`-th line (from 0) of the whole log.
fn position(files: &[(PathBuf, Vec<String>)], mut k: usize) -> (usize, usize) {
    for (f, (_, lines)) in files.iter().enumerate() {
        if k < lines.len() {
            return (f, k);
        }
        k -= lines.len();
    }
    panic!("no line {k}");
}

const LINES: usize = 14;

fn fresh() -> (tempfile::TempDir, Vec<(PathBuf, Vec<String>)>) {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), LINES, vec![]);
    let files = read(dir.path());
    assert!(files.len() >= 3, "the log should span several files");
    assert_eq!(verify(dir.path(), &[]).unwrap().lines, LINES as u64);
    (dir, files)
}

/// Asserts that verification fails naming line `k` of `files` (as laid out before the
/// tampering) and returns the message.
fn fails_at(dir: &Path, files: &[(PathBuf, Vec<String>)], k: usize) -> String {
    let (f, l) = position(files, k);
    let err = verify(dir, &[]).unwrap_err();
    assert_eq!(
        (err.file.as_deref(), err.line),
        (Some(files[f].0.as_path()), l + 1),
        "line {k}: {err}"
    );
    err.to_string()
}

#[test]
fn an_edited_line_is_named() {
    for k in 0..LINES - 1 {
        let (dir, mut files) = fresh();
        let (f, l) = position(&files, k);
        files[f].1[l] = files[f].1[l].replace("\"app\":\"a\"", "\"app\":\"b\"");
        write_back(&files);
        let why = fails_at(dir.path(), &files, k);
        assert!(why.contains("edited"), "{why}");
    }
    // The last line is checked against the head file.
    let (dir, mut files) = fresh();
    let (f, l) = position(&files, LINES - 1);
    files[f].1[l] = files[f].1[l].replace("\"app\":\"a\"", "\"app\":\"b\"");
    write_back(&files);
    let why = fails_at(dir.path(), &files, LINES - 1);
    assert!(why.contains("rewritten"), "{why}");
}

#[test]
fn a_deleted_line_is_named_where_it_was() {
    for k in 0..LINES - 1 {
        let (dir, mut files) = fresh();
        let (f, l) = position(&files, k);
        files[f].1.remove(l);
        write_back(&files);
        let err = verify(dir.path(), &[]).unwrap_err();
        // The line now in its place (or, when it was the last of its file, the next
        // file's first) is the first bad one.
        let expected = if l < files[f].1.len() {
            (files[f].0.clone(), l + 1)
        } else {
            (files[f + 1].0.clone(), 1)
        };
        assert_eq!(
            (err.file.clone().unwrap(), err.line),
            expected,
            "line {k}: {err}"
        );
        assert!(err.problem.contains("deleted"), "{err}");
    }
    let (dir, mut files) = fresh();
    files.last_mut().unwrap().1.pop();
    write_back(&files);
    let err = verify(dir.path(), &[]).unwrap_err().to_string();
    assert!(err.contains("cut off the end"), "{err}");
}

#[test]
fn an_inserted_line_is_named() {
    for k in 1..LINES {
        // A careful forgery: the seq the line before implies and its hash as `prev`.
        let (dir, mut files) = fresh();
        let (pf, pl) = position(&files, k - 1);
        let before = files[pf].1[pl].clone();
        let seq = Record::parse(before.as_bytes()).unwrap().seq + 1;
        let forged = record::build(
            seq,
            "2026-01-01T00:00:00.000Z",
            "permission.granted",
            &serde_json::json!({"app": "evil"}),
            &record::line_hash(before.as_bytes()),
        );
        let (f, l) = position(&files, k);
        files[f].1.insert(l, forged);
        write_back(&files);
        let why = fails_at(dir.path(), &files, k);
        assert!(why.contains("inserted"), "line {k}: {why}");
    }
    // A plain copy of another line.
    let (dir, mut files) = fresh();
    let copy = files[0].1[0].clone();
    let (f, l) = position(&files, 5);
    files[f].1.insert(l, copy);
    write_back(&files);
    fails_at(dir.path(), &files, 5);
}

#[test]
fn reordered_lines_are_named() {
    for k in 0..LINES - 1 {
        let (dir, mut files) = fresh();
        let (f1, l1) = position(&files, k);
        let (f2, l2) = position(&files, k + 1);
        let a = files[f1].1[l1].clone();
        files[f1].1[l1] = files[f2].1[l2].clone();
        files[f2].1[l2] = a;
        write_back(&files);
        let why = fails_at(dir.path(), &files, k);
        assert!(why.contains("reordered"), "line {k}: {why}");
    }
}

#[test]
fn a_rewritten_log_passes_its_own_chain_but_not_the_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("syslog.sock");
    let syslog = UnixDatagram::bind(&socket).unwrap();
    write_log(
        dir.path(),
        LINES,
        vec![Box::new(SyslogAnchor::new(&socket))],
    );
    // Dropping the log anchored its head in "syslog".
    syslog
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0; 1024];
    let n = syslog.recv(&mut buf).unwrap();
    let anchors =
        AnchorRecord::find_in(std::str::from_utf8(&buf[..n]).unwrap(), &log_id(dir.path()));
    assert_eq!(anchors[0].seq, LINES as u64);
    assert_eq!(verify(dir.path(), &anchors).unwrap().anchors, 2);

    // The whole log rewritten with a consistent chain and head file, one event
    // changed and the last two dropped.
    let records: Vec<Record> = read(dir.path())
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .map(|l| Record::parse(l.as_bytes()).unwrap())
        .collect();
    for path in files::list(dir.path()).unwrap() {
        fs::remove_file(path).unwrap();
    }
    let mut prev = record::GENESIS.to_owned();
    let mut text = String::new();
    for r in &records[..LINES - 2] {
        let data = if r.seq == 3 {
            serde_json::json!({"app": "hidden"})
        } else {
            r.data.clone()
        };
        let line = record::build(r.seq, &r.ts, &r.event, &data, &prev);
        prev = record::line_hash(line.as_bytes());
        text.push_str(&line);
        text.push('\n');
    }
    fs::write(files::file_for(dir.path(), 1), text).unwrap();
    files::write_head(dir.path(), LINES as u64 - 2, &prev).unwrap();
    assert!(
        verify(dir.path(), &[]).is_ok(),
        "the forgery is self-consistent"
    );
    let err = verify(dir.path(), &anchors).unwrap_err().to_string();
    assert!(err.contains("cut off the end"), "{err}");
    assert!(err.contains("weft-audit anchor"), "{err}");
}

#[test]
fn reopening_continues_the_chain_and_a_torn_line_is_cut_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5, vec![]);
    let last = files::list(dir.path()).unwrap().pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    bytes.extend_from_slice(b"{\"seq\":6,\"ts\":\"2026");
    fs::write(&last, bytes).unwrap();
    assert!(
        verify(dir.path(), &[])
            .unwrap_err()
            .to_string()
            .contains("incomplete")
    );

    write_log(dir.path(), 3, vec![]);
    let v = verify(dir.path(), &[]).unwrap();
    assert_eq!(v.lines, 5 + 1 + 3);
    let all = export::since(dir.path(), std::time::SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(all[5].0.event, "audit.torn_tail");
    assert_eq!(all[5].0.data["bytes"], 19);
    assert_eq!(all.last().unwrap().0.seq, 9);
}

#[test]
fn export_keeps_what_is_recent_enough() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, vec![]);
    let all = export::since(dir.path(), std::time::SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(all.len(), 3);
    let text = export::as_text(&all[0].0);
    assert!(text.contains("test.event app=a i=0"), "{text}");
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    assert!(export::since(dir.path(), later).unwrap().is_empty());
}
