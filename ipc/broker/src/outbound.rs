//! A connection's outbound queue, bounded in bytes.
//!
//! A routed message is queued as the message encoded once and shared by every
//! subscriber ([`Item::Deliver`]); each connection's writer adds its own few bytes of
//! frame header while copying it into the write batch.
//!
//! Frames for a client wait here until its writer task puts them on the socket. The
//! queue counts the bytes it holds; pushing past the limit fails, and the caller then
//! disconnects the client as a slow consumer. Nothing ever waits on a full queue, so one
//! slow client cannot hold up routing to the others, and memory per client is bounded.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;
use weft_proto::ServerFrame;

/// One frame waiting to be written.
#[derive(Debug)]
pub(crate) enum Item {
    /// A whole frame body.
    Frame(Bytes),
    /// `ServerFrame::Deliver` for subscription `sub` of an already encoded message.
    Deliver {
        /// The subscription.
        sub: u64,
        /// The message, encoded once for all its subscribers.
        message: Bytes,
    },
}

impl Item {
    /// Bytes it will take on the wire, length prefix included.
    pub(crate) fn wire_len(&self) -> usize {
        4 + match self {
            Item::Frame(body) => body.len(),
            Item::Deliver { sub, message } => ServerFrame::deliver_prefix(*sub).1 + message.len(),
        }
    }

    /// Appends the framed bytes to `buf`.
    pub(crate) fn write_into(&self, buf: &mut BytesMut) {
        match self {
            Item::Frame(body) => {
                buf.put_u32(body.len() as u32);
                buf.put_slice(body);
            }
            Item::Deliver { sub, message } => {
                let (prefix, len) = ServerFrame::deliver_prefix(*sub);
                buf.put_u32((len + message.len()) as u32);
                buf.put_slice(&prefix[..len]);
                buf.put_slice(message);
            }
        }
    }
}

/// The sending side, shared by everything that queues frames for one client.
#[derive(Clone)]
pub(crate) struct Outbound {
    tx: mpsc::UnboundedSender<Item>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The writer's side.
pub(crate) struct OutboundReceiver {
    rx: mpsc::UnboundedReceiver<Item>,
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
    /// Queues a whole frame body unless that would pass the limit.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), Refused> {
        self.push_item(Item::Frame(frame))
    }

    /// Queues `item` unless that would pass the limit.
    pub(crate) fn push_item(&self, frame: Item) -> Result<(), Refused> {
        let len = frame.wire_len();
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
    pub(crate) async fn recv(&mut self) -> Option<Item> {
        let frame = self.rx.recv().await?;
        self.queued.fetch_sub(frame.wire_len(), Ordering::AcqRel);
        Some(frame)
    }

    /// The next frame if one is waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Item> {
        let frame = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(frame.wire_len(), Ordering::AcqRel);
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_at_most_the_limit_and_frees_as_frames_leave() {
        // Each frame counts its body and its 4-byte length prefix.
        let (tx, mut rx) = outbound(18);
        tx.push(Bytes::from_static(b"12345")).unwrap();
        tx.push(Bytes::from_static(b"12345")).unwrap();
        assert_eq!(tx.push(Bytes::from_static(b"1")), Err(Refused::Full));
        assert_eq!(tx.queued_bytes(), 18);
        assert!(matches!(rx.recv().await.unwrap(), Item::Frame(b) if &b[..] == b"12345"));
        assert_eq!(tx.queued_bytes(), 9);
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

    #[test]
    fn a_shared_delivery_is_written_as_its_own_frame() {
        use weft_proto::{
            Identity, Topic,
            frame::{Delivery, MessageId},
        };
        let message = Delivery {
            id: MessageId { epoch: 1, seq: 2 },
            ts_ms: 3,
            topic: Topic::new("a.b").unwrap(),
            sender: Identity::new_instance("x"),
            payload: Bytes::from_static(b"{}"),
            headers: vec![],
            reply_to: None,
            direct: false,
        };
        let item = Item::Deliver {
            sub: 300,
            message: Bytes::from(message.encode()),
        };
        let mut buf = BytesMut::new();
        item.write_into(&mut buf);
        assert_eq!(buf.len(), item.wire_len());
        let body = &buf[4..];
        assert_eq!(
            u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize,
            body.len()
        );
        assert_eq!(
            ServerFrame::decode(body).unwrap(),
            ServerFrame::Deliver { sub: 300, message }
        );
    }

    #[tokio::test]
    async fn a_closed_writer_refuses() {
        let (tx, rx) = outbound(10);
        drop(rx);
        assert_eq!(tx.push(Bytes::from_static(b"1")), Err(Refused::Closed));
        assert_eq!(tx.queued_bytes(), 0);
    }
}
