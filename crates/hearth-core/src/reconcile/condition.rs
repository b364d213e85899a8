//! A condition's type, status and reason as values, not strings.
//!
//! Each variant is spelled on the wire and in the stored JSON exactly as it
//! is named here (`"AssetsDelivered"`, `"True"`, `"InstallFailed"`), so the
//! stored `conditions` column, the API and the `CONDITION_CHANGED` event
//! payload are byte-identical to what plain strings wrote. Decoding a value
//! that is not one of these is an error, never a default.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

macro_rules! condition_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name on the wire and in the stored JSON.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant),)* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownConditionValue;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text).ok_or_else(|| UnknownConditionValue {
                    what: stringify!($name),
                    value: text.to_owned(),
                })
            }
        }
    };
}

condition_enum! {
    /// What a condition is about. All are evaluated by
    /// [`super::evaluate`]; the API adds a `Live` condition derived from the
    /// workspace status, which is never stored.
    ConditionType {
        /// The runtime holds the template's assets.
        AssetsDelivered,
        /// The runtime holds every plugin it should.
        PluginsInstalled,
        /// The runtime runs its template's program (only for a runtime that
        /// reports one).
        AgentRunning,
        /// The provisioner's runtime (a container or process) runs (only
        /// for a workspace a provisioner runs).
        RuntimeRunning,
    }
}

condition_enum! {
    /// Whether a condition holds (Kubernetes' three values).
    ConditionStatus {
        True,
        False,
        Unknown,
    }
}

condition_enum! {
    /// Why a condition has its status.
    ConditionReason {
        /// `AssetsDelivered=True`: the workspace has no template.
        NoTemplate,
        /// `AssetsDelivered=True`: the runtime holds the template's assets.
        Delivered,
        /// `AssetsDelivered=False`: the runtime holds other assets.
        DigestMismatch,
        /// `AssetsDelivered=False`: the runtime has reported no assets yet.
        NotReported,
        /// `PluginsInstalled=False`: the runtime failed to install a plugin.
        InstallFailed,
        /// `PluginsInstalled=False`: a declared plugin is not in the registry.
        NotInRegistry,
        /// `PluginsInstalled=False`: the runtime has not installed them all yet.
        Pending,
        /// `PluginsInstalled=True`: nothing to install.
        NoPlugins,
        /// `PluginsInstalled=True`: every plugin is installed.
        AllInstalled,
        /// `AgentRunning=True`: the program runs.
        Running,
        /// `AgentRunning=False`: the program exited (and is restarted after
        /// a backoff).
        Exited,
        /// `AgentRunning=False`: delivery is not complete yet.
        WaitingForDelivery,
        /// `AgentRunning=False`, `RuntimeRunning=False`: the workspace is
        /// paused or hibernated.
        Stopped,
        /// `RuntimeRunning=False`: the container was killed for using more
        /// memory than its tier allows.
        OOMKilled,
        /// `RuntimeRunning=False`: no image to run it in, or the image is
        /// not on the daemon.
        ImageMissing,
        /// `RuntimeRunning=Unknown`: the provisioner's backend (the Docker
        /// daemon) does not answer; nothing is known, nothing is changed.
        BackendUnavailable,
    }
}

impl ConditionReason {
    /// The status each reason stands for: a reason is never paired with
    /// another status.
    pub const fn status(self) -> ConditionStatus {
        match self {
            ConditionReason::NoTemplate
            | ConditionReason::Delivered
            | ConditionReason::NoPlugins
            | ConditionReason::AllInstalled
            | ConditionReason::Running => ConditionStatus::True,
            ConditionReason::DigestMismatch
            | ConditionReason::NotReported
            | ConditionReason::InstallFailed
            | ConditionReason::NotInRegistry
            | ConditionReason::Pending
            | ConditionReason::Exited
            | ConditionReason::WaitingForDelivery
            | ConditionReason::Stopped
            | ConditionReason::OOMKilled
            | ConditionReason::ImageMissing => ConditionStatus::False,
            ConditionReason::BackendUnavailable => ConditionStatus::Unknown,
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// A text that names no value of a condition enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownConditionValue {
    pub what: &'static str,
    pub value: String,
}

/// One condition as stored with its workspace (the `conditions` JSON
/// column) and shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionRecord {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub status: ConditionStatus,
    pub reason: ConditionReason,
    /// For people only: no program reads it (the facts it names are typed
    /// fields of the workspace).
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
}

impl ConditionRecord {
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}
