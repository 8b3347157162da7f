//! Routing and receiving plain messages without the general decoder.
//!
//! The broker handles more publishes than anything else, and a publish needs only its
//! topic checked and its payload carried through. [`PublishView`] reads a
//! `ClientFrame::Publish` body in place (no allocation), and [`DeliveryParts`] writes
//! the delivered message straight from those slices and the sender's identity, encoded
//! once per connection. A client writes its publishes with [`encode_publish`] straight
//! into its outbound buffer. On the receiving side, [`DeliveryReader`] turns a
//! `ServerFrame::Deliver` into a [`Delivery`] whose payload shares the frame's memory,
//! reusing the topic and sender of the previous message when they repeat. All of them
//! agree exactly with the serde path: the tests compare them on random input. Anything
//! unusual (headers, a malformed frame) is left to the full decoder, which reports
//! errors precisely.

use std::sync::Arc;

use bytes::{BufMut, Bytes};

use crate::{
    Identity, Topic,
    frame::{DELIVER_VARIANT, Delivery, MessageId},
};

/// A `ClientFrame::Publish` without headers, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        let (req, topic, payload) = Self::parts(body)?;
        let topic = std::str::from_utf8(topic).ok()?;
        Topic::check(topic).ok()?;
        Some(PublishView {
            req,
            topic,
            payload,
        })
    }

    /// Request id, topic bytes (unchecked) and payload of a publish without headers.
    fn parts(body: &'a [u8]) -> Option<(u64, &'a [u8], &'a [u8])> {
        let mut r = Reader(body);
        if r.varint()? != PUBLISH_VARIANT {
            return None;
        }
        let req = r.varint()?;
        let topic = r.bytes()?;
        let payload = r.bytes()?;
        if r.varint()? != 0 || !r.0.is_empty() {
            return None;
        }
        Some((req, topic, payload))
    }
}

/// Reads plain publishes as [`PublishView::parse`] does, remembering the last valid
/// topic: a stream of publishes mostly repeats it, and a repeat is compared rather than
/// checked again.
#[derive(Debug, Default)]
pub struct PublishReader {
    last_topic: Vec<u8>,
}

impl PublishReader {
    /// `body` as a publish without headers with a valid topic; `None` otherwise.
    pub fn read<'a>(&mut self, body: &'a [u8]) -> Option<PublishView<'a>> {
        let (req, topic, payload) = PublishView::parts(body)?;
        let topic = if !topic.is_empty() && topic == self.last_topic.as_slice() {
            // SAFETY: `last_topic` only ever holds bytes that passed `from_utf8` below,
            // and `topic` is equal to them.
            unsafe { std::str::from_utf8_unchecked(topic) }
        } else {
            let checked = std::str::from_utf8(topic).ok()?;
            Topic::check(checked).ok()?;
            self.last_topic.clear();
            self.last_topic.extend_from_slice(topic);
            checked
        };
        Some(PublishView {
            req,
            topic,
            payload,
        })
    }
}

/// Reads `ServerFrame::Deliver` frames without headers.
///
/// A stream of deliveries mostly repeats its topic and sender, so the reader keeps the
/// last of each and clones them instead of checking and copying the strings again.
#[derive(Debug, Default)]
pub struct DeliveryReader {
    topic: Option<Topic>,
    sender: Option<(Vec<u8>, Arc<Identity>)>,
}

