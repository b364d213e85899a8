//! The agent card a runtime registers: its size limit, and the small event
//! that says it changed.
//!
//! A card is any JSON a runtime describes itself with (the old platform's
//! A2A card). It is stored whole on the workspace, but its event carries
//! only a digest and the top-level keys that changed, so a runtime cannot
//! grow the event log by the size of its card on every update.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::event::{json_len, EventDraft, EventKind};

/// The largest agent card accepted, in bytes of compact JSON.
pub const MAX_AGENT_CARD_BYTES: usize = 64 * 1024;
/// At most this many changed keys are named in an event.
pub const MAX_CHANGED_KEYS: usize = 64;
/// A changed key longer than this is named by its first characters.
const MAX_KEY_CHARS: usize = 128;

/// Refuses a card larger than [`MAX_AGENT_CARD_BYTES`]; the message says
/// how large it was.
pub fn check(card: &Value) -> Result<(), String> {
    let bytes = json_len(card);
    if bytes > MAX_AGENT_CARD_BYTES {
        return Err(format!("agent_card is {bytes} bytes of JSON; at most {MAX_AGENT_CARD_BYTES} are accepted"));
    }
    Ok(())
}

/// sha256 (hex) of the card's compact JSON. Object keys are serialized in
/// sorted order, so equal cards have equal digests.
pub fn sha256(card: &Value) -> String {
    let mut hasher = Sha256::new();
    // Serializing a `Value` into a hasher cannot fail: its maps have string
    // keys and the writer never refuses bytes.
    if serde_json::to_writer(HashWriter(&mut hasher), card).is_err() {
        hasher = Sha256::new();
    }
    hex::encode(hasher.finalize())
}

/// Feeds JSON straight into the digest, so the card is not serialized into
/// a buffer first.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `AGENT_CARD_UPDATED` event for replacing `old` with `new`, or `None`
/// when they are equal (an unchanged card writes no event). Its payload:
/// `sha256` and `bytes` of the new card, and `changed_keys`: the top-level
/// keys added, removed or changed (sorted, at most 64, long keys cut), with
/// `changed_keys_total` when there were more; `null` when either card is
/// not a JSON object.
pub fn update_event(old: Option<&Value>, new: &Value) -> Option<EventDraft> {
    if old == Some(new) {
        return None;
    }
    let changed = match (old, new) {
        (Some(Value::Object(before)), Value::Object(after)) => {
            let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
            let changed: Vec<&String> = keys.into_iter().filter(|key| before.get(*key) != after.get(*key)).collect();
            Some(changed)
        }
        (None | Some(Value::Null), Value::Object(after)) => Some(after.keys().collect()),
        _ => None,
    };
    let mut payload = json!({"sha256": sha256(new), "bytes": json_len(new)});
    match changed {
        Some(keys) => {
            let named: Vec<String> =
                keys.iter().take(MAX_CHANGED_KEYS).map(|key| key.chars().take(MAX_KEY_CHARS).collect()).collect();
            payload["changed_keys"] = json!(named);
            if keys.len() > MAX_CHANGED_KEYS {
                payload["changed_keys_total"] = json!(keys.len());
            }
        }
        None => payload["changed_keys"] = Value::Null,
    }
    Some(EventDraft::new(EventKind::AgentCardUpdated, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_up_to_the_limit_are_accepted_and_larger_ones_named() {
        let at_limit = Value::String("c".repeat(MAX_AGENT_CARD_BYTES - 2));
        assert!(check(&at_limit).is_ok());
        let over = Value::String("c".repeat(MAX_AGENT_CARD_BYTES - 1));
        assert_eq!(check(&over).unwrap_err(), "agent_card is 65537 bytes of JSON; at most 65536 are accepted");
        assert!(check(&json!({"name": "seo", "skills": ["audit"]})).is_ok());
    }

    #[test]
    fn an_unchanged_card_has_no_event() {
        let card = json!({"name": "seo", "skills": ["audit"]});
        assert_eq!(update_event(Some(&card), &card.clone()), None);
        // Key order does not make two cards different.
        let reordered: Value = serde_json::from_str(r#"{"skills": ["audit"], "name": "seo"}"#).unwrap();
        assert_eq!(update_event(Some(&card), &reordered), None);
    }

    #[test]
    fn a_changed_card_names_its_changed_keys_and_carries_its_digest_not_its_content() {
        let before = json!({"name": "seo", "skills": ["audit"], "gone": 1, "same": true});
        let after = json!({"name": "seo", "skills": ["audit", "crawl"], "new": "x".repeat(40_000), "same": true});
        let draft = update_event(Some(&before), &after).unwrap();
        assert_eq!(draft.kind(), EventKind::AgentCardUpdated);
        assert_eq!(
            draft.payload(),
            &json!({
                "sha256": sha256(&after),
                "bytes": json_len(&after),
                "changed_keys": ["gone", "new", "skills"],
            })
        );
        assert!(json_len(draft.payload()) < 200, "the card's content is not in its event");
        assert_eq!(sha256(&after).len(), 64);
        assert_ne!(sha256(&after), sha256(&before));
    }

    #[test]
    fn a_first_card_names_every_key_and_a_card_that_is_not_an_object_names_none() {
        let card = json!({"b": 1, "a": 2});
        assert_eq!(update_event(None, &card).unwrap().payload()["changed_keys"], json!(["a", "b"]));
        assert_eq!(update_event(Some(&Value::Null), &card).unwrap().payload()["changed_keys"], json!(["a", "b"]));
        assert_eq!(update_event(Some(&card), &json!([1, 2])).unwrap().payload()["changed_keys"], Value::Null);
        assert_eq!(update_event(Some(&json!("old")), &card).unwrap().payload()["changed_keys"], Value::Null);
    }

    #[test]
    fn many_or_long_changed_keys_stay_small() {
        let wide: serde_json::Map<String, Value> =
            (0..500).map(|i| (format!("{i:03}-{}", "k".repeat(300)), json!(i))).collect();
        let draft = update_event(Some(&json!({})), &Value::Object(wide)).unwrap();
        let payload = draft.payload();
        assert_eq!(payload["changed_keys"].as_array().unwrap().len(), MAX_CHANGED_KEYS);
        assert_eq!(payload["changed_keys_total"], 500);
        assert!(payload["changed_keys"].as_array().unwrap().iter().all(|k| k.as_str().unwrap().chars().count() <= 128));
        assert!(json_len(payload) <= crate::event::MAX_EVENT_PAYLOAD_BYTES);
        assert_eq!(payload.get("truncated"), None, "named keys fit under the event cap");
    }
}
