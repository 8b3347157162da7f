//! `weft audit verify`: walks the chain through every file and checks it against the
//! head file and the anchors given; the first problem is named by file and line.

use std::{fmt, path::PathBuf};

use crate::{
    anchor::{AnchorRecord, log_id},
    files,
    record::{self, GENESIS, Record},
};

/// What a verified log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Lines checked.
    pub lines: u64,
    /// Files they are in.
    pub files: usize,
    /// The last line's seq and hash.
    pub head: Option<(u64, String)>,
    /// Anchors checked (the head file included).
    pub anchors: usize,
    /// The log's id, as anchors name it.
    pub log: String,
}

/// The first thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The file, when the problem is in a line.
    pub file: Option<PathBuf>,
    /// The line, from 1, within `file`.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{}: {}", file.display(), self.line, self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

/// One line as read.
struct Line {
    file: usize,
    line: usize,
    hash: String,
    record: Result<Record, String>,
}

impl Line {
    fn seq(&self) -> Option<u64> {
        self.record.as_ref().ok().map(|r| r.seq)
    }

    fn prev(&self) -> Option<&str> {
        self.record.as_ref().ok().map(|r| r.prev.as_str())
    }
}

/// Verifies the log in `dir` against its head file and `anchors`.
pub fn verify(dir: &std::path::Path, anchors: &[AnchorRecord]) -> Result<Verified, Break> {
    let paths = files::list(dir).map_err(|e| Break {
        file: None,
        line: 0,
        problem: format!("cannot list {}: {e}", dir.display()),
    })?;
    let mut lines = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|e| Break {
            file: Some(path.clone()),
            line: 0,
            problem: format!("cannot read it: {e}"),
        })?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let count = bytes[..complete].split(|&b| b == b'\n').count() - 1;
        if complete < bytes.len() {
            return Err(Break {
                file: Some(path.clone()),
                line: count + 1,
                problem: "the last line is incomplete (torn by a crash, or cut)".into(),
            });
        }
        for (n, text) in bytes[..complete]
            .split(|&b| b == b'\n')
            .take(count)
            .enumerate()
        {
            lines.push(Line {
                file: index,
                line: n + 1,
                hash: record::line_hash(text),
                record: Record::parse(text),
            });
        }
    }
    let at = |i: usize, problem: String| Break {
        file: Some(paths[lines[i].file].clone()),
        line: lines[i].line,
        problem,
    };
    let head_file = files::read_head(dir);
    // Whether line `i` is confirmed intact by what follows it: the next line, or the
    // head file for the last one.
    let intact = |i: usize| match lines.get(i + 1) {
        Some(next) => {
            next.seq() == lines[i].seq().map(|s| s + 1) && next.prev() == Some(&*lines[i].hash)
        }
        None => head_file.as_ref().is_some_and(|(_, h)| *h == lines[i].hash),
    };
    for i in 0..lines.len() {
        let record = lines[i].record.as_ref().map_err(|e| at(i, e.clone()))?;
        let (expected_seq, expected_prev) = match i.checked_sub(1) {
            None => (1, GENESIS),
            Some(p) => (lines[p].seq().unwrap_or(0) + 1, lines[p].hash.as_str()),
        };
        let seq = record.seq;
        if seq == expected_seq && record.prev == expected_prev {
            continue;
        }
        if seq == expected_seq {
            return Err(if i > 0 && intact(i) {
                at(
                    i - 1,
                    format!(
                        "seq {}: its hash no longer matches what the next line records: \
                         it was edited",
                        seq - 1
                    ),
                )
            } else {
                at(
                    i,
                    format!(
                        "seq {seq}: its `prev` does not match the line before: it was \
                         edited or inserted"
                    ),
                )
            });
        }
        if seq > expected_seq {
            return Err(
                match lines[i..].iter().find(|l| l.seq() == Some(expected_seq)) {
                    Some(later) => at(
                        i,
                        format!(
                            "seq {seq} where seq {expected_seq} was expected: lines were \
                         reordered (seq {expected_seq} is at {}:{})",
                            paths[later.file].display(),
                            later.line
                        ),
                    ),
                    None => at(
                        i,
                        format!(
                            "seq {seq} where seq {expected_seq} was expected: the lines with \
                         seq {expected_seq} to {} were deleted",
                            seq - 1
                        ),
                    ),
                },
            );
        }
        let skips_one = i >= 2 && record.prev == lines[i - 2].hash;
        return Err(if skips_one {
            at(
                i - 1,
                "this line is not part of the chain (the next line continues from the \
                 one before it): it was inserted"
                    .into(),
            )
        } else {
            at(
                i,
                format!(
                    "seq {seq} where seq {expected_seq} was expected: it is repeated or \
                     out of order"
                ),
            )
        });
    }

    let head = lines.last().and_then(|l| Some((l.seq()?, l.hash.clone())));
    let mut checked = 0;
    let from_head_file = head_file.map(|(seq, hash)| AnchorRecord {
        source: format!("the head file {}", files::head_file(dir).display()),
        seq,
        hash,
    });
    for anchor in from_head_file.iter().chain(anchors) {
        checked += 1;
        let last = head.as_ref().map_or(0, |(seq, _)| *seq);
        if anchor.seq > last {
            return Err(Break {
                file: None,
                line: 0,
                problem: format!(
                    "the log ends at seq {last}, but {} records seq {}: lines were cut \
                     off the end",
                    anchor.source, anchor.seq
                ),
            });
        }
        let line = lines
            .iter()
            .position(|l| l.seq() == Some(anchor.seq))
            .expect("a valid chain holds every seq up to its last");
        if lines[line].hash != anchor.hash {
            return Err(at(
                line,
                format!(
                    "seq {}: its hash differs from the one {} records: the log was \
                     rewritten from here or before",
                    anchor.seq, anchor.source
                ),
            ));
        }
    }
    Ok(Verified {
        lines: lines.len() as u64,
        files: paths.len(),
        head,
        anchors: checked,
        log: log_id(dir),
    })
}
