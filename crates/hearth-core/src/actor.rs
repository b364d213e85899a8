//! Who caused a change: every event's payload says it (`actor`), so a
//! subscriber can tell an operator's action from a runtime's report and
//! from Hearth's own decisions (a sweep, a provisioner).

use serde_json::{json, Value};

use crate::{Role, TokenId};

/// An operator as an event records it: the token's id (`None` for the
/// admin token, which is configured, not stored) and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct By {
    pub token_id: Option<TokenId>,
    pub role: Role,
}

impl By {
    /// The admin token.
    pub const ADMIN: By = By { token_id: None, role: Role::Admin };
}

/// Why Hearth itself changed a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The liveness sweep (no heartbeat for the TTL).
    Sweep,
    /// Still provisioning after the provision timeout.
    ProvisionTimeout,
    /// The idle sweep hibernated it.
    Idle,
    /// A provisioner observed its runtime.
    Provisioner,
}

impl Reason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Sweep => "sweep",
            Reason::ProvisionTimeout => "provision_timeout",
            Reason::Idle => "idle",
            Reason::Provisioner => "provisioner",
        }
    }
}

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An operator's request (an org token or the admin token).
    Operator(By),
    /// The workspace's runtime (its own token): a heartbeat, a register, a
    /// report.
    Runtime,
    /// Hearth itself.
    System(Reason),
}

impl Actor {
    /// `{"kind": "operator", "token_id": …, "role": …}`, `{"kind":
    /// "runtime"}` or `{"kind": "system", "reason": …}`.
    pub fn to_json(self) -> Value {
        match self {
            Actor::Operator(By { token_id, role }) => {
                json!({"kind": "operator", "token_id": token_id.map(|id| id.0), "role": role.as_str()})
            }
            Actor::Runtime => json!({"kind": "runtime"}),
            Actor::System(reason) => json!({"kind": "system", "reason": reason.as_str()}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_actor_says_its_kind_and_what_identifies_it() {
        let token = TokenId(uuid::Uuid::from_u128(7));
        let owner = Actor::Operator(By { token_id: Some(token), role: Role::Owner });
        assert_eq!(owner.to_json(), json!({"kind": "operator", "token_id": token.0, "role": "owner"}));
        assert_eq!(
            Actor::Operator(By::ADMIN).to_json(),
            json!({"kind": "operator", "token_id": null, "role": "admin"})
        );
        assert_eq!(Actor::Runtime.to_json(), json!({"kind": "runtime"}));
        for (reason, name) in [
            (Reason::Sweep, "sweep"),
            (Reason::ProvisionTimeout, "provision_timeout"),
            (Reason::Idle, "idle"),
            (Reason::Provisioner, "provisioner"),
        ] {
            assert_eq!(Actor::System(reason).to_json(), json!({"kind": "system", "reason": name}));
        }
    }
}
