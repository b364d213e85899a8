//! Credentials: the admin token, org API tokens and workspace tokens.
//!
//! Tokens are 32 random bytes, base64url without padding (43 characters).
//! Only their sha256 is stored (plus an 8-character prefix for display) and
//! the admin token is compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hearth_core::{OrgId, TokenId, WorkspaceId};
use hearth_store::{NewToken, Store, Token, Workspace};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};

/// A freshly generated token: the secret (shown once) and what is stored.
pub struct Minted {
    pub secret: String,
    pub record: NewToken,
}

/// 32 random bytes, base64url. Never begins with `-`, which a command line
/// would take for a flag (`hearth agent --token -Y…`): such a draw (1 in 64)
/// is drawn again.
pub fn generate_secret() -> String {
    loop {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        if !secret.starts_with('-') {
            return secret;
        }
    }
}

pub fn hash_token(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Mints a token for an org (`workspace == None`) or a workspace.
pub fn mint(org_id: OrgId, workspace_id: Option<WorkspaceId>, name: Option<String>) -> Minted {
    let secret = generate_secret();
    let record = NewToken {
        id: TokenId::new_random(),
        org_id,
        workspace_id,
        name,
        prefix: secret.chars().take(8).collect(),
        hash: hash_token(&secret).to_vec(),
        now: Utc::now(),
    };
    Minted { secret, record }
}

/// The bearer token of a request, if any.
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty());
        Ok(Bearer(token))
    }
}

/// A bearer token that must be present: a runtime route whose body names
/// the workspace answers 401 for a missing token before reading the body.
/// (Whether the token is that workspace's is checked once the body is read.)
pub struct RequiredBearer(pub Bearer);

impl<S: Send + Sync> FromRequestParts<S> for RequiredBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        if bearer.0.is_none() {
            return Err(ApiError::unauthorized("missing workspace auth token"));
        }
        Ok(RequiredBearer(bearer))
    }
}

/// An authenticated operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// The admin token: every org.
    Admin,
    /// An org API token: that org only.
    Org(OrgId),
}

impl Operator {
    /// The org new resources of this operator belong to.
    pub fn org(self) -> OrgId {
        match self {
            Operator::Admin => OrgId::DEFAULT,
            Operator::Org(org) => org,
        }
    }

    /// `None` for the admin (no filter), the org otherwise.
    pub fn scope(self) -> Option<OrgId> {
        match self {
            Operator::Admin => None,
            Operator::Org(org) => Some(org),
        }
    }

    pub fn can_see(self, workspace: &Workspace) -> bool {
        self.scope().is_none_or(|org| org == workspace.org_id)
    }
}

/// An operator route's credential, checked before the body is read, so an
/// unauthenticated request is a 401 whatever its body.
impl FromRequestParts<crate::state::AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &crate::state::AppState) -> Result<Self, Self::Rejection> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        state.auth.operator(&*state.store, &bearer).await
    }
}

/// Who may call: the admin token's hash, and the store for other tokens,
/// through a bounded cache so that a steady runtime is authenticated
/// without a query.
#[derive(Clone)]
pub struct Authenticator {
    admin_hash: [u8; 32],
    tokens: Arc<TokenCache>,
    /// Requests per second per workspace, whichever token it uses.
    workspace_limits: crate::limits::WorkspaceLimits,
}

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
const RENEWAL_BATCH: usize = 1000;

/// Live tokens by sha256. Revoking a token, rotating or removing a
/// workspace's tokens forgets entries here (and on other replicas through
/// the store's notices); an epoch keeps a lookup that raced with such an
/// invalidation from caching what it read before it.
pub struct TokenCache {
    cache: quick_cache::sync::Cache<[u8; 32], CachedToken>,
    epoch: AtomicU64,
    /// Hashes of cached tokens to renew ([`renew`] takes the other end).
    renewals: mpsc::Sender<[u8; 32]>,
    renewals_rx: Mutex<Option<mpsc::Receiver<[u8; 32]>>>,
}

