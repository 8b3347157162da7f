//! The installer under `kill -9`: whichever step it dies at, exactly one complete
//! version is current and starts, before the next start recovers and after.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use weft_updater::install::{Installation, Step};

const HELPER: &str = env!("CARGO_BIN_EXE_weft-install-helper");

fn helper(root: &Path, version: &str, stop: Option<Step>) -> std::process::Child {
    let mut cmd = Command::new(HELPER);
    cmd.arg(root).arg(version);
    if let Some(step) = stop {
        cmd.arg(format!("{step:?}"));
    }
    cmd.stdout(Stdio::piped())
        .spawn()
        .expect("starting the install helper")
}

/// What `ROOT/current/weft --version` says.
fn current_answers(root: &Path) -> String {
    let out = Command::new(root.join("current/weft"))
        .arg("--version")
        .output()
        .expect("the current version starts");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn kill_9_at_each_install_step_leaves_exactly_one_version_that_starts() {
    for step in Step::ALL {
        for round in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            let first = helper(root, "1.0.0", None).wait_with_output().unwrap();
            assert!(String::from_utf8_lossy(&first.stdout).ends_with("done\n"));

            let mut child = helper(root, "2.0.0", Some(step));
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let wanted = format!("{step:?}");
            loop {
                let line = lines.next().expect("the helper reaches the step").unwrap();
                if line == wanted {
                    break;
                }
            }
            child.kill().expect("kill -9");
            child.wait().unwrap();

            // Before any recovery, the current version is whole and starts.
            let before = current_answers(root);
            assert!(
                ["1.0.0", "2.0.0"].contains(&before.as_str()),
                "{step:?} #{round}: {before}"
            );

            // The next start finishes or undoes the install.
            let (install, recovered) = Installation::open(root).unwrap();
            let current = install.status().current.unwrap().to_string();
            assert_eq!(
                current_answers(root),
                current,
                "{step:?} #{round}: {recovered:?}"
            );
            let expected = match step {
                Step::Journal | Step::Unpack => "1.0.0",
                Step::Switch | Step::Record | Step::Cleanup => "2.0.0",
            };
            assert_eq!(current, expected, "{step:?} #{round}: {recovered:?}");
            assert!(!root.join("journal.json").exists());
            let left: Vec<String> = std::fs::read_dir(root.join("versions"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect();
            assert!(left.is_empty(), "{step:?} #{round}: {left:?}");
        }
    }
}
