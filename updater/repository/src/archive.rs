//! The artifacts' formats: a full release is a gzip-compressed tar of its files; a delta
//! is a tar of patches against the earlier release's files (`NAME.bsdiff` or
//! `NAME.zst-patch`, whichever is smaller, see [`crate::patch`]) and of new files whole. Archives are deterministic (sorted names, zero times, fixed owners),
//! so the same files always make the same bytes.
//!
//! Reading is bounded: an archive may name only plain files with simple names (no
//! directories, links or `..`), and each file is read up to the size the caller allows.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
};

use crate::patch::{self, PatchFormat};

/// The files of a release: name → (bytes, executable).
pub type Files = BTreeMap<String, (Vec<u8>, bool)>;

/// What an archive could not be read or made as.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The tar or gzip stream is broken.
    #[error("the archive cannot be read: {0}")]
    Read(#[from] std::io::Error),
    /// An entry is not a plain file with a simple name.
    #[error("the archive holds {0:?}, which is not a plain file with a simple name")]
    Entry(String),
    /// A file is larger than allowed.
    #[error("{name} in the archive is larger than {limit} bytes")]
    TooLarge {
        /// The file.
        name: String,
        /// The limit.
        limit: u64,
    },
    /// A patch does not apply.
    #[error("the patch for {name} does not apply: {reason}")]
    Patch {
        /// The file.
        name: String,
        /// Why.
        reason: String,
    },
    /// A delta patches a file the installed release does not have.
    #[error("the delta patches {0}, which the installed release does not have")]
    MissingBase(String),
}

/// Whether `name` may be a file of a release: one path component, printable, not `.`
/// or `..`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

fn tar_of(
    files: impl IntoIterator<Item = (String, Vec<u8>, bool)>,
    out: impl Write,
) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    for (name, bytes, executable) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, &name, bytes.as_slice())?;
    }
    builder.into_inner()?.flush()
}

fn read_tar(input: impl Read, max_file: u64) -> Result<Files, ArchiveError> {
    let mut archive = tar::Archive::new(input);
    let mut files = Files::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular || !valid_name(&name) {
            return Err(ArchiveError::Entry(name));
        }
        if entry.size() > max_file {
            return Err(ArchiveError::TooLarge {
                name,
                limit: max_file,
            });
        }
        let executable = entry.header().mode()? & 0o111 != 0;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.by_ref().take(max_file + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > max_file {
            return Err(ArchiveError::TooLarge {
                name,
                limit: max_file,
            });
        }
        files.insert(name, (bytes, executable));
    }
    Ok(files)
}

/// The full archive of `files`.
pub fn pack_full(files: &Files) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    tar_of(
        files.iter().map(|(n, (b, x))| (n.clone(), b.clone(), *x)),
        &mut gz,
    )
    .expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// The files of a full archive, none over `max_file` bytes.
pub fn unpack_full(archive: &[u8], max_file: u64) -> Result<Files, ArchiveError> {
    read_tar(flate2::read::GzDecoder::new(archive), max_file)
}

/// How one changed file is patched in a delta: both formats' sizes, and the one kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// The file.
    pub name: String,
    /// The format kept (the smaller patch).
    pub chosen: PatchFormat,
    /// Each format's patch size in bytes.
    pub sizes: Vec<(PatchFormat, u64)>,
}

/// A delta: its bytes, and how each changed file was patched.
#[derive(Debug, Clone)]
pub struct Delta {
    /// The tar the client downloads.
    pub bytes: Vec<u8>,
    /// The changed files' patches, by name.
    pub patches: Vec<FilePatch>,
}

/// The delta from `old` to `new`: for each changed file that `old` has, the smaller of
/// its bsdiff and zstd patches (`NAME.bsdiff` or `NAME.zst-patch`); each new file
/// whole; unchanged files are left out.
pub fn make_delta(old: &Files, new: &Files) -> Delta {
    let mut entries = Vec::new();
    let mut patches = Vec::new();
    for (name, (bytes, executable)) in new {
        match old.get(name) {
            Some((before, _)) if before == bytes => {}
            Some((before, _)) => {
                let mut made = patch::smallest(before, bytes).into_iter();
                let (chosen, kept) = made.next().expect("two formats");
                let mut sizes = vec![(chosen, kept.len() as u64)];
                sizes.extend(made.map(|(f, p)| (f, p.len() as u64)));
                entries.push((format!("{name}{}", chosen.suffix()), kept, *executable));
                patches.push(FilePatch {
                    name: name.clone(),
                    chosen,
                    sizes,
                });
            }
            None => entries.push((name.clone(), bytes.clone(), *executable)),
        }
    }
    let mut out = Vec::new();
    tar_of(entries, &mut out).expect("writing to memory");
    Delta {
        bytes: out,
        patches,
    }
}

