//! Flow control between the page and the bus, both ways.
//!
//! From the page: at most [`MAX_PAGE_BACKLOG`] requests wait for the bus side
//! ([`PageBacklog`]); a page posting faster than that has further calls refused at once
//! with `Backpressure`, so its promises settle and its host's memory stays bounded.
//!
//! Toward the page:
//! Everything for the page goes through a queue bounded in bytes, and scripts are
//! handed to WebKit only while less than [`IN_FLIGHT_BYTES`] of them have not finished
//! running (each script's completion callback releases its bytes). A page whose
//! JavaScript is stuck (an endless loop) or slow therefore stops taking scripts; its
//! queue fills to [`QUEUE_BYTES`], and further *messages* for it are dropped and
//! counted instead of growing memory. Answers to the page's own calls and notices are
//! never dropped: they are small and bounded by what the page asked for. Once the
//! queue has room again the page gets a `weft:dropped` notice with the count.
//!
//! The host keeps reading the bus meanwhile, so a stuck page never slows the broker or
//! any other app.

use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use tokio::sync::{Notify, mpsc};

use crate::page_script::ToPage;

/// Bytes of messages that may wait for the page before new ones are dropped.
pub const QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// Bytes of scripts WebKit may hold that have not finished running.
pub const IN_FLIGHT_BYTES: usize = 1024 * 1024;

/// The sending side: cheap to clone, used by every task with something for the page.
#[derive(Clone)]
pub struct PageQueue {
    tx: mpsc::UnboundedSender<ToPage>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

/// The receiving side, owned by the flusher.
pub struct PageQueueReceiver {
    rx: mpsc::UnboundedReceiver<ToPage>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

/// Scripts handed to WebKit and not finished yet; shared with the window thread.
#[derive(Default)]
pub struct InFlight {
    bytes: AtomicUsize,
    generation: AtomicU64,
    released: Notify,
}

/// Requests from the page that may wait for the bus side.
pub const MAX_PAGE_BACKLOG: usize = 4096;

/// Counts page requests handed to the bus side and not yet taken.
#[derive(Default)]
pub struct PageBacklog(AtomicUsize);

impl PageBacklog {
    /// Takes a place for one request; false when the backlog is full.
    pub fn try_take(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PAGE_BACKLOG).then_some(n + 1)
            })
            .is_ok()
    }

    /// The bus side took a request.
    pub fn release(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

/// A new queue.
pub fn page_queue() -> (PageQueue, PageQueueReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        PageQueue {
            tx,
            queued: queued.clone(),
            dropped: dropped.clone(),
        },
        PageQueueReceiver {
            rx,
            queued,
            dropped,
        },
    )
}

impl PageQueue {
    /// Queues an answer or notice; never dropped. False once the flusher is gone.
    pub fn send(&self, item: ToPage) -> bool {
        self.queued.fetch_add(item.size_bytes(), Ordering::AcqRel);
        self.tx.send(item).is_ok()
    }

    /// Queues a message unless the queue is full, in which case it is dropped and
    /// counted. False once the flusher is gone.
    pub fn send_message(&self, item: ToPage) -> bool {
        if self.queued.load(Ordering::Acquire) + item.size_bytes() > QUEUE_BYTES {
            if self.dropped.fetch_add(1, Ordering::AcqRel) == 0 {
                tracing::warn!("the page is not keeping up: dropping messages for it");
            }
            return !self.tx.is_closed();
        }
        self.send(item)
    }
}

impl PageQueueReceiver {
    /// The next item, waiting for one.
    pub async fn recv(&mut self) -> Option<ToPage> {
        let item = self.rx.recv().await?;
        self.queued.fetch_sub(item.size_bytes(), Ordering::AcqRel);
        Some(item)
    }

    /// The next item if one is waiting.
    pub fn try_recv(&mut self) -> Option<ToPage> {
        let item = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(item.size_bytes(), Ordering::AcqRel);
        Some(item)
    }

    /// If messages were dropped and the queue has room again, the notice to send.
    pub fn dropped_notice(&self) -> Option<ToPage> {
        if self.queued.load(Ordering::Acquire) > QUEUE_BYTES / 2 {
            return None;
        }
        match self.dropped.swap(0, Ordering::AcqRel) {
            0 => None,
            count => {
                tracing::warn!(count, "the page caught up; messages were dropped for it");
                Some(ToPage::dropped(count))
            }
        }
    }
}

impl InFlight {
    /// Waits until WebKit holds less than [`IN_FLIGHT_BYTES`], then accounts for `len`
    /// more bytes; returns the page generation they belong to.
    pub async fn reserve(&self, len: usize) -> u64 {
        loop {
            let released = self.released.notified();
            if self.bytes.load(Ordering::Acquire) < IN_FLIGHT_BYTES {
                self.bytes.fetch_add(len, Ordering::AcqRel);
                return self.generation.load(Ordering::Acquire);
            }
            released.await;
        }
    }

    /// A script of `len` bytes of page generation `generation` finished running.
    pub fn release(&self, len: usize, generation: u64) {
        if self.generation.load(Ordering::Acquire) == generation {
            let _ = self
                .bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                    Some(b.saturating_sub(len))
                });
        }
        self.released.notify_waiters();
    }

    /// A new page load started: scripts of the old page will never report back.
    pub fn page_started(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.bytes.store(0, Ordering::Release);
        self.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn message(len: usize) -> ToPage {
        ToPage::raw_for_tests("x".repeat(len))
    }

    #[tokio::test]
    async fn messages_are_dropped_past_the_limit_and_answers_are_not() {
        let (q, mut rx) = page_queue();
        assert!(q.send_message(message(QUEUE_BYTES - 10)));
        assert!(
            q.send_message(message(100)),
            "dropped, but the flusher is alive"
        );
        assert!(q.send(message(100)), "answers are always queued");
        assert!(rx.dropped_notice().is_none(), "still more than half full");
        assert_eq!(rx.recv().await.unwrap().size_bytes(), QUEUE_BYTES - 10);
        assert_eq!(rx.recv().await.unwrap().size_bytes(), 100);
        let notice = rx.dropped_notice().expect("a notice once there is room");
        assert!(notice.json().contains(r#""count":1"#), "{}", notice.json());
        assert!(rx.dropped_notice().is_none(), "the count is reported once");
    }

    #[test]
    fn the_backlog_refuses_past_its_limit_and_recovers() {
        let b = PageBacklog::default();
        for _ in 0..MAX_PAGE_BACKLOG {
            assert!(b.try_take());
        }
        assert!(!b.try_take());
        b.release();
        assert!(b.try_take());
    }

    #[tokio::test]
    async fn reserving_waits_for_release_and_a_new_page_frees_everything() {
        let f = Arc::new(InFlight::default());
        let g = f.reserve(IN_FLIGHT_BYTES).await;
        let waiting = {
            let f = f.clone();
            tokio::spawn(async move { f.reserve(10).await })
        };
        // One thread: the waiting task has had its turns and is still waiting.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "over the limit: must wait");
        f.release(IN_FLIGHT_BYTES, g);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();

        let g = f.reserve(IN_FLIGHT_BYTES).await;
        f.page_started();
        // A release from the old page does not disturb the new page's count.
        f.release(IN_FLIGHT_BYTES, g);
        let g2 = tokio::time::timeout(Duration::from_secs(5), f.reserve(5))
            .await
            .unwrap();
        assert_ne!(g, g2);
    }
}
