//! What an app connection may do on the bus: the publish and subscribe patterns its
//! grant carries, checked on every publish, send, request, subscription and service
//! call, and the refusals reported to the shell (at most [`DENIALS_PER_SECOND`] a
//! second per connection, the rest counted).
//!
//! Messages to the platform's own services (ids starting `weft-`, which no app can be
//! granted, other than the command line's) are not held to publish patterns, nor are
//! subscriptions to what only such a service may send, nor calls of RPC services named
//! `weft.…`: the FDC3 agent and the shell's services check those calls themselves. Only
//! those identities may provide a `weft.…` service.

use std::sync::Mutex;

use weft_proto::{Identity, Pattern, pattern_set::PatternSet};

use crate::{BrokerEvent, lock, now_ms};

/// The patterns an app connection is held to; `None` leaves that side open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusAccess {
    /// Topics it may publish, send and request on, and services it may call.
    pub publish: Option<PatternSet>,
    /// Patterns it may subscribe to (each must be covered), and services it may
    /// provide.
    pub subscribe: Option<PatternSet>,
}

/// What was refused, as reported to the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusAction {
    /// Publish (or send, or request) on a topic.
    Publish,
    /// Subscribe to a pattern (or consume it durably).
    Subscribe,
    /// Provide an RPC service.
    Provide,
    /// Call an RPC service.
    Call,
}

impl BusAction {
    /// The action's name in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            BusAction::Publish => "publish",
            BusAction::Subscribe => "subscribe",
            BusAction::Provide => "provide",
            BusAction::Call => "call",
        }
    }
}

/// Refusals reported per connection and second; more are counted and the count sent
/// with the next report.
pub const DENIALS_PER_SECOND: u32 = 10;

/// The platform's reserved app ids start with this.
const PLATFORM_PREFIX: &str = "weft-";

/// Whether messages to `app_id` are exempt from publish patterns.
pub(crate) fn is_platform_service(app_id: &str) -> bool {
    app_id.starts_with(PLATFORM_PREFIX) && app_id != weft_proto::CLI_APP_ID
}

/// Whether an RPC service name is in the platform's reserved namespace.
pub(crate) fn is_platform_service_name(service: &str) -> bool {
    service.starts_with(weft_proto::PLATFORM_SERVICE_PREFIX)
}

impl BusAccess {
    /// Whether `topic` (valid) may be published on.
    pub(crate) fn may_publish(&self, topic: &str) -> bool {
        self.publish
            .as_ref()
            .is_none_or(|set| set.matches_str(topic))
    }

    /// Whether `pattern` may be subscribed to.
    pub(crate) fn may_subscribe(&self, pattern: &Pattern) -> bool {
        self.subscribe
            .as_ref()
            .is_none_or(|set| set.covers(pattern))
    }

    /// The patterns that apply to `action`, for messages.
    pub(crate) fn patterns_for(&self, action: BusAction) -> String {
        let set = match action {
            BusAction::Publish | BusAction::Call => &self.publish,
            BusAction::Subscribe | BusAction::Provide => &self.subscribe,
        };
        set.as_ref().map(ToString::to_string).unwrap_or_default()
    }
}

/// Rate limit of one connection's refusal reports.
#[derive(Default)]
pub(crate) struct DenialReports {
    state: Mutex<ReportWindow>,
}

#[derive(Default)]
struct ReportWindow {
    second: u64,
    sent: u32,
    suppressed: u64,
}

impl DenialReports {
    /// Reports a refusal to the shell unless this second's reports are used up.
    pub(crate) fn report(
        &self,
        events: &tokio::sync::mpsc::UnboundedSender<BrokerEvent>,
        identity: &Identity,
        action: BusAction,
        subject: &str,
    ) {
        let mut w = lock(&self.state);
        let second = now_ms() / 1000;
        if second != w.second {
            w.second = second;
            w.sent = 0;
        }
        if w.sent >= DENIALS_PER_SECOND {
            w.suppressed += 1;
            return;
        }
        w.sent += 1;
        let suppressed = std::mem::take(&mut w.suppressed);
        let _ = events.send(BrokerEvent::AccessDenied {
            identity: identity.clone(),
            action,
            subject: subject.to_owned(),
            suppressed,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sides_allow_everything_and_closed_ones_their_patterns() {
        let open = BusAccess::default();
        assert!(open.may_publish("any.thing"));
        assert!(open.may_subscribe(&Pattern::new("#").unwrap()));
        let held = BusAccess {
            publish: Some(PatternSet::new([Pattern::new("fx.#").unwrap()])),
            subscribe: Some(PatternSet::default()),
        };
        assert!(held.may_publish("fx.EUR"));
        assert!(!held.may_publish("rates.EUR"));
        assert!(!held.may_subscribe(&Pattern::new("fx.EUR").unwrap()));
        assert_eq!(held.patterns_for(BusAction::Call), "[fx.#]");
    }

    #[test]
    fn reports_are_limited_and_the_rest_counted() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let reports = DenialReports::default();
        let id = Identity::new_instance("a");
        for _ in 0..DENIALS_PER_SECOND * 3 {
            reports.report(&tx, &id, BusAction::Publish, "x");
        }
        let mut received = 0;
        while rx.try_recv().is_ok() {
            received += 1;
        }
        // All in one second, or split over two when the clock ticked in between.
        assert!(
            (DENIALS_PER_SECOND..=2 * DENIALS_PER_SECOND).contains(&received),
            "{received}"
        );
    }
}
