//! A set of patterns read as one automaton: which topics it matches, and whether it
//! covers another pattern entirely — every topic that pattern matches.
//!
//! This is what permission checks need: an app declared to publish on `fx.#` and
//! `news.*` may publish on `fx.EUR.spot` ([`PatternSet::matches`]) and subscribe to
//! `fx.*.spot` ([`PatternSet::covers`]), but not to `#` or `news.#`.
//!
//! Invariants, and why they hold:
//! - **Linear matching.** Each pattern is a small nondeterministic automaton (state `i`
//!   = "segments before `i` consumed"; `#` loops on itself and may be skipped); a topic
//!   is matched by moving a bit set of live states one segment at a time, so the cost is
//!   segments × states whatever the wildcards (unlike backtracking, which is exponential
//!   in the number of `#`).
//! - **Exact coverage.** `covers(q)` explores every path through `q`'s automaton together
//!   with the set's (deterministic) state after the same segments, and answers `false`
//!   exactly when some topic reaches the end of `q` but no end of the set. A wildcard
//!   of `q` is explored as a *fresh* segment, one no pattern of the set names: the
//!   set's live states on any named segment include those on a fresh one, so if the set
//!   accepts the fresh choice it accepts every choice.

use std::collections::HashSet;

use crate::topic::{MAX_SEGMENTS, Pattern, Segment, Topic};

/// Live states of one pattern's automaton: bit `i` means "the first `i` segments are
/// consumed"; bit `len` is the accepting state.
type States = u32;

const _: () = assert!(MAX_SEGMENTS < States::BITS as usize);

/// Several patterns, matched together. The empty set matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
    /// Each pattern's segments, split once (a publish is checked without allocating).
    compiled: Vec<Vec<Seg>>,
}

/// A segment of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(Box<str>),
    One,
    Many,
}

/// What a pattern's automaton reads: a segment named by one of the patterns, or any
/// other ("fresh") segment.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Symbol<'a> {
    Named(&'a str),
    Fresh,
}

impl PatternSet {
    /// The set of these patterns.
    pub fn new(patterns: impl IntoIterator<Item = Pattern>) -> Self {
        let patterns: Vec<Pattern> = patterns.into_iter().collect();
        let compiled = patterns.iter().map(compile).collect();
        Self { patterns, compiled }
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether some pattern matches `topic`.
    pub fn matches(&self, topic: &Topic) -> bool {
        self.matches_str(topic.as_str())
    }

    /// [`PatternSet::matches`] for a topic already known to be valid.
    pub fn matches_str(&self, topic: &str) -> bool {
        self.compiled.iter().any(|segments| {
            let mut live = closure(segments, 1);
            for segment in topic.split('.') {
                live = step(segments, live, Symbol::Named(segment));
                if live == 0 {
                    return false;
                }
            }
            accepts(segments, live)
        })
    }

    /// Whether every topic `pattern` matches is matched by some pattern of the set.
    pub fn covers(&self, pattern: &Pattern) -> bool {
        let set = &self.compiled;
        let wanted: Vec<Segment<'_>> = pattern.segments().collect();
        let start: Vec<States> = set.iter().map(|s| closure(s, 1)).collect();
        // (segments of `pattern` consumed, the set's live states, whether any topic
        // segment was read: a topic has at least one).
        let mut seen: HashSet<(usize, Vec<States>, bool)> = HashSet::new();
        let mut todo = vec![(0usize, start, false)];
        while let Some((at, live, read)) = todo.pop() {
            if !seen.insert((at, live.clone(), read)) {
                continue;
            }
            let Some(segment) = wanted.get(at) else {
                // A topic `pattern` matches ends here: the set must match it too.
                if read && !set.iter().zip(&live).any(|(s, &l)| accepts(s, l)) {
                    return false;
                }
                continue;
            };
            let advance = |symbol| -> Vec<States> {
                set.iter()
                    .zip(&live)
                    .map(|(s, &l)| step(s, l, symbol))
                    .collect()
            };
            match *segment {
                Segment::Literal(name) => {
                    todo.push((at + 1, advance(Symbol::Named(name)), true));
                }
                Segment::One => todo.push((at + 1, advance(Symbol::Fresh), true)),
                Segment::Many => {
                    todo.push((at, advance(Symbol::Fresh), true));
                    todo.push((at + 1, live, read));
                }
            }
        }
        true
    }
}

impl std::fmt::Display for PatternSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.patterns.iter().map(Pattern::as_str).collect();
        write!(f, "[{}]", names.join(", "))
    }
}

fn compile(pattern: &Pattern) -> Vec<Seg> {
    pattern
        .segments()
        .map(|s| match s {
            Segment::Literal(l) => Seg::Literal(l.into()),
            Segment::One => Seg::One,
            Segment::Many => Seg::Many,
        })
        .collect()
}

