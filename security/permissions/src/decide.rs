//! Whether an app may use a sensitive API now, from what policy says, what its
//! manifest declares and what the user answered before — in that order: policy beats
//! the user, and the user is only asked about what the manifest declares.

use serde::{Deserialize, Serialize};

use crate::{Api, Declared, Policy};

/// An answer the user gave and asked to be remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    /// "Always allow".
    AlwaysAllow,
    /// "Always deny".
    AlwaysDeny,
}

/// What to do with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Allow(Reason),
    /// Refuse it with `AccessDenied`.
    Deny(Reason),
    /// Ask the user (or deny, when nobody can be asked).
    Ask,
}

/// Why a verdict was reached; recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// The desktop owner's policy grants it.
    PolicyGranted,
    /// The desktop owner's policy refuses it.
    PolicyDenied,
    /// The app's manifest does not declare it.
    NotDeclared,
    /// The user chose "Always allow" before.
    RememberedAllow,
    /// The user chose "Always deny" before.
    RememberedDeny,
}

impl Reason {
    /// The reason in words, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::PolicyGranted => "granted by the desktop owner's policy",
            Reason::PolicyDenied => "refused by the desktop owner's policy",
            Reason::NotDeclared => "not declared in the app's manifest (permissions.api)",
            Reason::RememberedAllow => "always allowed by the user",
            Reason::RememberedDeny => "always denied by the user",
        }
    }
}

/// Whether `app_id`, which declared `declared`, may use `api`, given the user's
/// remembered answer for it if any.
pub fn decide(
    policy: &Policy,
    app_id: &str,
    declared: &Declared,
    api: Api,
    remembered: Option<Answer>,
) -> Verdict {
    if policy.denies(app_id, api) {
        return Verdict::Deny(Reason::PolicyDenied);
    }
    if policy.grants(app_id, api) {
        return Verdict::Allow(Reason::PolicyGranted);
    }
    if !declared.api.contains(&api) {
        return Verdict::Deny(Reason::NotDeclared);
    }
    match remembered {
        Some(Answer::AlwaysAllow) => Verdict::Allow(Reason::RememberedAllow),
        Some(Answer::AlwaysDeny) => Verdict::Deny(Reason::RememberedDeny),
        None => Verdict::Ask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, text).unwrap();
        Policy::load(&[path]).unwrap()
    }

    fn declaring(api: &[Api]) -> Declared {
        Declared {
            api: api.iter().copied().collect(),
            ..Declared::default()
        }
    }

    #[test]
    fn order_is_policy_then_declaration_then_user() {
        let none = Policy::default();
        let ss = Api::SecureStorage;
        let declared = declaring(&[ss]);
        assert_eq!(decide(&none, "a", &declared, ss, None), Verdict::Ask);
        assert_eq!(
            decide(
                &none,
                "a",
                &Declared::default(),
                ss,
                Some(Answer::AlwaysAllow)
            ),
            Verdict::Deny(Reason::NotDeclared)
        );
        assert_eq!(
            decide(&none, "a", &declared, ss, Some(Answer::AlwaysAllow)),
            Verdict::Allow(Reason::RememberedAllow)
        );
        assert_eq!(
            decide(&none, "a", &declared, ss, Some(Answer::AlwaysDeny)),
            Verdict::Deny(Reason::RememberedDeny)
        );
        let grants = policy("[permissions]\ngrant = { a = [\"secureStorage\"] }\n");
        assert_eq!(
            decide(
                &grants,
                "a",
                &Declared::default(),
                ss,
                Some(Answer::AlwaysDeny)
            ),
            Verdict::Allow(Reason::PolicyGranted)
        );
        assert_eq!(decide(&grants, "b", &declared, ss, None), Verdict::Ask);
        let denies = policy(
            "[permissions]\ngrant = { a = [\"secureStorage\"] }\ndeny = { \"*\" = [\"secureStorage\"] }\n",
        );
        assert_eq!(
            decide(&denies, "a", &declared, ss, Some(Answer::AlwaysAllow)),
            Verdict::Deny(Reason::PolicyDenied)
        );
    }
}
