//! Verifying a whole stream without changing it: `weft journal check`.

use std::{fs::File, ops::ControlFlow, path::Path};

use crate::{
    Damage, DamageKind, KeySet, StoreError, record,
    seal::SegmentCipher,
    segment::{self, HEADER_LEN},
    stream::{read_name, segment_files},
};

/// What checking a stream found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The stream's name, as recorded in its folder.
    pub stream: String,
    /// Segment files.
    pub segments: usize,
    /// Records that passed their checksum and authentication.
    pub records: u64,
    /// Bytes of segment files.
    pub bytes: u64,
    /// Everything that is not a valid record, including what was quarantined before.
    pub damage: Vec<Damage>,
}

/// Reads every record of the stream in `dir`, checking checksums and authenticating
/// each with `keys`. Changes nothing: damage is reported, not moved.
pub fn check_stream(dir: &Path, keys: &KeySet) -> Result<CheckReport, StoreError> {
    let stream = read_name(dir)?;
    let mut report = CheckReport {
        stream: stream.clone(),
        segments: 0,
        records: 0,
        bytes: 0,
        damage: vec![],
    };
    let quarantined = dir.join("quarantine");
    if let Ok(entries) = std::fs::read_dir(&quarantined) {
        for entry in entries.flatten() {
            report.damage.push(Damage {
                stream: stream.clone(),
                segment: entry.path(),
                offset: 0,
                len: entry.metadata().map_or(0, |m| m.len()),
                kind: DamageKind::Quarantined,
                quarantined: Some(entry.path()),
            });
        }
    }
    for (_, path) in segment_files(dir)? {
        let context = || format!("reading {}", path.display());
        let mut file = File::open(&path).map_err(|e| StoreError::from_io(context(), e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::from_io(context(), e))?
            .len();
        report.segments += 1;
        report.bytes += len;
        let damage = |offset, len, kind| Damage {
            stream: stream.clone(),
            segment: path.clone(),
            offset,
            len,
            kind,
            quarantined: None,
        };
        let header =
            match segment::read_header(&mut file).map_err(|e| StoreError::from_io(context(), e))? {
                Ok(header) => header,
                Err(_) => {
                    report.damage.push(damage(0, len, DamageKind::Header));
                    continue;
                }
            };
        let cipher = keys
            .get(header.key_id)
            .map(|key| SegmentCipher::new(key, &header.salt, &stream));
        let mut bad = vec![];
        let mut records = 0;
        let scan = segment::scan(&file, HEADER_LEN, len, |view, offset| {
            let opened = cipher
                .as_ref()
                .and_then(|c| c.open(view.seq, view.ts_ms, view.meta, view.sealed));
            let len = record::encoded_len(view.meta, view.sealed.len()) as u64;
            match (opened, &cipher) {
                (Some(_), _) => records += 1,
                (None, None) => bad.push((offset, len, DamageKind::MissingKey(header.key_id))),
                (None, Some(_)) => bad.push((offset, len, DamageKind::Authentication)),
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| StoreError::from_io(context(), e))?;
        report.records += records;
        for (offset, len, kind) in bad {
            report.damage.push(damage(offset, len, kind));
        }
        for range in &scan.damaged {
            report
                .damage
                .push(damage(range.offset, range.len, DamageKind::Checksum));
        }
        if let Some(torn) = &scan.torn_tail {
            report
                .damage
                .push(damage(torn.offset, torn.len, DamageKind::TornTail));
        }
    }
    Ok(report)
}
