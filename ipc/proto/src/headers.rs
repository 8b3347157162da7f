//! Message headers: a short list of text key/value pairs that travels with a message
//! (W3C trace context, content type, correlation ids).
//!
//! Limits, checked by [`validate`]: at most [`MAX_HEADERS`] entries; keys of 1 to
//! [`MAX_KEY_LEN`] bytes of ASCII letters, digits, `-`, `_` and `.`; values of at most
//! [`MAX_VALUE_LEN`] bytes without control characters. Keys are case-sensitive and may
//! repeat; order is kept.

/// The headers of one message.
pub type Headers = Vec<(String, String)>;

/// Most entries in one message's headers.
pub const MAX_HEADERS: usize = 32;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 128;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;

/// Why headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// More than [`MAX_HEADERS`] entries.
    #[error("{0} headers; the limit is {MAX_HEADERS}")]
    TooMany(usize),
    /// A key that is empty, too long, or has a character outside `A-Za-z0-9-_.`.
    #[error("header key {0:?} is not 1 to {MAX_KEY_LEN} characters of A-Z a-z 0-9 - _ .")]
    BadKey(String),
    /// A value that is too long or has a control character.
    #[error(
        "the value of header {0:?} is longer than {MAX_VALUE_LEN} bytes or has a control character"
    )]
    BadValue(String),
}

/// The header giving a message's time-to-live in milliseconds: a durable consumer
/// that reaches it later than that dead-letters it instead of delivering it.
pub const TTL_MS: &str = "weft-ttl-ms";

/// Checks `headers` against the limits.
pub fn validate(headers: &Headers) -> Result<(), HeaderError> {
    if headers.len() > MAX_HEADERS {
        return Err(HeaderError::TooMany(headers.len()));
    }
    for (key, value) in headers {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !key_ok {
            return Err(HeaderError::BadKey(key.clone()));
        }
        if value.len() > MAX_VALUE_LEN || value.chars().any(char::is_control) {
            return Err(HeaderError::BadValue(key.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn accepts_trace_context_and_refuses_bad_entries() {
        assert!(
            validate(&h(&[(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            )]))
            .is_ok()
        );
        assert!(validate(&h(&[])).is_ok());
        assert_eq!(
            validate(&h(&[("", "x")])),
            Err(HeaderError::BadKey(String::new()))
        );
        assert_eq!(
            validate(&h(&[("a b", "x")])),
            Err(HeaderError::BadKey("a b".into()))
        );
        assert_eq!(
            validate(&h(&[("k", "a\nb")])),
            Err(HeaderError::BadValue("k".into()))
        );
        let long = "v".repeat(MAX_VALUE_LEN + 1);
        assert_eq!(
            validate(&h(&[("k", &long)])),
            Err(HeaderError::BadValue("k".into()))
        );
        let many: Headers = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(validate(&many), Err(HeaderError::TooMany(33)));
    }
}