#[derive(Clone)]
struct CachedToken {
    id: TokenId,
    org: OrgId,
    workspace: Option<WorkspaceId>,
    revoked_at: Option<DateTime<Utc>>,
    removed: bool,
    cached_at: Instant,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        let (renewals, renewals_rx) = mpsc::channel(RENEWAL_QUEUE);
        Self {
            cache: crate::caches::holding(capacity),
            epoch: AtomicU64::new(0),
            renewals,
            renewals_rx: Mutex::new(Some(renewals_rx)),
        }
    }

    /// The cached token, if it is still live at `now` and not too old; one
    /// old enough is queued for renewal.
    fn get(&self, hash: &[u8; 32], now: DateTime<Utc>) -> Option<CachedToken> {
        let token = self.cache.get(hash)?;
        let live = token.revoked_at.is_none_or(|at| at > now);
        let age = token.cached_at.elapsed();
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

    fn queue_renewal(&self, hash: [u8; 32]) {
        match self.renewals.try_send(hash) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("hearth_token_renewals_total", "outcome" => "queue_full").increment(1);
            }
            // No renewer (a server that is stopping): the token expires.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn insert(&self, hash: [u8; 32], token: &Token, epoch: u64) {
        let entry = CachedToken {
            id: token.id,
            org: token.org_id,
            workspace: token.workspace_id,
            revoked_at: token.revoked_at,
            removed: token.workspace_removed,
            cached_at: Instant::now(),
        };
        // Insert first, then check: an invalidation that bumped the epoch
        // meanwhile may have missed this entry, so it goes again.
        self.cache.insert(hash, entry);
        if self.epoch.load(Ordering::Acquire) != epoch {
            self.cache.remove(&hash);
        }
    }

    fn forget(&self, matches: impl Fn(&CachedToken) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.retain(|_, token| !matches(token));
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Renews `hashes` from the store in one query: a token still live is
    /// cached afresh, one the store no longer answers (revoked, expired,
    /// gone) is forgotten. On failure the entries are left to expire, and
    /// are looked up on a request's path then.
    async fn renew(&self, store: &dyn Store, mut hashes: Vec<[u8; 32]>) {
        hashes.sort_unstable();
        hashes.dedup();
        let epoch = self.epoch.load(Ordering::Acquire);
        let wanted: Vec<Vec<u8>> = hashes.iter().map(|hash| hash.to_vec()).collect();
        let found = match store.find_tokens_by_hashes(&wanted, Utc::now()).await {
            Ok(found) => found,
            Err(error) => {
                crate::lifecycle::count_store_error(&error);
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

/// What a bearer token turned out to be.
enum Credential {
    Operator(Operator),
    /// A workspace's own token; `removed` when that workspace is removed.
    Workspace {
        id: WorkspaceId,
        removed: bool,
    },
    Invalid,
}

/// Whether a route answers a removed workspace's own token. Only `/state`
/// does (404 `deleted: true`, so a runtime learns it must exit); every other
/// route refuses it with 410.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IfRemoved {
    Refuse,
    Answer,
}

impl Authenticator {
    /// `cache_capacity`: tokens cached at most; `workspace_limits`:
    /// requests per second per workspace.
    pub fn new(admin_token: &str, cache_capacity: usize, workspace_limits: crate::limits::WorkspaceLimits) -> Self {
        Self {
            admin_hash: hash_token(admin_token),
            tokens: Arc::new(TokenCache::new(cache_capacity)),
            workspace_limits,
        }
    }

    /// Forgets idle workspaces' rate-limit state (sweeper tick).
    pub fn forget_idle(&self) {
        self.workspace_limits.forget_idle();
    }

    async fn resolve(&self, store: &dyn Store, secret: &str) -> ApiResult<Credential> {
        let hash = hash_token(secret);
        if bool::from(hash.ct_eq(&self.admin_hash)) {
            return Ok(Credential::Operator(Operator::Admin));
        }
        let now = Utc::now();
        if let Some(token) = self.tokens.get(&hash, now) {
            return self.admit(credential(token.workspace, token.org, token.removed));
        }
        let epoch = self.tokens.epoch.load(Ordering::Acquire);
        Ok(match store.find_token_by_hash(&hash, now).await? {
            Some(token) => {
                self.tokens.insert(hash, &token, epoch);
                self.admit(credential(token.workspace_id, token.org_id, token.workspace_removed))?
            }
            None => Credential::Invalid,
        })
    }

    /// A workspace's credential counts against its workspace's rate limit.
    fn admit(&self, credential: Credential) -> ApiResult<Credential> {
        if let Credential::Workspace { id, .. } = &credential {
            self.workspace_limits.check(*id)?;
        }
        Ok(credential)
    }

    /// Token `id` was revoked.
    pub fn forget_token(&self, id: TokenId) {
        self.tokens.forget(|t| t.id == id);
    }

    /// The tokens of `workspace` changed (rotation) or it was removed.
    pub fn forget_workspace(&self, workspace: WorkspaceId) {
        self.tokens.forget(|t| t.workspace == Some(workspace));
    }

    /// Anything may have changed (notices from other replicas were lost).
    pub fn forget_all(&self) {
        self.tokens.forget(|_| true);
    }

    /// Tokens cached now.
    pub fn cached_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// The receiving end of the renewal queue, once: for [`renew`].
    pub fn take_renewals(&self) -> Option<mpsc::Receiver<[u8; 32]>> {
        self.tokens.renewals_rx.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Renews what is queued now, without waiting (tests; [`renew`] is the
    /// server's loop). Returns how many tokens were asked for.
    #[doc(hidden)]
    pub async fn renew_queued(&self, store: &dyn Store, queue: &mut mpsc::Receiver<[u8; 32]>) -> usize {
        let mut hashes = Vec::new();
        take_queued(queue, &mut hashes);
        let asked = hashes.len();
        if asked > 0 {
            self.tokens.renew(store, hashes).await;
        }
        asked
    }

    /// How long ago `secret`'s token was cached, if it is (tests).
    #[doc(hidden)]
    pub fn cached_age(&self, secret: &str) -> Option<Duration> {
        self.tokens.cache.get(&hash_token(secret)).map(|token| token.cached_at.elapsed())
    }

    /// Makes `secret`'s cached token look `by` older (tests: the TTL and
    /// the renewal without waiting minutes).
    #[doc(hidden)]
    pub fn backdate(&self, secret: &str, by: Duration) {
        let hash = hash_token(secret);
        if let Some(mut token) = self.tokens.cache.get(&hash) {
            token.cached_at = token.cached_at.checked_sub(by).unwrap_or(token.cached_at);
            self.tokens.cache.insert(hash, token);
        }
    }

    /// An operator route: the admin token or an org token.
    pub async fn operator(&self, store: &dyn Store, bearer: &Bearer) -> ApiResult<Operator> {
        let Some(secret) = &bearer.0 else { return Err(ApiError::unauthorized("admin auth required")) };
        match self.resolve(store, secret).await? {
            Credential::Operator(operator) => Ok(operator),
            _ => Err(ApiError::unauthorized("admin auth required")),
        }
    }

    /// A runtime route: the token of exactly this workspace, which must not
    /// be removed (410 otherwise).
    pub async fn workspace(&self, store: &dyn Store, bearer: &Bearer, id: WorkspaceId) -> ApiResult<()> {
        let Some(secret) = &bearer.0 else { return Err(ApiError::unauthorized("missing workspace auth token")) };
        match self.resolve(store, secret).await? {
            Credential::Workspace { id: owner, removed } if owner == id => refuse_removed(removed),
            _ => Err(ApiError::unauthorized("invalid workspace auth token")),
        }
    }

    /// A route open to the workspace's own token and to operators of its org.
    /// Returns the operator when the caller is one. The own token of a
    /// removed workspace is refused with 410 unless `if_removed` says the
    /// route answers it; operators are checked against the workspace by the
    /// route, which loads it anyway.
    pub async fn workspace_or_operator(
        &self,
        store: &dyn Store,
        bearer: &Bearer,
        id: WorkspaceId,
        if_removed: IfRemoved,
    ) -> ApiResult<Option<Operator>> {
        let Some(secret) = &bearer.0 else { return Err(ApiError::unauthorized("missing workspace auth token")) };
        match self.resolve(store, secret).await? {
            Credential::Workspace { id: owner, removed } if owner == id => {
                refuse_removed(removed && if_removed == IfRemoved::Refuse)?;
                Ok(None)
            }
            Credential::Operator(operator) => Ok(Some(operator)),
            _ => Err(ApiError::unauthorized("invalid workspace auth token")),
        }
    }
}

/// Renews queued tokens until the queue closes or the server stops: each
/// round takes what is queued (up to [`RENEWAL_BATCH`]) into one query, so
/// renewals group like heartbeats do under load.
pub async fn renew(state: crate::state::AppState, mut queue: mpsc::Receiver<[u8; 32]>) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let first = tokio::select! {
            hash = queue.recv() => hash,
            _ = shutdown.changed() => return,
        };
        let Some(first) = first else { return };
        let mut hashes = vec![first];
        take_queued(&mut queue, &mut hashes);
        state.auth.tokens.renew(&*state.store, hashes).await;
    }
}

/// Adds what is queued now to `hashes`, up to [`RENEWAL_BATCH`] in all.
fn take_queued(queue: &mut mpsc::Receiver<[u8; 32]>, hashes: &mut Vec<[u8; 32]>) {
    while hashes.len() < RENEWAL_BATCH {
        match queue.try_recv() {
            Ok(hash) => hashes.push(hash),
            Err(_) => break,
        }
    }
}

fn credential(workspace: Option<WorkspaceId>, org: OrgId, removed: bool) -> Credential {
    match workspace {
        Some(id) => Credential::Workspace { id, removed },
        None => Credential::Operator(Operator::Org(org)),
    }
}

fn refuse_removed(removed: bool) -> ApiResult<()> {
    if removed {
        Err(hearth_core::Rejection::Removed.into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_base64url_characters_and_unique() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
    }

    #[test]
    fn secrets_never_begin_with_a_hyphen() {
        // 1 in 64 draws begins with `-` before the redraw: 2000 tries see it.
        assert!((0..2000).map(|_| generate_secret()).all(|secret| !secret.starts_with('-') && secret.len() == 43));
    }

    #[test]
    fn minted_tokens_store_only_the_hash_and_a_prefix() {
        let minted = mint(OrgId::DEFAULT, None, None);
        assert_eq!(minted.record.hash, hash_token(&minted.secret).to_vec());
        assert_eq!(minted.record.prefix, &minted.secret[..8]);
        assert_ne!(minted.record.hash, minted.secret.as_bytes());
    }
}
