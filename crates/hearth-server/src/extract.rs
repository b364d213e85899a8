//! Extractors whose rejections are `ApiError`s: a malformed body, query or id
//! is a 400 that names the problem, never a plain-text or 500 answer.

use hearth_api::ErrorCode;
use std::str::FromStr;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use hearth_core::{OrgId, TokenId, WorkspaceId};

use crate::error::ApiError;

/// A JSON body. The content type is not required (old runtimes omit it).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Serialize, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::BodyTooLarge, "request body is too large")
            } else {
                ApiError::bad_request(
                    ErrorCode::InvalidBody,
                    format!("cannot read request body: {}", rejection.body_text()),
                )
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, naming the offending field on type errors. A string (or key)
/// holding a NUL character is refused here, at the edge, whatever the route:
/// Postgres text and jsonb cannot store it, and both engines must answer the
/// same 400. So is an array where the wire type is an object: serde's derived
/// structs also accept their fields as a JSON array (`[null, null]` was a
/// token request), which the OpenAPI document does not allow.
pub fn parse_json<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(ErrorCode::InvalidBody, "request body is empty; expected a JSON object"));
    }
    // Every request body is a JSON object (a struct or a map).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "the request body must be a JSON object, not an array",
        ));
    }
    let scanned = scan(bytes);
    if scanned.too_deep {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidJson,
            format!("invalid JSON body: nesting is deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    if scanned.nul {
        // Only bad input pays for this second parse, which finds the field.
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(field) = nul_field(&value, "") {
                return Err(nul_error(&field));
            }
        }
    }
    // Plain serde first: tracking the path costs every request, and only a
    // body that fails needs it (the second parse names the field).
    let value: T = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(_) => return Err(parse_error::<T>(bytes)),
    };
    if scanned.array_of_non_objects {
        // Only a body with such an array pays for this: the struct a
        // sequence filled serializes as an object where the input has an array.
        let input: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidJson, format!("invalid JSON body: {e}")))?;
        let parsed = serde_json::to_value(&value).map_err(ApiError::internal)?;
        if let Some(field) = array_for_object(&input, &parsed, "") {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidField,
                format!("{field}: expected a JSON object, not an array"),
            )
            .field(field));
        }
    }
    Ok(value)
}

/// Why `bytes` is not a `T`, with the path of the field at fault: parses
/// again, tracking the path.
fn parse_error<T: DeserializeOwned>(bytes: &[u8]) -> ApiError {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(_) => match deserializer.end() {
            Ok(()) => return ApiError::bad_request(ErrorCode::InvalidJson, "invalid JSON body"),
            Err(e) => return ApiError::bad_request(ErrorCode::InvalidJson, format!("invalid JSON body: {e}")),
        },
        Err(error) => error,
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    if inner.is_syntax() || inner.is_eof() || path == "." {
        ApiError::bad_request(ErrorCode::InvalidJson, format!("invalid JSON body: {inner}"))
    } else {
        ApiError::bad_request(ErrorCode::InvalidField, format!("{path}: {inner}")).field(path)
    }
}

/// The path of the first place where `input` has an array and `parsed` (the
/// request as deserialized, serialized again) an object: serde filled a
/// struct from a sequence.
fn array_for_object(input: &serde_json::Value, parsed: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match (input, parsed) {
        (Value::Array(_), Value::Object(_)) => Some(path.to_owned()),
        (Value::Array(items), Value::Array(parsed)) => items
            .iter()
            .zip(parsed)
            .enumerate()
            .find_map(|(i, (item, parsed))| array_for_object(item, parsed, &format!("{path}[{i}]"))),
        (Value::Object(members), Value::Object(parsed)) => parsed.iter().find_map(|(key, parsed)| {
            let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            members.get(key).and_then(|member| array_for_object(member, parsed, &path))
        }),
        _ => None,
    }
}

