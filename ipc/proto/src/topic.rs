//! Topic names and subscription patterns: dot-separated segments of printable
//! characters.
//!
//! Invariants of a [`Topic`]: at most [`MAX_TOPIC_LEN`] bytes, at most
//! [`MAX_SEGMENTS`] segments, no empty segment, no control character, and none of the
//! characters `*` and `#`, which are reserved for subscription wildcards.
//!
//! A [`Pattern`] obeys the same limits, and may use wildcards as whole segments (AMQP
//! topic-exchange semantics): `*` matches exactly one segment, `#` zero or more, and `#`
//! may stand anywhere. `fx.*.spot` matches `fx.EUR.spot`; `fx.#` matches `fx`, `fx.EUR`
//! and `fx.EUR.spot`; `#.spot` matches `spot` and `fx.EUR.spot`.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};

/// Longest topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;
/// Most segments in one topic.
pub const MAX_SEGMENTS: usize = 16;

/// A validated topic name. Cloning it is cheap (the text is shared): a stream of
/// messages on one topic shares one copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

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
    /// In a pattern, `*` or `#` inside a segment with other characters.
    #[error(
        "segment {index} of the pattern mixes a wildcard with other characters; `*` and `#` must be whole segments"
    )]
    PartialWildcard {
        /// Zero-based index of the segment.
        index: usize,
    },
}

impl Topic {
    /// Validates `text` as a topic.
    pub fn new(text: impl Into<String>) -> Result<Self, TopicError> {
        let text = text.into();
        validate(&text)?;
        Ok(Self(text.into()))
    }

    /// The topic as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks `text` against the rules without taking a copy of it.
    pub fn check(text: &str) -> Result<(), TopicError> {
        validate(text)
    }

    /// The dot-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

fn validate(text: &str) -> Result<(), TopicError> {
    validate_common(text)?;
    if let Some(at) = text.bytes().position(|b| matches!(b, b'*' | b'#')) {
        let ch = char::from(text.as_bytes()[at]);
        return Err(TopicError::Wildcard { ch, at });
    }
    Ok(())
}

fn validate_pattern(text: &str) -> Result<(), TopicError> {
    validate_common(text)?;
    if let Some(index) = text
        .split('.')
        .position(|seg| seg.len() > 1 && seg.contains(['*', '#']))
    {
        return Err(TopicError::PartialWildcard { index });
    }
    Ok(())
}

fn validate_common(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(TopicError::Empty);
    }
    if text.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong { len: text.len() });
    }
    // One pass over the bytes (every topic is checked on every publish): control
    // characters first (they are reported wherever they are), then the segment
    // structure. The control characters (Unicode's Cc) are U+0000–U+001F and
    // U+007F–U+009F; in UTF-8 the last 32 are 0xC2 followed by 0x80–0x9F. A '.' byte is
    // never part of a longer character.
    let bytes = text.as_bytes();
    let mut segments = 1;
    let mut empty_segment = None;
    let mut segment_len = 0;
    for (at, &b) in bytes.iter().enumerate() {
        let control =
            b < 0x20 || b == 0x7f || (b == 0xc2 && matches!(bytes.get(at + 1), Some(0x80..=0x9f)));
        if control {
            let ch = text[at..].chars().next().expect("a character starts here");
            return Err(TopicError::ControlCharacter { ch, at });
        }
        if b == b'.' {
            if segment_len == 0 && empty_segment.is_none() {
                empty_segment = Some(segments - 1);
            }
            segments += 1;
            segment_len = 0;
        } else {
            segment_len += 1;
        }
    }
    if segment_len == 0 && empty_segment.is_none() {
        empty_segment = Some(segments - 1);
    }
    if segments > MAX_SEGMENTS {
        return Err(TopicError::TooManySegments { count: segments });
    }
    if let Some(index) = empty_segment {
        return Err(TopicError::EmptySegment { index });
    }
    Ok(())
}

/// A validated subscription pattern: a topic that may contain `*` and `#` segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Pattern(String);

/// One segment of a [`Pattern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Matches exactly this text.
    Literal(&'a str),
    /// `*`: matches any one segment.
    One,
    /// `#`: matches zero or more segments.
    Many,
}

