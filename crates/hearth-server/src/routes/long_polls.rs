//! The caps on long polls (event streams and waits): per token, then for
//! the whole server.

use crate::bus::{LongPollKind, LongPollSlot};
use crate::error::ApiError;
use crate::state::AppState;

/// Takes a place for a long poll of the token with sha256 `key`: its
/// token's (`per_token`, else a 429 `too_many_requests`), then the
/// server's (`--max-long-polls`, else a 503 `server_busy`), both with
/// `Retry-After`.
pub(crate) fn long_poll_slot(state: &AppState, kind: LongPollKind, key: [u8; 32]) -> Result<LongPollSlot, ApiError> {
    use axum::http::StatusCode;
    use hearth_api::ErrorCode;
    let (slots, per_token, what, flag) = match kind {
        LongPollKind::Stream => {
            (&state.streams, state.settings.max_streams_per_token, "event streams", "--max-streams-per-token")
        }
        LongPollKind::Wait => (&state.waits, state.settings.max_waits_per_token, "waits", "--max-waits-per-token"),
    };
    let label = match kind {
        LongPollKind::Stream => "stream",
        LongPollKind::Wait => "wait",
    };
    let token = slots.acquire(key, per_token).ok_or_else(|| {
        metrics::counter!("hearth_long_polls_refused_total", "kind" => label, "scope" => "token").increment(1);
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyRequests,
            format!("this token already holds {per_token} open {what} ({flag}); close one or retry later"),
        )
        .retry_after(crate::bus::LONG_POLL_RETRY_SECS)
    })?;
    let max = state.settings.max_long_polls;
    let server = state.long_polls.acquire(max).ok_or_else(|| {
        metrics::counter!("hearth_long_polls_refused_total", "kind" => label, "scope" => "server").increment(1);
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerBusy,
            format!("the server already holds {max} open event streams and waits (--max-long-polls); retry later"),
        )
        .retry_after(crate::bus::LONG_POLL_RETRY_SECS)
    })?;
    Ok(LongPollSlot::new(token, server))
}
