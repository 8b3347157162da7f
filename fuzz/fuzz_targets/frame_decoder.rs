//! Every byte string a client or broker could receive: the handshake and both frame
//! directions must decode or fail cleanly, never panic, and what decodes must encode
//! back to an equal value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_proto::{ClientFrame, ServerFrame, handshake::{Hello, HelloReply}};

fuzz_target!(|data: &[u8]| {
    let _ = Hello::decode(data);
    let _ = HelloReply::decode(data);
    if let Ok(frame) = ClientFrame::decode(data) {
        assert_eq!(ClientFrame::decode(&frame.encode()).unwrap(), frame);
    }
    if let Ok(frame) = ServerFrame::decode(data) {
        assert_eq!(ServerFrame::decode(&frame.encode()).unwrap(), frame);
    }
});
