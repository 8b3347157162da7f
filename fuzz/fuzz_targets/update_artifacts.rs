//! Arbitrary bytes as the update artifacts a client reads: a full archive, a delta
//! against an installed release, a bsdiff or zstd patch of one file, and a target's
//! custom fields. Reading them must never panic, and nothing may come out larger than
//! the limit it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_update_repo::{
    Artifact,
    archive::{Files, apply_delta, unpack_full},
    patch::PatchFormat,
};

const LIMIT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let base: Vec<u8> = (0..4096u32).flat_map(|i| (i * 31).to_le_bytes()).collect();
    let installed = Files::from([
        ("weft".to_owned(), (base.clone(), true)),
        ("weft-app".to_owned(), (b"host".to_vec(), true)),
    ]);
    for files in [unpack_full(data, LIMIT), apply_delta(&installed, data, LIMIT)]
        .into_iter()
        .flatten()
    {
        assert!(files.values().all(|(bytes, _)| bytes.len() as u64 <= LIMIT));
    }
    for format in PatchFormat::ALL {
        if let Ok(out) = format.apply(&base, data, LIMIT) {
            assert!(out.len() as u64 <= LIMIT);
        }
    }
    if let Ok(custom) = serde_json::from_slice::<serde_json::Value>(data) {
        let custom = custom.as_object().cloned().unwrap_or_default();
        let _ = Artifact::from_custom(&custom.into_iter().collect());
    }
});
