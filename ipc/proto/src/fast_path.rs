//! Routing a publish without decoding and re-encoding it.
//!
//! The broker handles more publishes than anything else, and a publish needs only its
//! topic checked and its payload carried through. [`PublishView`] reads a
//! `ClientFrame::Publish` body in place (no allocation), and [`encode_delivery`] writes
//! the delivered message straight from those slices and the sender's identity, encoded
//! once per connection. Both produce exactly the bytes the serde path would: the tests
//! compare them on random input. Anything unusual (headers, a malformed frame) is left
//! to the full decoder, which reports errors precisely.

use crate::{Identity, Topic, frame::MessageId};

/// A `ClientFrame::Publish` without headers, read in place.
#[derive(Debug, PartialEq, Eq)]
pub struct PublishView<'a> {
    /// Request id (0: no answer wanted).
    pub req: u64,
    /// The topic, checked against the rules.
    pub topic: &'a str,
    /// The payload.
    pub payload: &'a [u8],
}

/// Postcard's variant index of `ClientFrame::Publish`.
const PUBLISH_VARIANT: u64 = 0;

impl<'a> PublishView<'a> {
    /// Reads `body` if it is a well-formed publish with a valid topic and no headers;
    /// `None` for anything else.
    pub fn parse(body: &'a [u8]) -> Option<PublishView<'a>> {
        let mut r = Reader(body);
        if r.varint()? != PUBLISH_VARIANT {
            return None;
        }
        let req = r.varint()?;
        let topic = std::str::from_utf8(r.bytes()?).ok()?;
        let payload = r.bytes()?;
        if r.varint()? != 0 || !r.0.is_empty() {
            return None;
        }
        Topic::check(topic).ok()?;
        Some(PublishView {
            req,
            topic,
            payload,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Some(head)
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A sender's identity as it appears inside every delivery: encode once per connection.
pub fn encode_identity(identity: &Identity) -> Vec<u8> {
    postcard::to_stdvec(identity).expect("an identity always serialises")
}

/// The encoding of a [`crate::frame::Delivery`] without headers, written from its parts;
/// byte for byte what `Delivery::encode` gives.
pub fn encode_delivery(
    id: MessageId,
    ts_ms: u64,
    topic: &str,
    sender: &[u8],
    payload: &[u8],
    reply_to: Option<u64>,
    direct: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + topic.len() + sender.len() + payload.len());
    put_varint(&mut out, u64::from(id.epoch));
    put_varint(&mut out, id.seq);
    put_varint(&mut out, ts_ms);
    put_bytes(&mut out, topic.as_bytes());
    out.extend_from_slice(sender);
    put_bytes(&mut out, payload);
    out.push(0); // no headers
    match reply_to {
        None => out.push(0),
        Some(call) => {
            out.push(1);
            put_varint(&mut out, call);
        }
    }
    out.push(u8::from(direct));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientFrame, frame::Delivery};
    use bytes::Bytes;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_agrees_with_the_full_decoder(
            req in any::<u64>(),
            topic in "[a-z]{1,8}(\\.[a-z]{1,8}){0,4}",
            payload in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let frame = ClientFrame::Publish {
                req,
                topic: Topic::new(topic.clone()).unwrap(),
                payload: Bytes::from(payload.clone()),
                headers: vec![],
            };
            let body = frame.encode();
            prop_assert_eq!(
                PublishView::parse(&body),
                Some(PublishView { req, topic: &topic, payload: &payload })
            );
        }

        #[test]
        fn parse_never_panics_and_never_accepts_what_the_decoder_refuses(
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            if let Some(view) = PublishView::parse(&body) {
                let decoded = ClientFrame::decode(&body);
                prop_assert!(decoded.is_ok(), "{:?}", view);
            }
        }

        #[test]
        fn encode_delivery_matches_serde(
            epoch in any::<u32>(), seq in any::<u64>(), ts in any::<u64>(),
            topic in "[a-z]{1,8}(\\.[a-z]{1,8}){0,3}",
            app in "[a-z]{1,10}", instance in "[a-z0-9-]{1,20}",
            payload in prop::collection::vec(any::<u8>(), 0..300),
            reply_to in any::<Option<u64>>(), direct in any::<bool>(),
        ) {
            let sender = Identity { app_id: app, instance_id: instance };
            let d = Delivery {
                id: MessageId { epoch, seq },
                ts_ms: ts,
                topic: Topic::new(topic.clone()).unwrap(),
                sender: sender.clone(),
                payload: Bytes::from(payload.clone()),
                headers: vec![],
                reply_to,
                direct,
            };
            let fast = encode_delivery(
                MessageId { epoch, seq }, ts, &topic, &encode_identity(&sender), &payload, reply_to, direct,
            );
            prop_assert_eq!(fast, d.encode());
        }
    }

    #[test]
    fn publishes_with_headers_or_bad_topics_take_the_slow_path() {
        let with_headers = ClientFrame::Publish {
            req: 1,
            topic: Topic::new("a").unwrap(),
            payload: Bytes::new(),
            headers: vec![("k".into(), "v".into())],
        };
        assert_eq!(PublishView::parse(&with_headers.encode()), None);
        // Hand-made frame with an invalid topic: the full decoder refuses it too.
        let body = [0u8, 1, 4, b'a', b'.', b'.', b'b', 0, 0];
        assert_eq!(PublishView::parse(&body), None);
        assert!(ClientFrame::decode(&body).is_err());
        let subscribe = ClientFrame::Unsubscribe { req: 1, sub: 2 };
        assert_eq!(PublishView::parse(&subscribe.encode()), None);
    }
}
