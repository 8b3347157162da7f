//! Reading length-prefixed frames: many per system call, each handed out in place.
//!
//! The reader fills one buffer from the socket and returns each complete frame's body
//! as a slice of it ([`FrameReader::next_frame`]) or, where the receiver keeps parts of
//! it, as shared bytes ([`FrameReader::next_owned`]). A frame longer than the limit is
//! an error as soon as its length is read, before its body is buffered, so a peer
//! cannot make the reader hold more than the limit.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes asked of the socket per read when the buffer has no partial frame to finish.
/// Large enough that a reader falling behind catches up in few reads and wake-ups
/// (measured: 64 KiB let a subscriber fall far enough behind a fast publisher to be cut
/// off as a slow consumer; 256 KiB did not).
const READ_CHUNK: usize = 256 * 1024;

/// Why the stream of frames cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame longer than the limit.
    #[error("a frame of {len} bytes was announced; the limit is {limit}")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("the connection closed in the middle of a frame ({buffered} bytes of it read)")]
    Truncated {
        /// Bytes of the unfinished frame received, its length prefix included.
        buffered: usize,
    },
    /// Reading from the socket failed.
    #[error("reading the socket failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Frames from one socket.
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    /// Bytes at the front of `buf` that belong to the frame handed out last.
    consumed: usize,
    limit: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of at most `limit` bytes from `io`.
    pub fn new(io: R, limit: usize) -> Self {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            consumed: 0,
            limit,
        }
    }

    /// The next frame's body, valid until the next call; `None` when the stream ends
    /// cleanly between frames.
    pub async fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        self.buf.advance(std::mem::take(&mut self.consumed));
        let Some(len) = self.fill_frame().await? else {
            return Ok(None);
        };
        self.consumed = 4 + len;
        Ok(Some(&self.buf[4..4 + len]))
    }

    /// The next frame's body as bytes of its own (sharing the read buffer's memory);
    /// `None` when the stream ends cleanly between frames.
    pub async fn next_owned(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.buf.advance(std::mem::take(&mut self.consumed));
        let Some(len) = self.fill_frame().await? else {
            return Ok(None);
        };
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Whether the next frame is already buffered whole, so that getting it will not
    /// touch the socket.
    pub fn has_buffered_frame(&self) -> bool {
        let rest = &self.buf[self.consumed..];
        rest.get(..4).is_some_and(|prefix| {
            let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
            rest.len() >= 4 + len
        })
    }

    /// Reads until a whole frame is at the front of the buffer; its body's length.
    async fn fill_frame(&mut self) -> Result<Option<usize>, FrameError> {
        loop {
            if let Some(prefix) = self.buf.get(..4) {
                let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
                if len > self.limit {
                    return Err(FrameError::TooLong {
                        len,
                        limit: self.limit,
                    });
                }
                if self.buf.len() >= 4 + len {
                    return Ok(Some(len));
                }
                // Room for the rest of this frame and, likely, more behind it.
                self.buf.reserve((4 + len).max(READ_CHUNK) - self.buf.len());
            } else {
                self.buf.reserve(READ_CHUNK);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return match self.buf.len() {
                    0 => Ok(None),
                    buffered => Err(FrameError::Truncated { buffered }),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    fn framed(bodies: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for body in bodies {
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            out.extend_from_slice(body);
        }
        out
    }

    #[tokio::test]
    async fn hands_out_each_frame_in_turn() {
        let bytes = framed(&[b"one", b"", b"three"]);
        let mut r = FrameReader::new(&bytes[..], 100);
        assert_eq!(r.next_frame().await.unwrap(), Some(&b"one"[..]));
        assert_eq!(r.next_owned().await.unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(r.next_frame().await.unwrap(), Some(&b"three"[..]));
        assert_eq!(r.next_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn frames_split_across_reads_are_put_together() {
        let big = vec![7u8; 200_000];
        let bytes = framed(&[b"a", &big, b"b"]);
        let (mut tx, rx) = tokio::io::duplex(1000);
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(777) {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut r = FrameReader::new(rx, 1 << 20);
        assert_eq!(r.next_frame().await.unwrap(), Some(&b"a"[..]));
        assert_eq!(r.next_owned().await.unwrap().as_deref(), Some(&big[..]));
        assert_eq!(r.next_frame().await.unwrap(), Some(&b"b"[..]));
        writer.await.unwrap();
        assert_eq!(r.next_frame().await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_its_body_arrives() {
        // Only the length prefix is sent: the refusal cannot have waited for the body.
        let prefix = 5000u32.to_be_bytes();
        let mut r = FrameReader::new(&prefix[..], 4096);
        let e = r.next_frame().await.unwrap_err();
        assert!(
            matches!(
                e,
                FrameError::TooLong {
                    len: 5000,
                    limit: 4096
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_says_so() {
        let mut bytes = framed(&[b"whole", b"cut short"]);
        bytes.truncate(bytes.len() - 3);
        let mut r = FrameReader::new(&bytes[..], 100);
        assert_eq!(r.next_frame().await.unwrap(), Some(&b"whole"[..]));
        let e = r.next_frame().await.unwrap_err();
        assert!(matches!(e, FrameError::Truncated { buffered: 10 }), "{e}");
    }

    #[tokio::test]
    async fn knows_whether_the_next_frame_is_buffered() {
        let mut bytes = framed(&[b"one", b"two", b"three"]);
        bytes.truncate(bytes.len() - 1);
        let mut r = FrameReader::new(&bytes[..], 100);
        assert!(!r.has_buffered_frame(), "nothing read yet");
        r.next_frame().await.unwrap();
        assert!(r.has_buffered_frame());
        r.next_owned().await.unwrap();
        assert!(!r.has_buffered_frame(), "the third is incomplete");
    }

    #[tokio::test]
    async fn owned_frames_stay_valid_after_later_reads() {
        let bytes = framed(&[b"kept", b"next"]);
        let mut r = FrameReader::new(&bytes[..], 100);
        let kept = r.next_owned().await.unwrap().unwrap();
        assert_eq!(r.next_frame().await.unwrap(), Some(&b"next"[..]));
        assert_eq!(&kept[..], b"kept");
    }
}
