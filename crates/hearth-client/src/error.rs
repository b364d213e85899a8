//! The one error type of the client. Every variant renders as one sentence
//! that a person can act on; programs match on the variant and on the typed
//! body of [`ClientError::Api`] (its code, the workspace status), never on
//! the sentence.

use hearth_api::{ApiErrorBody, ErrorCode};
use hearth_core::WorkspaceStatus;
use reqwest::StatusCode;

/// Longest piece of a non-JSON error body kept in a message.
const MAX_RAW_BODY_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-success status. `body` is its error
    /// body; when the body was not one, its code is [`ErrorCode::Unknown`]
    /// and its message the (shortened) raw text.
    #[error("{}", api_sentence(.status, &.body.error))]
    Api { status: u16, body: Box<ApiErrorBody> },
    /// The server could not be reached or the connection broke (the message
    /// names the URL).
    #[error("{0}")]
    Transport(String),
    /// The server answered, but not with what this client expected.
    #[error("{0}")]
    Decode(String),
    /// The base URL given to [`crate::Client::new`] is not usable.
    #[error("{0}")]
    InvalidUrl(String),
    /// The client's own settings are not usable (a CA bundle that cannot be
    /// read or holds no certificate).
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status, for [`ClientError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The machine code of the error body, for [`ClientError::Api`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { body, .. } => Some(body.code),
            _ => None,
        }
    }

    /// The workspace status the server gave as the reason, if any (409
    /// `workspace_stopped`, say).
    pub fn workspace_status(&self) -> Option<WorkspaceStatus> {
        match self {
            Self::Api { body, .. } => body.status,
            _ => None,
        }
    }

    /// The request field the server named as wrong, for [`ClientError::Api`].
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. } => body.field.as_deref(),
            _ => None,
        }
    }

    /// The server's sentence, for [`ClientError::Api`] with a non-empty one.
    pub fn api_message(&self) -> Option<&str> {
        match self {
            Self::Api { body, .. } if !body.error.is_empty() => Some(&body.error),
            _ => None,
        }
    }

    /// For 410 `events_compacted`: the first seq from which the event log is
    /// complete (resume after `seq - 1`); events before it were removed by
    /// the server's retention.
    pub fn compacted_until(&self) -> Option<i64> {
        match self {
            Self::Api { status: 410, body } if body.code == ErrorCode::EventsCompacted => body.earliest_seq,
            _ => None,
        }
    }

    /// True when the server could not be reached (worth retrying later).
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Transport(_))
    }

    /// Builds [`ClientError::Api`] from a status and the raw response body.
    pub(crate) fn from_body(status: StatusCode, body: &str) -> Self {
        let body = serde_json::from_str::<ApiErrorBody>(body)
            .unwrap_or_else(|_| ApiErrorBody::new(ErrorCode::Unknown, shorten(body.trim())));
        Self::Api { status: status.as_u16(), body: Box::new(body) }
    }

    /// Builds [`ClientError::Transport`] (or a timeout sentence) from a
    /// reqwest failure on `method url`.
    pub(crate) fn transport(method: &reqwest::Method, url: &str, err: &reqwest::Error) -> Self {
        // reqwest's own URL includes the query string.
        let url = err.url().map_or(url, reqwest::Url::as_str);
        if err.is_timeout() {
            return Self::Transport(format!("{method} {url} timed out"));
        }
        if err.is_builder() {
            return Self::InvalidUrl(format!("cannot build the request {method} {url}: {}", root_cause(err)));
        }
        let cause = root_cause(err);
        // A certificate the client does not trust is the usual first
        // failure against a server with a private CA: say what fixes it.
        let hint = if url.starts_with("https:") && cause.contains("certificate") {
            " (if the server's certificate comes from a private CA, give that CA with --ca-cert or HEARTH_CA_CERT)"
        } else {
            ""
        };
        Self::Transport(format!("could not reach {url}: {cause}{hint}"))
    }
}

fn api_sentence(status: &u16, message: &str) -> String {
    let status = *status;
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason());
    let head = match reason {
        Some(reason) => format!("server answered {status} {reason}"),
        None => format!("server answered {status}"),
    };
    if message.is_empty() {
        head
    } else {
        format!("{head}: {message}")
    }
}

/// The innermost cause of an error chain, which is where the useful words
/// are ("connection refused"), without the `(os error N)` suffix.
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    };
    lowercase_first(&text)
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        // Keep acronyms ("DNS error") as they are.
        Some(first) if !chars.clone().next().is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_owned(),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_RAW_BODY_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MAX_RAW_BODY_CHARS).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_reads_as_one_sentence_with_the_reason_phrase() {
        let err = ClientError::from_body(
            StatusCode::CONFLICT,
            r#"{"error": "cannot pause a workspace that is paused", "code": "transition_refused", "status": "paused"}"#,
        );
        assert_eq!(err.to_string(), "server answered 409 Conflict: cannot pause a workspace that is paused");
        assert_eq!(err.status(), Some(409));
        assert_eq!(err.code(), Some(ErrorCode::TransitionRefused));
        assert_eq!(err.workspace_status(), Some(WorkspaceStatus::Paused));
    }

    #[test]
    fn a_body_that_is_not_json_is_kept_as_the_message() {
        let err = ClientError::from_body(StatusCode::BAD_GATEWAY, "  upstream is down\n");
        let body = ApiErrorBody::new(ErrorCode::Unknown, "upstream is down");
        assert_eq!(err, ClientError::Api { status: 502, body: Box::new(body) });
        assert_eq!(err.to_string(), "server answered 502 Bad Gateway: upstream is down");
    }

    #[test]
    fn an_empty_body_and_an_unknown_status_still_read_well() {
        assert_eq!(ClientError::from_body(StatusCode::NOT_FOUND, "").to_string(), "server answered 404 Not Found");
        let odd = StatusCode::from_u16(599).unwrap();
        assert_eq!(ClientError::from_body(odd, "x").to_string(), "server answered 599: x");
    }

    #[test]
    fn a_long_raw_body_is_shortened() {
        let err = ClientError::from_body(StatusCode::INTERNAL_SERVER_ERROR, &"x".repeat(1000));
        let ClientError::Api { body, .. } = err else { panic!("not an api error") };
        assert_eq!(body.error.chars().count(), MAX_RAW_BODY_CHARS + 1);
    }

    #[test]
    fn root_causes_lose_their_os_error_suffix_and_capital() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        assert_eq!(root_cause(&io), "connection refused");
        let dns = std::io::Error::other("DNS error");
        assert_eq!(root_cause(&dns), "DNS error");
    }
}
