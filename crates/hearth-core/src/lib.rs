//! Hearth's pure domain: identifiers, the workspace status set, the lifecycle
//! state machine and input validation.
//!
//! Invariant: this crate does no I/O, has no async code and knows nothing of
//! SQL or HTTP. Everything here is a plain function of its arguments, so it is
//! tested exhaustively next to the code.

pub mod actor;
pub mod agent_card;
pub mod bundle_path;
pub mod digest;
pub mod display;
pub mod event;
pub mod heartbeat;
pub mod ids;
pub mod lifecycle;
pub mod manifest;
pub mod reconcile;
pub mod role;
pub mod status;
pub mod validate;

pub use actor::{Actor, By, Reason};
pub use event::{EventDraft, EventKind};
pub use heartbeat::{Heartbeat, HeartbeatError};
pub use ids::{EventId, OrgId, TokenId, WorkspaceId};
pub use lifecycle::{decide, Decision, Input, MassSilence, Outage, Rejection, Snapshot, SweepContext};
pub use role::Role;
pub use status::WorkspaceStatus;
