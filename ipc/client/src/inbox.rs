//! A subscription's inbox: what the connection's reader has taken off the socket and
//! the subscriber has not consumed yet, bounded in count.
//!
//! One reader task fills it and one subscriber empties it, so a mutex around a
//! `VecDeque` does the job with a fraction of a general channel's work per message: the
//! reader hands over every message of a read at once, the subscriber takes everything
//! waiting at once, and each side wakes the other only on the transitions that matter
//! (empty → not empty, full → not full). A full inbox makes the reader wait: that is the backpressure that stops
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
    /// Items taken from the inbox in one go and not yet handed out.
    taken: VecDeque<T>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when items arrive in an empty inbox, and when the sender closes.
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
        InboxReceiver {
            shared,
            taken: VecDeque::new(),
        },
    )
}

impl<T> InboxSender<T> {
    /// Adds `item`, waiting while the inbox is full; gives it back if the receiver is
    /// gone.
    #[cfg(test)]
    pub(crate) async fn send(&self, item: T) -> Result<(), T> {
        let mut items = VecDeque::from([item]);
        match self.send_all(&mut items).await {
            Ok(()) => Ok(()),
            Err(()) => Err(items.pop_front().expect("given back")),
        }
    }

    /// Moves every item of `items` into the inbox, in order, waiting for room as
    /// needed; `Err` (with the rest left in `items`) if the receiver is gone.
    pub(crate) async fn send_all(&self, items: &mut VecDeque<T>) -> Result<(), ()> {
        loop {
            match self.push_some(items) {
                Pushed::All => return Ok(()),
                Pushed::Gone => return Err(()),
                Pushed::Full => {}
            }
            let room = self.shared.room.notified();
            tokio::pin!(room);
            // Registered before looking again, so room made in between is not missed.
            room.as_mut().enable();
            match self.push_some(items) {
                Pushed::All => return Ok(()),
                Pushed::Gone => return Err(()),
                Pushed::Full => room.await,
            }
        }
    }

    /// Moves as many of `items` as fit.
    fn push_some(&self, items: &mut VecDeque<T>) -> Pushed {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Pushed::Gone;
        }
        let was_empty = state.items.is_empty();
        let room = self.shared.capacity.saturating_sub(state.items.len());
        let n = room.min(items.len());
        state.items.extend(items.drain(..n));
        drop(state);
        if was_empty && n > 0 {
            self.shared.arrived.notify_one();
        }
        if items.is_empty() {
            Pushed::All
        } else {
            Pushed::Full
        }
    }

    /// No more items: the receiver gets `None` after the ones already here.
    pub(crate) fn close(&self) {
        self.shared.lock().sender_closed = true;
        self.shared.arrived.notify_one();
    }
}

/// How far [`InboxSender::push_some`] got.
enum Pushed {
    /// Every item is in the inbox.
    All,
    /// The inbox filled first.
    Full,
    /// The receiver is gone.
    Gone,
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
        if let Some(item) = self.try_recv() {
            return Some(item);
        }
        let shared = self.shared.clone();
        loop {
            let arrived = shared.arrived.notified();
            tokio::pin!(arrived);
            // Registered before looking again, so an arrival in between is not missed.
            arrived.as_mut().enable();
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if shared.lock().sender_closed {
                // Anything sent before the close is here by now.
                return self.try_recv();
            }
            arrived.await;
        }
    }

    /// The next item if one is here. Takes everything waiting at once, so that most
    /// items cost no lock.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        if let Some(item) = self.taken.pop_front() {
            return Some(item);
        }
        let mut state = self.shared.lock();
        let was_full = state.items.len() >= self.shared.capacity;
        std::mem::swap(&mut state.items, &mut self.taken);
        drop(state);
        if was_full {
            self.shared.room.notify_one();
        }
        self.taken.pop_front()
    }

    /// Takes no more items: the sender's further sends fail.
    pub(crate) fn close(&mut self) {
        self.shared.lock().receiver_gone = true;
        self.shared.room.notify_waiters();
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
    async fn a_batch_larger_than_the_inbox_goes_in_as_room_is_made() {
        let (tx, mut rx) = inbox(3);
        let sender = tokio::spawn(async move {
            let mut items: VecDeque<u32> = (0..10).collect();
            tx.send_all(&mut items).await.map(|()| items.len())
        });
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.push(item);
            if got.len() == 10 {
                break;
            }
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(sender.await.unwrap(), Ok(0));
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
        assert_eq!(tx.send(3).await, Err(3));
    }
}
