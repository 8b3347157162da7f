//! `weft logs APPID [--follow] [-n N]`: prints an app's log file (and the rotated ones
//! before it), then optionally follows it as it grows and rotates. Works whether or not
//! the shell runs: it reads the files in the data directory.

use std::{
    collections::VecDeque,
    fs::File,
    io::{self, BufRead, BufReader, Read, Write},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, bail};
use weft_supervisor::{app_log::log_path, log_file::RotatingFile};

use crate::{data_dir, logging};

/// How often a followed log is looked at for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// Rotated files looked at, oldest first (more than any setting keeps is harmless).
const MAX_ROTATED: usize = 100;

/// `weft logs`.
pub fn run(
    data_dir: Option<&Path>,
    app_id: &str,
    follow: bool,
    lines: Option<usize>,
) -> anyhow::Result<ExitCode> {
    weft_proto::identity::validate_app_id(app_id)
        .with_context(|| format!("`{app_id}` is not an app id"))?;
    let data_dir = data_dir::resolve(data_dir)?;
    let dir = logging::app_logs_dir(&data_dir);
    let current = log_path(&dir, app_id);
    let rotated: Vec<PathBuf> = (1..=MAX_ROTATED)
        .rev()
        .map(|n| RotatingFile::rotated_path(&current, n))
        .filter(|p| p.exists())
        .collect();
    // Read through one handle, which following then continues from: no line written
    // meanwhile is missed or printed twice.
    let current_file = File::open(&current).ok();
    if rotated.is_empty() && current_file.is_none() && !follow {
        bail!(
            "no log for {app_id} in {}: its log starts when this data directory's shell first starts it",
            dir.display()
        );
    }
    let mut out = io::stdout().lock();
    if let Err(e) = print_existing(&rotated, current_file.as_ref(), lines, &mut out) {
        return stdout_closed_or(e);
    }
    if follow && let Err(e) = follow_file(&current, current_file, &mut out) {
        return stdout_closed_or(e);
    }
    Ok(ExitCode::SUCCESS)
}

/// A closed stdout (`weft logs app | head`) ends the command quietly.
fn stdout_closed_or(e: io::Error) -> anyhow::Result<ExitCode> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(e.into())
    }
}

/// Prints the `rotated` files in order and then `current` to its end, or only the last
/// `lines` lines of them all.
fn print_existing(
    rotated: &[PathBuf],
    current: Option<&File>,
    lines: Option<usize>,
    out: &mut impl Write,
) -> io::Result<()> {
    // A file rotated away between listing and reading has moved on: it is skipped.
    let files = rotated
        .iter()
        .filter_map(|f| File::open(f).ok())
        .map(|f| Box::new(f) as Box<dyn Read + '_>)
        .chain(current.map(|f| Box::new(f) as Box<dyn Read + '_>));
    match lines {
        None => {
            for mut file in files {
                io::copy(&mut file, out)?;
            }
        }
        Some(n) => {
            let mut last = VecDeque::with_capacity(n.min(10_000));
            for file in files {
                for line in BufReader::new(file).split(b'\n') {
                    if n == 0 {
                        break;
                    }
                    if last.len() == n {
                        last.pop_front();
                    }
                    last.push_back(line?);
                }
            }
            for line in last {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()
}

/// Prints what is appended to `path`, continuing from `current` (already read to its
/// end) and following it to the new file when it is rotated, until interrupted.
fn follow_file(path: &Path, current: Option<File>, out: &mut impl Write) -> io::Result<()> {
    let mut open = match current {
        Some(file) => {
            let ino = file.metadata()?.ino();
            Some((file, ino))
        }
        None => None,
    };
    let mut buf = Vec::new();
    loop {
        if open.is_none()
            && let Ok(file) = File::open(path)
        {
            let ino = file.metadata()?.ino();
            open = Some((file, ino));
        }
        if let Some((file, ino)) = &mut open {
            buf.clear();
            file.read_to_end(&mut buf)?;
            out.write_all(&buf)?;
            out.flush()?;
            // Rotated (a new file at the path) or truncated: finish the old, take the new.
            let moved = match std::fs::metadata(path) {
                Ok(m) => m.ino() != *ino,
                Err(_) => true,
            };
            if moved {
                buf.clear();
                file.read_to_end(&mut buf)?;
                out.write_all(&buf)?;
                match File::open(path) {
                    Ok(new) => {
                        let ino = new.metadata()?.ino();
                        open = Some((new, ino));
                    }
                    Err(_) => open = None,
                }
                continue;
            }
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_span_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("a.log.1");
        let cur = dir.path().join("a.log");
        std::fs::write(&old, "1\n2\n3\n").unwrap();
        std::fs::write(&cur, "4\n5\n").unwrap();
        let mut out = Vec::new();
        let file = File::open(&cur).unwrap();
        print_existing(std::slice::from_ref(&old), Some(&file), Some(3), &mut out).unwrap();
        assert_eq!(out, b"3\n4\n5\n");
        let mut out = Vec::new();
        let file = File::open(&cur).unwrap();
        print_existing(&[old], Some(&file), None, &mut out).unwrap();
        assert_eq!(out, b"1\n2\n3\n4\n5\n");
    }
}
