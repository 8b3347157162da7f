//! How Weft's frames travel over a socket, in both directions.
//!
//! On the wire every frame is a 4-byte big-endian length followed by that many bytes of
//! body (what the body means is `weft-proto`'s business, not this crate's).
//! [`FrameQueue`] gathers outgoing frames into one byte-bounded buffer that a single
//! writer task puts on the socket in batches; [`FrameReader`] reads many frames per
//! system call and hands each body out in place. The broker uses both for every client
//! connection, and the client library for its connection to the broker.
//!
//! This crate knows nothing of handshakes, identities or routing.

mod queue;
mod reader;

pub use queue::{FrameQueue, FrameWriter, Refused, frame_queue};
pub use reader::{FrameError, FrameReader};