/// Applies `delta` to the installed files `old`, giving the new release's files as far
/// as the delta knows them: every file it patched or added. Files it does not name are
/// unchanged from `old` (the caller knows which files the release has).
pub fn apply_delta(old: &Files, delta: &[u8], max_file: u64) -> Result<Files, ArchiveError> {
    let mut out = Files::new();
    for (entry, (bytes, executable)) in read_tar(delta, max_file)? {
        match PatchFormat::of_entry(&entry) {
            Some((format, name)) => {
                let (base, _) = old
                    .get(name)
                    .ok_or_else(|| ArchiveError::MissingBase(name.to_owned()))?;
                let result =
                    format
                        .apply(base, &bytes, max_file)
                        .map_err(|reason| ArchiveError::Patch {
                            name: name.to_owned(),
                            reason,
                        })?;
                out.insert(name.to_owned(), (result, executable));
            }
            None => {
                out.insert(entry, (bytes, executable));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &[u8])]) -> Files {
        list.iter()
            .map(|(n, b)| (n.to_string(), (b.to_vec(), true)))
            .collect()
    }

    #[test]
    fn full_archives_are_deterministic_and_round_trip() {
        let release = files(&[("weft", b"shell binary"), ("weft-app", b"host binary")]);
        let a = pack_full(&release);
        assert_eq!(a, pack_full(&release), "the same files make the same bytes");
        assert_eq!(unpack_full(&a, 1 << 20).unwrap(), release);
        let e = unpack_full(&a, 4).unwrap_err().to_string();
        assert!(e.contains("larger than 4 bytes"), "{e}");
        assert!(unpack_full(b"not gzip", 1 << 20).is_err());
    }

    #[test]
    fn a_delta_patches_changed_files_adds_new_ones_and_leaves_the_rest_out() {
        let big: Vec<u8> = (0..50_000u32)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect();
        let mut changed = big.clone();
        changed[1234] ^= 0xff;
        let old = files(&[("weft", &big), ("weft-app", b"host 1"), ("gone", b"x")]);
        let new = files(&[
            ("weft", &changed),
            ("weft-app", b"host 1"),
            ("extra", b"new file"),
        ]);
        let made = make_delta(&old, &new);
        assert_eq!(made.patches.len(), 1, "only weft changed");
        assert_eq!(made.patches[0].name, "weft");
        let sizes = &made.patches[0].sizes;
        assert!(
            sizes[0].1 <= sizes[1].1,
            "the smaller patch is kept: {sizes:?}"
        );
        assert_eq!(sizes[0].0, made.patches[0].chosen);
        let delta = made.bytes;
        assert!(delta.len() < big.len() / 20, "{} bytes", delta.len());
        let applied = apply_delta(&old, &delta, 1 << 24).unwrap();
        assert_eq!(applied.get("weft"), new.get("weft"));
        assert_eq!(applied.get("extra"), new.get("extra"));
        assert!(
            !applied.contains_key("weft-app"),
            "unchanged files are not in the delta"
        );
        // Against the wrong base the patch applies to other bytes, or not at all.
        let wrong = files(&[("weft", b"something else"), ("weft-app", b"host 1")]);
        match apply_delta(&wrong, &delta, 1 << 24) {
            Ok(out) => assert_ne!(out.get("weft"), new.get("weft")),
            Err(e) => assert!(e.to_string().contains("weft"), "{e}"),
        }
        let e = apply_delta(&files(&[]), &delta, 1 << 24)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not have"), "{e}");
    }

    #[test]
    fn a_delta_may_carry_zstd_patches() {
        let old_weft: Vec<u8> = (0..20_000u32).flat_map(|i| (i * 7).to_le_bytes()).collect();
        let mut new_weft = old_weft.clone();
        new_weft[10] = 1;
        let patch = PatchFormat::Zstd.diff(&old_weft, &new_weft);
        let mut delta = Vec::new();
        tar_of([("weft.zst-patch".to_owned(), patch, true)], &mut delta).unwrap();
        let applied = apply_delta(&files(&[("weft", &old_weft)]), &delta, 1 << 24).unwrap();
        assert_eq!(applied.get("weft").map(|f| &f.0), Some(&new_weft));
    }

    #[test]
    fn archives_with_paths_or_links_are_refused() {
        for bad in ["../evil", "a/b", ".", ""] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let mut raw = Vec::new();
        {
            let mut builder = tar::Builder::new(&mut raw);
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, "dir/file", &b"x"[..])
                .unwrap();
            builder.finish().unwrap();
        }
        let e = apply_delta(&Files::new(), &raw, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dir/file"), "{e}");
    }
}
