//! The clipboard behind `weft.clipboard`: the desktop's clipboard (X11 selections or
//! Wayland, through `arboard`), held by the shell for as long as it runs so that text
//! a page wrote stays on the clipboard after the page is gone.

use std::sync::Mutex;

use crate::locking::lock;

/// Longest text a page may write, in bytes.
const MAX_TEXT: usize = 1024 * 1024;

/// The shell's clipboard, opened on first use.
#[derive(Default)]
pub struct Clipboard {
    open: Mutex<Option<arboard::Clipboard>>,
}

impl Clipboard {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut arboard::Clipboard) -> Result<T, arboard::Error>,
    ) -> Result<T, (&'static str, String)> {
        let mut open = lock(&self.open);
        if open.is_none() {
            *open = Some(arboard::Clipboard::new().map_err(|e| {
                (
                    "Unavailable",
                    format!("the desktop's clipboard cannot be used: {e}"),
                )
            })?);
        }
        let clipboard = open.as_mut().expect("opened above");
        f(clipboard).map_err(|e| ("Unavailable", format!("the clipboard failed: {e}")))
    }

    /// The clipboard's text; empty when it holds none (an image, or nothing).
    pub fn read_text(&self) -> Result<String, (&'static str, String)> {
        self.with(|c| match c.get_text() {
            Err(arboard::Error::ContentNotAvailable) => Ok(String::new()),
            other => other,
        })
    }

    /// Puts `text` on the clipboard.
    pub fn write_text(&self, text: &str) -> Result<(), (&'static str, String)> {
        if text.len() > MAX_TEXT {
            return Err((
                "InvalidArgument",
                format!("the text is larger than {} KiB", MAX_TEXT / 1024),
            ));
        }
        self.with(|c| c.set_text(text))
    }
}
