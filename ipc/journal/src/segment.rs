//! One segment file: its header, its sparse index, and scanning its records.
//!
//! A segment is `<base seq, 20 digits>.seg`: a 72-byte header, then records
//! (`record.rs`) in sequence order. Its sparse index — one entry every
//! [`INDEX_EVERY_BYTES`] of records — is kept in memory, and written beside it as
//! `<base>.idx` once the segment is sealed, so that opening a stream reads only small
//! index files and the last segment.
//!
//! ```text
//! header: magic "WEFTSEG1" | version u32 | key id u32 | base seq u64 | created ms u64
//!         | salt [32] | crc32c of the preceding 64 bytes u32 | 4 zero bytes
//! index:  magic "WEFTIDX1" | records u64 | first seq u64 | last seq u64 | first ts u64
//!         | last ts u64 | data end u64 | entries u32 | (seq u64, ts u64, offset u64)*
//!         | crc32c of everything before it u32
//! ```

use std::{
    fs::File,
    io::{self, Read},
    ops::ControlFlow,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::{
    record::{self, Parsed},
    seal::SALT_LEN,
};

/// Bytes of a segment's header.
pub(crate) const HEADER_LEN: u64 = 72;
const HEADER_MAGIC: &[u8; 8] = b"WEFTSEG1";
const INDEX_MAGIC: &[u8; 8] = b"WEFTIDX1";
const FORMAT_VERSION: u32 = 1;
/// A sparse index entry is added after at least this many bytes of records.
pub(crate) const INDEX_EVERY_BYTES: u64 = 32 * 1024;
/// How much of a segment a scan reads at a time.
pub(crate) const READ_CHUNK: usize = 1 << 20;

/// A segment's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) key_id: u32,
    pub(crate) base_seq: u64,
    pub(crate) created_ms: u64,
    pub(crate) salt: [u8; SALT_LEN],
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[..8].copy_from_slice(HEADER_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.key_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.base_seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.created_ms.to_le_bytes());
        out[32..64].copy_from_slice(&self.salt);
        let crc = crc32c::crc32c(&out[..64]);
        out[64..68].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, String> {
        if bytes.len() < HEADER_LEN as usize {
            return Err(format!(
                "the header is cut short ({} of {HEADER_LEN} bytes)",
                bytes.len()
            ));
        }
        if &bytes[..8] != HEADER_MAGIC {
            return Err("not a Weft journal segment (wrong magic)".into());
        }
        let crc = u32::from_le_bytes(bytes[64..68].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[..64]) != crc {
            return Err("the header fails its checksum".into());
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(format!(
                "format version {version} is not supported (this build reads {FORMAT_VERSION})"
            ));
        }
        Ok(Header {
            key_id: u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")),
            base_seq: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
            created_ms: u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes")),
            salt: bytes[32..64].try_into().expect("32 bytes"),
        })
    }
}

/// One sparse index entry: the record `seq`, stored at `ts_ms`, starts at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) seq: u64,
    pub(crate) ts_ms: u64,
    pub(crate) offset: u64,
}

/// What a segment holds, as far as its valid records go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Contents {
    pub(crate) records: u64,
    pub(crate) first_seq: Option<u64>,
    pub(crate) last_seq: Option<u64>,
    pub(crate) first_ts: u64,
    pub(crate) last_ts: u64,
    /// Where the last valid record ends.
    pub(crate) end: u64,
    pub(crate) index: Vec<IndexEntry>,
}

impl Contents {
    /// An empty segment's contents.
    pub(crate) fn empty() -> Contents {
        Contents {
            end: HEADER_LEN,
            ..Contents::default()
        }
    }

    /// Takes note of a record of `len` bytes written at `offset`.
    pub(crate) fn add(&mut self, seq: u64, ts_ms: u64, offset: u64, len: u64) {
        let last_indexed = self.index.last().map(|e| e.offset);
        if last_indexed.is_none_or(|at| offset >= at + INDEX_EVERY_BYTES) {
            self.index.push(IndexEntry { seq, ts_ms, offset });
        }
        if self.first_seq.is_none() {
            self.first_seq = Some(seq);
            self.first_ts = ts_ms;
        }
        self.last_seq = Some(seq);
        self.last_ts = ts_ms;
        self.records += 1;
        self.end = offset + len;
    }

