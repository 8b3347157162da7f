//! A byte-bounded queue of length-prefixed frames on their way to one socket.
//!
//! Whoever has a frame for the connection appends it, framed (a 4-byte big-endian
//! length, then the body), to the queue's buffer — encoding straight into it, so a
//! frame costs no allocation of its own. The buffer is a list of fixed-size chunks, so
//! a growing backlog is never reallocated and copied, and written chunks are kept for
//! reuse (a few of them). The connection's writer task ([`FrameWriter::run`]) takes
//! every waiting chunk at once and puts them on the socket: a burst of frames costs a
//! few system calls and one wake-up of the writer, not one each.
//!
//! Invariants:
//! - Bytes leave in the order they were appended. (The bus's ordering guarantee rests
//!   on this.)
//! - The bytes appended and not yet written — waiting, plus the batch being written —
//!   never exceed the limit, except that an otherwise empty queue takes one frame of
//!   any size (else a frame larger than the limit could never be sent).
//! - [`FrameQueue::push_frame`] never waits: past the limit it refuses with
//!   [`Refused::Full`] and the caller decides (the broker disconnects a slow consumer;
//!   a client reports backpressure). [`FrameQueue::push_frame_waiting`] waits for room
//!   instead.
//!
//! It is not a general channel: frames are bytes, and there is exactly one writer.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, BytesMut};
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::Notify,
};

/// Size of the chunks that queued bytes are kept in (a larger frame gets a chunk of
/// its own size).
const CHUNK: usize = 64 * 1024;

/// Written chunks kept for reuse by each queue.
const SPARE_CHUNKS: usize = 16;

/// The appending side, shared by everything that queues frames for one connection.
#[derive(Clone)]
pub struct FrameQueue {
    shared: Arc<Shared>,
}

/// The writer's side. Dropping it closes the queue.
pub struct FrameWriter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when bytes arrive in an empty buffer, and on close.
    ready: Notify,
    /// Signalled when a written batch frees room.
    room: Notify,
    limit: usize,
}

struct State {
    /// Framed bytes waiting for the writer, in order; only the last chunk is appended
    /// to.
    waiting: Vec<BytesMut>,
    /// Bytes in `waiting`.
    waiting_len: usize,
    /// Bytes of the batch the writer is putting on the socket.
    writing: usize,
    /// No more frames are accepted; the writer ends once `waiting` is taken.
    closed: bool,
    /// Empty chunks for reuse.
    spare: Vec<BytesMut>,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Queuing it would pass the byte limit.
    Full,
    /// The queue is closed: the connection is ending or its writer stopped.
    Closed,
    /// The frame is longer than a length prefix can say (4 GiB).
    TooLarge,
}

/// A queue holding at most `limit` bytes of framed frames.
pub fn frame_queue(limit: usize) -> (FrameQueue, FrameWriter) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            waiting: Vec::new(),
            waiting_len: 0,
            writing: 0,
            closed: false,
            spare: Vec::new(),
        }),
        ready: Notify::new(),
        room: Notify::new(),
        limit,
    });
    (
        FrameQueue {
            shared: shared.clone(),
        },
        FrameWriter { shared },
    )
}

impl FrameQueue {
    /// Queues a whole frame body unless that would pass the limit.
    pub fn push(&self, body: &[u8]) -> Result<(), Refused> {
        self.push_frame(body.len(), |buf| buf.put_slice(body))
    }

    /// Queues a frame of `len` body bytes, which `write_body` appends to the buffer it
    /// is given, unless that would pass the limit. `write_body` must append exactly
    /// `len` bytes.
    pub fn push_frame(
        &self,
        len: usize,
        write_body: impl FnOnce(&mut BytesMut),
    ) -> Result<(), Refused> {
        if self.append(len, true, write_body)? {
            self.wake();
        }
        Ok(())
    }

    /// As [`FrameQueue::push_frame`], but leaves waking the writer to the caller:
    /// `true` when this frame made the queue non-empty, and the caller must then call
    /// [`FrameQueue::wake`] — typically once it has queued everything it has at hand,
    /// so that the writer wakes once for a burst rather than racing to write each
    /// frame alone.
    pub fn push_frame_deferred(
        &self,
        len: usize,
        write_body: impl FnOnce(&mut BytesMut),
    ) -> Result<bool, Refused> {
        self.append(len, true, write_body)
    }

    /// Wakes the writer (after [`FrameQueue::push_frame_deferred`]).
    pub fn wake(&self) {
        self.shared.ready.notify_one();
    }

    /// Queues a small control frame that must not be lost (a cancellation, say) even
    /// past the limit; refused only once the queue is closed.
    pub fn push_regardless(&self, body: &[u8]) -> Result<(), Refused> {
        if self.append(body.len(), false, |buf| buf.put_slice(body))? {
            self.wake();
        }
        Ok(())
    }

