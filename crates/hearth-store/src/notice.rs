//! Notices: what one replica tells the others when it commits a change
//! their memory depends on (Postgres `NOTIFY hearth`, sent inside the
//! change's transaction, so a notice is delivered if and only if the change
//! committed). The database stays the truth; a notice only says "look
//! again". A lost notice (the listening connection dropped) is reported as
//! [`Notice::Lost`], on which a replica forgets everything it cached.

use async_trait::async_trait;
use hearth_core::{OrgId, TokenId, WorkspaceId};

use crate::StoreResult;

/// The channel every replica listens on.
pub const CHANNEL: &str = "hearth";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Events were appended: event streams re-read the log.
    Events,
    /// This token was revoked.
    TokenRevoked(TokenId),
    /// This workspace's tokens changed (rotation) or it was removed.
    WorkspaceTokens(WorkspaceId),
    /// A template was imported or replaced.
    Template { org: OrgId, name: String },
    /// A plugin was pushed or replaced.
    Plugin { org: OrgId, name: String },
    /// Notices may have been missed (the listener reconnected).
    Lost,
}

impl Notice {
    /// The payload sent with `NOTIFY` (names are at most 128 bytes, well
    /// under Postgres' 8000-byte payload limit).
    pub fn encode(&self) -> String {
        match self {
            Notice::Events => "e".into(),
            Notice::TokenRevoked(id) => format!("t:{}", id.0),
            Notice::WorkspaceTokens(id) => format!("w:{}", id.0),
            Notice::Template { org, name } => format!("m:{}:{name}", org.0),
            Notice::Plugin { org, name } => format!("p:{}:{name}", org.0),
            Notice::Lost => "lost".into(),
        }
    }

    /// `None` for a payload this build does not know (a newer replica's).
    pub fn parse(payload: &str) -> Option<Self> {
        let uuid = |s: &str| s.parse::<uuid::Uuid>().ok();
        let named = |rest: &str| {
            let (org, name) = rest.split_once(':')?;
            Some((OrgId(uuid(org)?), name.to_owned()))
        };
        let (kind, rest) = payload.split_once(':').unwrap_or((payload, ""));
        Some(match kind {
            "e" => Notice::Events,
            "t" => Notice::TokenRevoked(TokenId(uuid(rest)?)),
            "w" => Notice::WorkspaceTokens(WorkspaceId(uuid(rest)?)),
            "m" => named(rest).map(|(org, name)| Notice::Template { org, name })?,
            "p" => named(rest).map(|(org, name)| Notice::Plugin { org, name })?,
            "lost" => Notice::Lost,
            _ => return None,
        })
    }
}

/// A stream of notices from every replica (this one included).
#[async_trait]
pub trait NoticeFeed: Send {
    /// The next notice; [`Notice::Lost`] after the connection was lost and
    /// re-established. An error means the feed cannot listen now; calling
    /// again retries.
    async fn next(&mut self) -> StoreResult<Notice>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_round_trips() {
        let org = OrgId(uuid::Uuid::new_v4());
        let notices = [
            Notice::Events,
            Notice::TokenRevoked(TokenId(uuid::Uuid::new_v4())),
            Notice::WorkspaceTokens(WorkspaceId(uuid::Uuid::new_v4())),
            Notice::Template { org, name: "seo:agent".into() },
            Notice::Plugin { org, name: "seo-all".into() },
            Notice::Lost,
        ];
        for notice in notices {
            assert_eq!(Notice::parse(&notice.encode()), Some(notice.clone()), "{notice:?}");
        }
    }

    #[test]
    fn unknown_payloads_are_not_notices() {
        for payload in ["", "x", "t:not-a-uuid", "m:nope", "w:"] {
            assert_eq!(Notice::parse(payload), None, "{payload}");
        }
    }
}
