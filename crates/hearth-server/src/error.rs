//! `ApiError` is the only place where errors become HTTP responses.
//!
//! 4xx bodies say what was wrong: `{"error": "...", "code": "..."}` plus
//! optional extra keys. 5xx bodies are generic; the cause is logged once,
//! inside the request span, and counted.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_api::{ApiErrorBody, ErrorCode};
use hearth_core::{Rejection, WorkspaceStatus};
use hearth_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// What the client receives: sentence, code and typed details (boxed:
    /// handlers return `Result<_, ApiError>` everywhere, so it stays small).
    pub body: Box<ApiErrorBody>,
    /// Logged (not sent) for 5xx.
    pub cause: Option<String>,
    /// The store operation whose database error this is, counted in
    /// `hearth_database_errors_total` when the response is sent.
    pub operation: Option<&'static str>,
    /// `Retry-After` seconds of a 429 or 503 (default [`RETRY_AFTER_SECS`]).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ApiErrorBody::new(code, message)),
            cause: None,
            operation: None,
            retry_after: None,
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 409 `quota_exceeded`: `quota` is `limit` and `used` are used; the
    /// body names all three.
    pub fn quota_exceeded(quota: hearth_store::Quota, limit: i64, used: i64) -> Self {
        let name = quota.as_str();
        let mut api = Self::conflict(
            ErrorCode::QuotaExceeded,
            format!("this would exceed the org's {name} quota: the limit is {limit} and {used} are used"),
        );
        api.body.quota = Some(name.to_owned());
        api.body.limit = Some(limit);
        api.body.used = Some(used);
        api
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unprocessable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut error = Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error");
        error.cause = Some(cause.to_string());
        error
    }

    /// Names the request field that was wrong.
    /// Seconds the client should wait before retrying (429, 503).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    /// Says the refusal is about item `index` of the request's list `list`:
    /// `workspaces[3]: …`, field `workspaces[3].tier`. 5xx errors are left
    /// as they are (they are not about the input).
    pub fn item(mut self, list: &str, index: usize) -> Self {
        if self.status.is_client_error() {
            let at = format!("{list}[{index}]");
            self.body.error = format!("{at}: {}", self.body.error);
            self.body.field = Some(match self.body.field.take() {
                Some(field) => format!("{at}.{field}"),
                None => at,
            });
        }
        self
    }

    /// The workspace status that is why the request was refused.
    pub fn workspace_status(mut self, status: WorkspaceStatus) -> Self {
        self.body.status = Some(status);
        self
    }

    /// 410 `events_compacted`: the events a reader asked for after `seq`
    /// were compacted; the log is complete again from `earliest_seq`.
    pub fn events_compacted(after: i64, earliest_seq: i64) -> Self {
        let mut error = Self::new(
            StatusCode::GONE,
            ErrorCode::EventsCompacted,
            format!(
                "events after seq {after} are no longer all kept (retention compacted the log up to seq {}); \
                 resume from seq {earliest_seq} (since={})",
                earliest_seq - 1,
                earliest_seq - 1
            ),
        );
        error.body.earliest_seq = Some(earliest_seq);
        error
    }

    /// The names concerned (secret keys, plugin names).
    pub fn keys(mut self, keys: Vec<String>) -> Self {
        self.body.keys = Some(keys);
        self
    }
}