impl Pattern {
    /// Validates `text` as a pattern.
    pub fn new(text: impl Into<String>) -> Result<Self, TopicError> {
        let text = text.into();
        validate_pattern(&text)?;
        Ok(Self(text))
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, with wildcards recognised.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        self.0.split('.').map(|s| match s {
            "*" => Segment::One,
            "#" => Segment::Many,
            literal => Segment::Literal(literal),
        })
    }

    /// Whether the pattern has no wildcard, so matches exactly one topic.
    pub fn is_literal(&self) -> bool {
        !self.0.contains(['*', '#'])
    }

    /// Whether `topic` matches. A straightforward reference implementation; the broker
    /// routes with its trie, and its tests check the two agree.
    pub fn matches(&self, topic: &Topic) -> bool {
        let pattern: Vec<Segment<'_>> = self.segments().collect();
        let topic: Vec<&str> = topic.segments().collect();
        matches_from(&pattern, &topic)
    }
}

fn matches_from(pattern: &[Segment<'_>], topic: &[&str]) -> bool {
    match pattern.split_first() {
        None => topic.is_empty(),
        Some((Segment::Many, rest)) => {
            (0..=topic.len()).any(|skip| matches_from(rest, &topic[skip..]))
        }
        Some((Segment::One, rest)) => !topic.is_empty() && matches_from(rest, &topic[1..]),
        Some((Segment::Literal(lit), rest)) => {
            topic.first() == Some(lit) && matches_from(rest, &topic[1..])
        }
    }
}

impl From<Topic> for Pattern {
    fn from(topic: Topic) -> Self {
        Pattern(topic.0.to_string())
    }
}

impl From<&Topic> for Pattern {
    fn from(topic: &Topic) -> Self {
        Pattern(topic.0.to_string())
    }
}

impl From<&Pattern> for Pattern {
    fn from(pattern: &Pattern) -> Self {
        pattern.clone()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Pattern::new(text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Topic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
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

    #[test]
    fn patterns_allow_whole_segment_wildcards_only() {
        for p in ["a", "a.*", "#", "#.b", "a.#.c", "*.*", "a.b.#"] {
            assert_eq!(Pattern::new(p).unwrap().as_str(), p);
        }
        assert_eq!(
            Pattern::new("a.b*"),
            Err(TopicError::PartialWildcard { index: 1 })
        );
        assert_eq!(
            Pattern::new("#x"),
            Err(TopicError::PartialWildcard { index: 0 })
        );
        assert_eq!(
            Pattern::new("a..#"),
            Err(TopicError::EmptySegment { index: 1 })
        );
        assert!(Pattern::new("a.b").unwrap().is_literal());
        assert!(!Pattern::new("a.*").unwrap().is_literal());
    }

    #[test]
    fn reference_matcher_follows_amqp_semantics() {
        let m = |p: &str, t: &str| Pattern::new(p).unwrap().matches(&Topic::new(t).unwrap());
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "a.b.c"));
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a"));
        assert!(!m("a.*", "a.b.c"));
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("#", "x.y.z"));
        assert!(m("#.z", "z"));
        assert!(m("#.z", "x.y.z"));
        assert!(!m("#.z", "x.y"));
        assert!(m("a.#.z", "a.z"));
        assert!(m("a.#.z", "a.b.c.z"));
        assert!(m("*.#", "a"));
        assert!(!m("*.*.#", "a"));
        assert!(m("#.#", "a.b"));
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

        #[test]
        fn control_characters_are_the_ones_unicode_names(
            s in "[a.\\x{0}-\\x{a0}\\x{e9}\\x{2028}]{1,30}",
        ) {
            let first = s.char_indices().find(|(_, c)| c.is_control());
            match (Topic::new(s.clone()), first) {
                (Err(TopicError::ControlCharacter { ch, at }), Some((at2, ch2))) => {
                    prop_assert_eq!((ch, at), (ch2, at2));
                }
                (Err(TopicError::ControlCharacter { .. }), None) => {
                    prop_assert!(false, "no control character in {:?}", s);
                }
                (result, Some(_)) => prop_assert!(false, "{:?} for {:?}", result, s),
                (_, None) => {}
            }
        }
    }
}
