//! Live connections and their subscriptions.
//!
//! Invariants: every `(conn, sub)` in the sublist has a matching entry in that
//! connection's `subs`, under the same pattern, and removing a connection removes all of
//! its subscriptions.

use rustc_hash::FxHashMap as HashMap;

use tokio_util::sync::CancellationToken;
use weft_proto::{Identity, Pattern, Topic, frame::IdentityFilter};

use weft_wire::FrameQueue;

use crate::sublist::Sublist;

/// Topics whose subscriber lists are cached.
const ROUTE_CACHE_TOPICS: usize = 8192;

/// A live, authenticated connection as routing sees it.
pub(crate) struct Conn {
    pub(crate) identity: Identity,
    /// Encoded frame bodies waiting to be written.
    pub(crate) outbound: FrameQueue,
    /// Cancelled to disconnect the client (for example when it is too slow).
    pub(crate) kill: CancellationToken,
    subs: HashMap<u64, Sub>,
}

/// One subscription of a connection.
struct Sub {
    pattern: Pattern,
    /// Only messages from these senders.
    from: Option<IdentityFilter>,
    /// The durable streams (by index) whose stored messages this subscription is still
    /// being replayed: their live messages skip it until the replay catches up.
    replaying: Vec<usize>,
}

/// Which subscriptions a message goes to, beyond those matching its topic and
/// accepting its sender.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Select<'a> {
    /// Only connections this selects (a direct send).
    pub(crate) only: Option<&'a IdentityFilter>,
    /// The message is stored in this durable stream: subscriptions replaying it wait.
    pub(crate) stored_in: Option<usize>,
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

pub(crate) struct Routes {
    conns: HashMap<u64, Conn>,
    subs: Sublist<(u64, u64)>,
}

impl Default for Routes {
    fn default() -> Self {
        Self {
            conns: HashMap::default(),
            subs: Sublist::new(ROUTE_CACHE_TOPICS),
        }
    }
}

impl Routes {
    pub(crate) fn add_conn(
        &mut self,
        id: u64,
        identity: Identity,
        outbound: FrameQueue,
        kill: CancellationToken,
    ) {
        self.conns.insert(
            id,
            Conn {
                identity,
                outbound,
                kill,
                subs: HashMap::default(),
            },
        );
    }

