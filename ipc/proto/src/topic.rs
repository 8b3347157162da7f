//! Topic names: dot-separated segments of printable characters.
//!
//! Invariants of a [`Topic`]: at most [`MAX_TOPIC_LEN`] bytes, at most
//! [`MAX_SEGMENTS`] segments, no empty segment, no control character, and none of the
//! characters `*` and `#`, which are reserved for subscription wildcards.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;
/// Most segments in one topic.
pub const MAX_SEGMENTS: usize = 16;

/// A validated topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Topic(String);

/// Why a topic was refused. Each variant names the problem precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is the empty string.
    #[error("the topic is empty")]
    Empty,
    /// The topic is longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("the topic is {len} bytes long; the limit is {MAX_TOPIC_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The topic has more than [`MAX_SEGMENTS`] segments.
    #[error("the topic has {count} segments; the limit is {MAX_SEGMENTS}")]
    TooManySegments {
        /// How many segments it has.
        count: usize,
    },
    /// Two dots in a row, or a dot at either end.
    #[error("segment {index} of the topic is empty (two dots in a row, or a dot at an end)")]
    EmptySegment {
        /// Zero-based index of the empty segment.
        index: usize,
    },
    /// A control character such as a newline or NUL.
    #[error("the topic contains the control character {ch:?} at byte {at}")]
    ControlCharacter {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// `*` or `#`, reserved for wildcard subscriptions.
    #[error(
        "the topic contains the wildcard {ch:?} at byte {at}; wildcards are reserved for subscription patterns"
    )]
    Wildcard {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
}

impl Topic {
    /// Validates `text` as a topic.
    pub fn new(text: impl Into<String>) -> Result<Self, TopicError> {
        let text = text.into();
        validate(&text)?;
        Ok(Self(text))
    }

    /// The topic as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

fn validate(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty);
    }
    if text.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: text.len() });
    }
    if let Some((at, ch)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(TopicError::ControlCharacter { ch, at });
    }
    if let Some((at, ch)) = text.char_indices().find(|(_, c)| matches!(c, '*' | '#')) {
        return Err(TopicError::Wildcard { ch, at });
    }
    let count = text.split('.').count();
    if count > MAX_SEGMENTS {
        return Err(TopicError::TooManySegments { count });
    }
    if let Some(index) = text.split('.').position(str::is_empty) {
        return Err(TopicError::EmptySegment { index });
    }
    Ok(())
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Topic::new(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_topics() {
        for t in ["a", "prices.EURUSD", "fx.spot.EUR/USD", "a b.c", "ünï.cødé"] {
            assert_eq!(Topic::new(t).unwrap().as_str(), t);
        }
        assert_eq!(
            Topic::new("a.b.c").unwrap().segments().collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn names_each_problem() {
        assert_eq!(Topic::new(""), Err(TopicError::Empty));
        assert_eq!(
            Topic::new("a".repeat(257)),
            Err(TopicError::TooLong { len: 257 })
        );
        assert_eq!(
            Topic::new(vec!["x"; 17].join(".")),
            Err(TopicError::TooManySegments { count: 17 })
        );
        assert_eq!(
            Topic::new("a..b"),
            Err(TopicError::EmptySegment { index: 1 })
        );
        assert_eq!(Topic::new(".a"), Err(TopicError::EmptySegment { index: 0 }));
        assert_eq!(Topic::new("a."), Err(TopicError::EmptySegment { index: 1 }));
        assert_eq!(
            Topic::new("a\nb"),
            Err(TopicError::ControlCharacter { ch: '\n', at: 1 })
        );
        assert_eq!(
            Topic::new("a.*"),
            Err(TopicError::Wildcard { ch: '*', at: 2 })
        );
        assert!(
            TopicError::EmptySegment { index: 1 }
                .to_string()
                .contains("segment 1")
        );
    }

    #[test]
    fn deserialising_validates() {
        let bytes = postcard::to_stdvec(&"a..b").unwrap();
        assert!(postcard::from_bytes::<Topic>(&bytes).is_err());
        let bytes = postcard::to_stdvec(&"a.b").unwrap();
        assert_eq!(
            postcard::from_bytes::<Topic>(&bytes).unwrap().as_str(),
            "a.b"
        );
    }

    proptest! {
        #[test]
        fn validation_never_panics_and_valid_topics_obey_invariants(s in "\\PC{0,300}|[a-z.*#\n]{0,40}") {
            if let Ok(t) = Topic::new(s.clone()) {
                prop_assert!(t.as_str().len() <= MAX_TOPIC_LEN);
                prop_assert!(t.segments().all(|seg| !seg.is_empty()));
                prop_assert!(t.segments().count() <= MAX_SEGMENTS);
                prop_assert!(!s.contains(['*', '#']));
            }
        }
    }
}
