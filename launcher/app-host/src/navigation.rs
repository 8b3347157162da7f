//! Where an app's pages and frames may go: the origins in its launch spec (its own
//! first, then those its manifest declares and policy allows). Everything else is
//! blocked by the webview's navigation handler and reported for the audit log.
//!
//! `about:blank` and `about:srcdoc` (empty frames) are allowed; `blob:` URLs count as
//! their creator's origin; `data:` and every other scheme are refused.

use url::Url;

/// The ASCII origin of `url` as the allowlist spells origins, if it has one.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    if parsed.scheme() == crate::content::SCHEME {
        return Some(format!("{}://{}", parsed.scheme(), parsed.host_str()?));
    }
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Whether a page or frame may load `url`.
pub fn allowed(origins: &[String], url: &str) -> bool {
    if matches!(url, "about:blank" | "about:srcdoc") {
        return true;
    }
    origin_of(url).is_some_and(|origin| origins.contains(&origin))
}

/// Whether `url` is an http(s) URL, the only kind handed to the system browser.
fn is_web(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Where a page's `window.open(url)` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewWindow {
    /// A child window of the app, in its process (see [`crate::child_windows`]).
    Child,
    /// The system browser.
    Browser,
    /// Nowhere.
    Refused,
}

/// Where `window.open(url)` goes: the app's own origins (and a blank window to write
/// into) open a child window; other web URLs go to the system browser when policy says
/// so (`in_browser`); everything else is refused.
pub fn new_window(origins: &[String], url: &str, in_browser: bool) -> NewWindow {
    if url.is_empty() || allowed(origins, url) {
        NewWindow::Child
    } else if in_browser && is_web(url) {
        NewWindow::Browser
    } else {
        NewWindow::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_origins_and_empty_frames_are_allowed() {
        let origins = vec![
            "weft://localhost".to_owned(),
            "https://charts.example".to_owned(),
        ];
        for ok in [
            "weft://localhost/app/index.html?x=1",
            "https://charts.example/embed",
            "https://charts.example:443/",
            "about:blank",
            "blob:https://charts.example/5b0c",
        ] {
            assert!(allowed(&origins, ok), "{ok}");
        }
        for blocked in [
            "https://evil.example/",
            "http://charts.example/",
            "https://charts.example:8443/",
            "weft://other/app",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "not a url",
        ] {
            assert!(!allowed(&origins, blocked), "{blocked}");
        }
        assert!(is_web("https://x.example/") && !is_web("file:///x"));
    }

    #[test]
    fn new_windows_on_the_apps_origins_are_children_the_rest_the_browser_or_nothing() {
        let origins = vec!["weft://localhost".to_owned()];
        for child in ["weft://localhost/app/popout.html", "about:blank", ""] {
            assert_eq!(
                new_window(&origins, child, true),
                NewWindow::Child,
                "{child}"
            );
            assert_eq!(
                new_window(&origins, child, false),
                NewWindow::Child,
                "{child}"
            );
        }
        let web = "https://example.org/report";
        assert_eq!(new_window(&origins, web, true), NewWindow::Browser);
        assert_eq!(new_window(&origins, web, false), NewWindow::Refused);
        for never in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "weft://other/x",
        ] {
            assert_eq!(
                new_window(&origins, never, true),
                NewWindow::Refused,
                "{never}"
            );
        }
    }
}
