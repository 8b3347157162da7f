//! Binary patches of one file against its earlier version, in the two formats a delta
//! may use: bsdiff (`qbsdiff`, bzip2-compressed, the Sparkle/Chrome-courgette family)
//! and zstd with the earlier file as a reference prefix (what `zstd --patch-from` makes,
//! with long-distance matching over a window that covers the whole file).
//!
//! The publisher makes both and keeps the smaller for each file ([`smallest`]); the
//! client applies whichever the delta names. Neither format is trusted for its own
//! sake: the caller checks every result against the release's signed digest.

use std::io::{Read, Write};

/// A patch format, named by the suffix of its entry in a delta (`weft.bsdiff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchFormat {
    /// `qbsdiff`'s bsdiff 4 with bzip2.
    Bsdiff,
    /// zstd with the old file as reference prefix (`zstd --patch-from`).
    Zstd,
}

/// zstd's compression level for patches (the CLI's `--patch-from` default is 3; 19 is
/// its best before `--ultra`, and publishing is rare while downloads are many).
const ZSTD_LEVEL: i32 = 19;

/// zstd's largest window (2 GiB, 64-bit builds).
const ZSTD_WINDOW_LOG_MAX: u32 = 31;

impl PatchFormat {
    /// Both formats, in the order ties are broken (bsdiff first).
    pub const ALL: [PatchFormat; 2] = [PatchFormat::Bsdiff, PatchFormat::Zstd];

    /// The suffix of this format's entries in a delta.
    pub fn suffix(self) -> &'static str {
        match self {
            PatchFormat::Bsdiff => ".bsdiff",
            PatchFormat::Zstd => ".zst-patch",
        }
    }

    /// The format and the file an entry of a delta patches (`weft.bsdiff` → bsdiff of
    /// `weft`); `None` for a file carried whole.
    pub fn of_entry(entry: &str) -> Option<(PatchFormat, &str)> {
        PatchFormat::ALL
            .into_iter()
            .find_map(|f| entry.strip_suffix(f.suffix()).map(|name| (f, name)))
    }

    /// A short name for reports (`bsdiff`, `zstd`).
    pub fn label(self) -> &'static str {
        match self {
            PatchFormat::Bsdiff => "bsdiff",
            PatchFormat::Zstd => "zstd --patch-from",
        }
    }

    /// The patch turning `old` into `new`.
    pub fn diff(self, old: &[u8], new: &[u8]) -> Vec<u8> {
        let mut patch = Vec::new();
        match self {
            PatchFormat::Bsdiff => qbsdiff::Bsdiff::new(old, new)
                .compare(std::io::Cursor::new(&mut patch))
                .map(drop),
            PatchFormat::Zstd => zstd_diff(old, new, &mut patch),
        }
        .expect("diffing in memory");
        patch
    }

    /// `patch` applied to `old`, refused when the result would exceed `max` bytes.
    pub fn apply(self, old: &[u8], patch: &[u8], max: u64) -> Result<Vec<u8>, String> {
        match self {
            PatchFormat::Bsdiff => {
                check_bsdiff_header(patch)?;
                let patcher = qbsdiff::Bspatch::new(patch).map_err(|e| e.to_string())?;
                if patcher.hint_target_size() > max {
                    return Err(format!("the result would be larger than {max} bytes"));
                }
                // The header's size is a hint: the patch's own streams decide how much
                // is written, so the output is bounded here too.
                let mut out = Bounded {
                    bytes: Vec::with_capacity(patcher.hint_target_size() as usize),
                    max,
                };
                patcher.apply(old, &mut out).map_err(|e| e.to_string())?;
                Ok(out.bytes)
            }
            PatchFormat::Zstd => zstd_apply(old, patch, max),
        }
    }
}

/// Refuses a bsdiff header that `qbsdiff` would trip over: its three sizes must be
/// non-negative and the two stream lengths must fit in the patch (`qbsdiff` adds them
/// unchecked, which overflows on a crafted header).
fn check_bsdiff_header(patch: &[u8]) -> Result<(), String> {
    if patch.len() < 32 || &patch[..8] != b"BSDIFF40" {
        return Err("not a bsdiff 4 patch".into());
    }
    let size = |at: usize| {
        let raw = u64::from_le_bytes(patch[at..at + 8].try_into().expect("8 bytes"));
        // Sign and magnitude: the top bit is the sign.
        (raw >> 63 == 0).then_some(raw)
    };
    let (Some(controls), Some(delta), Some(_target)) = (size(8), size(16), size(24)) else {
        return Err("the patch's header holds a negative size".into());
    };
    let streams = controls
        .checked_add(delta)
        .and_then(|n| n.checked_add(32))
        .filter(|n| *n <= patch.len() as u64);
    if streams.is_none() {
        return Err("the patch's header names streams longer than the patch".into());
    }
    Ok(())
}