/// Deepest nesting of arrays and objects accepted in a JSON body, known
/// fields and unknown ones alike (serde skips unknown values without a
/// depth limit).
pub const MAX_JSON_DEPTH: usize = 64;

/// What one pass over JSON text found: a `\u0000` escape in a string (the
/// only way a NUL can be in valid JSON), whether nesting goes deeper
/// than [`MAX_JSON_DEPTH`], and whether there is an array that could have
/// filled a struct: one whose first item is not an object (the wire's lists
/// of structs hold objects; a struct in sequence form starts with its first
/// field, and no request struct's first field is an object, so heartbeats
/// listing plugins are not parsed twice). Malformed text is left to the
/// parser to name.
#[derive(Debug, Default, PartialEq, Eq)]
struct Scan {
    nul: bool,
    too_deep: bool,
    array_of_non_objects: bool,
}

fn scan(bytes: &[u8]) -> Scan {
    let mut found = Scan::default();
    let (mut depth, mut in_string, mut i) = (0usize, false, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => {
                    if bytes.get(i + 1..i + 6) == Some(b"u0000".as_slice()) {
                        found.nul = true;
                    }
                    i += 1; // the escaped character is not a quote or a backslash
                }
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    if b == b'[' && !found.array_of_non_objects {
                        let next = bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
                        found.array_of_non_objects = !matches!(next, Some(b'{' | b']'));
                    }
                    depth += 1;
                    if depth > MAX_JSON_DEPTH {
                        found.too_deep = true;
                        return found;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    found
}

/// The path (`a.b[2]`, or `a.<key>` for a key) of the first string that
/// holds a NUL character.
fn nul_field(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::String(s) if s.contains('\0') => Some(if path.is_empty() { "body".to_owned() } else { path.to_owned() }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_field(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else {
                nul_field(v, &join(k))
            }
        }),
        _ => None,
    }
}

fn nul_error(field: &str) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidField, format!("{field}: NUL characters (\\u0000) are not allowed in text"))
        .field(field.to_owned())
}

/// A query string.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(param) = parts.uri.query().and_then(nul_query_param) {
            return Err(nul_error(&param));
        }
        Query::<T>::from_request_parts(parts, state).await.map(|Query(value)| ApiQuery(value)).map_err(|rejection| {
            let text = rejection.body_text();
            let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
            ApiError::bad_request(ErrorCode::InvalidQuery, format!("invalid query string: {text}"))
        })
    }
}

/// The name of the first query parameter whose name or value is a
/// percent-encoded NUL (`%00`).
fn nul_query_param(query: &str) -> Option<String> {
    query.split('&').find(|pair| contains_nul_escape(pair)).map(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        if contains_nul_escape(name) {
            "query".to_owned()
        } else {
            name.to_owned()
        }
    })
}