/// `live` with every state reachable by skipping `#` segments added.
fn closure(segments: &[Seg], mut live: States) -> States {
    for (i, segment) in segments.iter().enumerate() {
        if *segment == Seg::Many && live & (1 << i) != 0 {
            live |= 1 << (i + 1);
        }
    }
    live
}

/// The states live after reading `symbol` in states `live`.
fn step(segments: &[Seg], live: States, symbol: Symbol<'_>) -> States {
    let mut next = 0;
    for (i, segment) in segments.iter().enumerate() {
        if live & (1 << i) == 0 {
            continue;
        }
        match (segment, symbol) {
            (Seg::Many, _) => next |= 1 << i,
            (Seg::One, _) => next |= 1 << (i + 1),
            (Seg::Literal(l), Symbol::Named(s)) if **l == *s => next |= 1 << (i + 1),
            (Seg::Literal(_), _) => {}
        }
    }
    closure(segments, next)
}

fn accepts(segments: &[Seg], live: States) -> bool {
    live & (1 << segments.len()) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(patterns: &[&str]) -> PatternSet {
        PatternSet::new(patterns.iter().map(|p| Pattern::new(*p).unwrap()))
    }

    fn p(text: &str) -> Pattern {
        Pattern::new(text).unwrap()
    }

    #[test]
    fn matches_like_the_reference() {
        let s = set(&["fx.#", "news.*"]);
        assert!(s.matches_str("fx"));
        assert!(s.matches_str("fx.EUR.spot"));
        assert!(s.matches_str("news.eu"));
        assert!(!s.matches_str("news"));
        assert!(!s.matches_str("news.eu.fr"));
        assert!(!s.matches_str("rates"));
        assert!(!PatternSet::default().matches_str("a"));
    }

    #[test]
    fn covers_what_it_should() {
        let s = set(&["fx.#", "news.*"]);
        for yes in ["fx", "fx.#", "fx.*.spot", "fx.#.spot", "news.eu", "news.*"] {
            assert!(s.covers(&p(yes)), "{yes}");
        }
        for no in ["#", "news.#", "*", "*.eu", "news", "rates.#"] {
            assert!(!s.covers(&p(no)), "{no}");
        }
        // Only the union covers it: `x.#` is `x` plus `x.*.#`.
        assert!(set(&["x", "x.*.#"]).covers(&p("x.#")));
        assert!(!set(&["x.*.#"]).covers(&p("x.#")));
        // Different spellings of the same language (a topic has at least one segment).
        assert!(set(&["#.*"]).covers(&p("*.#")));
        assert!(set(&["*.#"]).covers(&p("#.*")));
        assert!(set(&["*.#"]).covers(&p("#")));
    }

    #[test]
    fn many_hashes_cost_little() {
        let hashes = vec!["#"; MAX_SEGMENTS].join(".");
        let s = set(&[&hashes]);
        let topic = vec!["a"; MAX_SEGMENTS].join(".");
        assert!(s.matches_str(&topic));
        assert!(s.covers(&p(&hashes)));
    }

    fn topics_up_to(len: usize) -> Vec<String> {
        let mut all = vec![];
        let mut level: Vec<Vec<&str>> = vec![vec![]];
        for _ in 0..len {
            level = level
                .iter()
                .flat_map(|t| {
                    ["a", "b", "c"].map(|s| {
                        let mut t = t.clone();
                        t.push(s);
                        t
                    })
                })
                .collect();
            all.extend(level.iter().map(|t| t.join(".")));
        }
        all
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof!["a", "b", Just("*".to_owned()), Just("#".to_owned())],
            1..4,
        )
        .prop_map(|s| s.join("."))
    }

    proptest! {
        /// `matches` agrees with the reference matcher, and `covers` with checking every
        /// topic of up to six segments over an alphabet with one segment ("c") that no
        /// pattern names.
        #[test]
        fn agrees_with_brute_force(
            allowed in prop::collection::vec(pattern(), 1..3),
            wanted in pattern(),
        ) {
            let s = PatternSet::new(allowed.iter().map(|a| p(a)));
            let wanted = p(&wanted);
            let mut covered = true;
            for t in topics_up_to(6) {
                let topic = Topic::new(t).unwrap();
                let reference = s.patterns().iter().any(|p| p.matches(&topic));
                prop_assert_eq!(s.matches(&topic), reference, "{}", topic);
                if wanted.matches(&topic) && !reference {
                    covered = false;
                }
            }
            prop_assert_eq!(s.covers(&wanted), covered, "{} covers {}", s, wanted);
        }
    }
}