    /// Appends the frame; whether the queue was empty before (and its writer needs
    /// waking: one that was not empty has been woken, or will be by whoever deferred).
    fn append(
        &self,
        len: usize,
        bounded: bool,
        write_body: impl FnOnce(&mut BytesMut),
    ) -> Result<bool, Refused> {
        let Ok(frame_len) = u32::try_from(len) else {
            return Err(Refused::TooLarge);
        };
        let mut state = self.shared.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        let held = state.waiting_len + state.writing;
        let framed = 4 + len;
        if bounded && held > 0 && held + framed > self.shared.limit {
            return Err(Refused::Full);
        }
        let was_empty = state.waiting_len == 0;
        let chunk = state.chunk_for(framed);
        chunk.put_u32(frame_len);
        let before = chunk.len();
        write_body(chunk);
        debug_assert_eq!(chunk.len() - before, len, "the body's length");
        state.waiting_len += framed;
        Ok(was_empty)
    }

    /// As [`FrameQueue::push_frame`], but waits while the queue is full instead of
    /// refusing; fails only once the queue is closed.
    pub async fn push_frame_waiting(
        &self,
        len: usize,
        write_body: impl FnOnce(&mut BytesMut),
    ) -> Result<(), Refused> {
        let mut write_body = Some(write_body);
        let mut try_push = || {
            self.push_frame(len, |buf| {
                if let Some(write) = write_body.take() {
                    write(buf);
                }
            })
        };
        loop {
            let pushed = try_push();
            if pushed != Err(Refused::Full) {
                return pushed;
            }
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before trying again, so room freed in between is not missed.
            room.as_mut().enable();
            let pushed = try_push();
            if pushed != Err(Refused::Full) {
                return pushed;
            }
            room.await;
        }
    }

    /// Waits until at most `bytes` are queued (or the queue is closed): how a producer
    /// that must not fill the queue — a replay of stored messages, say, sharing it with
    /// live traffic that is refused when it is full — keeps to a share of it.
    pub async fn wait_below(&self, bytes: usize) {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before looking, so room freed in between is not missed.
            room.as_mut().enable();
            if self.queued_bytes() <= bytes || self.is_closed() {
                return;
            }
            room.await;
        }
    }

    /// Accepts no more frames; the writer ends after taking those already queued.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
        self.shared.room.notify_waiters();
    }

    /// Drops the frames waiting to be written (not the batch being written, which
    /// leaves whole).
    pub fn discard_waiting(&self) {
        let mut state = self.shared.lock();
        let waiting = std::mem::take(&mut state.waiting);
        state.waiting_len = 0;
        state.keep_spare(waiting);
        drop(state);
        self.shared.room.notify_waiters();
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Bytes queued and not yet written, frame headers included.
    pub fn queued_bytes(&self) -> usize {
        let state = self.shared.lock();
        state.waiting_len + state.writing
    }
}

impl FrameWriter {
    /// Writes queued frames to `io` as they come until the queue is closed and
    /// everything is written, then shuts `io` down. Ends early if writing fails.
    pub async fn run(mut self, mut io: impl AsyncWrite + Unpin) {
        let mut batch = Vec::new();
        while self.next_batch(&mut batch).await {
            for chunk in &batch {
                if io.write_all(chunk).await.is_err() {
                    return;
                }
            }
            self.written(&mut batch);
        }
        let _ = io.shutdown().await;
    }

    /// Waits for queued bytes and moves all of them into `batch`, which must be empty;
    /// `false` once the queue is closed and everything has been taken. Call
    /// [`FrameWriter::written`] once the batch is on the socket.
    async fn next_batch(&mut self, batch: &mut Vec<BytesMut>) -> bool {
        debug_assert!(batch.is_empty());
        loop {
            {
                let mut state = self.shared.lock();
                if state.waiting_len > 0 {
                    std::mem::swap(&mut state.waiting, batch);
                    state.writing = std::mem::take(&mut state.waiting_len);
                    return true;
                }
                if state.closed {
                    return false;
                }
            }
            self.shared.ready.notified().await;
        }
    }

