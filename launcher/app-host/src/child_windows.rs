//! Child windows: what a page's `window.open` of a URL on its own app's origins opens.
//!
//! A child window is a GTK window in the app's own process, holding a webview related
//! to its opener: the same web process and session (cookies, storage), so
//! `window.opener` and `postMessage` work both ways, as pop-out windows expect. It
//! follows the app's navigation rules and stays with its app: hidden, shown, minimised
//! and restored with the app's window, closed when the app stops. It is the app, not
//! another one: its `window.weft` and `window.fdc3` are its opener's (WebKit gives a
//! related view its opener's scripts, and the bridge hands over to the opener's), so it
//! speaks with the app's identity over the app's one connection. Layout snapshots keep
//! the app's main window only. `window.open` of any other URL never opens inside Weft
//! (see [`crate::navigation::NewWindow`]).

use std::{cell::RefCell, rc::Rc};

use gtk::prelude::*;
use tokio::sync::mpsc;
use weft_proto::frame::{PageViolation, WindowAction};
use wry::{
    NewWindowFeatures, NewWindowResponse, WebView, WebViewBuilder, WebViewBuilderExtUnix,
    WebViewExtUnix,
};

use crate::{bus::FromWindow, navigation, page_gate::WindowOp};

/// Where a child's `window.close()` goes (the bridge sends it there): WebKit marks a
/// related view closed on `window.close()` but does not tell its owner (no `close`
/// signal), so the child navigates here and its navigation handler closes the window.
/// Navigating here does nothing else, from any page.
const CLOSE_URL: &str = "weft-close:child";

/// Most child windows an app may have open at once; more are refused (and audited), so
/// that a page opening windows in a loop cannot bury the desktop.
const MAX_CHILDREN: usize = 32;

/// Size of a child window whose opener asked for none, in logical pixels.
const DEFAULT_SIZE: (f64, f64) = (800.0, 600.0);

/// The app's child windows, open and to come. Cheap to clone: every clone is the same
/// set of windows.
#[derive(Clone)]
pub struct ChildWindows {
    inner: Rc<Inner>,
}

struct Inner {
    /// The app's title, for a child until its page names itself.
    title: String,
    /// Where the app's pages may go.
    origins: Vec<String>,
    /// Whether other web URLs go to the system browser (else they are refused).
    in_browser: bool,
    /// Where violations are reported.
    to_bus: mpsc::UnboundedSender<FromWindow>,
    /// The open ones, oldest first.
    open: RefCell<Vec<Child>>,
    /// The next child's number.
    next: std::cell::Cell<u64>,
}

struct Child {
    id: u64,
    window: gtk::Window,
    /// Kept alive as long as the window: dropping it destroys the page.
    _webview: WebView,
}

impl ChildWindows {
    /// No children yet, for an app on `origins`.
    pub fn new(
        title: &str,
        origins: Vec<String>,
        in_browser: bool,
        to_bus: mpsc::UnboundedSender<FromWindow>,
    ) -> Self {
        ChildWindows {
            inner: Rc::new(Inner {
                title: title.to_owned(),
                origins,
                in_browser,
                to_bus,
                open: RefCell::new(Vec::new()),
                next: std::cell::Cell::new(1),
            }),
        }
    }

    /// Answers a page's (the main page's or a child's) `window.open(url)`.
    pub fn request(&self, url: String, features: NewWindowFeatures) -> NewWindowResponse {
        match navigation::new_window(&self.inner.origins, &url, self.inner.in_browser) {
            navigation::NewWindow::Child if self.inner.open.borrow().len() >= MAX_CHILDREN => {
                tracing::warn!(url, "refused a child window: {MAX_CHILDREN} are open");
                let _ = self
                    .inner
                    .to_bus
                    .send(FromWindow::Violation(PageViolation::NewWindow {
                        url,
                        opened_in_browser: false,
                    }));
                NewWindowResponse::Deny
            }
            navigation::NewWindow::Child => match self.open(features) {
                Ok(webview) => {
                    tracing::info!(url, "opened a child window");
                    NewWindowResponse::Create { webview }
                }
                Err(e) => {
                    tracing::warn!(url, "cannot open a child window: {e}");
                    NewWindowResponse::Deny
                }
            },
            decision => {
                let opened_in_browser =
                    decision == navigation::NewWindow::Browser && open_in_browser(&url);
                tracing::info!(url, opened_in_browser, "the page asked for a new window");
                let _ = self
                    .inner
                    .to_bus
                    .send(FromWindow::Violation(PageViolation::NewWindow {
                        url,
                        opened_in_browser,
                    }));
                NewWindowResponse::Deny
            }
        }
    }

