//! W3C Trace Context for bus messages.
//!
//! A traced message carries a `traceparent` header (`00-<trace id>-<span id>-<flags>`,
//! [W3C Trace Context](https://www.w3.org/TR/trace-context/)) whose span id names the
//! message itself. When the message was sent because of another one, its `tracestate`
//! header has a `weft=<span id>` entry naming that cause, so whoever records spans (the
//! shell's trace export) can link a chain of messages across apps into one trace with
//! each message the child of the one that caused it.
//!
//! Parsing is strict (lowercase hex, all-zero ids refused, version `ff` refused) and
//! never panics; see the property tests.

use std::fmt;

use crate::headers::Headers;

/// The header carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";
/// The header carrying vendor entries; Weft's entry names the causing message's span.
pub const TRACESTATE: &str = "tracestate";
/// Weft's key inside `tracestate`.
const WEFT_KEY: &str = "weft";

/// One message's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace, shared by every message of a chain.
    pub trace_id: [u8; 16],
    /// This message's span.
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

/// A `traceparent` value that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>): {problem}")]
pub struct TraceParentError {
    /// The value, cut to 100 bytes.
    pub value: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl TraceParent {
    /// A new trace with a random trace id and span id, sampled.
    pub fn root() -> Self {
        Self {
            trace_id: random_nonzero(),
            span_id: random_nonzero(),
            flags: 1,
        }
    }

    /// A new span in the same trace: what a message caused by this one carries.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: random_nonzero(),
            flags: self.flags,
        }
    }

    /// Parses a `traceparent` header value.
    pub fn parse(value: &str) -> Result<Self, TraceParentError> {
        let fail = |problem| TraceParentError {
            value: value.chars().take(100).collect(),
            problem,
        };
        let mut parts = value.split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(fail("it does not have four parts"));
        };
        let version =
            hex_bytes::<1>(version).ok_or_else(|| fail("the version is not 2 hex digits"))?;
        if version[0] == 0xff {
            return Err(fail("version ff is invalid"));
        }
        // Version 00 has exactly four parts; later versions may append more.
        if version[0] == 0 && parts.next().is_some() {
            return Err(fail("version 00 has exactly four parts"));
        }
        let trace_id = hex_bytes::<16>(trace)
            .ok_or_else(|| fail("the trace id is not 32 lowercase hex digits"))?;
        let span_id = hex_bytes::<8>(span)
            .ok_or_else(|| fail("the parent id is not 16 lowercase hex digits"))?;
        let flags = hex_bytes::<1>(flags).ok_or_else(|| fail("the flags are not 2 hex digits"))?;
        if trace_id == [0; 16] {
            return Err(fail("the trace id is all zeros"));
        }
        if span_id == [0; 8] {
            return Err(fail("the parent id is all zeros"));
        }
        Ok(Self {
            trace_id,
            span_id,
            flags: flags[0],
        })
    }

    /// The trace id as 32 hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The span id as 16 hex digits.
    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            self.flags
        )
    }
}

/// A traced message's context, as read from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTrace {
    /// The message's own span.
    pub span: TraceParent,
    /// The span of the message that caused it, if Weft recorded one.
    pub caused_by: Option<[u8; 8]>,
}

impl MessageTrace {
    /// The trace context of a message caused by `cause` (a new trace when `None`).
    pub fn caused_by(cause: Option<&TraceParent>) -> Self {
        match cause {
            Some(cause) => Self {
                span: cause.child(),
                caused_by: Some(cause.span_id),
            },
            None => Self {
                span: TraceParent::root(),
                caused_by: None,
            },
        }
    }

    /// The headers that carry this context.
    pub fn headers(&self) -> Headers {
        let mut headers = vec![(TRACEPARENT.to_owned(), self.span.to_string())];
        if let Some(cause) = self.caused_by {
            headers.push((
                TRACESTATE.to_owned(),
                format!("{WEFT_KEY}={}", hex::encode(cause)),
            ));
        }
        headers
    }