impl DeliveryReader {
    /// The subscription and message of `body` if it is a well-formed delivery without
    /// headers; `None` for anything else. The payload is a slice of `body`.
    pub fn read(&mut self, body: &Bytes) -> Option<(u64, Delivery)> {
        let mut r = Reader(body);
        if r.byte()? != DELIVER_VARIANT {
            return None;
        }
        let sub = r.varint()?;
        let epoch = u32::try_from(r.varint_max(5)?).ok()?;
        let seq = r.varint()?;
        let ts_ms = r.varint()?;
        let topic = r.bytes()?;
        let sender_at = body.len() - r.0.len();
        let app_id = r.bytes()?;
        let instance_id = r.bytes()?;
        let sender_raw = &body[sender_at..body.len() - r.0.len()];
        let payload = r.bytes()?;
        let payload_at = body.len() - r.0.len() - payload.len();
        if r.varint()? != 0 {
            return None;
        }
        let reply_to = match r.byte()? {
            0 => None,
            1 => Some(r.varint()?),
            _ => return None,
        };
        let direct = match r.byte()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let seq_in_stream = match r.byte()? {
            0 => None,
            1 => Some(r.varint()?),
            _ => return None,
        };
        if !r.0.is_empty() {
            return None;
        }
        let topic = match &self.topic {
            Some(last) if last.as_str().as_bytes() == topic => last.clone(),
            _ => {
                let topic = Topic::new(std::str::from_utf8(topic).ok()?).ok()?;
                self.topic = Some(topic.clone());
                topic
            }
        };
        let sender = match &self.sender {
            Some((raw, last)) if raw == sender_raw => last.clone(),
            _ => {
                let sender = Arc::new(Identity {
                    app_id: std::str::from_utf8(app_id).ok()?.to_owned(),
                    instance_id: std::str::from_utf8(instance_id).ok()?.to_owned(),
                });
                self.sender = Some((sender_raw.to_vec(), sender.clone()));
                sender
            }
        };
        let message = Delivery {
            id: MessageId { epoch, seq },
            ts_ms,
            topic,
            sender,
            payload: body.slice(payload_at..payload_at + payload.len()),
            headers: Vec::new(),
            reply_to,
            direct,
            seq: seq_in_stream,
        };
        Some((sub, message))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    #[inline]
    fn varint(&mut self) -> Option<u64> {
        self.varint_max(10)
    }

    /// A postcard varint of at most `max` bytes whose value fits in 64 bits.
    #[inline]
    fn varint_max(&mut self, max: usize) -> Option<u64> {
        // Most values (lengths, flags, small ids) take one byte.
        if let Some((&first, rest)) = self.0.split_first()
            && first < 0x80
        {
            self.0 = rest;
            return Some(u64::from(first));
        }
        let mut value = 0u64;
        for (i, byte) in self.0.iter().enumerate().take(max) {
            if i == 9 && *byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    #[inline]
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

/// The length of `ClientFrame::Publish` without headers, as [`encode_publish`] writes it.
pub fn publish_len(req: u64, topic: &str, payload: &[u8]) -> usize {
    1 + varint_len(req) + bytes_len(topic.as_bytes()) + bytes_len(payload) + 1
}

/// Writes `ClientFrame::Publish` without headers: byte for byte what the serde path
/// gives, and [`publish_len`] bytes long. The topic must be valid (a [`Topic`]'s).
pub fn encode_publish(out: &mut impl BufMut, req: u64, topic: &str, payload: &[u8]) {
    put_varint(out, PUBLISH_VARIANT);
    put_varint(out, req);
    put_bytes(out, topic.as_bytes());
    put_bytes(out, payload);
    out.put_u8(0); // no headers
}

fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

fn bytes_len(bytes: &[u8]) -> usize {
    varint_len(bytes.len() as u64) + bytes.len()
}

#[inline]
fn put_varint(out: &mut impl BufMut, mut n: u64) {
    // Built on the stack and copied once: one capacity check instead of one per byte.
    let mut bytes = [0u8; 10];
    let mut len = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes[len] = byte;
            len += 1;
            break;
        }
        bytes[len] = byte | 0x80;
        len += 1;
    }
    out.put_slice(&bytes[..len]);
}

fn put_bytes(out: &mut impl BufMut, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

/// A sender's identity as it appears inside every delivery: encode once per connection.
pub fn encode_identity(identity: &Identity) -> Vec<u8> {
    postcard::to_stdvec(identity).expect("an identity always serialises")
}

/// The headers part of [`DeliveryParts`] when there are none.
pub const NO_HEADERS: &[u8] = &[0];

/// The parts of a [`Delivery`], borrowed from where they already are.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryParts<'a> {
    /// Its id.
    pub id: MessageId,
    /// When the broker accepted it.
    pub ts_ms: u64,
    /// The topic, valid.
    pub topic: &'a str,
    /// The sender, as [`encode_identity`] gives it.
    pub sender: &'a [u8],
    /// The payload.
    pub payload: &'a [u8],
    /// The headers as they are encoded ([`NO_HEADERS`] for none).
    pub headers: &'a [u8],
    /// The call to answer, for a request.
    pub reply_to: Option<u64>,
    /// Whether it was sent directly.
    pub direct: bool,
    /// Its sequence number in a durable stream.
    pub seq: Option<u64>,
}

impl DeliveryParts<'_> {
    /// Replaces the contents of `out` with the encoded delivery: byte for byte what
    /// `Delivery::encode` gives.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(
            48 + self.topic.len() + self.sender.len() + self.payload.len() + self.headers.len(),
        );
        put_varint(out, u64::from(self.id.epoch));
        put_varint(out, self.id.seq);
        put_varint(out, self.ts_ms);
        put_bytes(out, self.topic.as_bytes());
        out.extend_from_slice(self.sender);
        put_bytes(out, self.payload);
        out.extend_from_slice(self.headers);
        put_option(out, self.reply_to);
        out.push(u8::from(self.direct));
        put_option(out, self.seq);
    }
}

