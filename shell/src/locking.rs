//! Taking a mutex whose last holder panicked: the shell's shared state stays usable
//! (each holder leaves it consistent between statements), so the poison is ignored.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poison.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
