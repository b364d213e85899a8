//! Keyset paging of list routes: a `limit` (1 to 1000, default 500; 100 for
//! a workspace's peers) and an opaque `cursor`; the answer stays a JSON
//! array, and the next page is named by `X-Next-Cursor` and
//! `Link: <url>; rel="next"`.

use axum::http::{HeaderMap, HeaderValue};
use hearth_api::ErrorCode;

use crate::error::{ApiError, ApiResult};

/// Items per page when the caller does not say.
pub const DEFAULT_PAGE: i64 = 500;
/// The most items one page holds.
pub const MAX_PAGE: i64 = 1000;

/// The page size asked for, checked.
pub fn limit(asked: Option<i64>) -> ApiResult<i64> {
    limit_or(asked, DEFAULT_PAGE)
}

/// [`limit`] for a route with a default page of its own.
pub fn limit_or(asked: Option<i64>, default: i64) -> ApiResult<i64> {
    let limit = asked.unwrap_or(default);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(ErrorCode::InvalidQuery, format!("limit must be between 1 and {MAX_PAGE}"))
            .field("limit"))
    }
}

pub fn bad_cursor(text: &str) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidQuery, format!("cursor {text:?} is not one this server gave"))
        .field("cursor")
}

/// Cuts a page read with `limit + 1` rows back to `limit`; the last kept
/// row when another page follows.
pub fn trim<T>(rows: &mut Vec<T>, limit: i64) -> Option<&T> {
    let keep = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > keep;
    rows.truncate(keep);
    if more {
        rows.last()
    } else {
        None
    }
}

/// A list route's `Link` prefix: `path?`, with `org=ID&` when the request
/// named an org (`named`).
pub fn prefix(path: &str, org: Option<hearth_core::OrgId>, named: bool) -> String {
    match org {
        Some(org) if named => format!("{path}?org={org}&"),
        _ => format!("{path}?"),
    }
}

/// `X-Next-Cursor` and `Link` for the next page, when there is one.
/// `prefix` is the route's path and query up to the paging parameters,
/// ending in `?` or `&`.
pub fn next_headers(prefix: &str, limit: i64, next: Option<String>) -> ApiResult<HeaderMap> {
    let mut headers = HeaderMap::new();
    if let Some(cursor) = next {
        let link = format!("<{prefix}limit={limit}&cursor={cursor}>; rel=\"next\"");
        for (name, value) in [("x-next-cursor", cursor), ("link", link)] {
            headers.insert(name, HeaderValue::from_str(&value).map_err(ApiError::internal)?);
        }
    }
    Ok(headers)
}
