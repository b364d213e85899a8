//! What this server remembers for the fast path: each workspace whose row
//! is a fixpoint for its heartbeats ([`Remembered`]), and the desired
//! states those workspaces share ([`DesiredCache`]). Correctness never
//! depends on either being fresh (the module docs of `heartbeat` say why).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use hearth_core::reconcile::DesiredState;
use hearth_core::{decide, Heartbeat, Input, OrgId, WorkspaceId, WorkspaceStatus};
use hearth_store::{evolve, Changed, Workspace};

/// What a workspace's heartbeats converge to, shared by the workspaces with
/// the same template and operator plugins, until a template or plugin
/// change invalidates it.
pub struct DesiredEntry {
    pub state: DesiredState,
    pub wire: hearth_api::Desired,
    key: DesiredKey,
    valid: AtomicBool,
}

impl DesiredEntry {
    pub fn is_valid(&self) -> bool {
        self.valid.load(Ordering::Acquire)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct DesiredKey {
    org: OrgId,
    template: Option<String>,
    operator_plugins: Vec<String>,
}

/// Desired states by (org, template, operator plugins). Invalidation marks
/// the entries it touches invalid (workspaces holding them take the locked
/// path once) and bumps an epoch, so that a desired state read before an
/// invalidation is never remembered after it.
#[derive(Default)]
pub struct DesiredCache {
    entries: Mutex<HashMap<DesiredKey, Arc<DesiredEntry>>>,
    epoch: AtomicU64,
}

impl DesiredCache {
    /// Read before reading a desired state from the store.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The shared entry for `workspace`'s desired state `state`, read at
    /// `epoch`; invalid (never remembered) if an invalidation came since.
    fn entry(&self, workspace: &Workspace, state: &DesiredState, epoch: u64) -> Arc<DesiredEntry> {
        let key = DesiredKey {
            org: workspace.org_id,
            template: workspace.template.clone(),
            operator_plugins: workspace.operator_plugins.clone(),
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = self.epoch() == epoch;
        if fresh {
            if let Some(entry) = entries.get(&key) {
                if entry.is_valid() && entry.state == *state {
                    return entry.clone();
                }
            }
        }
        let entry = Arc::new(DesiredEntry {
            state: state.clone(),
            wire: hearth_api::Desired::from(state),
            key: key.clone(),
            valid: AtomicBool::new(fresh),
        });
        if fresh {
            entries.insert(key, entry.clone());
        }
        entry
    }

    fn invalidate(&self, matches: impl Fn(&DesiredEntry) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, entry| {
            if matches(entry) {
                entry.valid.store(false, Ordering::Release);
                false
            } else {
                true
            }
        });
    }

    /// Template `name` of `org` was imported or replaced.
    pub fn template_changed(&self, org: OrgId, name: &str) {
        self.invalidate(|e| e.key.org == org && e.key.template.as_deref() == Some(name));
    }

    /// Plugin `name` of `org` was pushed or replaced.
    pub fn plugin_changed(&self, org: OrgId, name: &str) {
        self.invalidate(|e| e.key.org == org && e.state.plugins.iter().any(|p| p.name == name));
    }

    /// Anything may have changed (a replica's notices were lost).
    pub fn forget_all(&self) {
        self.invalidate(|_| true);
    }
}

/// What the server remembers of a workspace whose row is a fixpoint for
/// heartbeats with decision key `key` (see the module docs).
#[derive(Clone)]
pub(super) struct Hot {
    pub(super) version: i64,
    /// The row's `current_task` is not empty (it cannot change while the
    /// version holds: a new task is an event, written under the lock).
    pub(super) has_task: bool,
    pub(super) status: WorkspaceStatus,
    pub(super) key: u64,
    pub(super) desired: Arc<DesiredEntry>,
}

/// What a locked heartbeat read before its row ([`Remembered::epochs`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Epochs {
    desired: u64,
    forgets: u64,
}

/// The workspaces remembered (up to the cache's capacity; the rest take the
/// locked path) and the desired states they share.
pub struct Remembered {
    hot: quick_cache::sync::Cache<WorkspaceId, Hot>,
    pub desired: DesiredCache,
    /// Bumped by every forget: a row read under the lock before a forget
    /// (a redo racing an operator's change) is never remembered after it,
    /// where it would answer a `queued` heartbeat from the old row.
    forgets: AtomicU64,
}

impl Remembered {
    /// `capacity`: workspaces remembered at most.
    pub fn new(capacity: usize) -> Self {
        Self { hot: crate::caches::holding(capacity), desired: DesiredCache::default(), forgets: AtomicU64::new(0) }
    }

