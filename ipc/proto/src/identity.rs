//! Who a message comes from: an application id and the id of one running instance.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest application id, in bytes.
pub const MAX_APP_ID_LEN: usize = 128;

/// The identity of one running app instance, as stamped by the broker on every message.
///
/// Clients never choose it: the broker derives it from the token the connection
/// presented in its handshake.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The application's id, unique within a workspace.
    pub app_id: String,
    /// The id of this running instance, unique within a shell's lifetime.
    pub instance_id: String,
}

impl Identity {
    /// A fresh identity for a new instance of `app_id`.
    pub fn new_instance(app_id: &str) -> Self {
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).expect("the operating system's random source failed");
        Self {
            app_id: app_id.to_owned(),
            instance_id: format!("{app_id}-{}", hex::encode(suffix)),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.app_id, self.instance_id)
    }
}

/// Why an application id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppIdError {
    /// The id is empty.
    #[error("the appId is empty")]
    Empty,
    /// The id is longer than [`MAX_APP_ID_LEN`].
    #[error("the appId is {len} bytes long; the limit is {MAX_APP_ID_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The id contains a character outside `A-Z a-z 0-9 . _ - @ +`.
    #[error("the appId contains {ch:?}; allowed are letters, digits and . _ - @ +")]
    BadCharacter {
        /// The offending character.
        ch: char,
    },
    /// The id starts with a dot.
    #[error("the appId must not start with a dot")]
    LeadingDot,
    /// The id is reserved for Weft itself.
    #[error("the appId {0:?} is reserved for Weft itself")]
    Reserved(String),
}

/// Checks that `app_id` is usable as an application id (and as a directory name).
pub fn validate_app_id(app_id: &str) -> Result<(), AppIdError> {
    if app_id.is_empty() {
        return Err(AppIdError::Empty);
    }
    if app_id.len() > MAX_APP_ID_LEN {
        return Err(AppIdError::TooLong { len: app_id.len() });
    }
    if let Some(ch) = app_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')))
    {
        return Err(AppIdError::BadCharacter { ch });
    }
    if app_id.starts_with('.') {
        return Err(AppIdError::LeadingDot);
    }
    if app_id == crate::CLI_APP_ID || app_id.starts_with("weft-") {
        return Err(AppIdError::Reserved(app_id.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids() {
        assert!(validate_app_id("watchlist").is_ok());
        assert!(validate_app_id("fdc3.workbench@1-2_3+x").is_ok());
        assert_eq!(validate_app_id(""), Err(AppIdError::Empty));
        assert_eq!(
            validate_app_id("a/b"),
            Err(AppIdError::BadCharacter { ch: '/' })
        );
        assert_eq!(validate_app_id(".."), Err(AppIdError::LeadingDot));
        assert!(matches!(
            validate_app_id("weft-cli"),
            Err(AppIdError::Reserved(_))
        ));
        assert!(matches!(
            validate_app_id(&"a".repeat(129)),
            Err(AppIdError::TooLong { len: 129 })
        ));
    }

    #[test]
    fn instances_are_distinct_and_serialise_camel_case() {
        let a = Identity::new_instance("chart");
        let b = Identity::new_instance("chart");
        assert_ne!(a.instance_id, b.instance_id);
        assert!(a.instance_id.starts_with("chart-"));
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            json.starts_with(r#"{"appId":"chart","instanceId":"chart-"#),
            "{json}"
        );
    }
}
