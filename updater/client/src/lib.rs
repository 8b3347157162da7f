//! Weft's update client: checks a TUF repository (`tough`, from the newest root this
//! install trusts) for a release to offer under the channel, pin and staged rollout,
//! and downloads its targets resumably, verified against their signed hash and length.
//!
//! It is not the publisher (`weft-release`) and does not decide policy: the caller
//! passes the mirror, channel and pin that policy allows.

pub mod apply;
pub mod check;
pub mod data_format;
pub mod download;
pub mod error;
pub mod install;
pub mod state_file;
pub mod transport;

pub use check::{CheckSettings, Checked, Mirror, Offer, TargetRef, check};
pub use download::{Downloaded, download};
pub use error::{Untrusted, UpdateError};
