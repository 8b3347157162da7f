//! Calls waiting for answers, and RPC services with their providers and clients.
//!
//! A call is a `Request` (answered by any connection it was delivered to) or a
//! `Dispatch` (answered by the service's provider). The broker keeps no timers: the
//! caller's client gives up on its own and sends `Cancel`, and the number of calls one
//! connection may have waiting is bounded, so a caller that never cancels cannot grow
//! the table without limit.
//!
//! Invariants:
//! - Every call in `pending` has exactly one entry in `by_caller`, and back.
//! - A service has at most one provider; every client of a service is a live
//!   connection that connected while the provider was there.
//! - When a connection goes, everything it was part of is cleared: its calls, its
//!   waits, its client memberships, and the services it provided (whose callers and
//!   clients are returned so they can be told).

use std::collections::{HashMap, HashSet};

use weft_proto::Topic;

/// One call waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The calling connection.
    pub(crate) caller: u64,
    /// The caller's request id, echoed in the answer.
    pub(crate) req: u64,
    /// The connections allowed to answer.
    pub(crate) responders: Vec<u64>,
    /// For a dispatch, the service called.
    pub(crate) service: Option<Topic>,
}

/// Why a call could not be registered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooManyPending;

/// What `connect` found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Connected {
    /// The service has a provider; the connection is now its client.
    Now,
    /// No provider yet; the connection waits for one.
    Waiting,
    /// No provider, and the caller does not wait.
    NoProvider,
}

/// Who must be told that a provider went away.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ProviderGone {
    /// Each service that lost its provider, with its clients.
    pub(crate) services: Vec<(Topic, Vec<u64>)>,
    /// Calls that will never be answered.
    pub(crate) calls: Vec<Pending>,
}

struct Service {
    provider: u64,
    clients: HashSet<u64>,
}

pub(crate) struct Calls {
    max_pending_per_conn: usize,
    next_call: u64,
    pending: HashMap<u64, Pending>,
    by_caller: HashMap<(u64, u64), u64>,
    per_conn: HashMap<u64, usize>,
    services: HashMap<Topic, Service>,
    waiters: HashMap<Topic, Vec<(u64, u64)>>,
}

impl Calls {
    pub(crate) fn new(max_pending_per_conn: usize) -> Self {
        Self {
            max_pending_per_conn,
            next_call: 1,
            pending: HashMap::new(),
            by_caller: HashMap::new(),
            per_conn: HashMap::new(),
            services: HashMap::new(),
            waiters: HashMap::new(),
        }
    }

    /// Registers a call from `caller`'s request `req`; returns its id.
    pub(crate) fn start(
        &mut self,
        caller: u64,
        req: u64,
        responders: Vec<u64>,
        service: Option<Topic>,
    ) -> Result<u64, TooManyPending> {
        let count = self.per_conn.entry(caller).or_default();
        if *count >= self.max_pending_per_conn {
            return Err(TooManyPending);
        }
        *count += 1;
        let call = self.next_call;
        self.next_call += 1;
        if let Some(old) = self.by_caller.insert((caller, req), call) {
            // A client reusing a request id abandons the older call.
            self.remove(old);
        }
        self.pending.insert(
            call,
            Pending {
                caller,
                req,
                responders,
                service,
            },
        );
        Ok(call)
    }

    /// Takes the call `call` if `responder` may answer it.
    pub(crate) fn answer(&mut self, call: u64, responder: u64) -> Option<Pending> {
        let allowed = self.pending.get(&call)?.responders.contains(&responder);
        if allowed { self.remove(call) } else { None }
    }

    /// The caller gave up on its request `req` (a call or a wait).
    pub(crate) fn cancel(&mut self, caller: u64, req: u64) {
        if let Some(call) = self.by_caller.get(&(caller, req)).copied() {
            self.remove(call);
        }
        for list in self.waiters.values_mut() {
            list.retain(|w| *w != (caller, req));
        }
        self.waiters.retain(|_, list| !list.is_empty());
    }

    fn remove(&mut self, call: u64) -> Option<Pending> {
        let pending = self.pending.remove(&call)?;
        self.by_caller.remove(&(pending.caller, pending.req));
        if let Some(count) = self.per_conn.get_mut(&pending.caller) {
            *count -= 1;
            if *count == 0 {
                self.per_conn.remove(&pending.caller);
            }
        }
        Some(pending)
    }

    /// The provider of `service`.
    pub(crate) fn provider(&self, service: &Topic) -> Option<u64> {
        self.services.get(service).map(|s| s.provider)
    }

    /// Makes `conn` the provider of `service`. Returns the waiting `(conn, req)`s, which
    /// are now its clients, or `Err` with the current provider.
    pub(crate) fn provide(&mut self, conn: u64, service: &Topic) -> Result<Vec<(u64, u64)>, u64> {
        if let Some(existing) = self.services.get(service) {
            return Err(existing.provider);
        }
        let waiting = self.waiters.remove(service).unwrap_or_default();
        self.services.insert(
            service.clone(),
            Service {
                provider: conn,
                clients: waiting.iter().map(|(c, _)| *c).collect(),
            },
        );
        Ok(waiting)
    }

    /// `conn`'s request `req` connects to `service`.
    pub(crate) fn connect(
        &mut self,
        conn: u64,
        req: u64,
        service: &Topic,
        wait: bool,
    ) -> Connected {
        if let Some(s) = self.services.get_mut(service) {
            s.clients.insert(conn);
            return Connected::Now;
        }
        if wait {
            self.waiters
                .entry(service.clone())
                .or_default()
                .push((conn, req));
            Connected::Waiting
        } else {
            Connected::NoProvider
        }
    }

