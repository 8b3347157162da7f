//! The set of master keys: the current one, which new segments use, and older ones,
//! kept so that segments written under them stay readable after a rotation.
//!
//! Where the set is kept (the OS keychain, or a key file the user opted into) is the
//! shell's business; this module only gives it a text form:
//!
//! ```text
//! weft-journal-keys v1
//! current 2
//! 1 <64 hex digits>
//! 2 <64 hex digits>
//! ```

use std::collections::BTreeMap;

use crate::seal::MasterKey;

/// Master keys by id; the highest id is current.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySet {
    keys: BTreeMap<u32, MasterKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

const HEADER: &str = "weft-journal-keys v1";

/// A key set's text form is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of the journal key set: {problem}")]
pub struct KeySetError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub problem: String,
}

impl KeySet {
    /// A set with one new random key, id 1.
    pub fn generate() -> KeySet {
        KeySet {
            keys: BTreeMap::from([(1, MasterKey::generate())]),
        }
    }

    /// Adds a new random key, which becomes current; returns its id.
    pub fn rotate(&mut self) -> u32 {
        let id = self.current_id() + 1;
        self.keys.insert(id, MasterKey::generate());
        id
    }

    /// The id of the key new segments use.
    pub fn current_id(&self) -> u32 {
        *self
            .keys
            .keys()
            .next_back()
            .expect("a key set is never empty")
    }

    /// The key new segments use.
    pub fn current(&self) -> (u32, &MasterKey) {
        let (id, key) = self
            .keys
            .iter()
            .next_back()
            .expect("a key set is never empty");
        (*id, key)
    }

    /// The key with `id`, if the set has it.
    pub fn get(&self, id: u32) -> Option<&MasterKey> {
        self.keys.get(&id)
    }

    /// Every key id, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// The text form (secret: it holds the keys).
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\ncurrent {}\n", self.current_id());
        for (id, key) in &self.keys {
            out.push_str(&format!("{id} {}\n", hex::encode(key.0)));
        }
        out
    }

    /// Reads the text form.
    pub fn from_text(text: &str) -> Result<KeySet, KeySetError> {
        let err = |line: usize, problem: &str| KeySetError {
            line,
            problem: problem.to_owned(),
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(err(1, &format!("expected `{HEADER}`"))),
        }
        let current = match lines.next() {
            Some((n, line)) => line
                .strip_prefix("current ")
                .and_then(|id| id.parse::<u32>().ok())
                .ok_or_else(|| err(n, "expected `current <id>`"))?,
            None => return Err(err(2, "expected `current <id>`")),
        };
        let mut keys = BTreeMap::new();
        for (n, line) in lines.filter(|(_, l)| !l.is_empty()) {
            let (id, key) = line
                .split_once(' ')
                .ok_or_else(|| err(n, "expected `<id> <64 hex digits>`"))?;
            let id: u32 = id
                .parse()
                .map_err(|_| err(n, "the key id is not a number"))?;
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(key, &mut bytes)
                .map_err(|_| err(n, "the key is not 64 hex digits"))?;
            if keys.insert(id, MasterKey(bytes)).is_some() {
                return Err(err(n, &format!("key {id} appears twice")));
            }
        }
        match keys.keys().next_back() {
            None => Err(err(3, "the set holds no key")),
            Some(&last) if last != current => Err(err(
                2,
                &format!("the current key {current} is not the newest ({last})"),
            )),
            Some(_) => Ok(KeySet { keys }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_set_round_trips_through_text() {
        let mut set = KeySet::generate();
        assert_eq!(set.rotate(), 2);
        assert_eq!(set.current().0, 2);
        let text = set.to_text();
        assert_eq!(KeySet::from_text(&text).unwrap(), set);
        assert!(!format!("{set:?}").contains(&hex::encode(set.get(1).unwrap().0)));
    }

    #[test]
    fn bad_text_names_the_line() {
        let good = KeySet::generate().to_text();
        assert_eq!(KeySet::from_text("nope").unwrap_err().line, 1);
        let no_keys = "weft-journal-keys v1\ncurrent 1\n";
        assert!(
            KeySet::from_text(no_keys)
                .unwrap_err()
                .problem
                .contains("no key")
        );
        let short = good.replace(&good[good.len() - 5..], "zz\n");
        let e = KeySet::from_text(&short).unwrap_err();
        assert_eq!(
            (e.line, e.problem.as_str()),
            (3, "the key is not 64 hex digits")
        );
        let wrong_current = good.replace("current 1", "current 4");
        assert!(
            KeySet::from_text(&wrong_current)
                .unwrap_err()
                .problem
                .contains("newest")
        );
    }
}
