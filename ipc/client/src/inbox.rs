//! A subscription's inbox: what the connection's reader has taken off the socket and
//! the subscriber has not consumed yet, bounded in count.
//!
//! One reader task fills it and one subscriber empties it, so a mutex around a
//! `VecDeque` does the job with a fraction of a general channel's work per message; each
//! side wakes the other only on the transitions that matter (empty → not empty, full →
//! not full). A full inbox makes the reader wait: that is the backpressure that stops
//! the client reading its socket and lets the broker's queue for it fill instead.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::Notify;

/// The filling side, held by the connection's reader.
pub(crate) struct InboxSender<T> {
    shared: Arc<Shared<T>>,
}

/// The emptying side, held by the subscriber.
pub(crate) struct InboxReceiver<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when an item arrives in an empty inbox, and when the sender closes.
    arrived: Notify,
    /// Signalled when an item leaves a full inbox, and when the receiver goes.
    room: Notify,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    /// No more items will come: the receiver gets `None` once it has taken the rest.
    sender_closed: bool,
    /// Nobody will take items any more: sending fails.
    receiver_gone: bool,
}

/// An inbox holding at most `capacity` items.
pub(crate) fn inbox<T>(capacity: usize) -> (InboxSender<T>, InboxReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            sender_closed: false,
            receiver_gone: false,
        }),
        arrived: Notify::new(),
        room: Notify::new(),
        capacity,
    });
    (
        InboxSender {
            shared: shared.clone(),
        },
        InboxReceiver { shared },
    )
}

impl<T> InboxSender<T> {
    /// Adds `item`, waiting while the inbox is full; gives it back if the receiver is
    /// gone.
    pub(crate) async fn send(&self, item: T) -> Result<(), T> {
        let mut item = match self.try_send(item) {
            Sent::Full(item) => item,
            Sent::Done => return Ok(()),
            Sent::Gone(item) => return Err(item),
        };
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before looking again, so room made in between is not missed.
            room.as_mut().enable();
            item = match self.try_send(item) {
                Sent::Full(item) => item,
                Sent::Done => return Ok(()),
                Sent::Gone(item) => return Err(item),
            };
            room.await;
        }
    }

    fn try_send(&self, item: T) -> Sent<T> {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Sent::Gone(item);
        }
        if state.items.len() >= self.shared.capacity {
            return Sent::Full(item);
        }
        let was_empty = state.items.is_empty();
        state.items.push_back(item);
        drop(state);
        if was_empty {
            self.shared.arrived.notify_one();
        }
        Sent::Done
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().receiver_gone
    }

    /// No more items: the receiver gets `None` after the ones already here.
    pub(crate) fn close(&self) {
        self.shared.lock().sender_closed = true;
        self.shared.arrived.notify_one();
    }
}

/// What became of an item offered without waiting.
enum Sent<T> {
    /// It is in the inbox.
    Done,
    /// The receiver is gone; here it is back.
    Gone(T),
    /// No room; here it is back.
    Full(T),
}

impl<T> Clone for InboxSender<T> {
    fn clone(&self) -> Self {
        InboxSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> InboxReceiver<T> {
    /// The next item, waiting for one; `None` once the sender has closed and every
    /// item has been taken.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(item) = self.take(&mut state) {
                    return Some(item);
                }
                if state.sender_closed {
                    return None;
                }
            }
            self.shared.arrived.notified().await;
        }
    }

    /// The next item if one is here.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let mut state = self.shared.lock();
        self.take(&mut state)
    }

    /// Takes no more items: the sender's further sends fail.
    pub(crate) fn close(&mut self) {
        self.shared.lock().receiver_gone = true;
        self.shared.room.notify_waiters();
    }

    fn take(&self, state: &mut State<T>) -> Option<T> {
        let was_full = state.items.len() >= self.shared.capacity;
        let item = state.items.pop_front()?;
        if was_full {
            self.shared.room.notify_one();
        }
        Some(item)
    }
}

impl<T> Drop for InboxReceiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_and_end_after_close() {
        let (tx, mut rx) = inbox(4);
        for i in 0..3 {
            tx.send(i).await.unwrap();
        }
        tx.close();
        assert_eq!(rx.recv().await, Some(0));
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_inbox_holds_the_sender_until_an_item_is_taken() {
        let (tx, mut rx) = inbox(2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let sender = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(3).await }
        });
        // One thread: the sender has had its turns and is still waiting.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!sender.is_finished(), "sent past the capacity");
        assert_eq!(rx.recv().await, Some(1));
        sender.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_the_first_item() {
        let (tx, mut rx) = inbox(2);
        let receiver = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.send(7).await.unwrap();
        assert_eq!(receiver.await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn sending_fails_once_the_receiver_is_gone_even_while_waiting() {
        let (tx, rx) = inbox(1);
        tx.send(1).await.unwrap();
        let sender = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(2).await }
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(sender.await.unwrap(), Err(2));
        assert!(tx.is_closed());
        assert_eq!(tx.send(3).await, Err(3));
    }
}
