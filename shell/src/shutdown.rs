//! A one-way "stop now" flag that any thread can raise and wait for.

use std::sync::{Arc, Condvar, Mutex};

type Callback = Box<dyn Fn() + Send + Sync>;

/// Raised once, by a signal, `weft stop`, or closing the panel.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    raised: Mutex<Option<String>>,
    cond: Condvar,
    callbacks: Mutex<Vec<Callback>>,
}

impl Shutdown {
    /// Raises the flag, recording why; later calls keep the first reason.
    pub fn raise(&self, reason: impl Into<String>) {
        {
            let mut raised = lock(&self.inner.raised);
            if raised.is_some() {
                return;
            }
            *raised = Some(reason.into());
        }
        self.inner.cond.notify_all();
        for callback in lock(&self.inner.callbacks).iter() {
            callback();
        }
    }

    /// Whether the flag is up.
    pub fn is_raised(&self) -> bool {
        lock(&self.inner.raised).is_some()
    }

    /// Blocks until the flag is raised; returns the reason.
    pub fn wait(&self) -> String {
        let mut raised = lock(&self.inner.raised);
        loop {
            if let Some(reason) = raised.clone() {
                return reason;
            }
            raised = self
                .inner
                .cond
                .wait(raised)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Runs `f` when the flag is raised (at once if it already is).
    pub fn on_raise(&self, f: impl Fn() + Send + Sync + 'static) {
        if self.is_raised() {
            f();
            return;
        }
        lock(&self.inner.callbacks).push(Box::new(f));
        // A raise between the check and the push would have missed `f`.
        if self.is_raised() {
            let callbacks = lock(&self.inner.callbacks);
            if let Some(last) = callbacks.last() {
                last();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
