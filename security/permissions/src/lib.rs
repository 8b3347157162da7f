//! Who may do what: the permissions an app declares in its manifest ([`declared`]), the
//! sensitive page APIs they name ([`api`]), the desktop owner's policy ([`policy`]), and
//! the decision that combines them with the user's remembered answers ([`decide`]).
//!
//! This crate decides; it does not enforce, ask or store. The broker enforces the bus
//! patterns of each connection, the shell enforces API calls, asks the user and keeps
//! their answers. Nothing here trusts a page: every input is a manifest, a policy file
//! or an answer the shell already holds.

pub mod api;
pub mod decide;
pub mod declared;
pub mod policy;

pub use api::Api;
pub use decide::{Answer, Reason, Verdict, decide};
pub use declared::{Declared, RawPermissions};
pub use policy::{Policy, PolicyError, Violation};
