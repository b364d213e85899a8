//! Who calls: the extractors that read a request's bearer token (read and
//! hashed once by the edge) and authenticate it before the body is read,
//! so an unauthenticated request is a 401 whatever its body. The decisions
//! are `auth`'s; this module hands them the server's store and the route's
//! access rule (`access.rs`).

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;

use crate::access;
use crate::auth::{Bearer, Operator, Presented, RequiredBearer};
use crate::error::ApiError;
use crate::state::AppState;

/// The bearer token of a request: the one the edge read and hashed
/// (`edge.rs`), or read here for a router without the edge.
impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let presented =
            parts.extensions.get::<Presented>().cloned().or_else(|| Presented::from_headers(&parts.headers));
        let access =
            parts.extensions.get::<MatchedPath>().and_then(|route| access::rule(&parts.method, route.as_str()));
        Ok(Bearer::new(presented, access))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequiredBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        if !bearer.is_present() {
            return Err(ApiError::unauthorized("missing workspace auth token"));
        }
        Ok(RequiredBearer(bearer))
    }
}

/// An operator route's credential, checked before the body is read, so an
/// unauthenticated request is a 401 whatever its body.
impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        state.auth.operator(&*state.store, &bearer).await
    }
}

/// An operator and the sha256 of the token it presented (hashed once): the
/// key of its per-token caps on streams and waits.
pub struct OperatorToken {
    pub operator: Operator,
    pub token_hash: [u8; 32],
}

impl FromRequestParts<AppState> for OperatorToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let bearer = Bearer::from_request_parts(parts, state).await?;
        let operator = state.auth.operator(&*state.store, &bearer).await?;
        // `operator` refuses a request without a token, so there is a hash.
        let token_hash = bearer.hash().ok_or_else(|| ApiError::unauthorized("admin auth required"))?;
        Ok(OperatorToken { operator, token_hash })
    }
}
