//! The subscription index: which subscriptions match a topic.
//!
//! A token trie in the manner of NATS's sublist and RabbitMQ's topic exchange: each
//! node has children for literal segments, one for `*` and one for `#`, and holds the
//! subscriptions whose pattern ends there. Matching walks the topic's segments down the
//! trie; a `#` child is tried with every number of segments skipped, zero included.
//!
//! In front of the trie sits a bounded topic → subscriptions cache. Every insert or
//! remove bumps a generation counter; a cached answer is used only if it was computed
//! in the current generation, so a stale answer is never returned.
//!
//! Invariants:
//! - A value appears at most once in any answer, however many paths through `#` nodes
//!   reach its pattern (answers are sorted and deduplicated).
//! - A pattern is inserted and removed with the same value; removing prunes nodes that
//!   hold nothing, so the trie's size follows the live subscriptions.
//! - The cache never holds more than its capacity; when full it is emptied.
//! - Matching does at most one expansion per (`#` node, position) pair, so no pattern can
//!   make a match take time exponential in the topic's length.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use weft_proto::{Pattern, Topic, topic::Segment};

/// The subscription index, generic over the value stored per subscription.
pub struct Sublist<V> {
    root: Node<V>,
    cache: HashMap<Topic, (u64, Arc<[V]>)>,
    cache_capacity: usize,
    generation: u64,
    len: usize,
}

struct Node<V> {
    literal: HashMap<Box<str>, Node<V>>,
    one: Option<Box<Node<V>>>,
    many: Option<Box<Node<V>>>,
    here: Vec<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            literal: HashMap::default(),
            one: None,
            many: None,
            here: Vec::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.here.is_empty() && self.literal.is_empty() && self.one.is_none() && self.many.is_none()
    }
}

impl<V: Clone + Ord> Sublist<V> {
    /// An empty index whose cache holds up to `cache_capacity` topics.
    pub fn new(cache_capacity: usize) -> Self {
        Self {
            root: Node::default(),
            cache: HashMap::default(),
            cache_capacity,
            generation: 0,
            len: 0,
        }
    }

    /// Number of subscriptions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no subscription is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` under `pattern`.
    pub fn insert(&mut self, pattern: &Pattern, value: V) {
        let mut node = &mut self.root;
        for seg in pattern.segments() {
            node = match seg {
                Segment::Literal(s) => node.literal.entry(s.into()).or_default(),
                Segment::One => node.one.get_or_insert_with(Box::default),
                Segment::Many => node.many.get_or_insert_with(Box::default),
            };
        }
        node.here.push(value);
        self.len += 1;
        self.generation += 1;
    }

    /// Removes `value` from under `pattern`; returns whether it was there.
    pub fn remove(&mut self, pattern: &Pattern, value: &V) -> bool {
        let segments: Vec<Segment<'_>> = pattern.segments().collect();
        let removed = remove_from(&mut self.root, &segments, value);
        if removed {
            self.len -= 1;
            self.generation += 1;
        }
        removed
    }

    /// Every value whose pattern matches `topic`, sorted, each once.
    pub fn matches(&mut self, topic: &Topic) -> Arc<[V]> {
        self.matches_str(topic.as_str())
    }

    /// As [`Sublist::matches`], for a topic already checked against the rules (see
    /// [`Topic::check`]); allocates only when the answer is not cached.
    pub fn matches_str(&mut self, topic: &str) -> Arc<[V]> {
        if let Some((generation, answer)) = self.cache.get(topic)
            && *generation == self.generation
        {
            return answer.clone();
        }
        let answer: Arc<[V]> = self.collect_all(topic).into();
        if let Ok(key) = Topic::new(topic) {
            if self.cache.len() >= self.cache_capacity {
                self.cache.clear();
            }
            self.cache.insert(key, (self.generation, answer.clone()));
        }
        answer
    }

    /// As [`Sublist::matches`], bypassing the cache.
    pub fn matches_uncached(&self, topic: &Topic) -> Vec<V> {
        self.collect_all(topic.as_str())
    }

    fn collect_all(&self, topic: &str) -> Vec<V> {
        let segments: Vec<&str> = topic.split('.').collect();
        let mut out = Vec::new();
        let mut expanded = Vec::new();
        collect(&self.root, &segments, &mut out, &mut expanded);
        // Sorted, so the answer does not depend on the trie's layout; deduplicated,
        // since `#` nodes can reach one pattern by several paths.
        out.sort_unstable();
        if !expanded.is_empty() {
            out.dedup();
        }
        out
    }
}

fn collect<V: Clone>(
    node: &Node<V>,
    segments: &[&str],
    out: &mut Vec<V>,
    expanded: &mut Vec<(*const Node<V>, usize)>,
) {
    if let Some(many) = &node.many {
        let key = (&**many as *const Node<V>, segments.len());
        if !expanded.contains(&key) {
            expanded.push(key);
            for skip in 0..=segments.len() {
                collect(many, &segments[skip..], out, expanded);
            }
        }
    }
    match segments.split_first() {
        None => out.extend(node.here.iter().cloned()),
        Some((first, rest)) => {
            if let Some(child) = node.literal.get(*first) {
                collect(child, rest, out, expanded);
            }
            if let Some(child) = &node.one {
                collect(child, rest, out, expanded);
            }
        }
    }
}

