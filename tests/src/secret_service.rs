//! A real Secret Service (gnome-keyring) on a private D-Bus session, for tests of what
//! the shell keeps in the OS keychain. Nothing of the machine's own session is touched.

use std::{
    io::Write,
    process::{Child, Command, Output, Stdio},
};

use crate::{SLOW, TestEnv, wait_for};

/// A D-Bus session daemon and an unlocked gnome-keyring on it; both are killed when
/// this is dropped.
pub struct PrivateKeyring {
    dbus: Child,
    keyring: Child,
    address: String,
    env: Vec<(String, String)>,
}

impl PrivateKeyring {
    /// Starts both in `env`'s directories and gives `env`'s commands the session's
    /// address.
    pub fn start(env: &mut TestEnv) -> PrivateKeyring {
        let (dbus, address) = crate::session_bus::start(&env.path("dbus.sock"));
        let vars = vec![
            ("DBUS_SESSION_BUS_ADDRESS".to_owned(), address.clone()),
            ("HOME".to_owned(), env.home().display().to_string()),
            (
                "XDG_RUNTIME_DIR".to_owned(),
                env.runtime_dir().display().to_string(),
            ),
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ];
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon (package gnome-keyring) starts");
        // The login keyring's password, on standard input; it reads until the end.
        let mut stdin = keyring.stdin.take().expect("piped");
        stdin.write_all(b"weft-test").expect("password written");
        drop(stdin);
        let ring = PrivateKeyring {
            dbus,
            keyring,
            address: address.clone(),
            env: vars,
        };
        wait_for("the Secret Service to be on the bus", SLOW, || {
            let out = ring.run(Command::new("dbus-send").args([
                "--session",
                "--dest=org.freedesktop.DBus",
                "--print-reply",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ]));
            String::from_utf8_lossy(&out.stdout)
                .contains("boolean true")
                .then_some(())
        });
        env.set_env("DBUS_SESSION_BUS_ADDRESS", &address);
        ring
    }

    /// Runs `cmd` in the private session.
    pub fn run(&self, cmd: &mut Command) -> Output {
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("the command runs")
    }

    /// Every secret stored under `service`, as `secret-tool search --all` prints them.
    pub fn search(&self, service: &str) -> String {
        let out = self.run(
            Command::new("secret-tool").args(["search", "--all", "--unlock", "service", service]),
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The session's address.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for PrivateKeyring {
    fn drop(&mut self) {
        for child in [&mut self.keyring, &mut self.dbus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
