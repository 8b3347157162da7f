//! The protocol spoken between Weft's broker and its clients.
//!
//! This crate is the single source of truth for what crosses the local socket: the
//! handshake ([`handshake`]), the frames exchanged after it ([`frame`]), the rules for
//! topics ([`topic`]) and sets of patterns ([`pattern_set`], for permissions) and
//! identities ([`identity`]), the secret tokens clients present
//! ([`token`]), and where a shell's socket and token file live for a given data
//! directory ([`endpoint`]).
//!
//! It does no I/O beyond creating the private runtime directory, and holds no policy:
//! routing lives in `weft-broker`, the async client in `weft-client`.

pub mod endpoint;
pub mod fast_path;
pub mod frame;
pub mod handshake;
pub mod headers;
pub mod identity;
pub mod launch;
pub mod pattern_set;
pub mod token;
pub mod topic;
pub mod trace_context;

pub use frame::{ClientFrame, ErrorCode, ServerFrame};
pub use identity::Identity;
pub use token::Token;
pub use topic::{Pattern, Topic};

/// The protocol version this build speaks. A client announcing any other version is refused.
pub const PROTOCOL_VERSION: u32 = 2;

/// Default upper bound for one frame's body, in bytes.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The application id every command-line client acts as.
pub const CLI_APP_ID: &str = "weft-cli";

/// The application id of the shell's FDC3 Desktop Agent on the bus. Reserved, like
/// every `weft-…` id: no app can be granted it.
pub const FDC3_AGENT_APP_ID: &str = "weft-fdc3";

/// The application id of the shell's own services on the bus (secure storage and the
/// other sensitive page APIs). Reserved.
pub const SHELL_APP_ID: &str = "weft-shell";

/// Services named with this prefix are the platform's: only its reserved identities
/// may provide them, and they check their callers' permissions themselves.
pub const PLATFORM_SERVICE_PREFIX: &str = "weft.";

/// The notifications service (`create`), served by `weft-shell`.
pub const NOTIFICATIONS_SERVICE: &str = "weft.notifications";
/// Where the shell tells a page what the user did with its notification
/// (`{"id", "action"}`), sent to the instance alone, from `weft-shell`.
pub const NOTIFICATION_EVENTS_TOPIC: &str = "weft.notifications.events";
/// The clipboard service (`readText`, `writeText`), served by `weft-shell`.
pub const CLIPBOARD_SERVICE: &str = "weft.clipboard";
/// The secure storage service (`get`, `set`, `delete`, `keys`), served by `weft-shell`.
pub const SECURE_STORAGE_SERVICE: &str = "weft.secureStorage";

/// The topic FDC3 protocol messages travel on, always sent directly: from an app
/// host to the agent, and from the agent to one app instance.
pub const FDC3_TOPIC: &str = "weft.fdc3";

/// The type of the FDC3 agent's message telling an app host which user channel its
/// instance is on (`payload: {channel, rgb}`); the host keeps it from the page.
pub const FDC3_HOST_CHANNEL_TYPE: &str = "weftUserChannel";

/// The type of an app host's message asking the FDC3 agent for the channel selector.
pub const FDC3_CHOOSE_CHANNEL_TYPE: &str = "weftChooseUserChannel";
