//! Event names and the event a transition asks to be written.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

macro_rules! event_kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// Every event name Hearth writes or streams.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventKind { $($variant,)* }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $name,)* }
            }
        }
    };
}

event_kinds! {
    WorkspaceProvisioning => "WORKSPACE_PROVISIONING",
    WorkspaceOnline => "WORKSPACE_ONLINE",
    WorkspaceOffline => "WORKSPACE_OFFLINE",
    WorkspaceDegraded => "WORKSPACE_DEGRADED",
    WorkspaceProvisionFailed => "WORKSPACE_PROVISION_FAILED",
    WorkspacePaused => "WORKSPACE_PAUSED",
    WorkspaceResumed => "WORKSPACE_RESUMED",
    WorkspaceHibernated => "WORKSPACE_HIBERNATED",
    WorkspaceRemoved => "WORKSPACE_REMOVED",
    AgentCardUpdated => "AGENT_CARD_UPDATED",
    TaskUpdated => "TASK_UPDATED",
    WorkspaceHeartbeat => "WORKSPACE_HEARTBEAT",
    AssetsDelivered => "ASSETS_DELIVERED",
    PluginInstalled => "PLUGIN_INSTALLED",
    PluginInstallFailed => "PLUGIN_INSTALL_FAILED",
    ConditionChanged => "CONDITION_CHANGED",
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event name {0:?}")]
pub struct UnknownEvent(pub String);

impl FromStr for EventKind {
    type Err = UnknownEvent;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|kind| kind.as_str() == s).ok_or_else(|| UnknownEvent(s.to_owned()))
    }
}

/// An event that a decision asks the store to append, in the same transaction
/// as the state change it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub kind: EventKind,
    pub payload: Value,
}

impl EventDraft {
    pub fn new(kind: EventKind, payload: Value) -> Self {
        Self { kind, payload }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_name_round_trips() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), *kind);
        }
        assert!("workspace_online".parse::<EventKind>().is_err());
    }
}