/// A store error at the HTTP edge. Counting happens when the response is
/// sent ([`IntoResponse`]), not here: a conversion is not a failure served.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let operation = error.operation();
        let mut api = match error {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict { what } => ApiError::conflict(ErrorCode::Conflict, what.to_string()),
            StoreError::Rejected(rejection) => rejection.into(),
            StoreError::InvalidInput(message) => ApiError::bad_request(ErrorCode::InvalidInput, message),
            StoreError::BootstrapRefused => ApiError::unauthorized(
                "missing workspace auth token: this workspace needs a token issued by an operator \
                 (`hearth token create --workspace ID`)",
            ),
            StoreError::LimitReached { .. } => ApiError::conflict(ErrorCode::LimitReached, error.to_string()),
            StoreError::QuotaExceeded { quota, limit, used } => ApiError::quota_exceeded(quota, limit, used),
            StoreError::OrgNotEmpty { live } => ApiError::conflict(
                ErrorCode::Conflict,
                format!(
                    "the org still has {live} workspaces that are not removed; delete them first, \
                     or delete the org with ?cascade=true to remove them through their lifecycle"
                ),
            ),
            StoreError::Unavailable { .. } => {
                let mut api = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "database unavailable, retry later",
                );
                api.cause = Some(error.to_string());
                api
            }
            other => ApiError::internal(other),
        };
        api.operation = operation;
        api
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Removed => ApiError::new(StatusCode::GONE, ErrorCode::WorkspaceRemoved, "workspace removed"),
            Rejection::Stopped(status) => {
                ApiError::conflict(ErrorCode::WorkspaceStopped, format!("workspace is {status}"))
                    .workspace_status(status)
            }
            Rejection::NotAllowed { action, current } => ApiError::conflict(
                ErrorCode::TransitionRefused,
                format!("cannot {action} a workspace that is {current}"),
            )
            .workspace_status(current),
        }
    }
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(operation) = self.operation {
            crate::metrics::database_error(operation);
        }
        let code = self.body.code;
        if self.status.is_server_error() && refusal_level(self.status, Some(code)).is_none() {
            let cause = self.cause.as_deref().unwrap_or(&self.body.error);
            if self.status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(status = self.status.as_u16(), cause, "request failed: service unavailable");
            } else {
                tracing::error!(status = self.status.as_u16(), cause, "request failed");
            }
        }
        let mut response = (self.status, axum::Json(*self.body)).into_response();
        // The edge logs a 5xx by its code (`edge::refusal_level`).
        response.extensions_mut().insert(code);
        if self.status == StatusCode::SERVICE_UNAVAILABLE || self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after.unwrap_or(RETRY_AFTER_SECS)));
        }
        response
    }
}

/// The level below `error` of a 5xx that the client's request decided, by
/// its error code (`ApiError` puts it in the response's extensions): a
/// `discover` of a target that is not online (`workspace_unavailable`,
/// `info`: any workspace token can ask), a server full of long polls
/// (`server_busy`, `warn`: the operator may want a larger cap). `None`: a
/// real failure (database, internal), logged at `error`.
pub fn refusal_level(status: StatusCode, code: Option<ErrorCode>) -> Option<tracing::Level> {
    if !status.is_server_error() {
        return None;
    }
    match code? {
        ErrorCode::WorkspaceUnavailable => Some(tracing::Level::INFO),
        ErrorCode::ServerBusy => Some(tracing::Level::WARN),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use hearth_store::Conflict;

    use super::*;

    #[test]
    fn only_client_decided_5xx_are_logged_below_error() {
        let level = |status: u16, code| refusal_level(StatusCode::from_u16(status).unwrap(), code);
        assert_eq!(level(503, Some(ErrorCode::WorkspaceUnavailable)), Some(tracing::Level::INFO));
        assert_eq!(level(503, Some(ErrorCode::ServerBusy)), Some(tracing::Level::WARN));
        assert_eq!(level(503, Some(ErrorCode::Unavailable)), None, "the database is down: an error");
        assert_eq!(level(500, Some(ErrorCode::Internal)), None);
        assert_eq!(level(500, Some(ErrorCode::SecretDecryptFailed)), None);
        assert_eq!(level(500, None), None, "a panic or a bare 500");
        assert_eq!(level(404, Some(ErrorCode::NotFound)), None, "not a 5xx");
    }

    /// A 409 says what conflicted in the store's words, the same on every
    /// engine, and never a table or constraint name.
    #[tokio::test]
    async fn a_store_conflict_is_a_409_that_names_what_conflicted() {
        let response = ApiError::from(StoreError::Conflict { what: Conflict::WorkspaceExists }).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"error":"a workspace with this id already exists","code":"conflict"}"#
        );
    }
}
