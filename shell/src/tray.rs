//! The tray icon: a StatusNotifierItem on the session bus (through `ksni`), shown by
//! the desktop's tray where it has one (KDE, GNOME with the AppIndicator extension,
//! XFCE, most tiling bars). A click shows the control panel; its menu shows the panel,
//! opens the launcher, shows every app window, or quits.
//!
//! Only with the control panel (`--no-panel` shells have none). Where no tray exists
//! (no `org.kde.StatusNotifierWatcher`, or no host behind it) [`start`] says so and
//! returns `None`, and closing the panel asks before quitting instead of hiding it. A
//! tray that comes and goes later (the desktop's panel restarting) is followed:
//! [`TrayIcon::is_shown`] tells the truth at each moment.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use ksni::TrayMethods;

/// What the user picked on the tray icon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayAction {
    /// Show and focus the control panel (also a click on the icon).
    ShowPanel,
    /// Show the panel with the launcher's search focused.
    Launcher,
    /// Show every app window.
    ShowAll,
    /// Stop every app, save the session and exit.
    Quit,
}

impl TrayAction {
    /// The menu's label for it.
    pub fn label(self) -> &'static str {
        match self {
            TrayAction::ShowPanel => "Show panel",
            TrayAction::Launcher => "Launcher…",
            TrayAction::ShowAll => "Show all windows",
            TrayAction::Quit => "Quit Weft",
        }
    }
}

/// Where picked actions go. Called on the tray's D-Bus task: must not block.
pub type OnAction = Arc<dyn Fn(TrayAction) + Send + Sync>;

/// The running tray icon; dropping it removes the icon.
pub struct TrayIcon {
    handle: ksni::Handle<WeftTray>,
    shown: Arc<AtomicBool>,
}

impl TrayIcon {
    /// Whether a tray shows the icon now.
    pub fn is_shown(&self) -> bool {
        self.shown.load(Ordering::Acquire) && !self.handle.is_closed()
    }
}

impl Drop for TrayIcon {
    fn drop(&mut self) {
        // Leaves the bus in the background; nothing waits on it.
        drop(self.handle.shutdown());
    }
}

/// Puts the icon in the desktop's tray, on `runtime`; `None` (with the reason logged)
/// where the desktop has no tray.
pub fn start(runtime: &tokio::runtime::Handle, on_action: OnAction) -> Option<TrayIcon> {
    let shown = Arc::new(AtomicBool::new(true));
    let tray = WeftTray {
        on_action,
        shown: shown.clone(),
    };
    match runtime.block_on(tray.spawn()) {
        Ok(handle) => {
            tracing::info!("the tray icon is shown");
            Some(TrayIcon { handle, shown })
        }
        Err(e) => {
            tracing::info!("no tray icon ({e}): closing the panel will ask before quitting");
            None
        }
    }
}

struct WeftTray {
    on_action: OnAction,
    shown: Arc<AtomicBool>,
}

impl WeftTray {
    fn item(action: TrayAction) -> ksni::MenuItem<Self> {
        ksni::menu::StandardItem {
            label: action.label().into(),
            activate: Box::new(move |tray: &mut Self| (tray.on_action)(action)),
            ..Default::default()
        }
        .into()
    }
}

impl ksni::Tray for WeftTray {
    fn id(&self) -> String {
        "weft".into()
    }

    fn title(&self) -> String {
        "Weft".into()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            title: "Weft".into(),
            description: "Click to show the control panel".into(),
            ..Default::default()
        }
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        [16, 24, 32, 48]
            .into_iter()
            .map(|side| ksni::Icon {
                width: side,
                height: side,
                data: woven_icon(side as usize),
            })
            .collect()
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        (self.on_action)(TrayAction::ShowPanel);
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        vec![
            Self::item(TrayAction::ShowPanel),
            Self::item(TrayAction::Launcher),
            Self::item(TrayAction::ShowAll),
            ksni::MenuItem::Separator,
            Self::item(TrayAction::Quit),
        ]
    }

    fn watcher_online(&self) {
        tracing::info!("the desktop's tray is back: the tray icon is shown");
        self.shown.store(true, Ordering::Release);
    }

    fn watcher_offline(&self, reason: ksni::OfflineReason) -> bool {
        tracing::info!(?reason, "the desktop's tray went away");
        self.shown.store(false, Ordering::Release);
        // Keep serving: the icon comes back when a tray does.
        true
    }
}

/// Weft's icon, `side` pixels square, as ARGB32 in network byte order: threads woven
/// over and under, teal across (the weft) and slate down (the warp).
fn woven_icon(side: usize) -> Vec<u8> {
    const WEFT: [u8; 4] = [0xff, 0x1f, 0x9e, 0x9a];
    const WARP: [u8; 4] = [0xff, 0x3b, 0x47, 0x5c];
    const GAP: [u8; 4] = [0x00, 0x00, 0x00, 0x00];
    let cell = (side / 4).max(1);
    let mut data = Vec::with_capacity(side * side * 4);
    for y in 0..side {
        for x in 0..side {
            let (cx, cy) = (x / cell, y / cell);
            let (ix, iy) = (x % cell, y % cell);
            // Each thread is the middle of its cell; the border is the gap between.
            let on_weft = iy > 0 && iy + 1 < cell;
            let on_warp = ix > 0 && ix + 1 < cell;
            let weft_on_top = (cx + cy) % 2 == 0;
            let pixel = match (on_weft, on_warp) {
                (true, true) if weft_on_top => WEFT,
                (true, true) => WARP,
                (true, false) => WEFT,
                (false, true) => WARP,
                (false, false) => GAP,
            };
            data.extend_from_slice(&pixel);
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_icon_is_woven_and_every_size_is_whole() {
        for side in [16, 24, 32, 48] {
            let data = woven_icon(side);
            assert_eq!(data.len(), side * side * 4);
            let weft = data.chunks(4).filter(|p| p[1] == 0x1f).count();
            let warp = data.chunks(4).filter(|p| p[1] == 0x3b).count();
            assert!(
                weft > side && warp > side,
                "{side}: {weft} weft, {warp} warp"
            );
            // Over and under: both colours meet at crossings, in alternation.
            assert_ne!(
                data[(side / 8 * side + side / 8) * 4 + 1],
                data[(side / 8 * side + side / 8 + side / 4) * 4 + 1],
                "{side}"
            );
        }
    }

    #[test]
    fn the_menu_offers_the_four_actions_in_order() {
        let tray = WeftTray {
            on_action: Arc::new(|_| {}),
            shown: Arc::default(),
        };
        let labels: Vec<String> = ksni::Tray::menu(&tray)
            .into_iter()
            .map(|item| match item {
                ksni::MenuItem::Standard(s) => s.label,
                ksni::MenuItem::Separator => "—".into(),
                _ => "?".into(),
            })
            .collect();
        assert_eq!(
            labels,
            [
                "Show panel",
                "Launcher…",
                "Show all windows",
                "—",
                "Quit Weft"
            ]
        );
    }
}
