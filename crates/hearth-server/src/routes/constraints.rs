//! Constraints the server enforces that utoipa's derives cannot express,
//! written into the served OpenAPI document so that it tells the truth (a
//! schema-valid request is accepted, an invalid one refused; schemathesis
//! checks both in CI, `scripts/schemathesis`):
//!
//! - no NUL character in any string or object key (`extract::scan`), and
//!   free-form JSON (`agent_card`, `runtime_metadata`, unknown fields) is
//!   JSON without NUL (`JsonValue`);
//! - names (workspace, token, template, org): 1–255 characters, not blank, no
//!   control characters (`hearth_core::validate::name`); a workspace's role:
//!   no control characters;
//! - secret names `[A-Za-z_][A-Za-z0-9_]*` (at most 255), plugin names
//!   (`manifest/name.rs`), bundle paths (a conservative subset of
//!   `hearth_core::BundlePath`), plugin sources (`local://<name>` or a bare
//!   name; naming another plugin than the path is a documented 422), page
//!   cursors, page sizes, uuids.

use serde_json::{json, Map, Value};

const NO_NUL: &str = "^[^\\u0000]*$";
const UUID: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const NAME: &str =
    "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// Any text without control characters (`char::is_control`).
const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
const SECRET_NAME: &str = "^[A-Za-z_][A-Za-z0-9_]{0,254}$";
const PLUGIN_NAME: &str = "^[a-z0-9][a-z0-9._-]{0,127}$";
const PLUGIN_SOURCE: &str = "^(local://)?[a-z0-9][a-z0-9._-]{0,127}$";
/// Standard base64 with padding.
/// Canonical standard base64 (the decoder is strict about the padding bits).
const BASE64: &str = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$";
/// Segments of ASCII letters, digits and `_.+-` that do not start with a
/// dot (so never `.` or `..`), joined by `/`.
const BUNDLE_PATH: &str = "^[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,254}(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,254}){0,7}$";
/// A workspaces page's cursor (`hearth_store::WorkspaceCursor`): the last
/// workspace's creation time (Unix nanoseconds, 19 digits since 2001, as in
/// [`PEER_CURSOR`]) and id.
const WORKSPACE_CURSOR: &str =
    "^([0-9]{1,18}|[1-8][0-9]{18})\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// A peers page's cursor (`hearth_store::PeerCursor`): the group (`s`
/// siblings, `c` children, `p` parent), then the last peer's creation time
/// (Unix nanoseconds, up to 8999999999999999999 so that it always fits an
/// i64: the year 2255) and id.
const PEER_CURSOR: &str =
    "^[scp]\\.([0-9]{1,18}|[1-8][0-9]{18})\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
