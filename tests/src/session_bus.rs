//! A private D-Bus session daemon for tests of what the shell does on the desktop's
//! session bus (keychain, notifications).

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

/// Starts `dbus-daemon --session` listening on `socket`; the daemon and its address.
pub fn start(socket: &Path) -> (Child, String) {
    let mut dbus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .arg(format!("--address=unix:path={}", socket.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon (package dbus) starts");
    let mut first = String::new();
    BufReader::new(dbus.stdout.take().expect("piped"))
        .read_line(&mut first)
        .expect("dbus-daemon prints its address");
    (dbus, first.trim().to_owned())
}
