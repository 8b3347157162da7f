//! FDC3 App Directories (AppD v2): reading them from files, `http(s)://` URLs and
//! AppD REST servers, and checking their records.
//!
//! A directory is a JSON document `{"applications": [record, …]}` — the body of the
//! standard's `GET /v2/apps`. [`Directory::load`] reads every source a workspace (or
//! `weft launch --appd`) lists and keeps every valid web-app record; each invalid one
//! is reported by source, position, appId and field ([`Problem`]) and the others still
//! load. A source that cannot be read at all is one problem, and the other sources
//! still load. When two sources hold the same appId, the first one listed wins.
//!
//! Which URL is fetched: a URL whose path ends in `.json` or `/v2/apps` as it is;
//! any other is taken as an AppD server's base URL and `v2/apps` is fetched under it.
//!
//! This crate reads and checks; the FDC3 agent and the supervisor use the records.

mod fetch;
mod record;

use std::fmt;

pub use record::{
    AppChannelUse, AppRecord, Base, ChannelUse, Image, IntentListener, Interop, RecordProblem,
    check_record, valid_result_type,
};
pub use weft_workspace::DirectorySource;
use weft_workspace::{AppLookup, DirectoryApp, ManifestCheck};

/// The records of every directory read, and what was wrong with the rest.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    apps: Vec<AppRecord>,
    /// Records and sources that could not be used.
    pub problems: Vec<Problem>,
}

/// Something in a directory that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problem {
    /// The directory (file or URL).
    pub directory: String,
    /// The record's position in `applications`, when the problem is in a record.
    pub index: Option<usize>,
    /// What is wrong with it.
    pub detail: RecordProblem,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "app directory {}", self.directory)?;
        if let Some(i) = self.index {
            write!(f, ": applications[{i}]")?;
        }
        if let Some(id) = &self.detail.app_id {
            write!(f, " (appId {id:?})")?;
        }
        if let Some(field) = &self.detail.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.detail.problem)
    }
}

impl Directory {
    /// Reads every source, in order.
    pub fn load(sources: &[DirectorySource]) -> Directory {
        let mut directory = Directory::default();
        for source in sources {
            match fetch::read(source) {
                Ok(document) => directory.add_document(source, &document.body, &document.base()),
                Err(problem) => directory.problems.push(Problem {
                    directory: source.to_string(),
                    index: None,
                    detail: RecordProblem {
                        app_id: None,
                        field: None,
                        problem,
                    },
                }),
            }
        }
        for problem in &directory.problems {
            tracing::warn!("{problem}");
        }
        directory
    }

    /// Adds the records of one directory document read from `source`.
    pub fn add_document(&mut self, source: &DirectorySource, body: &[u8], base: &Base<'_>) {
        let problem = |index: Option<usize>, detail: RecordProblem| Problem {
            directory: source.to_string(),
            index,
            detail,
        };
        let whole = |message: String| RecordProblem {
            app_id: None,
            field: None,
            problem: message,
        };
        let document: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                self.problems
                    .push(problem(None, whole(format!("invalid JSON: {e}"))));
                return;
            }
        };
        let Some(records) = document.get("applications").and_then(|a| a.as_array()) else {
            self.problems.push(problem(
                None,
                whole("not an App Directory: expected {\"applications\": [...]}".into()),
            ));
            return;
        };
        for (i, value) in records.iter().enumerate() {
            match check_record(value, base) {
                Ok(record) => {
                    if self.get(&record.app_id).is_some() {
                        self.problems.push(problem(
                            Some(i),
                            RecordProblem {
                                app_id: Some(record.app_id),
                                field: Some("appId".into()),
                                problem: "an earlier directory already has this appId; \
                                          the earlier record is used"
                                    .into(),
                            },
                        ));
                    } else {
                        self.apps.push(record);
                    }
                }
                Err(detail) => self.problems.push(problem(Some(i), detail)),
            }
        }
    }

    /// Every valid record, in the order read.
    pub fn apps(&self) -> &[AppRecord] {
        &self.apps
    }

    /// The record with this appId.
    pub fn get(&self, app_id: &str) -> Option<&AppRecord> {
        self.apps.iter().find(|a| a.app_id == app_id)
    }
}

impl AppLookup for Directory {
    fn find(&self, app_id: &str) -> Option<DirectoryApp> {
        self.get(app_id).map(AppRecord::as_directory_app)
    }
}

impl AppRecord {
    /// The record as a workspace entry naming it by appId sees it.
    pub fn as_directory_app(&self) -> DirectoryApp {
        DirectoryApp {
            url: self.url.clone(),
            title: self.title.clone(),
            settings: self.weft.clone(),
            manifest: ManifestCheck {
                what: format!("the App Directory record {}", self.app_id),
                signature: self.signature.clone(),
            },
        }
    }
}

/// One record is a directory of one app.
impl AppLookup for AppRecord {
    fn find(&self, app_id: &str) -> Option<DirectoryApp> {
        (self.app_id == app_id).then(|| self.as_directory_app())
    }
}

#[cfg(test)]
mod tests;