fn put_option(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        None => out.push(0),
        Some(n) => {
            out.push(1);
            put_varint(out, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientFrame, ServerFrame};
    use proptest::prelude::*;

    fn delivery(
        topic: &str,
        sender: (&str, &str),
        payload: &[u8],
        reply_to: Option<u64>,
        direct: bool,
        seq: Option<u64>,
    ) -> Delivery {
        Delivery {
            id: MessageId { epoch: 7, seq: 9 },
            ts_ms: 11,
            topic: Topic::new(topic).unwrap(),
            sender: Arc::new(Identity {
                app_id: sender.0.into(),
                instance_id: sender.1.into(),
            }),
            payload: Bytes::copy_from_slice(payload),
            headers: vec![],
            reply_to,
            direct,
            seq,
        }
    }

    fn deliver_frame(sub: u64, message: &Delivery) -> Bytes {
        Bytes::from(
            ServerFrame::Deliver {
                sub,
                message: message.clone(),
            }
            .encode(),
        )
    }

    proptest! {
        #[test]
        fn publishes_are_written_and_read_as_serde_does(
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
            let mut fast = Vec::new();
            encode_publish(&mut fast, req, &topic, &payload);
            prop_assert_eq!(fast.len(), publish_len(req, &topic, &payload));
            prop_assert_eq!(&fast, &body);
            prop_assert_eq!(
                PublishView::parse(&body),
                Some(PublishView { req, topic: &topic, payload: &payload })
            );
        }

        #[test]
        fn the_publish_reader_agrees_with_parse(
            bodies in prop::collection::vec(prop_oneof![
                ("[ab]{1,2}(\\.[ab*]{1,2})?", any::<u64>()).prop_map(|(topic, req)| {
                    // Valid topics, and some with a wildcard the reader must refuse.
                    let mut body = Vec::new();
                    encode_publish(&mut body, req, &topic, b"{}");
                    body
                }),
                prop::collection::vec(any::<u8>(), 0..24),
            ], 1..30),
        ) {
            let mut reader = PublishReader::default();
            for body in &bodies {
                prop_assert_eq!(reader.read(body), PublishView::parse(body));
            }
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
        fn encoded_delivery_parts_match_serde(
            epoch in any::<u32>(), seq in any::<u64>(), ts in any::<u64>(),
            topic in "[a-z]{1,8}(\\.[a-z]{1,8}){0,3}",
            app in "[a-z]{1,10}", instance in "[a-z0-9-]{1,20}",
            payload in prop::collection::vec(any::<u8>(), 0..300),
            headers in prop::collection::vec(("[a-z-]{1,12}", ".{0,20}"), 0..3),
            reply_to in any::<Option<u64>>(), direct in any::<bool>(),
            stream_seq in any::<Option<u64>>(),
        ) {
            let sender = Identity { app_id: app, instance_id: instance };
            let encoded_headers = postcard::to_stdvec(&headers).unwrap();
            let d = Delivery {
                id: MessageId { epoch, seq },
                ts_ms: ts,
                topic: Topic::new(topic.clone()).unwrap(),
                sender: sender.clone().into(),
                payload: Bytes::from(payload.clone()),
                headers,
                reply_to,
                direct,
                seq: stream_seq,
            };
            let sender = encode_identity(&sender);
            let parts = DeliveryParts {
                id: MessageId { epoch, seq }, ts_ms: ts, topic: &topic, sender: &sender,
                payload: &payload, headers: &encoded_headers, reply_to, direct, seq: stream_seq,
            };
            // Into a buffer holding something else already: it is replaced.
            let mut fast = b"left over".to_vec();
            parts.encode_into(&mut fast);
            prop_assert_eq!(fast, d.encode());
        }

        #[test]
        fn delivery_reader_agrees_with_the_full_decoder(
            sub in any::<u64>(),
            messages in prop::collection::vec((
                "[a-z]{1,4}(\\.[a-z]{1,4}){0,2}",
                "[a-b]{1,2}", "[a-b0-9]{1,2}",
                prop::collection::vec(any::<u8>(), 0..40),
                any::<Option<u64>>(), any::<bool>(), any::<Option<u64>>(),
            ), 1..20),
        ) {
            // Short alphabets make topics and senders repeat, exercising the memory.
            let mut reader = DeliveryReader::default();
            for (topic, app, instance, payload, reply_to, direct, seq) in messages {
                let d = delivery(&topic, (&app, &instance), &payload, reply_to, direct, seq);
                prop_assert_eq!(reader.read(&deliver_frame(sub, &d)), Some((sub, d)));
            }
        }

        #[test]
        fn delivery_reader_never_panics_nor_accepts_what_the_decoder_refuses(
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let body = Bytes::from(body);
            if let Some((sub, message)) = DeliveryReader::default().read(&body) {
                let decoded = ServerFrame::decode(&body);
                prop_assert!(decoded.is_ok(), "{:?}", message);
                prop_assert_eq!(decoded.unwrap(), ServerFrame::Deliver { sub, message });
            }
        }
    }

    proptest! {
        #[test]
        fn a_damaged_delivery_is_refused_or_read_as_the_decoder_reads_it(
            at in any::<prop::sample::Index>(), value in any::<u8>(), primed in any::<bool>(),
        ) {
            let good = delivery("prices.fx", ("chart", "chart-1"), b"{\"p\":1}", Some(3), false, Some(5));
            let frame = deliver_frame(5, &good);
            let mut reader = DeliveryReader::default();
            if primed {
                reader.read(&frame).unwrap();
            }
            let mut damaged = frame.to_vec();
            damaged[at.index(frame.len())] = value;
            let damaged = Bytes::from(damaged);
            match reader.read(&damaged) {
                Some((sub, message)) => prop_assert_eq!(
                    ServerFrame::decode(&damaged).ok(),
                    Some(ServerFrame::Deliver { sub, message })
                ),
                None => {
                    let plain = matches!(
                        ServerFrame::decode(&damaged),
                        Ok(ServerFrame::Deliver { ref message, .. }) if message.headers.is_empty()
                    );
                    prop_assert!(!plain, "a plain delivery the reader refused");
                }
            }
        }
    }

    #[test]
    fn varint_len_counts_what_put_varint_writes() {
        let mut values = vec![0, 1, u64::MAX];
        for shift in 1..64 {
            values.extend([(1u64 << shift) - 1, 1u64 << shift]);
        }
        for n in values {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!(varint_len(n), out.len(), "{n}");
            assert_eq!(Reader(&out).varint(), Some(n), "{n}");
        }
    }

    #[test]
    fn delivery_reader_checks_a_new_topic_and_leaves_headers_to_the_decoder() {
        let mut reader = DeliveryReader::default();
        let good = delivery("a.b", ("x", "x-1"), b"{}", None, false, None);
        assert!(reader.read(&deliver_frame(1, &good)).is_some());
        let mut with_headers = good.clone();
        with_headers.headers = vec![("k".into(), "v".into())];
        assert_eq!(reader.read(&deliver_frame(1, &with_headers)), None);
        // The same frame with its topic bytes turned into `a.*`: refused, not remembered.
        let mut bad = deliver_frame(1, &good).to_vec();
        let at = bad.windows(3).position(|w| w == b"a.b").unwrap();
        bad[at + 2] = b'*';
        assert_eq!(reader.read(&Bytes::from(bad)), None);
        assert!(reader.read(&deliver_frame(2, &good)).is_some());
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