/// `http(s)://` and a host name, as `agent_url.rs` checks it: printable
/// ASCII without spaces, a host of letters, digits, `-` and `_` between
/// dots (a trailing dot allowed), a port 1–65535, then any path, query and
/// fragment. The first and the last label start with a letter and there
/// are two at least, so that no IP literal (perhaps private or loopback,
/// which the server refuses; a numeric last label is read as IPv4) and not
/// `metadata` is ever documented as valid. Or the poll-mode placeholder.
const AGENT_URL: &str = concat!(
    "^(remote://no-inbound|[Hh][Tt][Tt][Pp][Ss]?://",
    "[A-Za-z][A-Za-z0-9_-]*(\\.[A-Za-z0-9_-]+)*\\.[A-Za-z][A-Za-z0-9_-]*\\.?",
    "(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    "([/?#][!-~]*)?)$"
);

/// The document, with the constraints above.
pub fn document(openapi: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(openapi).unwrap_or_else(|_| json!({}));
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        schemas.insert("JsonValue".into(), json_value());
        for (name, schema) in schemas.iter_mut() {
            if name == "JsonValue" {
                continue;
            }
            strings_and_objects(schema);
        }
        for (schema, field) in [
            ("CreateWorkspaceRequest", "name"),
            ("CreateTokenRequest", "name"),
            ("CreateWorkspaceTokenRequest", "name"),
            ("ImportTemplateRequest", "name"),
            ("CreateOrgRequest", "name"),
        ] {
            if let Some(property) = schemas.get_mut(schema).and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
            {
                set(property, "pattern", json!(NAME));
                set(property, "maxLength", json!(255));
            }
        }
        if let Some(role) = schemas.get_mut("CreateWorkspaceRequest").and_then(|s| s.pointer_mut("/properties/role")) {
            set(role, "pattern", json!(NO_CONTROL));
        }
        for schema in ["RegisterRequest", "CreateWorkspaceRequest"] {
            if let Some(url) = schemas.get_mut(schema).and_then(|s| s.pointer_mut("/properties/url")) {
                set(url, "pattern", json!(AGENT_URL));
            }
        }
        for schema in ["ImportTemplateRequest", "UploadPluginRequest"] {
            if let Some(files) = schemas.get_mut(schema).and_then(|s| s.pointer_mut("/properties/files")) {
                set(files, "propertyNames", json!({"type": "string", "pattern": BUNDLE_PATH, "maxLength": 1024}));
                set(files, "minProperties", json!(1));
            }
        }
        for schema in ["InstalledPlugin", "PluginError"] {
            if let Some(name) = schemas.get_mut(schema).and_then(|s| s.pointer_mut("/properties/name")) {
                set(name, "pattern", json!(PLUGIN_NAME));
            }
        }
        if let Some(source) = schemas.get_mut("RecordInstallRequest").and_then(|s| s.pointer_mut("/properties/source"))
        {
            set(source, "pattern", json!(PLUGIN_SOURCE));
        }
        if let Some(base64) = schemas.get_mut("FileContent").and_then(|s| s.pointer_mut("/oneOf/1/properties/base64")) {
            set(base64, "pattern", json!(BASE64));
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for operation in item.values_mut() {
                operation_constraints(path, operation);
            }
        }
    }
    doc
}

fn operation_constraints(path: &str, operation: &mut Value) {
    if let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) {
        for parameter in parameters {
            let name = parameter.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
            let location = parameter.get("in").and_then(Value::as_str).unwrap_or("").to_owned();
            let Some(schema) = parameter.get_mut("schema") else { continue };
            strings_and_objects(schema);
            match (location.as_str(), name.as_str()) {
                ("path", "name") if path.contains("/plugins/") => set(schema, "pattern", json!(PLUGIN_NAME)),
                ("path", "path") => set(schema, "pattern", json!(BUNDLE_PATH)),
                ("query", "limit") => {
                    set(schema, "minimum", json!(1));
                    set(schema, "maximum", json!(1000));
                }
                ("query", "since") => set(schema, "minimum", json!(0)),
                ("query", "source") if path.ends_with("/download") => set(schema, "pattern", json!(PLUGIN_SOURCE)),
                ("query", "workspace_id" | "org") => {
                    set(schema, "format", json!("uuid"));
                    set(schema, "pattern", json!(UUID));
                }
                ("query", "cursor") if path == "/workspaces" => set(schema, "pattern", json!(WORKSPACE_CURSOR)),
                ("query", "cursor") if path.ends_with("/peers") => set(schema, "pattern", json!(PEER_CURSOR)),
                ("query", "q" | "template" | "plugin") if path == "/workspaces" => {
                    set(schema, "maxLength", json!(255));
                    set(schema, "pattern", json!(NO_CONTROL));
                }
                ("query", "status") if path == "/workspaces" => {
                    // Empty means any status (what the dashboard's "all" sends).
                    let statuses: Vec<&str> = std::iter::once("")
                        .chain(hearth_core::WorkspaceStatus::ALL.iter().map(|s| s.as_str()))
                        .collect();
                    set(schema, "enum", json!(statuses));
                }
                ("query", "for") if path.ends_with("/wait") => {
                    let statuses = hearth_core::WorkspaceStatus::ALL.iter().map(|s| format!("status={}", s.as_str()));
                    let conditions = hearth_api::CONDITION_TYPES.iter().map(|c| format!("condition={c}"));
                    set(schema, "enum", json!(statuses.chain(conditions).collect::<Vec<_>>()));
                }
                ("query", "cursor") => {
                    set(schema, "format", json!("uuid"));
                    set(schema, "pattern", json!(UUID));
                }
                _ => {}
            }
        }
    }
    if let Some(body) = operation.pointer_mut("/requestBody/content/application~1json/schema") {
        // Token bodies are optional: no body, or `null`, is the default request.
        if path.ends_with("/tokens") && body.get("$ref").is_some() {
            *body = json!({"oneOf": [{"type": "null"}, body.clone()]});
        }
        if path.ends_with("/secrets") {
            set(body, "propertyNames", json!({"type": "string", "pattern": SECRET_NAME}));
        }
        strings_and_objects(body);
    }
    // `/state` answers 404 with `deleted: true` for a removed workspace and
    // with an error body for one that never existed.
    if path.ends_with("/state") {
        if let Some(schema) = operation.pointer_mut("/responses/404/content/application~1json/schema") {
            *schema = json!({"anyOf": [
                {"$ref": "#/components/schemas/StateResponse"},
                {"$ref": "#/components/schemas/ApiErrorBody"}
            ]});
        }
    }
}