    /// Does to every child what `op` did to the app's window, where a child follows:
    /// hiding, showing, minimising and restoring. Focus, maximise and bounds are the
    /// app window's own.
    pub fn follow(&self, op: &WindowOp) {
        let WindowOp::Do(action) = op else { return };
        for child in self.inner.open.borrow().iter() {
            match action {
                WindowAction::Hide => child.window.hide(),
                WindowAction::Show => child.window.show(),
                WindowAction::Minimize => child.window.iconify(),
                WindowAction::Restore => {
                    child.window.show();
                    child.window.deiconify();
                }
                WindowAction::Focus | WindowAction::Maximize | WindowAction::SetBounds(_) => {}
            }
        }
    }

    /// Opens a child window; WebKit loads the URL asked for into the webview returned.
    fn open(&self, features: NewWindowFeatures) -> Result<webkit2gtk::WebView, wry::Error> {
        let window = gtk::Window::new(gtk::WindowType::Toplevel);
        window.set_title(&self.inner.title);
        let (width, height) = features
            .size
            .map(|s| (s.width, s.height))
            .unwrap_or(DEFAULT_SIZE);
        window.set_default_size(width.round() as i32, height.round() as i32);
        if let Some(at) = features.position {
            window.move_(at.x.round() as i32, at.y.round() as i32);
        }
        let container = gtk::Box::new(gtk::Orientation::Vertical, 0);
        window.add(&container);

        let origins = self.inner.origins.clone();
        let nav_bus = self.inner.to_bus.clone();
        let closing = window.clone();
        let children = self.clone();
        let webview = WebViewBuilder::new()
            .with_related_view(features.opener.webview)
            .with_devtools(true)
            .with_navigation_handler(move |to| {
                if to == CLOSE_URL {
                    // Not from inside WebKit's policy decision: closing destroys the view.
                    let closing = closing.clone();
                    gtk::glib::idle_add_local_once(move || closing.close());
                    return false;
                }
                if navigation::allowed(&origins, &to) {
                    return true;
                }
                tracing::warn!(url = to, "blocked a child window's navigation");
                let _ = nav_bus.send(FromWindow::Violation(PageViolation::NavigationBlocked {
                    url: to,
                }));
                false
            })
            .with_new_window_req_handler(move |to, features| children.request(to, features))
            .build_gtk(&container)?;
        let view = webview.webview();

        // The window takes the page's title, and closes when WebKit asks.
        let titled = window.clone();
        webkit2gtk::WebViewExt::connect_title_notify(&view, move |view| {
            if let Some(title) = webkit2gtk::WebViewExt::title(view).filter(|t| !t.is_empty()) {
                titled.set_title(&title);
            }
        });
        let closing = window.clone();
        webkit2gtk::WebViewExt::connect_close(&view, move |_| closing.close());

        let id = self.inner.next.get();
        self.inner.next.set(id + 1);
        let gone = Rc::downgrade(&self.inner);
        window.connect_destroy(move |_| {
            if let Some(inner) = gone.upgrade() {
                // Dropped off this borrow: the webview's destruction may re-enter GTK.
                let child = {
                    let mut open = inner.open.borrow_mut();
                    open.iter()
                        .position(|c| c.id == id)
                        .map(|at| open.remove(at))
                };
                drop(child);
            }
        });
        window.show_all();
        self.inner.open.borrow_mut().push(Child {
            id,
            window,
            _webview: webview,
        });
        Ok(view)
    }
}

/// Hands `url` to the desktop's browser (`xdg-open`); whether that started.
fn open_in_browser(url: &str) -> bool {
    let started = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match started {
        Ok(mut child) => {
            // Reaped off the window thread; xdg-open hands over and exits.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(e) => {
            tracing::warn!("cannot open {url} in the system browser (xdg-open): {e}");
            false
        }
    }
}
