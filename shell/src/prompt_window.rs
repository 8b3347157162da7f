//! How Weft shows a question for the user (the FDC3 resolver and channel selector, the
//! consent prompt): a window of its own, centred over the app window it is about when
//! that is known, on top and focused, so that it is seen even when the panel is
//! minimised or on another monitor.

use std::{fmt::Debug, hash::Hash};

use eframe::egui;
use weft_proto::{frame::AppInfo, launch::WindowBounds};

/// Where a question about app instance `instance_id` shows: over its window, when its
/// bounds are known.
pub fn over(apps: &[AppInfo], instance_id: &str) -> Option<WindowBounds> {
    apps.iter()
        .find(|a| a.instance_id == instance_id)
        .and_then(|a| a.bounds)
}

/// Shows `contents` in the window `id` (titled `title`, `size` big, over `over`);
/// `contents` is told whether the user is closing the window, and returns the answer
/// once there is one.
pub fn show<R>(
    ctx: &egui::Context,
    id: impl Hash + Debug,
    title: &str,
    size: [f32; 2],
    over: Option<WindowBounds>,
    mut contents: impl FnMut(&mut egui::Ui, bool) -> Option<R>,
) -> Option<R> {
    let mut builder = egui::ViewportBuilder::default()
        .with_title(title)
        .with_app_id("weft-prompt")
        .with_inner_size(size)
        .with_always_on_top()
        .with_active(true);
    if let Some(b) = over {
        let x = b.x as f32 + (b.width as f32 - size[0]) / 2.0;
        let y = b.y as f32 + (b.height as f32 - size[1]) / 2.0;
        builder = builder.with_position([x.max(0.0), y.max(0.0)]);
    }
    let id = egui::ViewportId::from_hash_of(id);
    ctx.show_viewport_immediate(id, builder, |ui, _| {
        let closed = ui.input(|i| i.viewport().close_requested());
        egui::CentralPanel::default()
            .show(ui, |ui| contents(ui, closed))
            .inner
    })
}