    /// Where to start reading to find `seq`: the offset of the last index entry at or
    /// before it.
    pub(crate) fn offset_for_seq(&self, seq: u64) -> u64 {
        let at = self.index.partition_point(|e| e.seq <= seq);
        at.checked_sub(1)
            .map_or(HEADER_LEN, |i| self.index[i].offset)
    }

    /// The first sequence number from which reading finds every record stored at or
    /// after `ts_ms` (records before it are skipped by the reader).
    pub(crate) fn seq_for_time(&self, ts_ms: u64) -> Option<u64> {
        let at = self.index.partition_point(|e| e.ts_ms < ts_ms);
        match at.checked_sub(1) {
            Some(i) => Some(self.index[i].seq),
            None => self.first_seq,
        }
    }

    pub(crate) fn encode_index(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.index.len() * 24);
        out.extend_from_slice(INDEX_MAGIC);
        for n in [
            self.records,
            self.first_seq.unwrap_or(0),
            self.last_seq.unwrap_or(0),
            self.first_ts,
            self.last_ts,
            self.end,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&(self.index.len() as u32).to_le_bytes());
        for e in &self.index {
            out.extend_from_slice(&e.seq.to_le_bytes());
            out.extend_from_slice(&e.ts_ms.to_le_bytes());
            out.extend_from_slice(&e.offset.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads an index file's contents; `None` if it is damaged or inconsistent.
    pub(crate) fn decode_index(bytes: &[u8]) -> Option<Contents> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let rest = body.strip_prefix(INDEX_MAGIC)?;
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(rest.get(at..at + 8)?.try_into().ok()?))
        };
        let records = u64_at(0)?;
        let n = u32::from_le_bytes(rest.get(48..52)?.try_into().ok()?) as usize;
        if rest.len() != 52 + n.checked_mul(24)? {
            return None;
        }
        let index = (0..n)
            .map(|i| {
                let at = 52 + i * 24;
                Some(IndexEntry {
                    seq: u64_at(at)?,
                    ts_ms: u64_at(at + 8)?,
                    offset: u64_at(at + 16)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let some_if = |v: u64| (records > 0).then_some(v);
        Some(Contents {
            records,
            first_seq: some_if(u64_at(8)?),
            last_seq: some_if(u64_at(16)?),
            first_ts: u64_at(24)?,
            last_ts: u64_at(32)?,
            end: u64_at(40)?,
            index,
        })
    }
}

/// Bytes of a segment that do not hold valid records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRange {
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// What scanning a whole segment found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) contents: Contents,
    /// Damaged bytes followed by valid records.
    pub(crate) damaged: Vec<BadRange>,
    /// Bytes after the last valid record that hold none (a torn write).
    pub(crate) torn_tail: Option<BadRange>,
}

/// Reads the records of a segment from `start` (a record's offset) to `file_len`,
/// checking checksums (not authentication), calling `each` with every valid record and
/// its offset until it says to stop. `contents` describes what was read.
pub(crate) fn scan(
    file: &File,
    start: u64,
    file_len: u64,
    mut each: impl FnMut(&record::RecordView<'_>, u64) -> ControlFlow<()>,
) -> io::Result<Scan> {
    let mut scan = Scan {
        contents: Contents::empty(),
        ..Scan::default()
    };
    let mut buf = Vec::new();
    let mut buf_at = start;
    let mut pos = start;
    let mut bad_since: Option<u64> = None;
    loop {
        let rel = (pos - buf_at) as usize;
        let parsed = record::parse(&buf[rel.min(buf.len())..]);
        match parsed {
            Parsed::Record(view, len) => {
                if let Some(start) = bad_since.take() {
                    scan.damaged.push(BadRange {
                        offset: start,
                        len: pos - start,
                    });
                }
                if each(&view, pos).is_break() {
                    return Ok(scan);
                }
                scan.contents.add(view.seq, view.ts_ms, pos, len as u64);
                pos += len as u64;
            }
            Parsed::Incomplete if buf_at + (buf.len() as u64) < file_len => {
                // Read on from `pos`: a chunk, or the whole record if it is longer.
                let rest = &buf[rel.min(buf.len())..];
                let record_len = (rest.len() >= record::FRAME_HEADER).then(|| {
                    let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
                    len as usize + record::FRAME_HEADER
                });
                let want = record_len
                    .unwrap_or(0)
                    .max(READ_CHUNK)
                    .min((file_len - pos) as usize);
                buf.resize(want, 0);
                file.read_exact_at(&mut buf, pos)?;
                buf_at = pos;
            }
            Parsed::Incomplete if pos >= file_len => break,
            Parsed::Incomplete | Parsed::Invalid => {
                // Damage, or a record claiming to run past the end of the file: look
                // for the next record from the next byte on. The last three bytes of
                // the buffer are kept, since a magic may start there.
                bad_since.get_or_insert(pos);
                let rest = &buf[rel.min(buf.len())..];
                let step = record::next_candidate(rest).min(rest.len().saturating_sub(3));
                pos += step.max(1) as u64;
                if pos >= file_len {
                    break;
                }
            }
        }
    }
    if let Some(start) = bad_since {
        scan.torn_tail = Some(BadRange {
            offset: start,
            len: file_len - start,
        });
    }
    Ok(scan)
}

/// A segment's file name for `base_seq`.
pub(crate) fn file_name(base_seq: u64) -> String {
    format!("{base_seq:020}.seg")
}

/// The index file beside a segment.
pub(crate) fn index_path(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// The base sequence number a segment's file name says, if it is one.
pub(crate) fn base_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Reads a segment's header from the start of `file`.
pub(crate) fn read_header(file: &mut File) -> io::Result<Result<Header, String>> {
    let mut bytes = Vec::with_capacity(HEADER_LEN as usize);
    file.take(HEADER_LEN).read_to_end(&mut bytes)?;
    Ok(Header::decode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn headers_and_indexes_round_trip_and_refuse_damage() {
        let header = Header {
            key_id: 3,
            base_seq: 1000,
            created_ms: 5,
            salt: [9; SALT_LEN],
        };
        let bytes = header.encode();
        assert_eq!(Header::decode(&bytes), Ok(header));
        let mut damaged = bytes;
        damaged[20] ^= 1;
        assert!(Header::decode(&damaged).unwrap_err().contains("checksum"));
        assert!(
            Header::decode(&bytes[..10])
                .unwrap_err()
                .contains("cut short")
        );

        let mut contents = Contents::empty();
        for i in 0..100u64 {
            contents.add(1000 + i, 50 + i, HEADER_LEN + i * 1000, 1000);
        }
        assert_eq!(contents.index.len(), 4, "one entry per 32 KiB");
        let encoded = contents.encode_index();
        assert_eq!(Contents::decode_index(&encoded), Some(contents.clone()));
        for i in 0..encoded.len() {
            let mut damaged = encoded.clone();
            damaged[i] ^= 0x10;
            assert_eq!(Contents::decode_index(&damaged), None, "byte {i}");
        }
        assert_eq!(Contents::decode_index(&encoded[..3]), None);
        assert_eq!(contents.offset_for_seq(999), HEADER_LEN);
        assert_eq!(contents.offset_for_seq(1000), HEADER_LEN);
        assert_eq!(contents.offset_for_seq(1040), contents.index[1].offset);
        assert_eq!(contents.seq_for_time(0), Some(1000));
        assert_eq!(contents.seq_for_time(50 + 40), Some(contents.index[1].seq));
    }

    #[test]
    fn a_scan_finds_records_damage_and_a_torn_tail() {
        let mut data = Header {
            key_id: 1,
            base_seq: 1,
            created_ms: 0,
            salt: [0; SALT_LEN],
        }
        .encode()
        .to_vec();
        let mut offsets = vec![];
        for seq in 1..=5u64 {
            offsets.push(data.len() as u64);
            record::encode(&mut data, seq, seq * 10, b"meta", &[seq as u8; 300]);
        }
        data[offsets[2] as usize + 40] ^= 0xff;
        let mut torn = vec![];
        record::encode(&mut torn, 6, 60, b"meta", b"torn");
        data.extend_from_slice(&torn[..torn.len() - 3]);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let mut seen = vec![];
        let scan = scan(&file, HEADER_LEN, data.len() as u64, |r, _| {
            seen.push(r.seq);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 4, 5]);
        assert_eq!(
            scan.damaged,
            [BadRange {
                offset: offsets[2],
                len: offsets[3] - offsets[2]
            }]
        );
        let end = offsets[4] + (offsets[4] - offsets[3]);
        assert_eq!(
            scan.torn_tail,
            Some(BadRange {
                offset: end,
                len: data.len() as u64 - end
            })
        );
        assert_eq!(scan.contents.end, end);
        assert_eq!(scan.contents.records, 4);
        assert_eq!(base_of(&file_name(77)), Some(77));
        assert_eq!(base_of("77.seg"), None);
    }
}
