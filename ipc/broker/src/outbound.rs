//! A connection's outbound queue, bounded in bytes.
//!
//! Frames for a client wait here until its writer task puts them on the socket. The
//! queue counts the bytes it holds; pushing past the limit fails, and the caller then
//! disconnects the client as a slow consumer. Nothing ever waits on a full queue, so one
//! slow client cannot hold up routing to the others, and memory per client is bounded.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use bytes::Bytes;
use tokio::sync::mpsc;

/// The sending side, shared by everything that queues frames for one client.
#[derive(Clone)]
pub(crate) struct Outbound {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The writer's side.
pub(crate) struct OutboundReceiver {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Queuing it would pass the byte limit.
    Full,
    /// The writer has stopped.
    Closed,
}

/// A queue holding at most `limit` bytes of frames.
pub(crate) fn outbound(limit: usize) -> (Outbound, OutboundReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbound {
            tx,
            queued: queued.clone(),
            limit,
        },
        OutboundReceiver { rx, queued },
    )
}

impl Outbound {
    /// Queues `frame` unless that would pass the limit.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), Refused> {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.limit && before > 0 {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        self.tx.send(frame).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            Refused::Closed
        })
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl OutboundReceiver {
    /// The next frame, waiting for one; `None` once every sender is gone.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.recv().await?;
        self.queued.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }

    /// The next frame if one is waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_at_most_the_limit_and_frees_as_frames_leave() {
        let (tx, mut rx) = outbound(10);
        tx.push(Bytes::from_static(b"12345")).unwrap();
        tx.push(Bytes::from_static(b"12345")).unwrap();
        assert_eq!(tx.push(Bytes::from_static(b"1")), Err(Refused::Full));
        assert_eq!(tx.queued_bytes(), 10);
        assert_eq!(&rx.recv().await.unwrap()[..], b"12345");
        assert_eq!(tx.queued_bytes(), 5);
        tx.push(Bytes::from_static(b"1")).unwrap();
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_some());
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn an_empty_queue_takes_one_frame_larger_than_the_limit() {
        // Otherwise a client could never receive a frame bigger than its queue.
        let (tx, _rx) = outbound(4);
        tx.push(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(tx.push(Bytes::from_static(b"1")), Err(Refused::Full));
    }

    #[tokio::test]
    async fn a_closed_writer_refuses() {
        let (tx, rx) = outbound(10);
        drop(rx);
        assert_eq!(tx.push(Bytes::from_static(b"1")), Err(Refused::Closed));
        assert_eq!(tx.queued_bytes(), 0);
    }
}
