//! Every byte string a client or broker could receive: the handshake and both frame
//! directions must decode or fail cleanly, never panic, and what decodes must encode
//! back to an equal value. The fast paths (the broker's publish reader, the client's
//! delivery reader) must agree with the full decoder on everything they accept. Trace
//! context read from any headers must write back to what it read.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weft_proto::{
    ClientFrame, ServerFrame,
    fast_path::{DeliveryReader, PublishReader, PublishView},
    handshake::{Hello, HelloReply},
    trace_context::{MessageTrace, TraceParent},
};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(tp) = TraceParent::parse(text)
    {
        assert_eq!(TraceParent::parse(&tp.to_string()), Ok(tp));
    }
    let _ = Hello::decode(data);
    let _ = HelloReply::decode(data);
    let client = ClientFrame::decode(data);
    if let Ok(frame) = &client {
        assert_eq!(&ClientFrame::decode(&frame.encode()).unwrap(), frame);
        if let ClientFrame::Publish { headers, .. } = frame
            && let Some(trace) = MessageTrace::from_headers(headers)
        {
            assert_eq!(MessageTrace::from_headers(&trace.headers()), Some(trace));
        }
    }
    let server = ServerFrame::decode(data);
    if let Ok(frame) = &server {
        assert_eq!(&ServerFrame::decode(&frame.encode()).unwrap(), frame);
    }

    if let Some(view) = PublishReader::default().read(data) {
        assert_eq!(PublishView::parse(data), Some(view));
        match client {
            Ok(ClientFrame::Publish {
                req,
                topic,
                payload,
                headers,
            }) => {
                assert_eq!(
                    (req, topic.as_str(), &payload[..]),
                    (view.req, view.topic, view.payload)
                );
                assert!(headers.is_empty());
            }
            other => panic!("the publish reader accepted what the decoder read as {other:?}"),
        }
    }
    if let Some((sub, message)) = DeliveryReader::default().read(&Bytes::copy_from_slice(data)) {
        assert_eq!(server.ok(), Some(ServerFrame::Deliver { sub, message }));
    }
});
