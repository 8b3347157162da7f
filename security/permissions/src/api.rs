//! The sensitive page APIs: each needs its name in the app's `permissions.api` and,
//! unless policy decides, the user's consent on first use.
//!
//! The list is kept short on purpose, and each entry says in plain words what the user
//! is agreeing to. An API added by another part of Weft gets its name here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A sensitive API a page may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Api {
    /// `weft.secureStorage`: keep secrets (tokens, passwords) encrypted on this
    /// computer, readable only by this app.
    SecureStorage,
    /// `weft.notifications`: show desktop notifications (kept in the notification
    /// centre).
    Notifications,
    /// `weft.clipboard`: read and write the clipboard's text.
    Clipboard,
}

impl Api {
    /// Every API, in the order the documentation lists them.
    pub const ALL: &'static [Api] = &[Api::SecureStorage, Api::Notifications, Api::Clipboard];

    /// The name manifests and policies use.
    pub fn name(self) -> &'static str {
        match self {
            Api::SecureStorage => "secureStorage",
            Api::Notifications => "notifications",
            Api::Clipboard => "clipboard",
        }
    }

    /// The API named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Api> {
        Api::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// What granting it lets an app do, for the consent prompt.
    pub fn describe(self) -> &'static str {
        match self {
            Api::SecureStorage => {
                "keep secrets (such as passwords and tokens) encrypted on this computer"
            }
            Api::Notifications => "show notifications on your desktop",
            Api::Clipboard => {
                "read what you copy, from any application, and replace it (the clipboard)"
            }
        }
    }

    /// The list of names, for error messages.
    pub fn names() -> String {
        let names: Vec<&str> = Api::ALL.iter().map(|a| a.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for &api in Api::ALL {
            assert_eq!(Api::from_name(api.name()), Some(api));
            assert_eq!(
                serde_json::to_value(api).unwrap(),
                serde_json::json!(api.name())
            );
        }
        assert_eq!(Api::from_name("SecureStorage"), None);
    }
}
