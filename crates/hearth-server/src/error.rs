//! `ApiError` is the only place where errors become HTTP responses.
//!
//! 4xx bodies say what was wrong: `{"error": "...", "code": "..."}` plus
//! optional extra keys. 5xx bodies are generic; the cause is logged once,
//! inside the request span, and counted.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_core::Rejection;
use hearth_store::StoreError;
use serde_json::{Map, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Map<String, Value>,
    /// Logged (not sent) for 5xx.
    pub cause: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: Map::new(), cause: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: &'static str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut error = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error");
        error.cause = Some(cause.to_string());
        error
    }

    /// Adds a key to the JSON body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let Some(operation) = error.operation() {
            metrics::counter!("hearth_database_errors_total", "operation" => operation).increment(1);
        }
        match error {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict(message) => ApiError::conflict("conflict", message),
            StoreError::Rejected(rejection) => rejection.into(),
            StoreError::InvalidInput(message) => ApiError::bad_request("invalid_input", message),
            StoreError::TokenExists => ApiError::unauthorized("missing workspace auth token"),
            StoreError::Unavailable { .. } => {
                let mut api =
                    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "database unavailable, retry later");
                api.cause = Some(error.to_string());
                api
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Removed => ApiError::new(StatusCode::GONE, "workspace_removed", "workspace removed"),
            Rejection::Stopped(status) => ApiError::conflict("workspace_stopped", format!("workspace is {status}"))
                .with("status", status.as_str()),
            Rejection::NotAllowed { action, current } => {
                ApiError::conflict("transition_refused", format!("cannot {action} a workspace that is {current}"))
                    .with("status", current.as_str())
            }
        }
    }
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            let cause = self.cause.as_deref().unwrap_or(&self.message);
            if self.status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(status = self.status.as_u16(), cause, "request failed: service unavailable");
            } else {
                tracing::error!(status = self.status.as_u16(), cause, "request failed");
            }
        }
        let mut body = self.extra;
        body.insert("error".into(), Value::String(self.message));
        body.insert("code".into(), Value::String(self.code.into()));
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}
