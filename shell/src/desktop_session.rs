//! Noticing that the desktop session ended, so that the shell stops cleanly (saving the
//! session, stopping its apps, removing its socket) instead of being torn down.
//!
//! A session ends by signal (the session manager's SIGTERM, or SIGHUP when the
//! terminal or login session goes: see `shell_process::watch_signals`) or by the X
//! display going away under the shell. [`watch_display`] holds a connection of its own
//! to the display and raises the shutdown when it breaks. Xlib, which the control
//! panel's window uses, would end the whole process at once on the same break (its
//! default I/O error handler calls `exit`); [`keep_xlib_from_exiting`] replaces that
//! handler with one that raises the shutdown and parks the panel's thread, so the
//! shell's stop runs to its end on the main thread.

use std::{
    io::Write,
    os::raw::c_int,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use x11rb::connection::Connection;

use crate::shutdown::Shutdown;

/// Watches the X display named by `DISPLAY`, if any: when its connection breaks, the
/// shutdown is raised. Nothing is watched without `DISPLAY` (a Wayland-only or headless
/// session), or when the display cannot be reached now (said in the log).
pub fn watch_display(shutdown: &Shutdown) -> anyhow::Result<()> {
    let Ok(name) = std::env::var("DISPLAY") else {
        return Ok(());
    };
    let conn = match x11rb::connect(Some(&name)) {
        Ok((conn, _screen)) => conn,
        Err(e) => {
            tracing::warn!(
                display = name,
                "cannot reach the X display, so its end will not be noticed: {e}"
            );
            return Ok(());
        }
    };
    let shutdown = shutdown.clone();
    std::thread::Builder::new()
        .name("weft-display".into())
        .spawn(move || {
            // No events are selected: this waits until the connection fails.
            let error = loop {
                match conn.wait_for_event() {
                    Ok(_) => continue,
                    Err(e) => break e,
                }
            };
            tracing::info!(display = name, "the X display went away: {error}");
            shutdown.raise(format!(
                "the desktop session ended (the X display {name} went away)"
            ));
        })
        .context("starting the display watcher")?;
    Ok(())
}

/// Where the Xlib I/O error handler raises the shutdown.
static ON_XLIB_GONE: OnceLock<Shutdown> = OnceLock::new();

/// Set once Xlib lost the display: its handler holds Xlib's lock on the panel's thread
/// from then on.
static XLIB_LOST: AtomicBool = AtomicBool::new(false);

/// How long the Xlib handler waits for the shell's stop before ending the process
/// itself (as Xlib would have).
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// Replaces Xlib's fatal I/O error handler for this process: instead of `exit(1)` on a
/// lost display, raise `shutdown` and park the calling (panel) thread while the main
/// thread stops the shell. Call before the panel opens its window.
pub fn keep_xlib_from_exiting(shutdown: &Shutdown) -> anyhow::Result<()> {
    if ON_XLIB_GONE.set(shutdown.clone()).is_err() {
        return Ok(());
    }
    let xlib = x11_dl::xlib::Xlib::open().context("loading libX11")?;
    // SAFETY: XSetIOErrorHandler only stores the function pointer in libX11's global
    // state (the same library instance the panel's window system loads); the handler
    // is a plain `extern "C"` function that never unwinds (see below).
    unsafe { (xlib.XSetIOErrorHandler)(Some(display_lost)) };
    Ok(())
}

/// Xlib's I/O error handler: the display is gone. Returning would let Xlib exit the
/// process, so this never returns: it raises the shutdown and waits for the main thread
/// to finish the stop and exit (or ends the process after [`STOP_DEADLINE`]).
unsafe extern "C" fn display_lost(_display: *mut x11_dl::xlib::Display) -> c_int {
    XLIB_LOST.store(true, Ordering::Release);
    // Raised from another thread: the shutdown's callbacks reach into the panel, whose
    // locks this (the panel's) thread may hold. Nothing may unwind across this C
    // boundary.
    let _ = std::panic::catch_unwind(|| {
        if let Some(shutdown) = ON_XLIB_GONE.get().cloned() {
            let _ = std::thread::Builder::new()
                .name("weft-display-lost".into())
                .spawn(move || {
                    shutdown.raise("the desktop session ended (the control panel lost its display)")
                });
        }
    });
    let deadline = Instant::now() + STOP_DEADLINE;
    while Instant::now() < deadline {
        std::thread::park_timeout(deadline - Instant::now());
    }
    std::process::exit(1)
}

/// Once the shell has stopped: if Xlib lost the display, ends the process now with
/// `code`, without the C library's exit handlers (libX11's and the GL driver's would
/// wait forever for the display lock the parked panel thread holds). Returns otherwise.
pub fn end_now_if_display_lost(code: i32) {
    if !XLIB_LOST.load(Ordering::Acquire) {
        return;
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process at once; everything the shell had to finish (the
    // session, its apps, the audit log, its files) is done, and nothing is buffered.
    unsafe { libc::_exit(code) }
}
