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

impl EventKind {
    /// Whether this event records a lifecycle transition (a status). The
    /// event log's retention keeps each workspace's latest one however old.
    pub const fn is_status(self) -> bool {
        matches!(
            self,
            EventKind::WorkspaceProvisioning
                | EventKind::WorkspaceOnline
                | EventKind::WorkspaceOffline
                | EventKind::WorkspaceDegraded
                | EventKind::WorkspaceProvisionFailed
                | EventKind::WorkspacePaused
                | EventKind::WorkspaceResumed
                | EventKind::WorkspaceHibernated
                | EventKind::WorkspaceRemoved
        )
    }
}

/// The largest event payload stored, in bytes of JSON. A payload beyond it
/// is replaced by its small fields and `{"truncated": true, "bytes": N}`
/// ([`cap_payload`]), so no input can make the event log, a page of it or
/// a stream frame large. Every field an event carries is bounded well below
/// this by its own limit (texts 4 KiB); the cap is the backstop.
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 16 * 1024;
/// A field of an oversized payload is kept when its JSON is at most this long.
const KEPT_FIELD_BYTES: usize = 256;
/// At most this many fields of an oversized payload are kept.
const KEPT_FIELDS: usize = 32;

/// `payload`, or, when its JSON is longer than [`MAX_EVENT_PAYLOAD_BYTES`],
/// an object with its small top-level fields (at most 32, each at most 256
/// bytes of JSON), `"truncated": true` and `"bytes"`: the original length.
pub fn cap_payload(payload: Value) -> Value {
    let bytes = json_len(&payload);
    if bytes <= MAX_EVENT_PAYLOAD_BYTES {
        return payload;
    }
    let mut capped = serde_json::Map::new();
    if let Value::Object(fields) = payload {
        for (key, value) in fields {
            if capped.len() == KEPT_FIELDS {
                break;
            }
            if key.len() + json_len(&value) <= KEPT_FIELD_BYTES && key != "truncated" && key != "bytes" {
                capped.insert(key, value);
            }
        }
    }
    capped.insert("truncated".into(), Value::Bool(true));
    capped.insert("bytes".into(), Value::from(bytes));
    Value::Object(capped)
}

/// The length of `value`'s compact JSON, counted without building it.
pub fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to an infallible writer cannot fail.
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// An event that a decision asks the store to append, in the same transaction
/// as the state change it describes. Its payload is capped when it is made
/// ([`cap_payload`]): every event the store appends is a draft, so no
/// payload beyond [`MAX_EVENT_PAYLOAD_BYTES`] reaches the log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    kind: EventKind,
    payload: Value,
}

impl EventDraft {
    pub fn new(kind: EventKind, payload: Value) -> Self {
        Self { kind, payload: cap_payload(payload) }
    }

    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// This event as caused by `actor`: its payload's `actor` field
    /// ([`crate::Actor::to_json`]). Every payload is an object; one that
    /// is not keeps its value under `value`.
    pub fn by(mut self, actor: crate::Actor) -> Self {
        let actor = actor.to_json();
        match &mut self.payload {
            Value::Object(fields) => {
                fields.insert("actor".into(), actor);
            }
            other => {
                let value = std::mem::take(other);
                self.payload = serde_json::json!({"value": value, "actor": actor});
            }
        }
        self
    }

    pub fn payload(&self) -> &Value {
        &self.payload
    }

    pub fn into_parts(self) -> (EventKind, Value) {
        (self.kind, self.payload)
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

    #[test]
    fn status_events_are_the_lifecycle_transitions() {
        let status: Vec<&str> = EventKind::ALL.iter().filter(|k| k.is_status()).map(|k| k.as_str()).collect();
        assert_eq!(
            status,
            [
                "WORKSPACE_PROVISIONING",
                "WORKSPACE_ONLINE",
                "WORKSPACE_OFFLINE",
                "WORKSPACE_DEGRADED",
                "WORKSPACE_PROVISION_FAILED",
                "WORKSPACE_PAUSED",
                "WORKSPACE_RESUMED",
                "WORKSPACE_HIBERNATED",
                "WORKSPACE_REMOVED",
            ]
        );
    }

    #[test]
    fn small_payloads_are_kept_as_they_are() {
        let payload = serde_json::json!({"recovered_from": "offline", "note": "x".repeat(8000)});
        assert_eq!(EventDraft::new(EventKind::WorkspaceOnline, payload.clone()).payload(), &payload);
        let exactly = Value::String("y".repeat(MAX_EVENT_PAYLOAD_BYTES - 2));
        assert_eq!(json_len(&exactly), MAX_EVENT_PAYLOAD_BYTES);
        assert_eq!(cap_payload(exactly.clone()), exactly);
    }

    #[test]
    fn a_payload_past_the_cap_keeps_its_small_fields_and_says_it_was_cut() {
        let payload = serde_json::json!({
            "runtime_state": "w".repeat(900_000),
            "error_rate": 0.75,
            "name": "seo-agent",
            "truncated": "spoofed",
        });
        let original = json_len(&payload);
        let capped = EventDraft::new(EventKind::WorkspaceDegraded, payload).into_parts().1;
        assert_eq!(
            capped,
            serde_json::json!({"error_rate": 0.75, "name": "seo-agent", "truncated": true, "bytes": original})
        );
        assert!(json_len(&capped) <= MAX_EVENT_PAYLOAD_BYTES);
    }

    #[test]
    fn every_capped_payload_fits_whatever_its_shape() {
        let many_keys: serde_json::Map<String, Value> =
            (0..10_000).map(|i| (format!("key-{i}"), Value::from(i))).collect();
        let shapes = [
            Value::Object(many_keys),
            Value::Array(vec![Value::from("z".repeat(100)); 1000]),
            Value::String("s".repeat(MAX_EVENT_PAYLOAD_BYTES)),
        ];
        for payload in shapes {
            let capped = cap_payload(payload);
            assert!(json_len(&capped) <= MAX_EVENT_PAYLOAD_BYTES, "{}", json_len(&capped));
            assert_eq!(capped["truncated"], true);
        }
    }

    #[test]
    fn json_len_is_the_length_of_the_compact_json() {
        for value in [serde_json::json!({"a": [1, "é", null]}), Value::Null, serde_json::json!("\u{0}\n")] {
            assert_eq!(json_len(&value), serde_json::to_vec(&value).unwrap().len());
        }
    }
}