/// Free-form JSON as the server accepts it: any JSON without NUL in a
/// string or key (nesting is bounded too, at 64 levels).
fn json_value() -> Value {
    json!({
        "description": "Any JSON value without a NUL character in a string or key (at most 64 levels deep).",
        "anyOf": [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "number"},
            {"type": "string", "pattern": NO_NUL},
            {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
            {"type": "object", "propertyNames": {"type": "string", "pattern": NO_NUL},
             "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}}
        ]
    })
}

fn set(schema: &mut Value, key: &str, value: Value) {
    if let Some(object) = schema.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
}

fn has_type(schema: &Map<String, Value>, wanted: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == wanted,
        Some(Value::Array(types)) => types.iter().any(|t| t == wanted),
        _ => false,
    }
}

/// Walks a schema: strings without a pattern get "no NUL" (uuids their
/// pattern), objects that allow unknown members get "JSON without NUL" for
/// them and NUL-free keys, and untyped (free-form) schemas become JsonValue.
fn strings_and_objects(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else { return };
    if object.is_empty() {
        *schema = json!({"$ref": "#/components/schemas/JsonValue"});
        return;
    }
    if has_type(object, "string") && !object.contains_key("pattern") {
        let uuid = object.get("format").and_then(Value::as_str) == Some("uuid");
        object.insert("pattern".into(), json!(if uuid { UUID } else { NO_NUL }));
    }
    if has_type(object, "object") {
        if !object.contains_key("additionalProperties") {
            object.insert("additionalProperties".into(), json!({"$ref": "#/components/schemas/JsonValue"}));
        }
        if !object.contains_key("propertyNames") {
            object.insert("propertyNames".into(), json!({"type": "string"}));
        }
    }
    for key in ["properties"] {
        if let Some(Value::Object(properties)) = object.get_mut(key) {
            for property in properties.values_mut() {
                strings_and_objects(property);
            }
        }
    }
    for key in ["items", "additionalProperties", "propertyNames"] {
        if let Some(inner) = object.get_mut(key) {
            strings_and_objects(inner);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(options)) = object.get_mut(key) {
            for option in options {
                strings_and_objects(option);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_bundles_paths_fit_the_documented_pattern() {
        // The pattern is a subset of what BundlePath accepts: every path it
        // allows must be a valid bundle path (checked on typical ones here,
        // and by schemathesis in CI).
        for path in ["config.yaml", "prompts/tasks/audit.md", "model/tokenizer.bin", "a_b+c-d.e"] {
            assert!(hearth_core::bundle_path::BundlePath::new(path).is_ok(), "{path}");
        }
    }

    #[test]
    fn free_form_schemas_become_json_without_nul() {
        let mut schema = json!({"type": "object", "properties": {"card": {}, "s": {"type": "string"}}});
        strings_and_objects(&mut schema);
        assert_eq!(schema["properties"]["card"]["$ref"], "#/components/schemas/JsonValue");
        assert_eq!(schema["properties"]["s"]["pattern"], NO_NUL);
        assert_eq!(schema["additionalProperties"]["$ref"], "#/components/schemas/JsonValue");
    }

    /// Every value the document offers for an enumerated query parameter is
    /// one the server accepts (schemathesis sends them as valid input).
    #[test]
    fn enumerated_query_values_are_accepted_values() {
        let (_, openapi) = crate::routes::api(1024);
        let document = document(&openapi);
        let param = |path: &str, name: &str| {
            let parameters = document["paths"][path]["get"]["parameters"].as_array().cloned().unwrap_or_default();
            parameters.into_iter().find(|p| p["name"] == name).map(|p| p["schema"]["enum"].clone())
        };
        let Some(Value::Array(fors)) = param("/workspaces/{id}/wait", "for") else { panic!("wait's `for` is an enum") };
        for value in &fors {
            let text = value.as_str().unwrap_or_default();
            assert!(text.parse::<hearth_api::WaitFor>().is_ok(), "{text}");
        }
        assert!(fors.contains(&json!("condition=PluginsInstalled")) && fors.contains(&json!("status=online")));
        let Some(Value::Array(statuses)) = param("/workspaces", "status") else { panic!("status is an enum") };
        assert_eq!(statuses[0], json!(""), "empty: any status");
        for value in &statuses[1..] {
            let text = value.as_str().unwrap_or_default();
            assert!(text.parse::<hearth_core::WorkspaceStatus>().is_ok(), "{text}");
        }
        assert_eq!(statuses.len(), hearth_core::WorkspaceStatus::ALL.len() + 1);
    }
}
