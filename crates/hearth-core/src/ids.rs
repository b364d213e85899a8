//! Typed identifiers. Each is a UUID underneath; the newtype stops a workspace
//! id from being passed where an org id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// A workspace: one agent role.
    WorkspaceId
);
uuid_id!(
    /// An org (tenant).
    OrgId
);
uuid_id!(
    /// An event in the durable log (the log's order is its `seq`, not this id).
    EventId
);
uuid_id!(
    /// An API or workspace token (never the secret itself).
    TokenId
);

impl OrgId {
    /// The org every single-org deployment uses; created by the first migration.
    pub const DEFAULT: OrgId = OrgId(Uuid::from_u128(0x00000000_0000_4000_8000_000000000001));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = WorkspaceId::new_random();
        assert_eq!(id.to_string().parse::<WorkspaceId>().unwrap(), id);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert!("not-a-uuid".parse::<WorkspaceId>().is_err());
        assert!("".parse::<OrgId>().is_err());
    }
}
