//! The token cache: live tokens by sha256, so that a steady runtime is
//! authenticated without a query, renewed in the background before they
//! expire, forgotten at once on a revocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hearth_core::{OrgId, TokenId, WorkspaceId};
use hearth_store::{Store, Token};
use tokio::sync::mpsc;

/// How long a cached token is trusted without asking the store again: the
/// bound on a stale entry if an invalidation notice is ever lost (notices
/// make revocation and deletion take effect at once on every replica).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(300);
/// A cached token used when it is older than this is renewed in the
/// background ([`renew`]), many tokens per query, so a token in steady use
/// never expires on a request's path: one used at least once per
/// `TOKEN_CACHE_TTL` (longer than the paced interval of a fleet of
/// 1,350,000 at the default budget, jitter included) is authenticated
/// from memory after its first request. The minute between the two is the
/// renewal's margin; each token in use is read once per 4–5 minutes.
pub const TOKEN_RENEW_AFTER: Duration = Duration::from_secs(240);
/// Tokens waiting for renewal at most; past it a token is not renewed
/// ahead, and is looked up on the request's path when it expires.
const RENEWAL_QUEUE: usize = 8192;
/// Tokens renewed by one query at most.
pub(super) const RENEWAL_BATCH: usize = 1000;

/// Live tokens by sha256. Revoking a token, rotating or removing a
/// workspace's tokens forgets entries here (and on other replicas through
/// the store's notices); an epoch keeps a lookup that raced with such an
/// invalidation from caching what it read before it.
pub struct TokenCache {
    cache: quick_cache::sync::Cache<[u8; 32], CachedToken>,
    pub(super) epoch: AtomicU64,
    /// Hashes of cached tokens to renew ([`renew`] takes the other end).
    renewals: mpsc::Sender<[u8; 32]>,
    pub(super) renewals_rx: Mutex<Option<mpsc::Receiver<[u8; 32]>>>,
    clock: Clock,
}

#[derive(Clone)]
pub(super) struct CachedToken {
    pub(super) id: TokenId,
    pub(super) org: OrgId,
    pub(super) workspace: Option<WorkspaceId>,
    pub(super) role: Option<hearth_core::Role>,
    pub(super) revoked_at: Option<DateTime<Utc>>,
    pub(super) removed: bool,
    cached_at: Instant,
}

/// Where a cache reads the time: `Instant::now` in the server, a clock the
/// test moves in tests (the TTL and the renewal without waiting minutes).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The server's clock.
pub fn system_clock() -> Clock {
    Arc::new(Instant::now)
}

impl TokenCache {
    pub fn new(capacity: usize, clock: Clock) -> Self {
        let (renewals, renewals_rx) = mpsc::channel(RENEWAL_QUEUE);
        Self {
            cache: crate::caches::holding(capacity),
            epoch: AtomicU64::new(0),
            renewals,
            renewals_rx: Mutex::new(Some(renewals_rx)),
            clock,
        }
    }

    /// The cached token, if it is still live at `now` and not too old; one
    /// old enough is queued for renewal.
    pub(super) fn get(&self, hash: &[u8; 32], now: DateTime<Utc>) -> Option<CachedToken> {
        let token = self.cache.get(hash)?;
        let live = token.revoked_at.is_none_or(|at| at > now);
        let age = (self.clock)().saturating_duration_since(token.cached_at);
        if live && age < TOKEN_CACHE_TTL {
            if age >= TOKEN_RENEW_AFTER {
                self.queue_renewal(*hash);
            }
            Some(token)
        } else {
            self.cache.remove(hash);
            None
        }
    }

    pub(super) fn queue_renewal(&self, hash: [u8; 32]) {
        match self.renewals.try_send(hash) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("hearth_token_renewals_total", "outcome" => "queue_full").increment(1);
            }
            // No renewer (a server that is stopping): the token expires.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    pub(super) fn insert(&self, hash: [u8; 32], token: &Token, epoch: u64) {
        let entry = CachedToken {
            id: token.id,
            org: token.org_id,
            workspace: token.workspace_id,
            role: token.role,
            revoked_at: token.revoked_at,
            removed: token.workspace_removed,
            cached_at: (self.clock)(),
        };
        // Insert first, then check: an invalidation that bumped the epoch
        // meanwhile may have missed this entry, so it goes again.
        self.cache.insert(hash, entry);
        if self.epoch.load(Ordering::Acquire) != epoch {
            self.cache.remove(&hash);
        }
    }

    pub(super) fn forget(&self, matches: impl Fn(&CachedToken) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.retain(|_, token| !matches(token));
    }

    /// How long ago the token with sha256 `hash` was cached, if it is.
    #[cfg(test)]
    pub(super) fn age(&self, hash: &[u8; 32]) -> Option<Duration> {
        self.cache.get(hash).map(|token| (self.clock)().saturating_duration_since(token.cached_at))
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Renews `hashes` from the store in one query: a token still live is
    /// cached afresh, one the store no longer answers (revoked, expired,
    /// gone) is forgotten. On failure the entries are left to expire, and
    /// are looked up on a request's path then.
    pub(super) async fn renew(&self, store: &dyn Store, mut hashes: Vec<[u8; 32]>) {
        hashes.sort_unstable();
        hashes.dedup();
        let epoch = self.epoch.load(Ordering::Acquire);
        let wanted: Vec<Vec<u8>> = hashes.iter().map(|hash| hash.to_vec()).collect();
        let found = match store.find_tokens_by_hashes(&wanted, Utc::now()).await {
            Ok(found) => found,
            Err(error) => {
                crate::metrics::store_error(&error);
                metrics::counter!("hearth_token_renewals_total", "outcome" => "error").increment(hashes.len() as u64);
                tracing::warn!(%error, tokens = hashes.len(), "cannot renew cached tokens; they are looked up again when they expire");
                return;
            }
        };
        let live: std::collections::HashMap<Vec<u8>, Token> = found.into_iter().collect();
        let (mut renewed, mut forgotten) = (0u64, 0u64);
        for hash in hashes {
            match live.get(hash.as_slice()) {
                Some(token) => {
                    self.insert(hash, token, epoch);
                    renewed += 1;
                }
                None => {
                    self.cache.remove(&hash);
                    forgotten += 1;
                }
            }
        }
        metrics::counter!("hearth_token_renewals_total", "outcome" => "renewed").increment(renewed);
        metrics::counter!("hearth_token_renewals_total", "outcome" => "forgotten").increment(forgotten);
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}
