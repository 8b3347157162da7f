//! Installs a version with `weft-updater`'s installer for the crash tests: announces
//! each step on stdout before it is taken, and stops for good before the step named, so
//! that the test can `kill -9` it there. The version's `weft` is a script answering
//! `--version`.
//!
//! `weft-install-helper ROOT VERSION [STOP_BEFORE_STEP]`

use std::io::Write;

use weft_update_repo::archive::Files;
use weft_updater::install::{Installation, Step};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (root, version) = (
        std::path::Path::new(&args[1]),
        semver::Version::parse(&args[2]).unwrap(),
    );
    let stop = args.get(3).map(|s| {
        *Step::ALL
            .iter()
            .find(|step| format!("{step:?}") == *s)
            .unwrap_or_else(|| panic!("no step {s}"))
    });
    let (mut install, recovered) = Installation::open(root).expect("opening the install");
    println!("recovered {recovered:?}");
    let files = Files::from([(
        "weft".to_owned(),
        (format!("#!/bin/sh\necho {version}\n").into_bytes(), true),
    )]);
    install
        .install(&version, &files, &mut |step| {
            println!("{step:?}");
            std::io::stdout().flush().unwrap();
            if Some(step) == stop {
                loop {
                    std::thread::park();
                }
            }
        })
        .expect("installing");
    install.mark_healthy(&version).expect("marking healthy");
    println!("done");
}
