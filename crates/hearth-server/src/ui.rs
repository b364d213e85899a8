//! The dashboard: one static page (HTML, CSS and a vanilla-JS module)
//! embedded in the binary with `include_str!`, served at `/` and `/ui/…`.
//! It talks to the same JSON API as the CLI, with the operator's token from
//! the tab's `sessionStorage`; nothing is rendered on the server and
//! nothing is fetched from anywhere but this origin (the Content-Security-
//! Policy says so to the browser). Pages need no token: they hold no data.
//!
//! Each asset carries a strong `ETag` (its sha256) and `Cache-Control:
//! no-cache`, so a browser revalidates and gets a 304 until the binary
//! changes.

use std::sync::LazyLock;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

/// Only this origin, for scripts, styles, images and connections; no
/// inline script or style, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file of the dashboard, as served.
pub const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_str!("../ui/index.html") },
    Asset { path: "/ui/app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("../ui/app.js") },
    Asset { path: "/ui/app.css", content_type: "text/css; charset=utf-8", body: include_str!("../ui/app.css") },
    Asset { path: "/ui/icon.svg", content_type: "image/svg+xml", body: include_str!("../ui/icon.svg") },
];

/// `"sha256-<hex>"` of each asset, in [`ASSETS`]' order.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = hex::encode(Sha256::digest(asset.body.as_bytes()));
            // Hex digits and quotes are always a valid header value.
            HeaderValue::from_str(&format!("\"sha256-{digest}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
        })
        .collect()
});

/// The dashboard's routes (not part of the API document).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for (index, asset) in ASSETS.iter().enumerate() {
        router = router.route(asset.path, get(move |headers: HeaderMap| async move { serve(index, &headers) }));
    }
    router
}

fn serve(index: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = ETAGS[index].clone();
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag.to_str().unwrap_or_default()));
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(ETAG, etag);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        let page = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            assert!(page.contains(asset.path), "index.html refers to {}", asset.path);
        }
        for forbidden in ["http://", "https://", "<script>", " style=", " onclick="] {
            assert!(!page.contains(forbidden), "index.html has no {forbidden:?} (CSP: 'self' only, nothing inline)");
        }
        let script = ASSETS[1].body;
        let protocol = format!("\"X-Hearth-Protocol\": \"{}\"", hearth_api::PROTOCOL_VERSION);
        assert!(script.contains(&protocol), "app.js speaks this build's protocol ({protocol})");
        for forbidden in ["http://", "https://", "eval(", "innerHTML", "localStorage", "document.cookie"] {
            assert!(!script.contains(forbidden), "app.js has no {forbidden:?}");
        }
    }

    /// Where a script builds an API path other than with its one encoder,
    /// the tagged template `path`: a template literal that starts with `/`
    /// and is not tagged `path`, an `api(` call whose path (second
    /// argument) is not a `path` template, and a `fetch(` not given
    /// `apiUrl(…)`. Comment lines are skipped; a call may span lines.
    /// Conservative: a call this cannot read (a bracket inside a string
    /// before its path) is reported too, a false alarm rather than a miss.
    fn hand_built_paths(script: &str) -> Vec<String> {
        let code: String =
            script.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        let identifier = |c: char| c.is_alphanumeric() || c == '_' || c == '$' || c == '.';
        let excerpt = |at: usize| code[at..].lines().next().unwrap_or_default().chars().take(100).collect::<String>();
        let mut found = Vec::new();
        for (at, _) in code.match_indices("`/") {
            if !code[..at].ends_with("path") {
                found.push(format!("an untagged path template: {}", excerpt(at)));
            }
        }
        for (at, _) in code.match_indices("api(") {
            let before = &code[..at];
            if before.ends_with(identifier) || before.ends_with("function ") {
                continue;
            }
            let args = call_arguments(&code[at + "api(".len()..]);
            if !args.get(1).is_some_and(|path| path.trim_start().starts_with("path`")) {
                found.push(format!("an api() call whose path is not path`…`: {}", excerpt(at)));
            }
        }
        for (at, _) in code.match_indices("fetch(") {
            if !code[..at].ends_with(identifier) && !code[at + "fetch(".len()..].starts_with("apiUrl(") {
                found.push(format!("a fetch() of something but apiUrl(…): {}", excerpt(at)));
            }
        }
        found
    }

    /// The top-level arguments of a call, from just after its `(` to the
    /// matching `)` (brackets counted, strings not parsed).
    fn call_arguments(rest: &str) -> Vec<&str> {
        let (mut depth, mut start, mut arguments) = (0usize, 0usize, Vec::new());
        for (at, c) in rest.char_indices() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' if depth == 0 => {
                    arguments.push(&rest[start..at]);
                    return arguments;
                }
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    arguments.push(&rest[start..at]);
                    start = at + 1;
                }
                _ => {}
            }
        }
        arguments.push(&rest[start..]);
        arguments
    }

    #[test]
    fn every_api_path_is_built_by_the_encoder() {
        let script = ASSETS[1].body;
        assert_eq!(hand_built_paths(script), Vec::<String>::new(), "app.js builds every API path with path`…`");
        // The check finds what it is for.
        for hand_built in [
            "await api(\"DELETE\", `/workspaces/${id}`);",
            "api(\"POST\", \"/workspaces/\" + id + \"/pause\");",
            "api(\"GET\", \"/events\", { workspace_id: id });",
            "const where = `/workspaces/${id}`; api(\"GET\", where);",
            "fetch(\"/events/stream\", { headers });",
            "fetch(`/workspaces/${id}`);",
        ] {
            assert!(!hand_built_paths(hand_built).is_empty(), "a hand-built path is found in {hand_built:?}");
        }
        let encoded = "api(\"POST\", path`/workspaces/${id}/${action}`, { q: text });\n\
                       api(\n  \"GET\",\n  path`/workspaces`,\n);\n\
                       // api(\"GET\", `/in/a/comment`)\n\
                       fetch(apiUrl(path`/events/stream`), { headers });\n\
                       h(\"a\", { href: link(\"workspaces\", id) });";
        assert_eq!(hand_built_paths(encoded), Vec::<String>::new());
    }
}
