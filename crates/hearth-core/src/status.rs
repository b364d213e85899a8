//! The workspace status set. It mirrors the Postgres ENUM `workspace_status`
//! exactly (and SQLite's CHECK constraint); a test in each store crate proves
//! the database and this list agree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceStatus {
    Provisioning,
    Online,
    Offline,
    Degraded,
    Failed,
    Removed,
    Paused,
    Hibernated,
}

/// A status string that is not one of the eight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown workspace status {0:?} (expected one of: provisioning, online, offline, degraded, failed, removed, paused, hibernated)")]
pub struct UnknownStatus(pub String);

impl WorkspaceStatus {
    /// Every status, in the order of the Postgres ENUM declaration.
    pub const ALL: [WorkspaceStatus; 8] = [
        Self::Provisioning,
        Self::Online,
        Self::Offline,
        Self::Degraded,
        Self::Failed,
        Self::Removed,
        Self::Paused,
        Self::Hibernated,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Removed => "removed",
            Self::Paused => "paused",
            Self::Hibernated => "hibernated",
        }
    }

    /// A workspace in these states keeps a runtime (what an org's `running`
    /// quota counts; the store's `COUNT_ORG_WORKSPACES` lists the same).
    pub const fn keeps_a_runtime(self) -> bool {
        matches!(self, Self::Provisioning | Self::Online | Self::Degraded | Self::Offline)
    }

    /// The runtime should stop working (but keep existing) in these states.
    pub const fn is_stopped(self) -> bool {
        matches!(self, Self::Paused | Self::Hibernated)
    }

    /// Other workspaces may reach this one (discover answers with its URL).
    pub const fn is_available(self) -> bool {
        matches!(self, Self::Online | Self::Degraded)
    }
}

impl fmt::Display for WorkspaceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkspaceStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_text_and_json() {
        for status in WorkspaceStatus::ALL {
            assert_eq!(status.as_str().parse::<WorkspaceStatus>().unwrap(), status);
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn the_empty_string_is_not_a_status() {
        // The seed bug coerced '' into the enum; it must never parse.
        assert_eq!("".parse::<WorkspaceStatus>(), Err(UnknownStatus(String::new())));
        assert!("Online".parse::<WorkspaceStatus>().is_err());
    }
}
