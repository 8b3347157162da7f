//! What can go wrong with an update, typed so that callers (and tests) can tell an
//! attack refused from a network failure.

use std::{fmt, path::PathBuf};

/// Why the repository's metadata was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    /// Too few valid signatures from the role's keys (a wrong key, a wrong role, a
    /// flipped byte).
    Signatures,
    /// Older than what this install already trusts (a rollback or a mix-and-match).
    Rollback,
    /// Past its expiry (a freeze).
    Expired,
    /// The clock is earlier than a time already seen: expired metadata would revive.
    ClockBackwards,
    /// Larger than allowed (endless data).
    TooLarge,
    /// A file whose hash or length differs from what signed metadata says.
    Tampered,
    /// Not TUF metadata at all.
    Malformed,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Untrusted::Signatures => "not signed by enough of the right keys",
            Untrusted::Rollback => "older than what this install already trusts",
            Untrusted::Expired => "expired",
            Untrusted::ClockBackwards => "the clock is earlier than a time already seen",
            Untrusted::TooLarge => "larger than allowed",
            Untrusted::Tampered => "its hash or length differs from the signed one",
            Untrusted::Malformed => "not valid metadata",
        })
    }
}

/// An update step that failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The repository's metadata was refused.
    #[error("the update repository was refused ({kind}): {detail}")]
    Untrusted {
        /// Why.
        kind: Untrusted,
        /// `tough`'s account.
        detail: String,
    },
    /// The repository could not be reached.
    #[error("cannot reach the update repository: {0}")]
    Unreachable(String),
    /// A signed target's Weft fields are wrong.
    #[error("target {name}: {reason}")]
    Artifact {
        /// The target.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The settings cannot work.
    #[error("{0}")]
    Settings(String),
    /// The update state on disk cannot be used.
    #[error("the update state {} cannot be used: {reason}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl UpdateError {
    /// A state file's problem.
    pub fn state(path: &std::path::Path, e: impl fmt::Display) -> UpdateError {
        UpdateError::State {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }

    /// Why the metadata was refused, when it was.
    pub fn untrusted(&self) -> Option<Untrusted> {
        match self {
            UpdateError::Untrusted { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// Sorts `tough`'s error into ours: the first refusal anywhere in its chain (a size
/// limit or a hash check trips inside the transport's stream, wrapped in its error),
/// else a failure to reach the repository.
pub fn classify(e: tough::error::Error) -> UpdateError {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = next {
        if let Some(kind) = err.downcast_ref().and_then(refusal) {
            return UpdateError::Untrusted {
                kind,
                detail: chain(&e),
            };
        }
        next = err.source();
    }
    UpdateError::Unreachable(chain(&e))
}

/// The refusal `e` is, if it is one.
fn refusal(e: &tough::error::Error) -> Option<Untrusted> {
    use tough::error::Error as E;
    Some(match e {
        E::VerifyMetadata { .. }
        | E::VerifyRoleMetadata { .. }
        | E::VerifyTrustedMetadata { .. }
        | E::KeysNotFoundInRoot { .. }
        | E::NoRoleKeysinRoot { .. } => Untrusted::Signatures,
        E::OlderMetadata { .. }
        | E::OlderSnapshotInTimestamp { .. }
        | E::SnapshotRoleRollback { .. }
        | E::VersionMismatch { .. } => Untrusted::Rollback,
        E::ExpiredMetadata { .. } => Untrusted::Expired,
        E::SystemTimeSteppedBackward { .. } => Untrusted::ClockBackwards,
        E::MaxSizeExceeded { .. } | E::MaxUpdatesExceeded { .. } => Untrusted::TooLarge,
        E::HashMismatch { .. } | E::TimestampMetaLength { .. } => Untrusted::Tampered,
        E::ParseMetadata { .. } | E::ParseTrustedMetadata { .. } | E::SpecVersion { .. } => {
            Untrusted::Malformed
        }
        _ => return None,
    })
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