    /// `conn` stops providing `service`, if it did.
    pub(crate) fn withdraw(&mut self, conn: u64, service: &Topic) -> Option<ProviderGone> {
        if self.provider(service) != Some(conn) {
            return None;
        }
        let s = self.services.remove(service).expect("checked above");
        let mut gone = ProviderGone::default();
        gone.services
            .push((service.clone(), s.clients.into_iter().collect()));
        gone.calls = self.take_calls_to(service);
        Some(gone)
    }

    /// `conn` disconnected: clears everything it was part of.
    pub(crate) fn connection_gone(&mut self, conn: u64) -> ProviderGone {
        let mut gone = ProviderGone::default();
        let provided: Vec<Topic> = self
            .services
            .iter()
            .filter(|(_, s)| s.provider == conn)
            .map(|(t, _)| t.clone())
            .collect();
        for service in provided {
            let s = self.services.remove(&service).expect("listed above");
            let clients = s.clients.into_iter().filter(|c| *c != conn).collect();
            gone.calls.extend(self.take_calls_to(&service));
            gone.services.push((service, clients));
        }
        for s in self.services.values_mut() {
            s.clients.remove(&conn);
        }
        for list in self.waiters.values_mut() {
            list.retain(|(c, _)| *c != conn);
        }
        self.waiters.retain(|_, list| !list.is_empty());
        let own: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.caller == conn)
            .map(|(c, _)| *c)
            .collect();
        for call in own {
            self.remove(call);
        }
        for p in self.pending.values_mut() {
            p.responders.retain(|r| *r != conn);
        }
        gone.calls.retain(|p| p.caller != conn);
        gone
    }

    fn take_calls_to(&mut self, service: &Topic) -> Vec<Pending> {
        let calls: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.service.as_ref() == Some(service))
            .map(|(c, _)| *c)
            .collect();
        calls.into_iter().filter_map(|c| self.remove(c)).collect()
    }

    /// Number of calls waiting, for tests and metrics.
    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    #[test]
    fn calls_are_answered_once_and_only_by_their_responders() {
        let mut c = Calls::new(10);
        let call = c.start(1, 100, vec![2, 3], None).unwrap();
        assert_eq!(c.answer(call, 4), None, "a stranger cannot answer");
        let p = c.answer(call, 3).unwrap();
        assert_eq!((p.caller, p.req), (1, 100));
        assert_eq!(c.answer(call, 2), None, "answered already");
        assert_eq!(c.pending_count(), 0);
    }

    #[test]
    fn pending_calls_per_connection_are_bounded_and_cancellable() {
        let mut c = Calls::new(2);
        c.start(1, 1, vec![2], None).unwrap();
        c.start(1, 2, vec![2], None).unwrap();
        assert_eq!(c.start(1, 3, vec![2], None), Err(TooManyPending));
        assert!(
            c.start(9, 1, vec![2], None).is_ok(),
            "other connections are unaffected"
        );
        c.cancel(1, 1);
        assert!(c.start(1, 3, vec![2], None).is_ok());
    }

    #[test]
    fn services_have_one_provider_and_waiters_become_clients() {
        let mut c = Calls::new(10);
        assert_eq!(
            c.connect(5, 1, &svc("quotes"), false),
            Connected::NoProvider
        );
        assert_eq!(c.connect(5, 2, &svc("quotes"), true), Connected::Waiting);
        assert_eq!(c.provide(7, &svc("quotes")), Ok(vec![(5, 2)]));
        assert_eq!(c.provide(8, &svc("quotes")), Err(7));
        assert_eq!(c.connect(6, 3, &svc("quotes"), false), Connected::Now);
        assert_eq!(c.provider(&svc("quotes")), Some(7));
    }

    #[test]
    fn a_provider_leaving_fails_its_calls_and_tells_its_clients() {
        let mut c = Calls::new(10);
        c.provide(7, &svc("quotes")).unwrap();
        c.connect(5, 1, &svc("quotes"), false);
        let call = c.start(5, 2, vec![7], Some(svc("quotes"))).unwrap();
        let other = c.start(5, 3, vec![8], None).unwrap();
        let gone = c.connection_gone(7);
        assert_eq!(gone.services, vec![(svc("quotes"), vec![5])]);
        assert_eq!(gone.calls.len(), 1);
        assert_eq!(gone.calls[0].req, 2);
        assert_eq!(c.answer(call, 7), None);
        assert!(c.provider(&svc("quotes")).is_none());
        // An unrelated call survives.
        assert!(c.answer(other, 8).is_some());
    }

    #[test]
    fn a_caller_leaving_clears_its_calls_and_waits() {
        let mut c = Calls::new(10);
        let call = c.start(5, 1, vec![7], None).unwrap();
        c.connect(5, 2, &svc("later"), true);
        let gone = c.connection_gone(5);
        assert_eq!(gone, ProviderGone::default());
        assert_eq!(c.answer(call, 7), None);
        assert_eq!(c.provide(9, &svc("later")), Ok(vec![]));
    }

    #[test]
    fn withdrawing_is_only_for_the_provider() {
        let mut c = Calls::new(10);
        c.provide(7, &svc("s")).unwrap();
        assert_eq!(c.withdraw(8, &svc("s")), None);
        assert!(c.withdraw(7, &svc("s")).is_some());
        assert!(c.provider(&svc("s")).is_none());
    }
}
