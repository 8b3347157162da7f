//! A real freedesktop notification server (dunst) on a private D-Bus session, for tests
//! of desktop notifications. Nothing of the machine's own session is touched.

use std::process::{Child, Command, Output, Stdio};

use crate::{SLOW, TestEnv, wait_for};

/// A D-Bus session daemon and, once a display exists, dunst on it; both are killed
/// when this is dropped.
pub struct PrivateNotifications {
    dbus: Child,
    dunst: Option<Child>,
    address: String,
    config: std::path::PathBuf,
}

impl PrivateNotifications {
    /// Starts the session bus and gives `env`'s commands its address.
    pub fn start(env: &mut TestEnv) -> PrivateNotifications {
        let (dbus, address) = crate::session_bus::start(&env.path("notifications-bus.sock"));
        env.set_env("DBUS_SESSION_BUS_ADDRESS", &address);
        // Notifications stay until acted on, so that the test can click them.
        let config = env.path("dunstrc");
        std::fs::write(
            &config,
            "[global]\n    timeout = 0\n[urgency_low]\n    timeout = 0\n\
             [urgency_normal]\n    timeout = 0\n[urgency_critical]\n    timeout = 0\n",
        )
        .expect("writing dunstrc");
        PrivateNotifications {
            dbus,
            dunst: None,
            address,
            config,
        }
    }

    /// Starts dunst on `display` and waits until it serves notifications.
    pub fn show_on(&mut self, display: &str) {
        let dunst = Command::new("dunst")
            .arg("-config")
            .arg(&self.config)
            .env_clear()
            .env("DISPLAY", display)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst (package dunst) starts");
        self.dunst = Some(dunst);
        wait_for("the notification server to be on the bus", SLOW, || {
            let out = self.dunstctl(&["count", "displayed"]);
            out.status.success().then_some(())
        });
    }

    /// Runs `dunstctl ARGS` on the private session.
    pub fn dunstctl(&self, args: &[&str]) -> Output {
        Command::new("dunstctl")
            .args(args)
            .env_clear()
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .output()
            .expect("dunstctl runs")
    }

    /// How many notifications are on screen.
    pub fn displayed(&self) -> usize {
        String::from_utf8_lossy(&self.dunstctl(&["count", "displayed"]).stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

impl Drop for PrivateNotifications {
    fn drop(&mut self) {
        if let Some(dunst) = &mut self.dunst {
            let _ = dunst.kill();
            let _ = dunst.wait();
        }
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
    }
}