fn contains_nul_escape(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// The refusal of a request whose path holds a percent-encoded NUL
/// (`%00`), before any route sees it: path segments reach text columns
/// (template names). Checked by [`crate::edge`].
pub fn nul_in_path(path: &str) -> Option<ApiError> {
    contains_nul_escape(path).then(|| {
        ApiError::bad_request(ErrorCode::InvalidPath, "the request path contains a NUL character (%00)").field("path")
    })
}

/// A request's path parameters, parsed into their types before the
/// handler runs: a malformed id is a 400 `invalid_id` that names it
/// (`malformed workspace id: "x" is not a UUID`), never a plain-text
/// rejection. `T` is one parameter or a pair ([`PathParams`]).
pub struct ApiPath<T>(pub T);

/// What a route's path holds, parsed from its raw segments in order.
pub trait PathParams: Sized {
    fn parse(raw: &[&str]) -> Result<Self, ApiError>;
}

/// One path segment's type.
pub trait PathSegment: Sized {
    fn parse_segment(raw: &str) -> Result<Self, ApiError>;
}

impl PathSegment for WorkspaceId {
    fn parse_segment(raw: &str) -> Result<Self, ApiError> {
        parse_id(raw, "workspace id")
    }
}

impl PathSegment for TokenId {
    fn parse_segment(raw: &str) -> Result<Self, ApiError> {
        parse_id(raw, "token id")
    }
}

impl PathSegment for OrgId {
    fn parse_segment(raw: &str) -> Result<Self, ApiError> {
        parse_id(raw, "org id")
    }
}

/// A name or a file path: checked by the route, which knows its rules.
impl PathSegment for String {
    fn parse_segment(raw: &str) -> Result<Self, ApiError> {
        Ok(raw.to_owned())
    }
}

macro_rules! one_segment {
    ($($t:ty),*) => {$(
        impl PathParams for $t {
            fn parse(raw: &[&str]) -> Result<Self, ApiError> {
                match raw {
                    [one] => <$t>::parse_segment(one),
                    _ => Err(ApiError::internal("a route's path parameters do not match its handler")),
                }
            }
        }
    )*};
}
one_segment!(WorkspaceId, TokenId, OrgId, String);

impl<A: PathSegment, B: PathSegment> PathParams for (A, B) {
    fn parse(raw: &[&str]) -> Result<Self, ApiError> {
        match raw {
            [a, b] => Ok((A::parse_segment(a)?, B::parse_segment(b)?)),
            _ => Err(ApiError::internal("a route's path parameters do not match its handler")),
        }
    }
}

impl<T: PathParams, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request(ErrorCode::InvalidId, rejection.body_text()))?;
        let segments: Vec<&str> = raw.iter().map(|(_, value)| value).collect();
        T::parse(&segments).map(ApiPath)
    }
}

/// Parses an id from a path segment or header: a malformed id is a 400.
pub fn parse_id<T: FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(ErrorCode::InvalidId, format!("malformed {what}: {raw:?} is not a UUID")))
}

