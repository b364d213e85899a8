//! Credentials: the admin token, org API tokens and workspace tokens.
//!
//! Tokens are 32 random bytes, base64url without padding (43 characters).
//! Only their sha256 is stored (plus an 8-character prefix for display) and
//! the admin token is compared in constant time. `token.rs` mints, hashes
//! and reads tokens; `cache.rs` remembers live ones. The extractors that
//! authenticate a request are in `extract.rs`, above this module: auth
//! knows nothing of the server's state.

mod cache;
mod token;

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError};

use chrono::Utc;
use hearth_core::{By, OrgId, Role, TokenId, WorkspaceId};
use hearth_store::{Store, Token, Workspace};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, watch};

pub use cache::{system_clock, Clock, TokenCache, TOKEN_CACHE_TTL, TOKEN_RENEW_AFTER};
pub use token::{generate_secret, hash_token, mint, mint_org, Bearer, Minted, Presented, RequiredBearer};

use crate::access::Access;
use crate::error::{ApiError, ApiResult};
use crate::grouped::{Grouped, Read};

/// An authenticated operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// The admin token: every org.
    Admin,
    /// An org API token: its org only, as far as its role reaches.
    Org { org: OrgId, role: Role, token: TokenId },
}

impl Operator {
    /// `None` for the admin (no filter), the org otherwise.
    pub fn scope(self) -> Option<OrgId> {
        match self {
            Operator::Admin => None,
            Operator::Org { org, .. } => Some(org),
        }
    }

    pub fn role(self) -> Role {
        match self {
            Operator::Admin => Role::Admin,
            Operator::Org { role, .. } => role,
        }
    }

    /// This operator as its events record it.
    pub fn by(self) -> By {
        By { token_id: self.token_id(), role: self.role() }
    }

    /// The stored token's id; `None` for the admin token (configured).
    pub fn token_id(self) -> Option<TokenId> {
        match self {
            Operator::Admin => None,
            Operator::Org { token, .. } => Some(token),
        }
    }

    pub fn can_see(self, workspace: &Workspace) -> bool {
        self.scope().is_none_or(|org| org == workspace.org_id)
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
    /// Tokens not cached, looked up many per query once
    /// [`Authenticator::group_lookups`] started it (one query each before).
    lookups: Arc<OnceLock<Grouped<[u8; 32], Token>>>,
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
        Self::with_clock(admin_token, cache_capacity, workspace_limits, system_clock())
    }

    /// [`Authenticator::new`] whose token cache reads `clock`.
    pub fn with_clock(
        admin_token: &str,
        cache_capacity: usize,
        workspace_limits: crate::limits::WorkspaceLimits,
        clock: Clock,
    ) -> Self {
        Self {
            admin_hash: hash_token(admin_token),
            tokens: Arc::new(TokenCache::new(cache_capacity, clock)),
            workspace_limits,
            lookups: Arc::default(),
        }
    }

    /// Looks up tokens that are not cached many per query from now on
    /// ([`crate::grouped`]): a fleet's first requests, each with a token
    /// no replica has cached yet, cost a query per group instead of one
    /// each. Once; the server calls it when it starts.
    pub fn group_lookups(&self, store: Arc<dyn Store>) {
        self.lookups.get_or_init(|| {
            Grouped::start("token", move |hashes: Vec<[u8; 32]>| {
                let store = store.clone();
                async move {
                    let wanted: Vec<Vec<u8>> = hashes.iter().map(|hash| hash.to_vec()).collect();
                    let found = store.find_tokens_by_hashes(&wanted, Utc::now()).await?;
                    Ok(found
                        .into_iter()
                        .filter_map(|(hash, token)| Some((<[u8; 32]>::try_from(hash).ok()?, token)))
                        .collect())
                }
            })
        });
    }

    /// The live token with sha256 `hash`: grouped with other lookups when
    /// [`Authenticator::group_lookups`] started them, alone otherwise.
    async fn look_up(&self, store: &dyn Store, hash: &[u8; 32]) -> ApiResult<Option<Token>> {
        if let Some(lookups) = self.lookups.get() {
            if let Read::Found(token) = lookups.get(*hash).await {
                return Ok(token);
            }
        }
        Ok(store.find_token_by_hash(hash, Utc::now()).await?)
    }

    /// Forgets idle workspaces' rate-limit state (sweeper tick).
    pub fn forget_idle(&self) {
        self.workspace_limits.forget_idle();
    }