fn remove_from<V: PartialEq>(node: &mut Node<V>, segments: &[Segment<'_>], value: &V) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        let before = node.here.len();
        if let Some(i) = node.here.iter().position(|v| v == value) {
            node.here.swap_remove(i);
        }
        return node.here.len() < before;
    };
    match first {
        Segment::Literal(s) => {
            let Some(child) = node.literal.get_mut(*s) else {
                return false;
            };
            let removed = remove_from(child, rest, value);
            if child.is_empty() {
                node.literal.remove(*s);
            }
            removed
        }
        Segment::One | Segment::Many => {
            let slot = if *first == Segment::One {
                &mut node.one
            } else {
                &mut node.many
            };
            let Some(child) = slot else {
                return false;
            };
            let removed = remove_from(child, rest, value);
            if child.is_empty() {
                *slot = None;
            }
            removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    fn t(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    #[test]
    fn matches_literals_and_wildcards() {
        let mut s = Sublist::new(16);
        s.insert(&p("a.b"), 1);
        s.insert(&p("a.*"), 2);
        s.insert(&p("a.#"), 3);
        s.insert(&p("#"), 4);
        s.insert(&p("#.b"), 5);
        s.insert(&p("x.y"), 6);
        assert_eq!(&*s.matches(&t("a.b")), [1, 2, 3, 4, 5]);
        assert_eq!(&*s.matches(&t("a")), [3, 4]);
        assert_eq!(&*s.matches(&t("a.c.b")), [3, 4, 5]);
        assert_eq!(&*s.matches(&t("q")), [4]);
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn a_pattern_reachable_by_many_paths_matches_once() {
        let mut s = Sublist::new(16);
        s.insert(&p("#.#"), 1);
        s.insert(&p("#.a.#"), 2);
        assert_eq!(&*s.matches(&t("a.a.a")), [1, 2]);
    }

    #[test]
    fn the_same_value_under_two_patterns_is_two_subscriptions() {
        // Callers use distinct values per subscription; equal values are deduplicated.
        let mut s = Sublist::new(16);
        s.insert(&p("a.*"), (1, 10));
        s.insert(&p("a.b"), (1, 11));
        assert_eq!(&*s.matches(&t("a.b")), [(1, 10), (1, 11)]);
    }

    #[test]
    fn the_cache_never_answers_from_an_older_generation() {
        let mut s = Sublist::new(16);
        s.insert(&p("a.*"), 1);
        assert_eq!(&*s.matches(&t("a.b")), [1]);
        s.insert(&p("a.b"), 2);
        assert_eq!(&*s.matches(&t("a.b")), [1, 2]);
        assert!(s.remove(&p("a.*"), &1));
        assert_eq!(&*s.matches(&t("a.b")), [2]);
        assert!(!s.remove(&p("a.*"), &1));
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let mut s = Sublist::new(4);
        s.insert(&p("#"), 1);
        for i in 0..100 {
            assert_eq!(&*s.matches(&t(&format!("t{i}"))), [1]);
            assert!(s.cache.len() <= 4);
        }
    }

    #[test]
    fn removing_everything_prunes_the_trie() {
        let mut s = Sublist::new(4);
        let patterns = ["a.b.c", "a.*.c", "a.#", "#", "*.b"];
        for (i, pat) in patterns.iter().enumerate() {
            s.insert(&p(pat), i);
        }
        for (i, pat) in patterns.iter().enumerate() {
            assert!(s.remove(&p(pat), &i));
        }
        assert!(s.root.is_empty());
        assert!(s.is_empty());
    }

    #[test]
    fn many_hashes_do_not_explode() {
        let mut s = Sublist::new(4);
        s.insert(&p("#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.z"), 1);
        let topic = t(&vec!["a"; 16].join("."));
        let start = std::time::Instant::now();
        assert!(s.matches_uncached(&topic).is_empty());
        // Memoised expansion keeps this to a few thousand steps, not C(31, 15).
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof!["[ab]", Just("*".to_owned()), Just("#".to_owned())]
    }

    proptest! {
        /// The trie agrees with the reference matcher on random patterns and topics,
        /// through inserts and removes, with and without the cache.
        #[test]
        fn agrees_with_the_naive_matcher(
            patterns in prop::collection::vec(prop::collection::vec(segment(), 1..5), 1..12),
            topics in prop::collection::vec(prop::collection::vec("[abc]", 1..6), 1..12),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let patterns: Vec<Pattern> = patterns.iter().map(|s| p(&s.join("."))).collect();
            let topics: Vec<Topic> = topics.iter().map(|s| t(&s.join("."))).collect();
            let mut s = Sublist::new(8);
            let mut live: Vec<(usize, &Pattern)> = patterns.iter().enumerate().collect();
            for (i, pat) in &live {
                s.insert(pat, *i);
            }
            for round in 0..=removals.len() {
                for topic in &topics {
                    let expected: Vec<usize> =
                        live.iter().filter(|(_, pat)| pat.matches(topic)).map(|(i, _)| *i).collect();
                    let mut expected = expected;
                    expected.sort_unstable();
                    prop_assert_eq!(&*s.matches(topic), &expected[..], "{} on {}", round, topic);
                    prop_assert_eq!(s.matches_uncached(topic), expected);
                }
                if let Some(index) = removals.get(round) && !live.is_empty() {
                    let (i, pat) = live.remove(index.index(live.len()));
                    prop_assert!(s.remove(pat, &i));
                }
            }
        }
    }
}
