//! A one-way "stop now" flag that any thread can raise and wait for.

use std::sync::{Arc, Condvar, Mutex};

use crate::locking::lock;

type Callback = Box<dyn Fn() + Send + Sync>;

/// Raised once, by a signal, `weft stop`, or closing the panel.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    cond: Condvar,
}

/// The reason, once raised, and the callbacks still to run. One lock guards both, so
/// every callback runs exactly once: by `raise`, or at registration if it came later.
#[derive(Default)]
struct State {
    reason: Option<String>,
    callbacks: Vec<Callback>,
}

impl Shutdown {
    /// Raises the flag, recording why; later calls keep the first reason.
    pub fn raise(&self, reason: impl Into<String>) {
        let callbacks = {
            let mut state = lock(&self.inner.state);
            if state.reason.is_some() {
                return;
            }
            state.reason = Some(reason.into());
            std::mem::take(&mut state.callbacks)
        };
        self.inner.cond.notify_all();
        for callback in callbacks {
            callback();
        }
    }

    /// Whether the flag is raised.
    pub fn is_raised(&self) -> bool {
        lock(&self.inner.state).reason.is_some()
    }

    /// Blocks until the flag is raised; returns the reason.
    pub fn wait(&self) -> String {
        let mut state = lock(&self.inner.state);
        loop {
            if let Some(reason) = state.reason.clone() {
                return reason;
            }
            state = self
                .inner
                .cond
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Runs `f` once when the flag is raised (at once if it already is).
    pub fn on_raise(&self, f: impl Fn() + Send + Sync + 'static) {
        let mut state = lock(&self.inner.state);
        if state.reason.is_some() {
            drop(state);
            f();
        } else {
            state.callbacks.push(Box::new(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn raise_wakes_waiters_and_runs_callbacks_once() {
        let s = Shutdown::default();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        s.on_raise(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || s.wait())
        };
        s.raise("first");
        s.raise("second");
        assert_eq!(waiter.join().unwrap(), "first");
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let late = Arc::new(AtomicUsize::new(0));
        let l = late.clone();
        s.on_raise(move || {
            l.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(late.load(Ordering::SeqCst), 1);
    }
}