    /// Reads the context from `headers`: `None` without a valid `traceparent`. A
    /// malformed `weft` entry in `tracestate` is ignored.
    pub fn from_headers(headers: &Headers) -> Option<Self> {
        let span = headers
            .iter()
            .find(|(k, _)| k == TRACEPARENT)
            .and_then(|(_, v)| TraceParent::parse(v).ok())?;
        let caused_by = headers
            .iter()
            .filter(|(k, _)| k == TRACESTATE)
            .flat_map(|(_, v)| v.split(','))
            .find_map(|entry| {
                let (key, value) = entry.trim().split_once('=')?;
                (key == WEFT_KEY).then(|| hex_bytes::<8>(value))?
            })
            .filter(|id| *id != [0; 8]);
        Some(Self { span, caused_by })
    }
}

/// Exactly `N` bytes from `2N` lowercase hex digits.
fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    let mut id = [0u8; N];
    while id == [0; N] {
        getrandom::fill(&mut id).expect("the operating system's random source failed");
    }
    id
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const EXAMPLE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn the_specs_example_round_trips() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(tp.span_id_hex(), "b7ad6b7169203331");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_string(), EXAMPLE);
    }

    #[test]
    fn invalid_values_are_refused_with_the_problem() {
        for (value, problem) in [
            ("", "four parts"),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
                "four parts",
            ),
            (
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "version ff",
            ),
            (
                "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
                "trace id",
            ),
            (
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                "all zeros",
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
                "all zeros",
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
                "parent id",
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
                "exactly four",
            ),
            (
                "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "version",
            ),
        ] {
            let e = TraceParent::parse(value).unwrap_err();
            assert!(e.to_string().contains(problem), "{value}: {e}");
        }
        // A later version may carry more parts.
        assert!(
            TraceParent::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-ab")
                .is_ok()
        );
    }

    #[test]
    fn a_caused_message_continues_the_trace_and_names_its_cause() {
        let cause = TraceParent::parse(EXAMPLE).unwrap();
        let caused = MessageTrace::caused_by(Some(&cause));
        assert_eq!(caused.span.trace_id, cause.trace_id);
        assert_ne!(caused.span.span_id, cause.span_id);
        assert_eq!(caused.caused_by, Some(cause.span_id));
        let read = MessageTrace::from_headers(&caused.headers()).unwrap();
        assert_eq!(read, caused);

        let root = MessageTrace::caused_by(None);
        assert_eq!(root.caused_by, None);
        assert_eq!(root.headers().len(), 1);
        assert_ne!(root.span.trace_id, cause.trace_id);
    }

    #[test]
    fn other_vendors_and_bad_entries_in_tracestate_are_skipped() {
        let headers = vec![
            (TRACEPARENT.to_owned(), EXAMPLE.to_owned()),
            (
                TRACESTATE.to_owned(),
                "congo=t61rcWkgMzE, weft=00f067aa0ba902b7".to_owned(),
            ),
        ];
        let read = MessageTrace::from_headers(&headers).unwrap();
        assert_eq!(hex::encode(read.caused_by.unwrap()), "00f067aa0ba902b7");
        let bad = vec![
            (TRACEPARENT.to_owned(), EXAMPLE.to_owned()),
            (TRACESTATE.to_owned(), "weft=zz".to_owned()),
        ];
        assert_eq!(MessageTrace::from_headers(&bad).unwrap().caused_by, None);
        assert_eq!(MessageTrace::from_headers(&vec![]), None);
    }

    proptest! {
        #[test]
        fn parsing_never_panics(value in ".{0,80}") {
            let _ = TraceParent::parse(&value);
        }

        #[test]
        fn every_valid_value_round_trips(
            trace in any::<[u8; 16]>(), span in any::<[u8; 8]>(), flags in any::<u8>()
        ) {
            prop_assume!(trace != [0; 16] && span != [0; 8]);
            let tp = TraceParent { trace_id: trace, span_id: span, flags };
            prop_assert_eq!(TraceParent::parse(&tp.to_string()), Ok(tp));
        }
    }
}
