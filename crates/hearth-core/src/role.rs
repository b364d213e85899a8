//! Who may do what: the roles of operator tokens. `admin` is the
//! deployment's admin token (every org); an org token is `owner`,
//! `operator` or `viewer` of its org. Each role includes the ones below it.
//! A workspace's own token has no role: it is its runtime's, and reaches
//! only that workspace.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read: lists, counts, events, workspace details, logs. Never secret
    /// values, never an action.
    Viewer,
    /// Workspaces, templates, plugins and actions; not the org's tokens or
    /// secrets.
    Operator,
    /// Everything in its org, its tokens and secrets included.
    Owner,
    /// The admin token: every org, and the orgs themselves.
    Admin,
}

/// A role string that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected one of: viewer, operator, owner, admin)")]
pub struct UnknownRole(pub String);

impl Role {
    /// Every role, the least first.
    pub const ALL: [Role; 4] = [Self::Viewer, Self::Operator, Self::Owner, Self::Admin];

    /// The roles an org token may have (the admin is the configured token).
    pub const ORG: [Role; 3] = [Self::Viewer, Self::Operator, Self::Owner];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Owner => "owner",
            Self::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn includes(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|role| role.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_includes_exactly_those_below_it() {
        for (i, role) in Role::ALL.into_iter().enumerate() {
            for (j, needed) in Role::ALL.into_iter().enumerate() {
                assert_eq!(role.includes(needed), i >= j, "{role} includes {needed}?");
            }
        }
    }

    #[test]
    fn roles_read_back_from_their_names_and_nothing_else_parses() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_value(role).ok(), Some(serde_json::json!(role.as_str())));
        }
        for unknown in ["", "Owner", "root", "member", " viewer"] {
            assert_eq!(unknown.parse::<Role>(), Err(UnknownRole(unknown.into())));
        }
        assert!(!Role::ORG.contains(&Role::Admin), "no org token is the admin");
    }
}