    pub(crate) fn remove_conn(&mut self, id: u64) {
        if let Some(conn) = self.conns.remove(&id) {
            for (id_of_sub, sub) in &conn.subs {
                self.subs.remove(&sub.pattern, &(id, *id_of_sub));
            }
        }
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Every connection's identity and queued bytes.
    pub(crate) fn connection_stats(&self) -> Vec<crate::ConnectionStats> {
        self.conns
            .values()
            .map(|c| crate::ConnectionStats {
                identity: c.identity.clone(),
                queued_bytes: c.outbound.queued_bytes(),
            })
            .collect()
    }

    pub(crate) fn conn(&self, id: u64) -> Option<&Conn> {
        self.conns.get(&id)
    }

    /// The connection authenticated as exactly `identity`, if any.
    pub(crate) fn conn_of(&self, identity: &Identity) -> Option<(u64, &Conn)> {
        self.conns
            .iter()
            .find(|(_, c)| c.identity == *identity)
            .map(|(id, c)| (*id, c))
    }

    /// Adds a subscription; its live messages of the durable streams in `replaying`
    /// wait until [`Routes::replayed`] says each has caught up.
    pub(crate) fn subscribe(
        &mut self,
        conn: u64,
        sub: u64,
        pattern: Pattern,
        from: Option<IdentityFilter>,
        replaying: Vec<usize>,
    ) -> Result<(), SubError> {
        let c = self.conns.get_mut(&conn).ok_or(SubError::Unknown)?;
        if c.subs.contains_key(&sub) {
            return Err(SubError::Duplicate);
        }
        self.subs.insert(&pattern, (conn, sub));
        c.subs.insert(
            sub,
            Sub {
                pattern,
                from,
                replaying,
            },
        );
        Ok(())
    }

    pub(crate) fn unsubscribe(&mut self, conn: u64, sub: u64) -> Result<(), SubError> {
        let c = self.conns.get_mut(&conn).ok_or(SubError::Unknown)?;
        let removed = c.subs.remove(&sub).ok_or(SubError::Unknown)?;
        self.subs.remove(&removed.pattern, &(conn, sub));
        Ok(())
    }

    /// The replay of durable stream `stream` for a subscription has caught up: its
    /// live messages flow from now on. False if the subscription is gone.
    pub(crate) fn replayed(&mut self, conn: u64, sub: u64, stream: usize) -> bool {
        let Some(s) = self.conns.get_mut(&conn).and_then(|c| c.subs.get_mut(&sub)) else {
            return false;
        };
        s.replaying.retain(|&r| r != stream);
        true
    }

    /// Whether the subscription still exists.
    pub(crate) fn has_sub(&self, conn: u64, sub: u64) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.subs.contains_key(&sub))
    }

    /// Every subscription matching `topic` that accepts messages from `sender`, and
    /// whose connection is selected by `only` if given; each once, ordered by
    /// connection and subscription id.
    pub(crate) fn targets(
        &mut self,
        topic: &Topic,
        sender: &Identity,
        only: Option<&IdentityFilter>,
    ) -> Vec<Target> {
        let mut out = Vec::new();
        let select = Select {
            only,
            stored_in: None,
        };
        self.for_each_target(topic.as_str(), sender, select, |t, _| out.push(t));
        out
    }

    /// Calls `f` with every target [`Routes::targets`] would list, and its connection,
    /// without collecting them.
    pub(crate) fn for_each_target(
        &mut self,
        topic: &str,
        sender: &Identity,
        select: Select<'_>,
        mut f: impl FnMut(Target, &Conn),
    ) {
        let matched = self.subs.matches_str(topic);
        for &(conn, sub) in matched.iter() {
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            let Some(s) = c.subs.get(&sub) else {
                continue;
            };
            let waits = select
                .stored_in
                .is_some_and(|stream| s.replaying.contains(&stream));
            if !waits
                && select.only.is_none_or(|f| f.matches(&c.identity))
                && s.from.as_ref().is_none_or(|f| f.matches(sender))
            {
                f(Target { conn, sub }, c);
            }
        }
    }

    /// Whether any live connection is selected by `filter`.
    pub(crate) fn any_connected(&self, filter: &IdentityFilter) -> bool {
        self.conns.values().any(|c| filter.matches(&c.identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes_with(conns: &[u64]) -> (Routes, Vec<weft_wire::FrameWriter>) {
        let mut r = Routes::default();
        let mut rxs = vec![];
        for &c in conns {
            let (tx, rx) = weft_wire::frame_queue(1024);
            r.add_conn(c, Identity::new_instance("x"), tx, CancellationToken::new());
            rxs.push(rx);
        }
        (r, rxs)
    }

    fn t(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    fn targets(r: &mut Routes, topic: &str) -> Vec<(u64, u64)> {
        let anyone = Identity::new_instance("sender");
        r.targets(&Topic::new(topic).unwrap(), &anyone, None)
            .iter()
            .map(|x| (x.conn, x.sub))
            .collect()
    }

    #[test]
    fn exact_match_and_unsubscribe() {
        let (mut r, _rx) = routes_with(&[1, 2]);
        r.subscribe(1, 10, t("a.b"), None, vec![]).unwrap();
        r.subscribe(2, 20, t("a.b"), None, vec![]).unwrap();
        r.subscribe(2, 21, t("a.b"), None, vec![]).unwrap();
        r.subscribe(2, 22, t("a"), None, vec![]).unwrap();
        assert_eq!(targets(&mut r, "a.b"), [(1, 10), (2, 20), (2, 21)]);
        assert_eq!(targets(&mut r, "a.c"), []);
        r.subscribe(1, 11, t("a.#"), None, vec![]).unwrap();
        assert_eq!(targets(&mut r, "a.c"), [(1, 11)]);
        r.unsubscribe(1, 11).unwrap();
        r.unsubscribe(2, 20).unwrap();
        assert_eq!(targets(&mut r, "a.b"), [(1, 10), (2, 21)]);
        assert_eq!(r.unsubscribe(2, 20), Err(SubError::Unknown));
        assert_eq!(
            r.subscribe(1, 10, t("z"), None, vec![]),
            Err(SubError::Duplicate)
        );
    }

    #[test]
    fn sender_and_recipient_filters_select_targets() {
        let (mut r, _rx) = routes_with(&[1, 2]);
        let sender = Identity::new_instance("pricer");
        let other = Identity::new_instance("other");
        let from = |id: &Identity| IdentityFilter {
            app_id: id.app_id.clone(),
            instance_id: Some(id.instance_id.clone()),
        };
        r.subscribe(1, 1, t("q"), Some(from(&sender)), vec![])
            .unwrap();
        r.subscribe(2, 2, t("q"), None, vec![]).unwrap();
        let topic = Topic::new("q").unwrap();
        let got = |r: &mut Routes, s: &Identity, only: Option<&IdentityFilter>| -> Vec<u64> {
            r.targets(&topic, s, only).iter().map(|t| t.conn).collect()
        };
        assert_eq!(got(&mut r, &sender, None), [1, 2]);
        assert_eq!(got(&mut r, &other, None), [2]);
        let to_two = from(&r.conn(2).unwrap().identity.clone());
        assert_eq!(got(&mut r, &sender, Some(&to_two)), [2]);
        assert!(r.any_connected(&to_two));
        let app_only = IdentityFilter {
            app_id: "x".into(),
            instance_id: None,
        };
        assert!(
            r.any_connected(&app_only),
            "every test connection is an instance of x"
        );
        assert!(!r.any_connected(&from(&sender)));
    }

    #[test]
    fn removing_a_connection_removes_its_subscriptions() {
        let (mut r, _rx) = routes_with(&[1, 2]);
        r.subscribe(1, 1, t("a"), None, vec![]).unwrap();
        r.subscribe(2, 1, t("a"), None, vec![]).unwrap();
        r.remove_conn(1);
        assert_eq!(targets(&mut r, "a"), [(2, 1)]);
        r.remove_conn(2);
        assert!(r.subs.is_empty());
        assert_eq!(r.connection_count(), 0);
    }
}
