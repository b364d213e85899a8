//! The dashboard: one static page (HTML, CSS and vanilla-JS ES modules, no
//! build step) embedded in the binary with `include_str!`, served at `/` and
//! `/ui/…`. Every file of `ui/` is a line in [`ASSETS`] (a test checks).
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

/// The type of every script: a module script must be served as JavaScript.
const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard, as served; `/ui/app.js` is the module the
/// page loads, and it imports the others.
pub const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_str!("../ui/index.html") },
    Asset { path: "/ui/app.js", content_type: JS, body: include_str!("../ui/app.js") },
    Asset { path: "/ui/api.js", content_type: JS, body: include_str!("../ui/api.js") },
    Asset { path: "/ui/feed.js", content_type: JS, body: include_str!("../ui/feed.js") },
    Asset { path: "/ui/dom.js", content_type: JS, body: include_str!("../ui/dom.js") },
    Asset { path: "/ui/links.js", content_type: JS, body: include_str!("../ui/links.js") },
    Asset { path: "/ui/views/fleet.js", content_type: JS, body: include_str!("../ui/views/fleet.js") },
    Asset { path: "/ui/views/workspace.js", content_type: JS, body: include_str!("../ui/views/workspace.js") },
    Asset { path: "/ui/views/bundles.js", content_type: JS, body: include_str!("../ui/views/bundles.js") },
    Asset { path: "/ui/views/orgs.js", content_type: JS, body: include_str!("../ui/views/orgs.js") },
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

    /// The scripts: every `.js` asset (the page's module and those it imports).
    fn scripts() -> impl Iterator<Item = &'static Asset> {
        ASSETS.iter().filter(|asset| asset.path.ends_with(".js"))
    }

    /// The modules a script imports (`import … from "…"`, `import "…"`,
    /// `export … from "…"`, on one line or several), as the paths the
    /// browser asks for: each specifier must be relative (`./`, `../`) and
    /// is resolved against the script's own path.
    fn imports(asset: &Asset) -> Vec<String> {
        let mut found = Vec::new();
        let mut at = 0;
        while at < asset.body.len() {
            let rest = &asset.body[at..];
            let line_end = rest.find('\n').map_or(rest.len(), |end| end + 1);
            let statement = &rest[..rest.find(';').map_or(rest.len(), |end| end + 1)];
            let is_import = rest.starts_with("import ")
                || ((rest.starts_with("export {") || rest.starts_with("export *")) && statement.contains(" from "));
            if !is_import {
                at += line_end;
                continue;
            }
            let quoted = statement.rsplit_once(" from ").map_or(&statement["import ".len()..], |(_, from)| from);
            let specifier = quoted.trim().trim_end_matches(';').trim_matches('"');
            assert!(
                specifier.starts_with("./") || specifier.starts_with("../"),
                "{} imports {specifier:?}: a relative path on this origin, in double quotes",
                asset.path
            );
            let mut segments: Vec<&str> = asset.path.split('/').collect();
            segments.pop(); // the script's own file name
            for part in specifier.split('/') {
                match part {
                    "." => {}
                    ".." => {
                        segments.pop();
                    }
                    name => segments.push(name),
                }
            }
            found.push(segments.join("/"));
            at += statement.len();
        }
        found
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        let page = ASSETS[0].body;
        for referred in ["/ui/app.js", "/ui/app.css", "/ui/icon.svg"] {
            assert!(page.contains(referred), "index.html refers to {referred}");
        }
        assert!(page.contains(r#"<script type="module" src="/ui/app.js"></script>"#), "app.js is loaded as a module");
        for forbidden in ["http://", "https://", "<script>", " style=", " onclick="] {
            assert!(!page.contains(forbidden), "index.html has no {forbidden:?} (CSP: 'self' only, nothing inline)");
        }
        let protocol = format!("\"X-Hearth-Protocol\": \"{}\"", hearth_api::PROTOCOL_VERSION);
        assert!(
            scripts().any(|script| script.body.contains(&protocol)),
            "the scripts speak this build's protocol ({protocol})"
        );
        for script in scripts() {
            for (at, _) in script.body.match_indices("\"X-Hearth-Protocol\":") {
                assert!(
                    script.body[at..].starts_with(&protocol),
                    "{} speaks this build's protocol ({protocol})",
                    script.path
                );
            }
            for forbidden in ["http://", "https://", "eval(", "innerHTML", "localStorage", "document.cookie", "import("]
            {
                assert!(!script.body.contains(forbidden), "{} has no {forbidden:?}", script.path);
            }
        }
    }

    /// Every module a script imports is served (else the browser gets a 404
    /// and the page does not start), and every script is reached from the
    /// page's `app.js`: none is dead weight in the binary.
    #[test]
    fn the_module_graph_is_served_and_complete() {
        let served: Vec<&str> = ASSETS.iter().map(|asset| asset.path).collect();
        let mut reached = vec!["/ui/app.js".to_owned()];
        let mut next = 0;
        while next < reached.len() {
            let asset = ASSETS.iter().find(|asset| asset.path == reached[next]).expect("a reached module is served");
            for imported in imports(asset) {
                assert!(
                    served.contains(&imported.as_str()),
                    "{} imports {imported}, which is not in ASSETS",
                    asset.path
                );
                if !reached.contains(&imported) {
                    reached.push(imported);
                }
            }
            next += 1;
        }
        for script in scripts() {
            assert!(
                reached.iter().any(|path| path == script.path),
                "{} is not imported by app.js or a module it imports",
                script.path
            );
        }
        // The check finds what it is for.
        let views = Asset {
            path: "/ui/views/x.js",
            content_type: JS,
            body:
                "// import { x } from \"./not-an-import.js\";\nimport { h } from \"../dom.js\";\nimport \"./y.js\";\n\
                   import {\n  a,\n  b,\n} from \"./z.js\";\nexport { c } from \"../c.js\";\nexport function f() {}\n",
        };
        assert_eq!(imports(&views), ["/ui/dom.js", "/ui/views/y.js", "/ui/views/z.js", "/ui/c.js"]);
    }

    /// Every file under `ui/` is served: a new file needs its line in [`ASSETS`].
    #[test]
    fn every_file_of_the_ui_folder_is_an_asset() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut folders = vec![root.clone()];
        let mut files = Vec::new();
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("ui/ is readable") {
                let path = entry.expect("a ui/ entry").path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    let relative = path.strip_prefix(&root).expect("under ui/").to_string_lossy().replace('\\', "/");
                    files.push(if relative == "index.html" { "/".to_owned() } else { format!("/ui/{relative}") });
                }
            }
        }
        files.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|asset| asset.path.to_owned()).collect();
        served.sort();
        assert_eq!(files, served, "the files of ui/ and the lines of ASSETS");
    }

    /// Each asset is sent with the type its extension says (a module script
    /// as JavaScript, or the browser refuses it), a strong ETag and
    /// `no-cache`, and a matching `If-None-Match` gets a 304.
    #[test]
    fn every_asset_is_served_with_its_type_and_revalidates() {
        for (index, asset) in ASSETS.iter().enumerate() {
            let expected = match asset.path.rsplit_once('.').map(|(_, extension)| extension) {
                None => "text/html; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some(other) => panic!("{}: no type known for .{other}", asset.path),
            };
            let response = serve(index, &HeaderMap::new());
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.path);
            let headers = response.headers();
            assert_eq!(headers[CONTENT_TYPE], expected, "{}", asset.path);
            assert_eq!(headers[CACHE_CONTROL], "no-cache", "{}", asset.path);
            assert_eq!(headers[CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY_VALUE, "{}", asset.path);
            let etag = headers[ETAG].clone();
            let digest = hex::encode(Sha256::digest(asset.body.as_bytes()));
            assert_eq!(etag, format!("\"sha256-{digest}\"").as_str(), "{}", asset.path);
            let mut conditional = HeaderMap::new();
            conditional.insert(IF_NONE_MATCH, etag);
            assert_eq!(serve(index, &conditional).status(), StatusCode::NOT_MODIFIED, "{}", asset.path);
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
        for script in scripts() {
            assert_eq!(
                hand_built_paths(script.body),
                Vec::<String>::new(),
                "{} builds every API path with path`…`",
                script.path
            );
        }
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
