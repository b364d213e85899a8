//! Limits that keep one client from holding the server: per-token request
//! rate limits (GCRA, `governor`), where a runaway runtime or script gets
//! 429 with `Retry-After` instead of starving the fleet (keyed by the
//! token's sha256; the admin token, the deployment's operator, is not
//! limited; a request without a token is left to auth); per-workspace rate
//! limits, checked by auth once a workspace token is resolved, so a
//! workspace that rotates through many tokens still shares one budget; and
//! a deadline on each request, so a slow body is a 408, not a held handler.
//! (Slow request heads are cut by the accept loop, `listener.rs`.)

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hearth_api::ErrorCode;
use hearth_core::WorkspaceId;

use crate::error::ApiError;

/// The limiter of a server, shared by its requests.
#[derive(Clone)]
pub struct RateLimits {
    limiter: Option<Arc<DefaultKeyedRateLimiter<[u8; 32]>>>,
    admin_hash: [u8; 32],
}

impl RateLimits {
    /// `per_second` requests per token, bursts of twice that; `0`: off.
    pub fn new(per_second: u32, admin_hash: [u8; 32]) -> Self {
        Self { limiter: keyed(per_second), admin_hash }
    }

    /// `Err(seconds to wait)` when the token with sha256 `key` is over its
    /// rate.
    pub fn check(&self, key: &[u8; 32]) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if bool::from(subtle::ConstantTimeEq::ct_eq(&key[..], &self.admin_hash[..])) {
            return Ok(());
        }
        limiter.check_key(key).map_err(wait_seconds)
    }

    /// Forgets tokens that have been quiet long enough to be full again, so
    /// the table does not grow with every token ever seen.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// `per_second` per key, bursts of twice that; `None` for `0` (off).
fn keyed<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    NonZeroU32::new(per_second).map(|rate| {
        let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        Arc::new(RateLimiter::dashmap(Quota::per_second(rate).allow_burst(burst)))
    })
}

/// Whole seconds until a refused request would be allowed (at least 1).
fn wait_seconds(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Requests per second per workspace, whichever of its tokens sends them
/// (the per-token limit alone would let a workspace that mints or rotates
/// many tokens multiply its budget). Checked by `auth` when a workspace
/// token resolves.
#[derive(Clone)]
pub struct WorkspaceLimits {
    limiter: Option<Arc<DefaultKeyedRateLimiter<WorkspaceId>>>,
    per_second: u32,
}

impl WorkspaceLimits {
    /// `per_second` requests per workspace, bursts of twice that; `0`: off.
    pub fn new(per_second: u32) -> Self {
        Self { limiter: keyed(per_second), per_second }
    }

    /// A 429 `too_many_requests` with `Retry-After` when `workspace` is over its rate.
    pub fn check(&self, workspace: WorkspaceId) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(&workspace).map_err(|not_until| {
            metrics::counter!("hearth_rate_limited_total", "scope" => "workspace").increment(1);
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyRequests,
                format!(
                    "this workspace sends more than {} requests per second, all its tokens together; slow down",
                    self.per_second
                ),
            )
            .retry_after(wait_seconds(not_until))
        })
    }

    /// Forgets workspaces that have been quiet long enough to be full again.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// A request not read and answered within `request_timeout` is a 408
/// `request_timeout` (the handler is dropped).
pub async fn deadline(limit: std::time::Duration, answer: impl std::future::Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, answer).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("hearth_request_timeouts_total").increment(1);
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                format!("the request was not complete within {} s", limit.as_secs_f64()),
            )
            .into_response()
        }
    }
}
