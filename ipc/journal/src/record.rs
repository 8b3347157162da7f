//! How one record is laid out in a segment file.
//!
//! ```text
//! magic    u32 LE  "WFR1"
//! body_len u32 LE  length of what follows the checksum
//! crc      u32 LE  CRC-32C of body_len's four bytes and the body
//! body:
//!   seq      u64 LE   the stream's sequence number
//!   ts_ms    u64 LE   when it was stored, milliseconds since the Unix epoch
//!   meta_len u32 LE, meta     clear, authenticated (topic, sender, message id)
//!   sealed                    AES-256-GCM ciphertext of the secret part, tag last
//! ```
//!
//! The magic lets a reader find the next record after damaged bytes; the checksum
//! covers the length, so a flipped length is caught before it is trusted. The
//! checksum finds accidents; the GCM tag (see `seal.rs`) finds tampering.

/// Marks the start of every record.
pub(crate) const MAGIC: [u8; 4] = *b"WFR1";
/// Bytes before the body: magic, length, checksum.
pub(crate) const FRAME_HEADER: usize = 12;
/// Fixed fields at the start of the body.
const BODY_FIXED: usize = 8 + 8 + 4;
/// The largest body accepted: a bus frame is at most 16 MiB, plus room for metadata.
pub(crate) const MAX_BODY: usize = 32 << 20;

/// A record's fields, borrowed from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordView<'a> {
    pub(crate) seq: u64,
    pub(crate) ts_ms: u64,
    pub(crate) meta: &'a [u8],
    pub(crate) sealed: &'a [u8],
}

/// What is found at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// A whole record that passed its checksum, and its length on disk.
    Record(RecordView<'a>, usize),
    /// The bytes end before the record does (a torn write, or more to read).
    Incomplete,
    /// Not a valid record: wrong magic, impossible length or bad checksum.
    Invalid,
}

/// Appends a record to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, seq: u64, ts_ms: u64, meta: &[u8], sealed: &[u8]) {
    let body_len = BODY_FIXED + meta.len() + sealed.len();
    let start = out.len();
    out.reserve(FRAME_HEADER + body_len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts_ms.to_le_bytes());
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(sealed);
    let crc = checksum(&out[start + 4..start + 8], &out[start + FRAME_HEADER..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// The length [`encode`] will write.
pub(crate) fn encoded_len(meta: &[u8], sealed_len: usize) -> usize {
    FRAME_HEADER + BODY_FIXED + meta.len() + sealed_len
}

/// Reads the record at the start of `bytes`.
pub(crate) fn parse(bytes: &[u8]) -> Parsed<'_> {
    if bytes.len() < FRAME_HEADER {
        return if MAGIC.starts_with(&bytes[..bytes.len().min(4)]) {
            Parsed::Incomplete
        } else {
            Parsed::Invalid
        };
    }
    if bytes[..4] != MAGIC {
        return Parsed::Invalid;
    }
    let body_len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    if !(BODY_FIXED..=MAX_BODY).contains(&body_len) {
        return Parsed::Invalid;
    }
    let Some(body) = bytes.get(FRAME_HEADER..FRAME_HEADER + body_len) else {
        return Parsed::Incomplete;
    };
    let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if checksum(&bytes[4..8], body) != crc {
        return Parsed::Invalid;
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let meta_len = u32::from_le_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
    let Some(meta) = body.get(BODY_FIXED..BODY_FIXED.saturating_add(meta_len)) else {
        return Parsed::Invalid;
    };
    let view = RecordView {
        seq: u64_at(0),
        ts_ms: u64_at(8),
        meta,
        sealed: &body[BODY_FIXED + meta_len..],
    };
    Parsed::Record(view, FRAME_HEADER + body_len)
}

/// Where the next record may start after damage at the start of `bytes`: the next
/// offset (past the first byte) holding the magic, or `bytes.len()` if none does.
pub(crate) fn next_candidate(bytes: &[u8]) -> usize {
    bytes
        .get(1..)
        .and_then(|rest| rest.windows(4).position(|w| w == MAGIC))
        .map_or(bytes.len(), |at| at + 1)
}

fn checksum(len: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_record_reads_back_and_every_flipped_bit_is_caught() {
        let mut out = vec![];
        encode(
            &mut out,
            42,
            1_700_000_000_000,
            b"orders.new",
            b"sealed bytes",
        );
        let Parsed::Record(view, len) = parse(&out) else {
            panic!("not parsed")
        };
        assert_eq!(len, out.len());
        assert_eq!(len, encoded_len(b"orders.new", 12));
        assert_eq!(
            view,
            RecordView {
                seq: 42,
                ts_ms: 1_700_000_000_000,
                meta: b"orders.new",
                sealed: b"sealed bytes"
            }
        );
        for byte in 0..out.len() {
            for bit in 0..8 {
                let mut damaged = out.clone();
                damaged[byte] ^= 1 << bit;
                assert!(
                    !matches!(parse(&damaged), Parsed::Record(..)),
                    "a flip of bit {bit} of byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_torn_record_is_incomplete_and_garbage_is_invalid() {
        let mut out = vec![];
        encode(&mut out, 1, 2, b"m", b"s");
        for cut in 0..out.len() {
            assert_eq!(parse(&out[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        assert_eq!(parse(b"\0\0\0\0\0\0\0\0\0\0\0\0\0"), Parsed::Invalid);
        assert_eq!(parse(b"x"), Parsed::Invalid);
    }

    #[test]
    fn the_next_record_is_found_after_damage() {
        let mut out = vec![];
        encode(&mut out, 1, 2, b"first", b"s");
        let second = out.len();
        encode(&mut out, 2, 3, b"second", b"s");
        out[20] ^= 0xff;
        assert_eq!(parse(&out), Parsed::Invalid);
        assert_eq!(next_candidate(&out), second);
        assert!(matches!(parse(&out[second..]), Parsed::Record(v, _) if v.seq == 2));
        assert_eq!(next_candidate(b"abc"), 3);
    }

    proptest! {
        #[test]
        fn parsing_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
            let n = next_candidate(&bytes);
            prop_assert!(n >= bytes.len().min(1) && n <= bytes.len());
        }

        #[test]
        fn records_round_trip(seq in any::<u64>(), ts in any::<u64>(),
                              meta in proptest::collection::vec(any::<u8>(), 0..64),
                              sealed in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = vec![];
            encode(&mut out, seq, ts, &meta, &sealed);
            let Parsed::Record(view, len) = parse(&out) else { panic!("not parsed") };
            prop_assert_eq!(len, out.len());
            prop_assert_eq!(view, RecordView { seq, ts_ms: ts, meta: &meta, sealed: &sealed });
        }
    }
}
