//! Builds the TUF root a release trusts first into `weft`: the file named by
//! `WEFT_UPDATE_ROOT` when the release is built (the repository's `1.root.json`, from
//! the key ceremony in docs/releasing.md). Without it, the build carries no root and
//! `updates.root` must name one.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(weft_shipped_root)");
    println!("cargo::rerun-if-env-changed=WEFT_UPDATE_ROOT");
    let Some(root) = std::env::var_os("WEFT_UPDATE_ROOT").map(PathBuf::from) else {
        return;
    };
    println!("cargo::rerun-if-changed={}", root.display());
    let bytes =
        std::fs::read(&root).unwrap_or_else(|e| panic!("WEFT_UPDATE_ROOT={}: {e}", root.display()));
    if let Err(e) = weft_update_repo::check_root_metadata(&bytes) {
        panic!("WEFT_UPDATE_ROOT={} is not a TUF root: {e}", root.display());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("shipped-root.json"), bytes).expect("writing into OUT_DIR");
    println!("cargo::rustc-cfg=weft_shipped_root");
}
