//! Secret tokens that authenticate a client to the broker.

use std::fmt;

/// Length of a token in bytes.
pub const TOKEN_LEN: usize = 32;

/// A 256-bit random secret. Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token([u8; TOKEN_LEN]);

/// A token could not be read from text.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("a token is {expected} hexadecimal characters; this one is not")]
pub struct TokenParseError {
    expected: usize,
}

impl Token {
    /// A fresh token from the operating system's random source.
    ///
    /// # Panics
    /// If the operating system has no random source, which Weft cannot run without.
    pub fn random() -> Self {
        let mut bytes = [0u8; TOKEN_LEN];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(bytes)
    }

    /// The token's raw bytes.
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }

    /// A token from raw bytes, if there are exactly [`TOKEN_LEN`] of them.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Lower-case hexadecimal text, as stored in token files.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the text form, ignoring surrounding white space.
    pub fn from_hex(text: &str) -> Result<Self, TokenParseError> {
        let err = TokenParseError {
            expected: TOKEN_LEN * 2,
        };
        let bytes = hex::decode(text.trim()).map_err(|_| err.clone())?;
        Self::from_slice(&bytes).ok_or(err)
    }

    /// Compares in time independent of where the tokens differ.
    pub fn ct_eq(&self, other: &Token) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_text() {
        let t = Token::random();
        assert_eq!(Token::from_hex(&format!(" {}\n", t.to_hex())).unwrap(), t);
        assert!(Token::from_hex("abcd").is_err());
        assert!(Token::from_hex(&"zz".repeat(TOKEN_LEN)).is_err());
    }

    #[test]
    fn random_tokens_differ_and_compare() {
        let a = Token::random();
        let b = Token::random();
        assert!(!a.ct_eq(&b));
        assert!(a.ct_eq(&a.clone()));
        assert_eq!(format!("{a:?}"), "Token(…)");
    }
}