    pub(super) fn get(&self, id: &WorkspaceId) -> Option<Hot> {
        self.hot.get(id)
    }

    /// After a locked heartbeat: remembers the workspace if its row is a
    /// fixpoint for heartbeats like `hb` (the module docs of `heartbeat`
    /// say why). `row` and `desired` were read after `epochs`
    /// ([`Remembered::epochs`]): a forget or an invalidation since then
    /// keeps the row from being remembered.
    pub(super) fn remember(
        &self,
        row: &Workspace,
        hb: Heartbeat,
        desired: &DesiredState,
        epochs: Epochs,
        now: DateTime<Utc>,
    ) {
        let Epochs { desired: epoch, forgets } = epochs;
        let key = hb.decision_key();
        let input = Input::Heartbeat(hb);
        let steady = match decide(&row.snapshot(), &input, now) {
            Ok(decision) if decision.events.is_empty() && decision.next == row.status => {
                let (next, events) = evolve(row, &input, &decision, now);
                let changed = Changed::between(row, &next);
                events.is_empty() && !changed.lifecycle && !changed.runtime && !changed.delivery
            }
            _ => false,
        };
        if !steady {
            self.hot.remove(&row.id);
            return;
        }
        let desired = self.desired.entry(row, desired, epoch);
        let has_task = !row.current_task.as_deref().unwrap_or("").is_empty();
        self.hot.insert(row.id, Hot { version: row.version, has_task, status: row.status, key, desired });
        // Insert first, then check: a forget that came since the row was
        // read may have missed this entry, so it goes again.
        if self.forgets.load(Ordering::Acquire) != forgets {
            self.hot.remove(&row.id);
        }
    }

    /// Read before a locked heartbeat reads its row and desired state.
    pub(super) fn epochs(&self) -> Epochs {
        Epochs { desired: self.desired.epoch(), forgets: self.forgets.load(Ordering::Acquire) }
    }

    /// Workspaces remembered now.
    pub fn len(&self) -> usize {
        self.hot.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hot.is_empty()
    }
}

/// A change other than a heartbeat (under the lock) forgets the workspace;
/// the version guard would catch it too, one failed write later.
impl crate::transitions::Forget for Remembered {
    fn forget(&self, id: WorkspaceId) {
        self.forgets.fetch_add(1, Ordering::AcqRel);
        self.hot.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test: a failed step should panic

    use hearth_core::heartbeat::RawHeartbeat;
    use hearth_store::Store;

    use super::*;
    use crate::transitions::Forget;

    /// The race a CI run hit with `--heartbeat-ack queued`: a redo read the
    /// paused row under the lock, an operator resumed the workspace (which
    /// forgot it), and the redo then remembered the paused row, so the next
    /// queued heartbeat was answered "paused". A row read before a forget
    /// is never remembered after it.
    #[tokio::test]
    async fn a_row_read_before_a_forget_is_not_remembered_after_it() {
        let (store, _db) = hearth_store_sqlite::testing::fresh_store().await;
        let id = hearth_store::conformance::create(&store, "w").await;
        let heartbeat = || Heartbeat::validate(RawHeartbeat::default()).unwrap();
        let row = store.apply(id, Input::Heartbeat(heartbeat()), Utc::now()).await.unwrap().workspace;
        let remembered = Remembered::new(16);
        let desired = DesiredState::default();
        remembered.remember(&row, heartbeat(), &desired, remembered.epochs(), Utc::now());
        assert_eq!(remembered.len(), 1, "a steady row is remembered");

        let before = remembered.epochs();
        remembered.forget(id);
        remembered.remember(&row, heartbeat(), &desired, before, Utc::now());
        assert_eq!(remembered.len(), 0, "read before the forget: not remembered after it");
        remembered.remember(&row, heartbeat(), &desired, remembered.epochs(), Utc::now());
        assert_eq!(remembered.len(), 1, "read after it: remembered");
    }
}
