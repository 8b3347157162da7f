//! The first frame on every connection.
//!
//! The layout of [`Hello`] and [`HelloReply`] is frozen across protocol versions so that
//! any two builds can always tell each other that they disagree: everything after the
//! handshake may change with [`crate::PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};

use crate::{Identity, Token, token::TOKEN_LEN};

/// Bytes every `Hello` starts with, so a stray connection is recognised at once.
pub const MAGIC: [u8; 4] = *b"WEFT";

/// What a client sends first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The protocol version the client speaks.
    pub version: u32,
    /// The client's secret token ([`TOKEN_LEN`] bytes).
    pub token: Vec<u8>,
}

/// The broker's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The connection is authenticated as `identity`.
    Accepted {
        /// The protocol version the broker speaks.
        version: u32,
        /// Who this connection is, for every message it sends.
        identity: Identity,
    },
    /// The connection is refused and will be closed.
    Refused {
        /// The protocol version the broker speaks.
        version: u32,
        /// Why, as a stable code.
        reason: Refusal,
        /// A human-readable explanation.
        message: String,
    },
}

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The first frame was not a well-formed `Hello`.
    Malformed,
    /// The client speaks another protocol version.
    VersionMismatch,
    /// The token is not one the broker issued (or was revoked).
    BadToken,
    /// The app token is already in use by another live connection.
    TokenInUse,
    /// The broker is shutting down.
    ShuttingDown,
}

impl Refusal {
    /// The stable name of this refusal.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "Malformed",
            Refusal::VersionMismatch => "VersionMismatch",
            Refusal::BadToken => "BadToken",
            Refusal::TokenInUse => "TokenInUse",
            Refusal::ShuttingDown => "ShuttingDown",
        }
    }
}

/// Why a received `Hello` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The bytes are not a `Hello` at all.
    #[error("the first frame is not a Weft handshake: {0}")]
    Malformed(String),
    /// The magic bytes are wrong.
    #[error("the first frame does not start with the Weft magic bytes")]
    BadMagic,
    /// The token has the wrong length.
    #[error("the handshake token is {0} bytes; expected {TOKEN_LEN}")]
    BadTokenLength(usize),
}

impl Hello {
    /// A hello for this build's protocol version.
    pub fn new(token: &Token) -> Self {
        Self {
            magic: MAGIC,
            version: crate::PROTOCOL_VERSION,
            token: token.as_bytes().to_vec(),
        }
    }

    /// Encodes the hello as a frame body.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a Hello always serialises")
    }

    /// Decodes and checks a frame body; the version is left for the caller to judge.
    pub fn decode(body: &[u8]) -> Result<(u32, Token), HelloError> {
        let hello: Hello =
            postcard::from_bytes(body).map_err(|e| HelloError::Malformed(e.to_string()))?;
        if hello.magic != MAGIC {
            return Err(HelloError::BadMagic);
        }
        let token =
            Token::from_slice(&hello.token).ok_or(HelloError::BadTokenLength(hello.token.len()))?;
        Ok((hello.version, token))
    }
}

impl HelloReply {
    /// Encodes the reply as a frame body.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a HelloReply always serialises")
    }

    /// Decodes a frame body.
    pub fn decode(body: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip() {
        let token = Token::random();
        let (version, back) = Hello::decode(&Hello::new(&token).encode()).unwrap();
        assert_eq!(version, crate::PROTOCOL_VERSION);
        assert!(back.ct_eq(&token));
    }

    #[test]
    fn hello_rejects_garbage_magic_and_short_tokens() {
        assert!(matches!(Hello::decode(b""), Err(HelloError::Malformed(_))));
        let mut bad = Hello::new(&Token::random());
        bad.magic = *b"HTTP";
        assert_eq!(Hello::decode(&bad.encode()), Err(HelloError::BadMagic));
        bad.magic = MAGIC;
        bad.token.truncate(5);
        assert_eq!(
            Hello::decode(&bad.encode()),
            Err(HelloError::BadTokenLength(5))
        );
    }

    /// The frozen layout: changing it would break every older client's error reporting.
    #[test]
    fn layout_is_frozen() {
        let hello = Hello {
            magic: MAGIC,
            version: 1,
            token: vec![7; 2],
        };
        assert_eq!(hello.encode(), b"WEFT\x01\x02\x07\x07");
        let refused = HelloReply::Refused {
            version: 1,
            reason: Refusal::BadToken,
            message: "no".into(),
        };
        assert_eq!(refused.encode(), b"\x01\x01\x02\x02no");
    }
}