    async fn resolve(&self, store: &dyn Store, presented: &Presented) -> ApiResult<Credential> {
        let hash = presented.hash;
        if bool::from(hash.ct_eq(&self.admin_hash)) {
            tracing::Span::current().record("token_id", "admin");
            return Ok(Credential::Operator(Operator::Admin));
        }
        let now = Utc::now();
        if let Some(token) = self.tokens.get(&hash, now) {
            tracing::Span::current().record("token_id", tracing::field::display(token.id));
            return self.admit(credential(token.id, token.workspace, token.org, token.role, token.removed));
        }
        let epoch = self.tokens.epoch.load(Ordering::Acquire);
        Ok(match self.look_up(store, &hash).await? {
            Some(token) => {
                tracing::Span::current().record("token_id", tracing::field::display(token.id));
                self.tokens.insert(hash, &token, epoch);
                self.admit(credential(token.id, token.workspace_id, token.org_id, token.role, token.workspace_removed))?
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

    /// Renews what is queued now, without waiting ([`renew`] is the
    /// server's loop; tests call it to renew at a moment they choose). Returns how many tokens were asked for.
    pub async fn renew_queued(&self, store: &dyn Store, queue: &mut mpsc::Receiver<[u8; 32]>) -> usize {
        let mut hashes = Vec::new();
        take_queued(queue, &mut hashes);
        let asked = hashes.len();
        if asked > 0 {
            self.tokens.renew(store, hashes).await;
        }
        asked
    }

    /// An operator route: the admin token or an org token whose role the
    /// route's rule admits (403 naming the role needed otherwise).
    pub async fn operator(&self, store: &dyn Store, bearer: &Bearer) -> ApiResult<Operator> {
        let Some(presented) = &bearer.presented else { return Err(ApiError::unauthorized("admin auth required")) };
        match self.resolve(store, presented).await? {
            Credential::Operator(operator) => authorize(operator, bearer.access),
            _ => Err(ApiError::unauthorized("admin auth required")),
        }
    }

    /// A runtime route: the token of exactly this workspace, which must not
    /// be removed (410 otherwise).
    pub async fn workspace(&self, store: &dyn Store, bearer: &Bearer, id: WorkspaceId) -> ApiResult<()> {
        let Some(presented) = &bearer.presented else {
            return Err(ApiError::unauthorized("missing workspace auth token"));
        };
        match self.resolve(store, presented).await? {
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
        let Some(presented) = &bearer.presented else {
            return Err(ApiError::unauthorized("missing workspace auth token"));
        };
        match self.resolve(store, presented).await? {
            Credential::Workspace { id: owner, removed } if owner == id => {
                refuse_removed(removed && if_removed == IfRemoved::Refuse)?;
                Ok(None)
            }
            Credential::Operator(operator) => authorize(operator, bearer.access).map(Some),
            _ => Err(ApiError::unauthorized("invalid workspace auth token")),
        }
    }
}

/// Renews queued tokens until the queue closes or the server stops: each
/// round takes what is queued (up to [`cache::RENEWAL_BATCH`]) into one query, so
/// renewals group like heartbeats do under load.
pub async fn renew(
    auth: Authenticator,
    store: Arc<dyn Store>,
    mut queue: mpsc::Receiver<[u8; 32]>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            hash = queue.recv() => hash,
            _ = shutdown.changed() => return,
        };
        let Some(first) = first else { return };
        let mut hashes = vec![first];
        take_queued(&mut queue, &mut hashes);
        auth.tokens.renew(&*store, hashes).await;
    }
}

/// Adds what is queued now to `hashes`, up to [`cache::RENEWAL_BATCH`] in all.
fn take_queued(queue: &mut mpsc::Receiver<[u8; 32]>, hashes: &mut Vec<[u8; 32]>) {
    while hashes.len() < cache::RENEWAL_BATCH {
        match queue.try_recv() {
            Ok(hash) => hashes.push(hash),
            Err(_) => break,
        }
    }
}

fn credential(
    token: TokenId,
    workspace: Option<WorkspaceId>,
    org: OrgId,
    role: Option<Role>,
    removed: bool,
) -> Credential {
    match (workspace, role) {
        (Some(id), _) => Credential::Workspace { id, removed },
        (None, Some(role)) => Credential::Operator(Operator::Org { org, role, token }),
        // The store refuses to write an org token without a role: one read
        // back is a hand-edited row, refused and said.
        (None, None) => {
            tracing::error!(token_id = %token, "an org token without a role is refused");
            Credential::Invalid
        }
    }
}

/// The one check of a role: `operator` may call a route whose rule is
/// `access` ([`crate::access`]) when its role includes the rule's; 403
/// `forbidden` naming the role needed otherwise. A route without a rule,
/// or whose rule admits no operator, refuses every operator (fail closed).
fn authorize(operator: Operator, access: Option<Access>) -> ApiResult<Operator> {
    let Some(access) = access else {
        tracing::error!("a route without an access rule refused an operator (add it to access::RULES)");
        return Err(ApiError::forbidden("this route has no access rule; no operator token may call it"));
    };
    let Some(needed) = access.operator_role() else {
        return Err(ApiError::unauthorized("this route takes a workspace's own token, not an operator token"));
    };
    if operator.role().includes(needed) {
        return Ok(operator);
    }
    let needs = match needed {
        Role::Admin => "the `admin` role (the admin token)".to_owned(),
        role => format!("the `{role}` role or above"),
    };
    Err(ApiError::forbidden(format!("this route needs {needs}; this token's role is `{}`", operator.role())))
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
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use hearth_store::NewWorkspaceToken;

    use super::*;

    /// A clock the test moves: `Instant::now` at its start plus what the
    /// test added.
    fn test_clock() -> (Clock, Arc<Mutex<Duration>>) {
        let start = Instant::now();
        let offset = Arc::new(Mutex::new(Duration::ZERO));
        let read = offset.clone();
        (Arc::new(move || start + *read.lock().unwrap()), offset)
    }

    async fn workspace_with_token(store: &dyn Store, name: &str) -> (WorkspaceId, Presented) {
        let id = hearth_store::conformance::create(store, name).await;
        let minted = mint(OrgId::DEFAULT, id, Some("test".into()));
        store.issue_workspace_token(NewWorkspaceToken::new(id, minted.record), None).await.unwrap();
        (id, Presented::new(minted.secret))
    }

    /// A token in steady use is renewed ahead of its TTL, and a revocation
    /// whose notice was lost ends at the token's renewal; a token unused
    /// for the whole TTL is looked up again, never renewed.
    #[tokio::test]
    async fn a_token_in_steady_use_is_renewed_ahead_and_a_missed_revocation_ends_at_its_renewal() {
        let (store, _db) = hearth_store_sqlite::testing::fresh_store().await;
        let store: &dyn Store = &store;
        let (clock, time) = test_clock();
        let advance = |by: Duration| *time.lock().unwrap() += by;
        // No notice reaches this authenticator, as if every notice were lost.
        let auth =
            Authenticator::with_clock("this test's admin token", 100, crate::limits::WorkspaceLimits::new(0), clock);
        let mut renewals = auth.take_renewals().expect("the renewal queue, once");
        let (id, presented) = workspace_with_token(store, "w").await;
        let bearer = Bearer::new(Some(presented.clone()), None);
        let age = |auth: &Authenticator| auth.tokens.age(&presented.hash);

        auth.workspace(store, &bearer, id).await.unwrap();
        assert_eq!(age(&auth), Some(Duration::ZERO), "cached by its first use");
        auth.workspace(store, &bearer, id).await.unwrap();
        assert_eq!(auth.renew_queued(store, &mut renewals).await, 0, "too young to renew");

        // Used when old enough: answered from the cache, and renewed afterwards.
        advance(TOKEN_RENEW_AFTER);
        auth.workspace(store, &bearer, id).await.unwrap();
        assert_eq!(auth.renew_queued(store, &mut renewals).await, 1);
        assert_eq!(age(&auth), Some(Duration::ZERO), "renewed");

        // Revoked, and the notice lost: the cache answers until the renewal,
        // which forgets the token, and the next use is refused.
        let token_id = store.list_workspace_tokens(id).await.unwrap()[0].id;
        store.revoke_workspace_token(id, token_id, Utc::now()).await.unwrap();
        advance(TOKEN_RENEW_AFTER);
        auth.workspace(store, &bearer, id).await.unwrap();
        assert_eq!(auth.renew_queued(store, &mut renewals).await, 1);
        assert_eq!(age(&auth), None, "forgotten by its renewal");
        let refused = auth.workspace(store, &bearer, id).await.unwrap_err();
        assert_eq!(refused.status.as_u16(), 401, "{refused:?}");

        // A token not used for the whole TTL is looked up again, never renewed.
        let (other, other_presented) = workspace_with_token(store, "other").await;
        let other_bearer = Bearer::new(Some(other_presented.clone()), None);
        auth.workspace(store, &other_bearer, other).await.unwrap();
        advance(TOKEN_CACHE_TTL);
        auth.workspace(store, &other_bearer, other).await.unwrap();
        assert_eq!(auth.renew_queued(store, &mut renewals).await, 0, "expired: looked up, not renewed");
        assert_eq!(auth.tokens.age(&other_presented.hash), Some(Duration::ZERO), "cached afresh by the lookup");
    }
}
