//! A system tray for tests, on a private D-Bus session: an
//! `org.kde.StatusNotifierWatcher` with a host behind it, as a desktop's tray has. It
//! records the status notifier items that register, and drives them as a user does
//! through the tray: a click on the icon (`Activate`) and a click on a menu entry
//! (`com.canonical.dbusmenu.Event`), both through `gdbus` (package libglib2.0-bin).

use std::{
    process::{Child, Command},
    sync::{Arc, Mutex},
};

use crate::{SLOW, TestEnv, wait_for};

/// The watcher's record of registered items: (bus name, object path).
type Items = Arc<Mutex<Vec<(String, String)>>>;

struct Watcher {
    items: Items,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    /// An item registers by bus name (its object at `/StatusNotifierItem`) or by object
    /// path (on the caller's connection).
    async fn register_status_notifier_item(
        &self,
        service: String,
        #[zbus(header)] header: zbus::message::Header<'_>,
    ) {
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        let item = if service.starts_with('/') {
            (sender, service)
        } else {
            (service, "/StatusNotifierItem".to_owned())
        };
        self.items.lock().unwrap().push(item);
    }

    fn register_status_notifier_host(&self, _service: String) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        let items = self.items.lock().unwrap();
        items
            .iter()
            .map(|(name, path)| format!("{name}{path}"))
            .collect()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

/// A session bus with a tray on it; everything stops when this is dropped.
pub struct PrivateTray {
    dbus: Child,
    address: String,
    items: Items,
    /// Serves the watcher: dropped (after it) with the tray.
    _runtime: tokio::runtime::Runtime,
    watcher: Option<zbus::Connection>,
}

impl PrivateTray {
    /// Starts the session bus and the tray, and gives `env`'s commands the bus.
    pub fn start(env: &mut TestEnv) -> PrivateTray {
        let (dbus, address) = crate::session_bus::start(&env.path("tray-bus.sock"));
        env.set_env("DBUS_SESSION_BUS_ADDRESS", &address);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the tray");
        let items = Items::default();
        let watcher = runtime
            .block_on(async {
                zbus::connection::Builder::address(address.as_str())?
                    .name("org.kde.StatusNotifierWatcher")?
                    .serve_at(
                        "/StatusNotifierWatcher",
                        Watcher {
                            items: items.clone(),
                        },
                    )?
                    .build()
                    .await
            })
            .expect("the tray's watcher is on the bus");
        PrivateTray {
            dbus,
            address,
            items,
            _runtime: runtime,
            watcher: Some(watcher),
        }
    }

    /// Waits for an item to register; its bus name and object path.
    pub fn item(&self) -> (String, String) {
        wait_for("a tray icon to register", SLOW, || {
            self.items.lock().unwrap().first().cloned()
        })
    }

    /// Clicks the icon.
    pub fn click_icon(&self) {
        let (name, path) = self.item();
        self.gdbus(
            &name,
            &path,
            "org.kde.StatusNotifierItem.Activate",
            &["0", "0"],
        );
    }

    /// The labels of the icon's menu, in order (separators have none).
    pub fn menu_labels(&self) -> Vec<String> {
        self.menu().into_iter().map(|(_, label)| label).collect()
    }

    /// Clicks the menu entry labelled `label`.
    pub fn click_menu(&self, label: &str) {
        let (name, _) = self.item();
        let menu = self.menu_path();
        let id = self
            .menu()
            .into_iter()
            .find(|(_, l)| l == label)
            .unwrap_or_else(|| panic!("no menu entry {label:?} in {:?}", self.menu_labels()))
            .0;
        self.gdbus(
            &name,
            &menu,
            "com.canonical.dbusmenu.Event",
            &[&id.to_string(), "clicked", "<0>", "0"],
        );
    }

    /// The menu's entries with a label: (id, label).
    fn menu(&self) -> Vec<(u32, String)> {
        let (name, _) = self.item();
        let layout = self.gdbus(
            &name,
            &self.menu_path(),
            "com.canonical.dbusmenu.GetLayout",
            &["0", "-1", "[]"],
        );
        // Each entry prints as `(ID, {…'label': <'LABEL'>…}, [])`.
        let mut entries = Vec::new();
        for part in layout.split("<(").skip(1) {
            let id = part.split(',').next().and_then(|id| id.trim().parse().ok());
            let label = part
                .split_once("'label': <'")
                .and_then(|(_, rest)| rest.split_once("'>"))
                .map(|(label, _)| label.to_owned());
            if let (Some(id), Some(label)) = (id, label) {
                entries.push((id, label));
            }
        }
        entries
    }

    /// The object path of the icon's menu, from its `Menu` property.
    fn menu_path(&self) -> String {
        let (name, path) = self.item();
        let out = self.gdbus(
            &name,
            &path,
            "org.freedesktop.DBus.Properties.Get",
            &["org.kde.StatusNotifierItem", "Menu"],
        );
        // `(<objectpath '/MenuBar'>,)`
        out.split_once('\'')
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(path, _)| path.to_owned())
            .unwrap_or_else(|| panic!("no menu path in {out:?}"))
    }

    fn gdbus(&self, dest: &str, path: &str, method: &str, args: &[&str]) -> String {
        let out = Command::new("gdbus")
            .args(["call", "--session", "--dest", dest, "--object-path", path])
            .args(["--method", method, "--"])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("gdbus (package libglib2.0-bin) runs");
        assert!(
            out.status.success(),
            "gdbus {method} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateTray {
    fn drop(&mut self) {
        drop(self.watcher.take());
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
    }
}