/// The refusal of a request whose `X-Hearth-Protocol` names a version this
/// server does not speak, with a code that says which side to upgrade. No
/// header is version 1 (the old SDK), which is accepted. Checked by
/// [`crate::edge`].
pub fn protocol_refusal(headers: &axum::http::HeaderMap) -> Option<ApiError> {
    use hearth_api::{MIN_PROTOCOL_VERSION, PROTOCOL_HEADER, PROTOCOL_VERSION};
    let value = headers.get(PROTOCOL_HEADER)?;
    let accepted = || format!("this server accepts protocol versions {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}");
    let refusal = match value.to_str().ok().and_then(|text| text.trim().parse::<u32>().ok()) {
        None => ApiError::bad_request(
            ErrorCode::InvalidHeader,
            format!("{PROTOCOL_HEADER} must be a protocol version number; {}", accepted()),
        ),
        Some(version) if version < MIN_PROTOCOL_VERSION => ApiError::new(
            axum::http::StatusCode::UPGRADE_REQUIRED,
            ErrorCode::ProtocolTooOld,
            format!("protocol version {version} is too old: {}; upgrade the runtime", accepted()),
        ),
        Some(version) if version > PROTOCOL_VERSION => ApiError::bad_request(
            ErrorCode::ProtocolTooNew,
            format!("protocol version {version} is newer than this server speaks: {}; upgrade Hearth", accepted()),
        ),
        Some(_) => return None,
    };
    Some(refusal.field(PROTOCOL_HEADER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_nul_escapes_only_inside_strings_and_not_after_a_backslash() {
        assert!(scan(br#"{"a": "x\u0000y"}"#).nul);
        assert!(!scan(br#"{"a": "x\\u0000y"}"#).nul, "an escaped backslash, then text");
        assert!(scan(br#"{"a": "x\\\u0000y"}"#).nul, "an escaped backslash, then a NUL escape");
        assert!(!scan(br#"{"u0000": 1}"#).nul);
        assert!(scan(br#"{"k\u0000": 1}"#).nul, "keys too");
    }

    #[test]
    fn the_scan_notes_arrays_that_could_be_structs_but_not_lists_of_objects() {
        assert!(scan(br#"{"a": [["p", null]]}"#).array_of_non_objects);
        assert!(scan(br#"{"a": [{"n": 1}, ["b"]]}"#).array_of_non_objects);
        assert!(scan(br#"{"a": [ 1]}"#).array_of_non_objects);
        assert!(!scan(br#"{"a": [ {"n": 1}], "b": [ ]}"#).array_of_non_objects);
        assert!(!scan(br#"{"a": "[1]"}"#).array_of_non_objects, "not inside strings");
    }

    #[test]
    fn arrays_where_the_type_has_an_object_are_refused_naming_the_field() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        struct Item {
            name: String,
        }
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        struct Body {
            #[serde(default)]
            items: Vec<Item>,
            #[serde(default)]
            free: Option<serde_json::Value>,
        }
        let refused = |json: &str| *parse_json::<Body>(json.as_bytes()).unwrap_err().body;
        assert_eq!(refused(r#" [[]]"#).code, ErrorCode::InvalidBody);
        let body = refused(r#"{"items": [{"name": "a"}, ["b"]]}"#);
        assert_eq!((body.code, body.field.as_deref()), (ErrorCode::InvalidField, Some("items[1]")));
        let fine = parse_json::<Body>(br#"{"items": [{"name": "a"}], "free": [["x"], 1], "other": [2]}"#).unwrap();
        assert_eq!(fine.items.len(), 1);
    }

    #[test]
    fn a_body_that_does_not_parse_is_refused_naming_the_field_or_the_syntax() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        struct Inner {
            count: u32,
        }
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        struct Body {
            name: String,
            inner: Inner,
        }
        let refused = |json: &str| *parse_json::<Body>(json.as_bytes()).unwrap_err().body;
        let body = refused(r#"{"name": "a", "inner": {"count": -1}}"#);
        assert_eq!((body.code, body.field.as_deref()), (ErrorCode::InvalidField, Some("inner.count")));
        assert!(body.error.starts_with("inner.count: invalid value: integer `-1`"), "{}", body.error);
        let body = refused(r#"{"inner": {"count": 1}}"#);
        assert_eq!(
            (body.code, body.error.as_str()),
            (ErrorCode::InvalidJson, "invalid JSON body: missing field `name` at line 1 column 23")
        );
        let body = refused(r#"{"name": "a", "inner": {"count": 1}"#);
        assert_eq!(body.code, ErrorCode::InvalidJson);
        assert!(body.error.contains("EOF"), "{}", body.error);
        let body = refused(r#"{"name": "a", "inner": {"count": 1}} {}"#);
        assert_eq!(
            (body.code, body.error.as_str()),
            (ErrorCode::InvalidJson, "invalid JSON body: trailing characters at line 1 column 38")
        );
        let fine = parse_json::<Body>(br#" {"name": "a", "inner": {"count": 7}} "#).unwrap();
        assert_eq!((fine.name.as_str(), fine.inner.count), ("a", 7));
    }

    #[test]
    fn the_scan_bounds_nesting_but_not_brackets_inside_strings() {
        let deep = format!("{}{}", "[".repeat(MAX_JSON_DEPTH + 1), "]".repeat(MAX_JSON_DEPTH + 1));
        assert!(scan(deep.as_bytes()).too_deep);
        let ok = format!("{}{}", "[".repeat(MAX_JSON_DEPTH), "]".repeat(MAX_JSON_DEPTH));
        assert!(!scan(ok.as_bytes()).too_deep);
        let in_string = format!("{{\"a\": \"{}\"}}", "[".repeat(1000));
        assert!(!scan(in_string.as_bytes()).too_deep);
        assert!(!scan(br#"{"a": "\"[[[["}"#).too_deep, "an escaped quote does not end the string");
    }
}