/// A memory writer that refuses to grow past `max` bytes.
struct Bounded {
    bytes: Vec<u8>,
    max: u64,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.bytes.len() + buf.len()) as u64 > self.max {
            return Err(std::io::Error::other(format!(
                "the result would be larger than {} bytes",
                self.max
            )));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The window a zstd patch needs: reference and result both inside it.
fn zstd_window_log(old: usize, new: usize) -> u32 {
    let span = old.saturating_add(new).max(1 << 10) as u64;
    (u64::BITS - (span - 1).leading_zeros()).min(ZSTD_WINDOW_LOG_MAX)
}

fn zstd_diff(old: &[u8], new: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(out, ZSTD_LEVEL, old)?;
    encoder.window_log(zstd_window_log(old.len(), new.len()))?;
    encoder.long_distance_matching(true)?;
    encoder.include_checksum(true)?;
    encoder.set_pledged_src_size(Some(new.len() as u64))?;
    encoder.write_all(new)?;
    encoder.finish().map(drop)
}

fn zstd_apply(old: &[u8], patch: &[u8], max: u64) -> Result<Vec<u8>, String> {
    let mut decoder =
        zstd::stream::read::Decoder::with_ref_prefix(patch, old).map_err(|e| e.to_string())?;
    // A window no larger than reference plus the largest result allowed: a patch asking
    // for more is refused instead of making the decoder reserve it.
    let window = zstd_window_log(old.len(), usize::try_from(max).unwrap_or(usize::MAX / 2));
    decoder.window_log_max(window).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    decoder
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > max {
        return Err(format!("the result would be larger than {max} bytes"));
    }
    Ok(out)
}

/// Both formats' patches from `old` to `new`, smallest first.
pub fn smallest(old: &[u8], new: &[u8]) -> Vec<(PatchFormat, Vec<u8>)> {
    let mut patches: Vec<_> = PatchFormat::ALL
        .into_iter()
        .map(|f| (f, f.diff(old, new)))
        .collect();
    patches.sort_by_key(|(_, p)| p.len());
    patches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u32) -> Vec<u8> {
        (0..n as u32)
            .flat_map(|i| (i ^ seed).wrapping_mul(2_654_435_761).to_le_bytes())
            .collect()
    }

    #[test]
    fn both_formats_turn_the_old_file_into_the_new_one() {
        let old = noise(100_000, 7);
        let mut new = old.clone();
        new[5000..5010].copy_from_slice(b"one change");
        new.extend_from_slice(b"and a tail");
        for format in PatchFormat::ALL {
            let patch = format.diff(&old, &new);
            assert!(
                patch.len() < old.len() / 50,
                "{}: {} bytes",
                format.label(),
                patch.len()
            );
            assert_eq!(format.apply(&old, &patch, 1 << 24).unwrap(), new);
            let e = format.apply(&old, &patch, 1000).unwrap_err();
            assert!(e.contains("larger than 1000"), "{}: {e}", format.label());
            assert!(format.apply(&old, b"not a patch", 1 << 24).is_err());
        }
    }

    #[test]
    fn a_zstd_patch_against_another_base_fails_its_checksum_or_differs() {
        let old = noise(50_000, 1);
        let mut new = old.clone();
        new[100] ^= 1;
        let patch = PatchFormat::Zstd.diff(&old, &new);
        match PatchFormat::Zstd.apply(&noise(50_000, 2), &patch, 1 << 24) {
            Ok(out) => assert_ne!(out, new),
            Err(e) => assert!(!e.is_empty()),
        }
    }

    #[test]
    fn a_bsdiff_header_with_sizes_that_overflow_is_refused() {
        let mut patch = b"BSDIFF40".to_vec();
        for size in [u64::MAX >> 1, u64::MAX >> 1, 10] {
            patch.extend_from_slice(&size.to_le_bytes());
        }
        let e = PatchFormat::Bsdiff
            .apply(b"old", &patch, 1 << 20)
            .unwrap_err();
        assert!(e.contains("longer than the patch"), "{e}");
        patch[15] = 0x80;
        let e = PatchFormat::Bsdiff
            .apply(b"old", &patch, 1 << 20)
            .unwrap_err();
        assert!(e.contains("negative"), "{e}");
    }

    #[test]
    fn a_bsdiff_patch_writing_more_than_its_header_says_is_cut_at_the_limit() {
        let old = noise(10_000, 9);
        let new = noise(200_000, 10);
        let mut patch = PatchFormat::Bsdiff.diff(&old, &new);
        // The header claims a small result; the streams still make 800 000 bytes.
        patch[24..32].copy_from_slice(&100u64.to_le_bytes());
        let e = PatchFormat::Bsdiff.apply(&old, &patch, 1000).unwrap_err();
        assert!(e.contains("larger than 1000"), "{e}");
    }

    #[test]
    fn entries_name_their_format_and_file() {
        assert_eq!(
            PatchFormat::of_entry("weft.bsdiff"),
            Some((PatchFormat::Bsdiff, "weft"))
        );
        assert_eq!(
            PatchFormat::of_entry("weft-app.zst-patch"),
            Some((PatchFormat::Zstd, "weft-app"))
        );
        assert_eq!(PatchFormat::of_entry("weft"), None);
    }

    #[test]
    fn smallest_puts_the_smaller_patch_first() {
        let old = noise(20_000, 3);
        let new = noise(20_000, 4);
        let patches = smallest(&old, &new);
        assert_eq!(patches.len(), 2);
        assert!(patches[0].1.len() <= patches[1].1.len());
    }
}
