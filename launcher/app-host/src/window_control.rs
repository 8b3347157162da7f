//! What a page (`weft.window`) or the shell does to the app's window, on the window
//! thread.

use serde_json::{Value, json};
use tao::{
    dpi::{LogicalPosition, LogicalSize},
    platform::unix::WindowExtUnix,
    window::Window,
};
use weft_proto::frame::WindowAction;

use crate::{page_gate::WindowOp, window::current_bounds};

/// Carries out `op` on `window`; the answer for the page.
pub fn apply(window: &Window, op: WindowOp) -> Value {
    match op {
        WindowOp::Do(action) => {
            act(window, action);
            Value::Null
        }
        WindowOp::GetBounds => match current_bounds(window) {
            Some(b) => json!({"x": b.x, "y": b.y, "width": b.width, "height": b.height}),
            None => Value::Null,
        },
        WindowOp::GetState => json!({
            "visible": window.is_visible(),
            "minimized": window.is_minimized(),
            "maximized": window.is_maximized(),
            "focused": window.is_focused(),
        }),
    }
}

fn act(window: &Window, action: WindowAction) {
    tracing::debug!(action = action.name(), "window action");
    match action {
        // GTK's present shows, de-iconifies, raises and focuses in one request (tao's
        // set_focus does nothing while the window is hidden or minimised).
        WindowAction::Focus => gtk::prelude::GtkWindowExt::present(window.gtk_window()),
        WindowAction::Show => window.set_visible(true),
        WindowAction::Hide => window.set_visible(false),
        WindowAction::Minimize => window.set_minimized(true),
        WindowAction::Maximize => {
            window.set_visible(true);
            window.set_maximized(true);
        }
        WindowAction::Restore => {
            window.set_visible(true);
            window.set_minimized(false);
            window.set_maximized(false);
        }
        WindowAction::SetBounds(b) => {
            window.set_maximized(false);
            window.set_outer_position(LogicalPosition::new(b.x, b.y));
            window.set_inner_size(LogicalSize::new(b.width, b.height));
        }
    }
}
