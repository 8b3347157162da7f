//! Live connections and who subscribed to which topic.
//!
//! Invariants: every `(conn, sub)` in `by_topic` has a matching entry in that
//! connection's `subs`, and removing a connection removes all of its subscriptions.
//! Exact-topic matching only; wildcard patterns arrive with the bus issue.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weft_proto::{Identity, Topic};

/// A live, authenticated connection as routing sees it.
pub(crate) struct Conn {
    pub(crate) identity: Identity,
    /// Encoded frame bodies waiting to be written.
    pub(crate) outbound: mpsc::Sender<Bytes>,
    /// Cancelled to disconnect the client (for example when it is too slow).
    pub(crate) kill: CancellationToken,
    subs: HashMap<u64, Topic>,
}

/// One subscription that matched a topic.
pub(crate) struct Target {
    pub(crate) conn: u64,
    pub(crate) sub: u64,
}

/// Why a subscription change was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubError {
    Duplicate,
    Unknown,
}

#[derive(Default)]
pub(crate) struct Routes {
    conns: HashMap<u64, Conn>,
    by_topic: HashMap<Topic, Vec<(u64, u64)>>,
}

impl Routes {
    pub(crate) fn add_conn(
        &mut self,
        id: u64,
        identity: Identity,
        outbound: mpsc::Sender<Bytes>,
        kill: CancellationToken,
    ) {
        self.conns.insert(
            id,
            Conn {
                identity,
                outbound,
                kill,
                subs: HashMap::new(),
            },
        );
    }

    pub(crate) fn remove_conn(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            for topic in conn.subs.values() {
                self.detach(topic, id, None);
            }
        }
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn conn(&self, id: u64) -> Option<&Conn> {
        self.conns.get(&id)
    }

    pub(crate) fn subscribe(&mut self, conn: u64, sub: u64, topic: Topic) -> Result<(), SubError> {
        let c = self.conns.get_mut(&conn).ok_or(SubError::Unknown)?;
        if c.subs.contains_key(&sub) {
            return Err(SubError::Duplicate);
        }
        c.subs.insert(sub, topic.clone());
        self.by_topic.entry(topic).or_default().push((conn, sub));
        Ok(())
    }

    pub(crate) fn unsubscribe(&mut self, conn: u64, sub: u64) -> Result<(), SubError> {
        let c = self.conns.get_mut(&conn).ok_or(SubError::Unknown)?;
        let topic = c.subs.remove(&sub).ok_or(SubError::Unknown)?;
        self.detach(&topic, conn, Some(sub));
        Ok(())
    }

    /// Every subscription on exactly `topic`, in subscription order.
    pub(crate) fn targets(&self, topic: &Topic) -> impl Iterator<Item = Target> + '_ {
        self.by_topic
            .get(topic)
            .into_iter()
            .flatten()
            .map(|&(conn, sub)| Target { conn, sub })
    }

    fn detach(&mut self, topic: &Topic, conn: u64, sub: Option<u64>) {
        if let Some(list) = self.by_topic.get_mut(topic) {
            list.retain(|&(c, s)| !(c == conn && sub.is_none_or(|x| x == s)));
            if list.is_empty() {
                self.by_topic.remove(topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes_with(conns: &[u64]) -> (Routes, Vec<mpsc::Receiver<Bytes>>) {
        let mut r = Routes::default();
        let mut rxs = vec![];
        for &c in conns {
            let (tx, rx) = mpsc::channel(4);
            r.add_conn(c, Identity::new_instance("x"), tx, CancellationToken::new());
            rxs.push(rx);
        }
        (r, rxs)
    }

    fn t(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    fn targets(r: &Routes, topic: &str) -> Vec<(u64, u64)> {
        r.targets(&t(topic)).map(|x| (x.conn, x.sub)).collect()
    }

    #[test]
    fn exact_match_and_unsubscribe() {
        let (mut r, _rx) = routes_with(&[1, 2]);
        r.subscribe(1, 10, t("a.b")).unwrap();
        r.subscribe(2, 20, t("a.b")).unwrap();
        r.subscribe(2, 21, t("a.b")).unwrap();
        r.subscribe(2, 22, t("a")).unwrap();
        assert_eq!(targets(&r, "a.b"), [(1, 10), (2, 20), (2, 21)]);
        assert_eq!(targets(&r, "a.c"), []);
        r.unsubscribe(2, 20).unwrap();
        assert_eq!(targets(&r, "a.b"), [(1, 10), (2, 21)]);
        assert_eq!(r.unsubscribe(2, 20), Err(SubError::Unknown));
        assert_eq!(r.subscribe(1, 10, t("z")), Err(SubError::Duplicate));
    }

    #[test]
    fn removing_a_connection_removes_its_subscriptions() {
        let (mut r, _rx) = routes_with(&[1, 2]);
        r.subscribe(1, 1, t("a")).unwrap();
        r.subscribe(2, 1, t("a")).unwrap();
        r.remove_conn(1);
        assert_eq!(targets(&r, "a"), [(2, 1)]);
        r.remove_conn(2);
        assert!(r.by_topic.is_empty());
        assert_eq!(r.connection_count(), 0);
    }
}
