//! Where each setting comes from. The defaults, the user's file, the command line and the
//! desktop owner's policy are overlaid in that order; every leaf key remembers which
//! layer set it and what the layers below had said.
//!
//! Tables merge key by key; anything else (strings, numbers, arrays such as
//! `journal.durable`) is a leaf and replaced whole.

use std::collections::BTreeMap;

use serde::Serialize;

/// One layer of settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "camelCase")]
pub enum Source {
    /// Weft's built-in default.
    Default,
    /// The user's settings file.
    File,
    /// A command-line flag (as typed, such as `--metrics-addr`).
    Flag(String),
    /// The desktop owner's policy (`[settings]`): the key is locked.
    Policy,
}

/// One leaf setting as it ends up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    /// Its dotted key, such as `log.level`.
    pub key: String,
    /// The value in force.
    pub value: toml::Value,
    /// The layer that set it.
    pub source: Source,
    /// What lower layers had set, lowest first: each was overridden.
    pub overridden: Vec<(Source, toml::Value)>,
}

impl Setting {
    /// Whether the desktop owner's policy holds this key.
    pub fn locked(&self) -> bool {
        self.source == Source::Policy
    }
}

/// Layers overlaid so far: the merged table and each leaf's story.
#[derive(Debug, Default)]
pub struct Layers {
    table: toml::Table,
    settings: BTreeMap<String, Setting>,
}

impl Layers {
    /// Starts from the defaults.
    pub fn new(defaults: &toml::Table) -> Self {
        let mut layers = Self::default();
        layers.overlay(defaults, &Source::Default);
        layers
    }

    /// Lays `top` over what is there: its leaves replace theirs.
    pub fn overlay(&mut self, top: &toml::Table, source: &Source) {
        let mut found = Vec::new();
        leaves("", top, &mut found);
        for (key, value) in found {
            self.set(&key, value.clone(), source);
        }
    }

    fn set(&mut self, key: &str, value: toml::Value, source: &Source) {
        let path: Vec<&str> = key.split('\u{0}').collect();
        let dotted = path.join(".");
        let mut table = &mut self.table;
        for (i, part) in path[..path.len() - 1].iter().enumerate() {
            let entry = table
                .entry((*part).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                // A scalar below becomes a table above: the scalar's story ends here.
                self.settings.remove(&path[..=i].join("."));
                *entry = toml::Value::Table(toml::Table::new());
            }
            table = entry.as_table_mut().expect("made a table above");
        }
        let last = path[path.len() - 1];
        if table.get(last).is_some_and(toml::Value::is_table) {
            // A table below is replaced by a scalar: its leaves' stories end here.
            let prefix = format!("{dotted}.");
            self.settings.retain(|k, _| !k.starts_with(&prefix));
        }
        table.insert(last.to_owned(), value.clone());
        let overridden = match self.settings.remove(&dotted) {
            Some(old) if old.value == value => old.overridden,
            Some(mut old) => {
                old.overridden.push((old.source, old.value));
                old.overridden
            }
            None => Vec::new(),
        };
        self.settings.insert(
            dotted.clone(),
            Setting {
                key: dotted,
                value,
                source: source.clone(),
                overridden,
            },
        );
    }

    /// The merged table, to be read into the settings.
    pub fn table(&self) -> &toml::Table {
        &self.table
    }

    /// Every leaf setting, sorted by key.
    pub fn settings(&self) -> Vec<Setting> {
        self.settings.values().cloned().collect()
    }
}

/// Every leaf of `table` as (path joined with NUL, value): NUL cannot occur in a key
/// that the settings know, while dots can occur in quoted TOML keys.
pub fn leaves<'a>(prefix: &str, table: &'a toml::Table, out: &mut Vec<(String, &'a toml::Value)>) {
    for (key, value) in table {
        let path = match prefix {
            "" => key.clone(),
            _ => format!("{prefix}\u{0}{key}"),
        };
        match value {
            toml::Value::Table(inner) => leaves(&path, inner, out),
            _ => out.push((path, value)),
        }
    }
}

/// The dotted keys `table` sets.
pub fn keys(table: &toml::Table) -> Vec<String> {
    let mut found = Vec::new();
    leaves("", table, &mut found);
    found
        .into_iter()
        .map(|(k, _)| k.replace('\u{0}', "."))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    fn setting<'a>(all: &'a [Setting], key: &str) -> &'a Setting {
        all.iter().find(|s| s.key == key).unwrap()
    }

    #[test]
    fn each_leaf_keeps_the_layer_that_set_it_and_what_it_replaced() {
        let mut layers = Layers::new(&table("[a]\nx = 1\ny = 2\n[b]\nz = \"d\"\n"));
        layers.overlay(&table("[a]\nx = 10\n"), &Source::File);
        layers.overlay(&table("a.y = 2\n"), &Source::Flag("--set a.y=2".into()));
        layers.overlay(&table("[a]\nx = 30\n"), &Source::Policy);
        let all = layers.settings();
        let x = setting(&all, "a.x");
        assert_eq!(x.value.as_integer(), Some(30));
        assert!(x.locked());
        assert_eq!(
            x.overridden,
            vec![
                (Source::Default, toml::Value::Integer(1)),
                (Source::File, toml::Value::Integer(10))
            ]
        );
        // Setting the same value again moves the source but overrides nothing.
        let y = setting(&all, "a.y");
        assert_eq!(y.source, Source::Flag("--set a.y=2".into()));
        assert!(y.overridden.is_empty());
        assert_eq!(setting(&all, "b.z").source, Source::Default);
        assert_eq!(layers.table()["a"]["x"].as_integer(), Some(30));
        assert_eq!(layers.table()["b"]["z"].as_str(), Some("d"));
    }

    #[test]
    fn arrays_are_replaced_whole_and_shape_changes_drop_old_leaves() {
        let mut layers = Layers::new(&table("list = [1, 2]\n[t]\nk = 1\n"));
        layers.overlay(&table("list = [3]\nt = 5\n"), &Source::File);
        let all = layers.settings();
        assert_eq!(
            setting(&all, "list").value,
            toml::Value::Array(vec![3.into()])
        );
        assert!(all.iter().all(|s| s.key != "t.k"));
        assert_eq!(setting(&all, "t").value.as_integer(), Some(5));
        layers.overlay(&table("[t]\nk = 2\n"), &Source::Policy);
        let all = layers.settings();
        assert!(all.iter().all(|s| s.key != "t"));
        assert_eq!(setting(&all, "t.k").value.as_integer(), Some(2));
    }

    #[test]
    fn keys_are_dotted() {
        assert_eq!(
            keys(&table("a = 1\n[b.c]\nd = [1]\n")),
            vec!["a".to_owned(), "b.c.d".to_owned()]
        );
    }
}