    /// The batch from [`FrameWriter::next_batch`] is written: frees its room and keeps
    /// some of its chunks for reuse.
    fn written(&mut self, batch: &mut Vec<BytesMut>) {
        let mut state = self.shared.lock();
        state.writing = 0;
        state.keep_spare(batch.drain(..));
        drop(state);
        self.shared.room.notify_waiters();
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.room.notify_waiters();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// The chunk to append a frame of `framed` bytes to: the last one if it has room,
    /// else a new one (a spare if there is one).
    fn chunk_for(&mut self, framed: usize) -> &mut BytesMut {
        let fits = self
            .waiting
            .last()
            .is_some_and(|last| last.capacity() - last.len() >= framed);
        if !fits {
            let chunk = match self.spare.pop() {
                Some(spare) if framed <= CHUNK => spare,
                _ => BytesMut::with_capacity(framed.max(CHUNK)),
            };
            self.waiting.push(chunk);
        }
        self.waiting.last_mut().expect("just ensured")
    }

    /// Keeps emptied chunks of the standard size for reuse, up to [`SPARE_CHUNKS`].
    fn keep_spare(&mut self, chunks: impl IntoIterator<Item = BytesMut>) {
        for mut chunk in chunks {
            if self.spare.len() >= SPARE_CHUNKS {
                break;
            }
            if chunk.capacity() == CHUNK {
                chunk.clear();
                self.spare.push(chunk);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn take(writer: &mut FrameWriter) -> Vec<u8> {
        let mut batch = Vec::new();
        assert!(writer.next_batch(&mut batch).await);
        let bytes = batch.concat();
        writer.written(&mut batch);
        bytes
    }

    #[tokio::test]
    async fn holds_at_most_the_limit_and_frees_as_batches_are_written() {
        // Each frame counts its body and its 4-byte length prefix.
        let (tx, mut rx) = frame_queue(18);
        tx.push(b"12345").unwrap();
        tx.push(b"12345").unwrap();
        assert_eq!(tx.push(b"1"), Err(Refused::Full));
        assert_eq!(tx.queued_bytes(), 18);

        // A batch being written still counts until it is on the socket.
        let mut batch = Vec::new();
        assert!(rx.next_batch(&mut batch).await);
        assert_eq!(batch.concat(), b"\0\0\0\x0512345\0\0\0\x0512345");
        assert_eq!(tx.push(b"1"), Err(Refused::Full));
        rx.written(&mut batch);
        assert_eq!(tx.queued_bytes(), 0);
        tx.push(b"1").unwrap();
        assert_eq!(take(&mut rx).await, b"\0\0\0\x011");
    }

    #[tokio::test]
    async fn an_empty_queue_takes_one_frame_larger_than_the_limit() {
        let (tx, _rx) = frame_queue(4);
        tx.push(b"123456").unwrap();
        assert_eq!(tx.push(b"1"), Err(Refused::Full));
    }

    #[tokio::test]
    async fn frames_leave_in_the_order_they_were_queued() {
        let (tx, mut rx) = frame_queue(1 << 20);
        let mut expected = Vec::new();
        for i in 0..1000u32 {
            let body = i.to_be_bytes();
            tx.push(&body).unwrap();
            expected.extend_from_slice(&4u32.to_be_bytes());
            expected.extend_from_slice(&body);
            if i % 97 == 0 {
                assert_eq!(take(&mut rx).await, expected);
                expected.clear();
            }
        }
        assert_eq!(take(&mut rx).await, expected);
    }

    #[tokio::test]
    async fn a_frame_is_written_in_place_behind_its_length() {
        let (tx, mut rx) = frame_queue(100);
        tx.push_frame(5, |buf| {
            buf.put_u8(b'h');
            buf.put_slice(b"ello");
        })
        .unwrap();
        assert_eq!(take(&mut rx).await, b"\0\0\0\x05hello");
    }

    #[tokio::test]
    async fn a_waiting_push_goes_through_once_the_writer_frees_room() {
        let (tx, mut rx) = frame_queue(10);
        tx.push(b"123456").unwrap();
        let pusher = tokio::spawn({
            let tx = tx.clone();
            async move { tx.push_frame_waiting(3, |buf| buf.put_slice(b"abc")).await }
        });
        // It cannot finish while the queue is full (one thread: it has had its turns)...
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!pusher.is_finished(), "pushed past the limit");
        // ...and does once the first frame is written.
        assert_eq!(take(&mut rx).await, b"\0\0\0\x06123456");
        pusher.await.unwrap().unwrap();
        assert_eq!(take(&mut rx).await, b"\0\0\0\x03abc");
    }

    #[tokio::test]
    async fn waiting_below_a_level_ends_once_the_writer_takes_the_queue_down() {
        let (tx, mut rx) = frame_queue(100);
        tx.push(b"0123456789").unwrap();
        tx.wait_below(14).await;
        let waiter = tokio::spawn({
            let tx = tx.clone();
            async move { tx.wait_below(4).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "14 bytes are queued, not 4");
        assert_eq!(take(&mut rx).await, b"\0\0\0\x0a0123456789");
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn discarding_keeps_the_batch_being_written_whole() {
        let (tx, mut rx) = frame_queue(100);
        tx.push(b"sent").unwrap();
        let mut batch = Vec::new();
        assert!(rx.next_batch(&mut batch).await);
        tx.push(b"dropped").unwrap();
        tx.discard_waiting();
        tx.push(b"reason").unwrap();
        assert_eq!(batch.concat(), b"\0\0\0\x04sent");
        rx.written(&mut batch);
        assert_eq!(take(&mut rx).await, b"\0\0\0\x06reason");
    }

    #[tokio::test]
    async fn a_deferred_push_reaches_the_writer_once_woken() {
        let (tx, mut rx) = frame_queue(100);
        let writer = tokio::spawn(async move { take(&mut rx).await });
        tokio::task::yield_now().await;
        assert!(tx.push_frame_deferred(1, |buf| buf.put_u8(b'a')).unwrap());
        assert!(!tx.push_frame_deferred(1, |buf| buf.put_u8(b'b')).unwrap());
        // One thread: the writer has had its turns and still waits to be woken.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!writer.is_finished(), "woke without being told");
        tx.wake();
        assert_eq!(writer.await.unwrap(), b"\0\0\0\x01a\0\0\0\x01b");
    }

    #[tokio::test]
    async fn a_backlog_spans_chunks_and_a_large_frame_gets_its_own() {
        let (tx, mut rx) = frame_queue(1 << 24);
        let mut expected = Vec::new();
        for i in 0..3 * CHUNK / 100 {
            let body = [i as u8; 96];
            tx.push(&body).unwrap();
            expected.extend_from_slice(&96u32.to_be_bytes());
            expected.extend_from_slice(&body);
        }
        let large = vec![9u8; 3 * CHUNK];
        tx.push(&large).unwrap();
        expected.extend_from_slice(&(large.len() as u32).to_be_bytes());
        expected.extend_from_slice(&large);
        tx.push(b"after").unwrap();
        expected.extend_from_slice(b"\0\0\0\x05after");
        assert_eq!(tx.queued_bytes(), expected.len());
        assert_eq!(take(&mut rx).await, expected);
        assert_eq!(tx.queued_bytes(), 0);
        // The written standard chunks are kept for the next burst.
        assert!(!tx.shared.lock().spare.is_empty());
    }

    #[tokio::test]
    async fn the_writer_puts_everything_on_the_socket_then_shuts_it_down() {
        use tokio::io::AsyncReadExt;
        let (tx, rx) = frame_queue(1 << 20);
        let (socket, mut peer) = tokio::io::duplex(1024);
        let writer = tokio::spawn(rx.run(socket));
        let mut expected = Vec::new();
        for i in 0..5000u32 {
            tx.push(&i.to_be_bytes()).unwrap();
            expected.extend_from_slice(&4u32.to_be_bytes());
            expected.extend_from_slice(&i.to_be_bytes());
        }
        tx.close();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, expected);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_frame_too_long_for_its_length_prefix_is_refused_not_waited_for() {
        let (tx, _rx) = frame_queue(16);
        tx.push(b"1234").unwrap();
        let huge = u32::MAX as usize + 1;
        assert_eq!(
            tx.push_frame(huge, |_| unreachable!()),
            Err(Refused::TooLarge)
        );
        let waited = tx.push_frame_waiting(huge, |_| unreachable!()).await;
        assert_eq!(waited, Err(Refused::TooLarge));
    }

    #[tokio::test]
    async fn a_control_frame_passes_the_limit() {
        let (tx, mut rx) = frame_queue(8);
        tx.push(b"1234").unwrap();
        assert_eq!(tx.push(b"x"), Err(Refused::Full));
        tx.push_regardless(b"x").unwrap();
        assert_eq!(take(&mut rx).await, b"\0\0\0\x041234\0\0\0\x01x");
    }

    #[tokio::test]
    async fn a_closed_queue_refuses_and_its_writer_ends_after_the_rest() {
        let (tx, mut rx) = frame_queue(100);
        tx.push(b"last").unwrap();
        tx.close();
        assert_eq!(tx.push(b"1"), Err(Refused::Closed));
        assert_eq!(take(&mut rx).await, b"\0\0\0\x04last");
        let mut batch = Vec::new();
        assert!(!rx.next_batch(&mut batch).await);
    }

    #[tokio::test]
    async fn a_stopped_writer_closes_the_queue_and_releases_waiting_pushers() {
        let (tx, rx) = frame_queue(4);
        tx.push(b"1234").unwrap();
        let pusher = tokio::spawn({
            let tx = tx.clone();
            async move { tx.push_frame_waiting(1, |buf| buf.put_u8(1)).await }
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(pusher.await.unwrap(), Err(Refused::Closed));
        assert_eq!(tx.push(b"1"), Err(Refused::Closed));
    }
}
