//! Template `config.yaml` and plugin `plugin.yaml`: parsing and validation.
//!
//! Both files are written by people, so every rejection must say which file,
//! which field and what is wrong (with line and column for YAML syntax), in one
//! sentence an operator can act on. Parsing goes through a generic YAML value
//! first and then checks fields by hand, rather than deriving `Deserialize` on
//! the target types, because serde's derived messages ("invalid type: map,
//! expected a string") do not name fields well enough.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map as JsonMap, Value as Json};
use serde_norway::{Mapping, Value as Yaml};

use crate::digest::PLUGIN_MANIFEST;
use crate::validate::MAX_NAME_CHARS;

/// File name of a template's manifest.
pub const TEMPLATE_CONFIG: &str = "config.yaml";

/// Longest plugin name, in bytes (the `{0,127}` of the pattern plus the first character).
pub const MAX_PLUGIN_NAME_BYTES: usize = 128;

/// The plugin name pattern, for messages and documentation.
pub const PLUGIN_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,127}$";

/// Quotes user text for an error message: escaped (so control characters cannot
/// corrupt logs) and truncated, since messages reach HTTP responses.
fn quote(text: &str) -> String {
    const MAX: usize = 120;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

/// True when `name` matches `^[a-z0-9][a-z0-9._-]{0,127}$`.
///
/// The pattern keeps plugin names safe as URL path segments, file names and
/// tarball names (`<name>.tar.gz`) without any escaping: no `/`, no leading
/// `.` (so never `.` or `..`), no upper case (so no case-folding collisions).
pub fn is_valid_plugin_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.len() < MAX_PLUGIN_NAME_BYTES
                && rest.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => false,
    }
}

/// A plugin name that matches [`PLUGIN_NAME_PATTERN`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PluginName(String);

/// A string that is not a valid plugin name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plugin name {name}: it must match {PLUGIN_NAME_PATTERN} (lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters)")]
pub struct InvalidPluginName {
    /// The offending name, quoted and truncated for display.
    pub name: String,
}

impl PluginName {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidPluginName> {
        let name = name.into();
        if is_valid_plugin_name(&name) {
            Ok(PluginName(name))
        } else {
            Err(InvalidPluginName { name: quote(&name) })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PluginName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for PluginName {
    type Err = InvalidPluginName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginName::new(s)
    }
}

impl TryFrom<String> for PluginName {
    type Error = InvalidPluginName;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        PluginName::new(value)
    }
}

impl From<PluginName> for String {
    fn from(value: PluginName) -> Self {
        value.0
    }
}

/// Deserializing validates, so a stored or received `PluginName` is always valid.
impl<'de> Deserialize<'de> for PluginName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PluginName::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Why a `config.yaml` or `plugin.yaml` was refused. `file` is the manifest's
/// file name; `field` is a path such as `plugins[2]` or `env.HOME`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: invalid YAML at line {line} column {column}: {message}")]
    Syntax { file: &'static str, line: usize, column: usize, message: String },
    #[error("{file}: invalid YAML: {message}")]
    SyntaxNoLocation { file: &'static str, message: String },
    #[error("{file}: the document must be a mapping of fields to values, but it is {found}")]
    NotAMapping { file: &'static str, found: &'static str },
    #[error("{file}: the required field `{field}` is missing")]
    MissingField { file: &'static str, field: &'static str },
    #[error("{file}: the field `{field}` must be {expected}, but it is {found}")]
    WrongType { file: &'static str, field: String, expected: &'static str, found: &'static str },
    #[error("{file}: the field `{field}` must not be empty")]
    EmptyField { file: &'static str, field: &'static str },
    #[error("{file}: the field `{field}` {reason}")]
    InvalidField { file: &'static str, field: &'static str, reason: String },
    #[error("{file}: the field `{field}` holds the plugin name {name}, which does not match {PLUGIN_NAME_PATTERN}")]
    InvalidPluginName { file: &'static str, field: String, name: String },
    #[error("{file}: the plugin {name} is listed more than once in `plugins`")]
    DuplicatePlugin { file: &'static str, name: String },
    #[error("{file}: the key at `{field}` must be a string, number, boolean or null, but it is {found}")]
    UnsupportedKey { file: &'static str, field: String, found: &'static str },
    #[error("{file}: the key `{field}` appears twice once keys are converted to strings")]
    DuplicateKey { file: &'static str, field: String },
    #[error("{file}: the field `{field}` holds {value}, which JSON cannot represent")]
    NonFiniteNumber { file: &'static str, field: String, value: String },
    #[error("{file}: the field `{field}` holds a NUL character (\\0), which is not allowed in text")]
    NulCharacter { file: &'static str, field: String },
}

/// A template's `config.yaml`, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateConfig {
    /// Display name of the template; non-empty, at most 255 characters, no
    /// control characters (the same rule as workspace names).
    pub name: String,
    /// Runtime the template expects. `None` when absent, null or blank.
    pub runtime: Option<String>,
    /// Model the template expects. `None` when absent, null or blank.
    pub model: Option<String>,
    /// Declared plugins, in file order, without duplicates.
    pub plugins: Vec<PluginName>,
    /// Every other top-level field, converted to JSON: always an object.
    /// Kept so runtimes get the free-form settings without Hearth having to
    /// understand them.
    pub settings: Json,
}

/// A plugin's `plugin.yaml`, validated. Any `sha256:` field in the input is
/// ignored: Hearth computes the hash itself and writes it on download (see
/// [`plugin_yaml_with_sha256`]). Unknown fields are ignored too, so plugins
/// written for the SDK with extra metadata are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginManifest {
    pub name: PluginName,
    /// Free-form version text, trimmed. A YAML number such as `1.10` is kept
    /// as written (`"1.10"`, not `"1.1"`).
    pub version: String,
    pub description: Option<String>,
}

impl TemplateConfig {
    /// Parses and validates a template's `config.yaml`.
    pub fn parse(yaml: &str) -> Result<Self, ManifestError> {
        let file = TEMPLATE_CONFIG;
        let mut top = load_mapping(file, yaml)?;

        let name = match take(&mut top, "name") {
            None => return Err(ManifestError::MissingField { file, field: "name" }),
            Some(value) => expect_string(file, "name", value)?,
        };
        check_display_name(file, "name", &name)?;
        let runtime = optional_string(file, "runtime", take(&mut top, "runtime"))?;
        let model = optional_string(file, "model", take(&mut top, "model"))?;
        let plugins = plugin_list(file, take(&mut top, "plugins"))?;

        let mut settings = JsonMap::new();
        for (key, value) in top {
            let key = key_to_string(file, "", key)?;
            let converted = yaml_to_json(file, &key, value)?;
            settings.insert(key, converted);
        }
        Ok(TemplateConfig { name, runtime, model, plugins, settings: Json::Object(settings) })
    }
}

impl PluginManifest {
    /// Parses and validates a plugin's `plugin.yaml`.
    pub fn parse(yaml: &str) -> Result<Self, ManifestError> {
        let file = PLUGIN_MANIFEST;
        let mut top = load_mapping(file, yaml)?;

        let name = match take(&mut top, "name") {
            None => return Err(ManifestError::MissingField { file, field: "name" }),
            Some(value) => expect_string(file, "name", value)?,
        };
        let name = PluginName::new(name).map_err(|e| ManifestError::InvalidPluginName {
            file,
            field: "name".to_owned(),
            name: e.name,
        })?;

        let version = match take(&mut top, "version") {
            None => return Err(ManifestError::MissingField { file, field: "version" }),
            Some(Yaml::String(text)) => text,
            Some(Yaml::Number(number)) => version_as_written(yaml).unwrap_or_else(|| number.to_string()),
            Some(other) => {
                return Err(ManifestError::WrongType {
                    file,
                    field: "version".to_owned(),
                    expected: "a string (or a number such as 1.0)",
                    found: kind(&other),
                })
            }
        };
        let version = version.trim().to_owned();
        if version.is_empty() {
            return Err(ManifestError::EmptyField { file, field: "version" });
        }
        let description = match take(&mut top, "description") {
            None => None,
            Some(value) => Some(expect_string(file, "description", value)?),
        };
        Ok(PluginManifest { name, version, description })
    }
}

/// The text of a numeric `version:` exactly as written. The generic YAML value
/// has already turned `1.10` into the float 1.1; deserializing the same scalar
/// straight into a `String` yields its source text instead.
fn version_as_written(yaml: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct VersionText {
        version: String,
    }
    let yaml = yaml.strip_prefix('\u{feff}').unwrap_or(yaml);
    serde_norway::from_str::<VersionText>(yaml).ok().map(|v| v.version)
}

/// Parses YAML text into a generic value. A leading byte-order mark (common
/// from Windows editors) is dropped first: the YAML library mis-reads some
/// documents that start with one.
fn parse_yaml(yaml: &str) -> Result<Yaml, serde_norway::Error> {
    serde_norway::from_str(yaml.strip_prefix('\u{feff}').unwrap_or(yaml))
}

/// Parses `yaml` into its top-level mapping, with merge keys (`<<`) applied.
fn load_mapping(file: &'static str, yaml: &str) -> Result<Mapping, ManifestError> {
    let mut value = parse_yaml(yaml).map_err(|e| syntax_error(file, &e))?;
    value.apply_merge().map_err(|e| syntax_error(file, &e))?;
    if let Some(field) = nul_field(&value, "") {
        return Err(ManifestError::NulCharacter { file, field });
    }
    match value {
        Yaml::Mapping(mapping) => Ok(mapping),
        Yaml::Null => Err(ManifestError::NotAMapping { file, found: "empty" }),
        other => Err(ManifestError::NotAMapping { file, found: kind(&other) }),
    }
}

/// The dotted path of the first key or string holding a NUL character
/// (only a double-quoted `"\\0"` escape can put one there).
fn nul_field(value: &Yaml, path: &str) -> Option<String> {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Yaml::String(text) if text.contains('\0') => {
            Some(if path.is_empty() { "(document)".into() } else { path.into() })
        }
        Yaml::Sequence(items) => items.iter().enumerate().find_map(|(i, v)| nul_field(v, &format!("{path}[{i}]"))),
        Yaml::Mapping(mapping) => mapping.iter().find_map(|(k, v)| {
            let key = match k {
                Yaml::String(text) => text.replace('\0', "\\0"),
                _ => String::from("?"),
            };
            nul_field(k, &join(&key)).or_else(|| nul_field(v, &join(&key)))
        }),
        Yaml::Tagged(tagged) => nul_field(&tagged.value, path),
        _ => None,
    }
}

/// Turns a YAML error into [`ManifestError::Syntax`], moving the position out
/// of the library's message ("… at line 3 column 5, while …") into our own
/// fixed prefix so every message has the same shape.
fn syntax_error(file: &'static str, error: &serde_norway::Error) -> ManifestError {
    let text = error.to_string();
    match error.location() {
        Some(location) => {
            let (line, column) = (location.line(), location.column());
            let suffix = format!(" at line {line} column {column}");
            let message = match text.find(&suffix) {
                Some(at) => {
                    let rest = text[at + suffix.len()..].trim_start_matches(',');
                    format!("{}{}", &text[..at], rest)
                }
                None => text,
            };
            ManifestError::Syntax { file, line, column, message }
        }
        None => ManifestError::SyntaxNoLocation { file, message: text },
    }
}

/// Removes and returns the top-level field `key`. Null counts as absent:
/// `runtime:` with nothing after it means "not set", as an operator expects.
/// (Unknown fields keep their nulls: they go into the settings verbatim.)
fn take(mapping: &mut Mapping, key: &str) -> Option<Yaml> {
    mapping.remove(key).filter(|value| !value.is_null())
}

/// A human name for a YAML value's kind, for "must be X, but it is Y".
fn kind(value: &Yaml) -> &'static str {
    match value {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

fn expect_string(file: &'static str, field: &str, value: Yaml) -> Result<String, ManifestError> {
    match value {
        Yaml::String(text) => Ok(text),
        other => {
            Err(ManifestError::WrongType { file, field: field.to_owned(), expected: "a string", found: kind(&other) })
        }
    }
}

/// An optional string field; blank counts as absent.
fn optional_string(file: &'static str, field: &str, value: Option<Yaml>) -> Result<Option<String>, ManifestError> {
    match value {
        None => Ok(None),
        Some(value) => {
            let text = expect_string(file, field, value)?;
            Ok(if text.trim().is_empty() { None } else { Some(text) })
        }
    }
}

/// The same rule as workspace names ([`crate::validate::name`]), reported
/// through the manifest error type.
fn check_display_name(file: &'static str, field: &'static str, value: &str) -> Result<(), ManifestError> {
    if value.trim().is_empty() {
        return Err(ManifestError::EmptyField { file, field });
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(ManifestError::InvalidField {
            file,
            field,
            reason: format!("must be at most {MAX_NAME_CHARS} characters"),
        });
    }
    if value.chars().any(char::is_control) {
        return Err(ManifestError::InvalidField { file, field, reason: "must not contain control characters".into() });
    }
    Ok(())
}

fn plugin_list(file: &'static str, value: Option<Yaml>) -> Result<Vec<PluginName>, ManifestError> {
    let items = match value {
        None => return Ok(Vec::new()),
        Some(Yaml::Sequence(items)) => items,
        Some(other) => {
            return Err(ManifestError::WrongType {
                file,
                field: "plugins".into(),
                expected: "a list of plugin names",
                found: kind(&other),
            })
        }
    };
    let mut seen = BTreeSet::new();
    let mut plugins = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let field = format!("plugins[{index}]");
        let name = expect_string(file, &field, item)?;
        let name = PluginName::new(name).map_err(|e| ManifestError::InvalidPluginName {
            file,
            field: field.clone(),
            name: e.name,
        })?;
        if !seen.insert(name.clone()) {
            return Err(ManifestError::DuplicatePlugin { file, name: quote(name.as_str()) });
        }
        plugins.push(name);
    }
    Ok(plugins)
}

/// Joins a field path for messages: `env` + `HOME` = `env.HOME`.
fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Converts a mapping key to a JSON object key the way Python's `json.dumps`
/// does for a `yaml.safe_load`ed document (which is how runtimes see the same
/// file): strings as is, numbers and booleans as their text, null as `"null"`.
/// Lists and mappings cannot be JSON keys.
fn key_to_string(file: &'static str, parent: &str, key: Yaml) -> Result<String, ManifestError> {
    match key {
        Yaml::String(text) => Ok(text),
        Yaml::Number(number) => Ok(number.to_string()),
        Yaml::Bool(flag) => Ok(flag.to_string()),
        Yaml::Null => Ok("null".to_owned()),
        Yaml::Tagged(tagged) => key_to_string(file, parent, tagged.value),
        other => Err(ManifestError::UnsupportedKey { file, field: child(parent, "?"), found: kind(&other) }),
    }
}

/// Converts a settings value to JSON. YAML tags are dropped (their value is
/// kept); NaN and infinities are refused because JSON has no spelling for them
/// and silently turning them into `null` would change the operator's meaning.
fn yaml_to_json(file: &'static str, field: &str, value: Yaml) -> Result<Json, ManifestError> {
    Ok(match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(flag) => Json::Bool(flag),
        Yaml::Number(number) => {
            if let Some(n) = number.as_i64() {
                Json::from(n)
            } else if let Some(n) = number.as_u64() {
                Json::from(n)
            } else {
                let float = number.as_f64().unwrap_or(f64::NAN);
                match serde_json::Number::from_f64(float) {
                    Some(n) => Json::Number(n),
                    None => {
                        return Err(ManifestError::NonFiniteNumber {
                            file,
                            field: field.to_owned(),
                            value: number.to_string(),
                        })
                    }
                }
            }
        }
        Yaml::String(text) => Json::String(text),
        Yaml::Sequence(items) => Json::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(file, &format!("{field}[{i}]"), item))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(mapping) => {
            let mut object = JsonMap::new();
            for (key, value) in mapping {
                let key = key_to_string(file, field, key)?;
                let path = child(field, &key);
                let converted = yaml_to_json(file, &path, value)?;
                if object.insert(key, converted).is_some() {
                    return Err(ManifestError::DuplicateKey { file, field: path });
                }
            }
            Json::Object(object)
        }
        Yaml::Tagged(tagged) => yaml_to_json(file, field, tagged.value)?,
    })
}

/// Returns `original_yaml` with a top-level `sha256: <sha256>` line: an
/// existing top-level `sha256:` line (and any indented continuation of its
/// value) is replaced in place, otherwise the line is appended at the end.
/// Every other byte is kept, so comments and formatting the plugin author
/// wrote survive the download, and the SDK finds the hash it verifies against.
///
/// Each edit is checked by parsing the result and comparing it with the
/// original document plus the new field. When a plain line edit would change
/// the meaning (a file whose last value is a `|` block scalar without a final
/// newline, where appending a newline would change that value; a flow-style
/// `{…}` document; a `...` end marker; a hash text YAML would read as a
/// number), the line is inserted at the top instead, the value is quoted, or,
/// as a last resort, the document is re-serialized with the field set
/// (formatting and comments are then lost, the content is not). Input that is
/// not a YAML mapping at all gets the line-edited text back.
pub fn plugin_yaml_with_sha256(original_yaml: &str, sha256: &str) -> String {
    let expected = match parse_yaml(original_yaml) {
        Ok(Yaml::Mapping(mut mapping)) => {
            mapping.insert(Yaml::from("sha256"), Yaml::from(sha256));
            Some(Yaml::Mapping(mapping))
        }
        _ => None,
    };
    let acceptable = |text: &str| match (&expected, parse_yaml(text)) {
        (Some(expected), Ok(actual)) => actual == *expected,
        // The original did not parse (say, duplicate sha256 keys): settle for
        // a document that now carries the hash.
        (None, Ok(Yaml::Mapping(mapping))) => mapping.get("sha256").and_then(Yaml::as_str) == Some(sha256),
        _ => false,
    };
    let quoted = serde_json::to_string(sha256).unwrap_or_else(|_| format!("\"{}\"", sha256.escape_default()));
    let plain_is_safe = !sha256.is_empty() && sha256.bytes().all(|b| b.is_ascii_alphanumeric());

    let mut first_attempt = None;
    for value in [plain_is_safe.then_some(sha256), Some(quoted.as_str())].into_iter().flatten() {
        for placement in [Placement::End, Placement::Start] {
            let edited = set_sha256_line(original_yaml, value, placement);
            if acceptable(&edited) {
                return edited;
            }
            first_attempt.get_or_insert(edited);
        }
    }
    if let Some(Ok(text)) = expected.as_ref().map(serde_norway::to_string) {
        return text;
    }
    first_attempt.unwrap_or_else(|| set_sha256_line(original_yaml, &quoted, Placement::End))
}

/// Where [`set_sha256_line`] puts the line when the document has none yet.
#[derive(Clone, Copy)]
enum Placement {
    Start,
    End,
}

/// The line edit behind [`plugin_yaml_with_sha256`]; `value` is already in
/// YAML scalar form.
fn set_sha256_line(original: &str, value: &str, placement: Placement) -> String {
    let newline = if original.contains("\r\n") { "\r\n" } else { "\n" };
    let replacement = format!("sha256: {value}");
    let lines: Vec<&str> = original.split_inclusive('\n').collect();
    let mut out = String::with_capacity(original.len() + replacement.len() + 2);
    let mut replaced = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let (body, ending) = split_line_ending(line);
        let (bom, body) = match body.strip_prefix('\u{feff}') {
            Some(rest) if i == 0 => ("\u{feff}", rest),
            _ => ("", body),
        };
        i += 1;
        if !is_top_level_sha256(body) {
            out.push_str(line);
            continue;
        }
        // Keep only one sha256 line, even if the input had duplicates.
        if !replaced {
            out.push_str(bom);
            out.push_str(&replacement);
            out.push_str(ending);
            replaced = true;
        }
        // Skip the old value's continuation: following indented lines, and
        // blank lines between them, but not blank lines after the last one.
        let mut j = i;
        while j < lines.len() {
            let next = split_line_ending(lines[j]).0;
            if next.trim().is_empty() {
                j += 1;
            } else if next.starts_with([' ', '\t']) {
                j += 1;
                i = j;
            } else {
                break;
            }
        }
    }
    if replaced {
        return out;
    }
    match placement {
        Placement::End => {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(newline);
            }
            out.push_str(&replacement);
            out.push_str(newline);
            out
        }
        Placement::Start => {
            let (bom, rest) = match original.strip_prefix('\u{feff}') {
                Some(rest) => ("\u{feff}", rest),
                None => ("", original),
            };
            format!("{bom}{replacement}{newline}{rest}")
        }
    }
}

fn split_line_ending(line: &str) -> (&str, &str) {
    if let Some(body) = line.strip_suffix("\r\n") {
        (body, "\r\n")
    } else if let Some(body) = line.strip_suffix('\n') {
        (body, "\n")
    } else {
        (line, "")
    }
}

/// True for a line that starts a top-level `sha256` key: `sha256:`,
/// `"sha256":` or `'sha256':` at column 0, with optional spaces before the
/// colon and a space, tab or end of line after it (so `sha256sum: x` and the
/// plain scalar `sha256:x` do not match).
fn is_top_level_sha256(line: &str) -> bool {
    let rest = ["sha256", "\"sha256\"", "'sha256'"].iter().find_map(|key| line.strip_prefix(key));
    let Some(rest) = rest else { return false };
    let Some(after) = rest.trim_start_matches([' ', '\t']).strip_prefix(':') else { return false };
    after.is_empty() || after.starts_with([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (yaml, name, runtime, model, plugins, settings)
    type AcceptCase<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a [&'a str], Json);

    fn config(yaml: &str) -> Result<TemplateConfig, ManifestError> {
        TemplateConfig::parse(yaml)
    }

    fn plugin(yaml: &str) -> Result<PluginManifest, ManifestError> {
        PluginManifest::parse(yaml)
    }

    fn names(list: &[&str]) -> Vec<PluginName> {
        list.iter().map(|n| PluginName::new(*n).unwrap()).collect()
    }

    #[test]
    fn plugin_names() {
        let long_ok = format!("a{}", "b".repeat(127));
        let long_bad = format!("a{}", "b".repeat(128));
        for ok in ["a", "0", "git", "my-plugin", "my_plugin", "v1.2", "a.", "a-", "9lives", "a..b", long_ok.as_str()] {
            assert!(is_valid_plugin_name(ok), "{ok:?} rejected");
            assert_eq!(PluginName::new(ok).unwrap().as_str(), ok);
        }
        for bad in
            ["", ".", "..", ".hidden", "-x", "_x", "A", "myPlugin", "a/b", "a b", "a\\b", "é", "a\n", "a:b", &long_bad]
        {
            assert!(!is_valid_plugin_name(bad), "{bad:?} accepted");
            assert!(PluginName::new(bad).is_err());
        }
        let msg = PluginName::new("Bad/Name").unwrap_err().to_string();
        assert!(
            msg.starts_with("invalid plugin name \"Bad/Name\": it must match ^[a-z0-9][a-z0-9._-]{0,127}$"),
            "{msg}"
        );
        assert!(serde_json::from_str::<PluginName>("\"../x\"").is_err());
        assert_eq!(serde_json::from_str::<PluginName>("\"ok\"").unwrap().as_str(), "ok");
        assert_eq!(serde_json::to_string(&PluginName::new("ok").unwrap()).unwrap(), "\"ok\"");
    }

    #[test]
    fn nul_characters_are_refused_with_their_field() {
        let err = TemplateConfig::parse("name: t\nmodel: \"a\\0b\"\n").unwrap_err();
        assert!(matches!(&err, ManifestError::NulCharacter { field, .. } if field == "model"), "{err:?}");
        assert!(err.to_string().contains("`model` holds a NUL character"), "{err}");
        let err = TemplateConfig::parse("name: t\nenv:\n  list: [ok, \"x\\0\"]\n").unwrap_err();
        assert!(matches!(&err, ManifestError::NulCharacter { field, .. } if field == "env.list[1]"), "{err:?}");
        let err = TemplateConfig::parse("name: t\n\"k\\0\": 1\n").unwrap_err();
        assert!(matches!(&err, ManifestError::NulCharacter { .. }), "{err:?}");
        let err = PluginManifest::parse("name: p\nversion: \"1\\0\"\n").unwrap_err();
        assert!(matches!(&err, ManifestError::NulCharacter { field, .. } if field == "version"), "{err:?}");
        assert!(PluginManifest::parse("name: p\nversion: \"1.0\"\ndescription: \"a\\tb\"\n").is_ok());
    }

    #[test]
    fn config_full_example() {
        let yaml = "\
# A research agent
name: Researcher
runtime: hearth-agent
model: claude-sonnet
plugins:
  - web-search
  - notes.v2
temperature: 0.2
max_tokens: 4096
env:
  HOME: /srv
  flags: [a, b]
  1: one
  true: yes-key
  ~: null-key
";
        let parsed = config(yaml).unwrap();
        assert_eq!(parsed.name, "Researcher");
        assert_eq!(parsed.runtime.as_deref(), Some("hearth-agent"));
        assert_eq!(parsed.model.as_deref(), Some("claude-sonnet"));
        assert_eq!(parsed.plugins, names(&["web-search", "notes.v2"]));
        assert_eq!(
            parsed.settings,
            json!({
                "temperature": 0.2,
                "max_tokens": 4096,
                "env": {"HOME": "/srv", "flags": ["a", "b"], "1": "one", "true": "yes-key", "null": "null-key"},
            })
        );
    }

    #[test]
    fn config_accepts() {
        let cases: &[AcceptCase] = &[
            ("name: x\n", "x", None, None, &[], json!({})),
            ("name: x", "x", None, None, &[], json!({})),
            ("name: 'quoted: yes'\n", "quoted: yes", None, None, &[], json!({})),
            ("{name: flow, plugins: [a, b]}", "flow", None, None, &["a", "b"], json!({})),
            ("---\nname: x\n...\n", "x", None, None, &[], json!({})),
            ("name: x\nruntime:\nmodel: ~\nplugins:\n", "x", None, None, &[], json!({})),
            ("name: x\nruntime: ''\nmodel: '  '\n", "x", None, None, &[], json!({})),
            ("name: x\nplugins: []\n", "x", None, None, &[], json!({})),
            ("name: x\nruntime: r\nmodel: m\n", "x", Some("r"), Some("m"), &[], json!({})),
            ("name: x\nextra: null\n", "x", None, None, &[], json!({"extra": null})),
            ("name: x\nbig: 18446744073709551615\n", "x", None, None, &[], json!({"big": u64::MAX})),
            ("name: x\nneg: -3\n", "x", None, None, &[], json!({"neg": -3})),
            ("name: x\ntagged: !secret abc\n", "x", None, None, &[], json!({"tagged": "abc"})),
            ("name: x\nmulti: |\n  a\n  b\n", "x", None, None, &[], json!({"multi": "a\nb\n"})),
            (
                "name: x\nbase: &b {k: 1}\nderived:\n  <<: *b\n  j: 2\n",
                "x",
                None,
                None,
                &[],
                json!({"base": {"k": 1}, "derived": {"k": 1, "j": 2}}),
            ),
            ("name: Ünïcode 😀\n", "Ünïcode 😀", None, None, &[], json!({})),
        ];
        for (yaml, name, runtime, model, plugins, settings) in cases {
            let parsed = config(yaml).unwrap_or_else(|e| panic!("{yaml:?} rejected: {e}"));
            assert_eq!(parsed.name, *name, "{yaml:?}");
            assert_eq!(parsed.runtime.as_deref(), *runtime, "{yaml:?}");
            assert_eq!(parsed.model.as_deref(), *model, "{yaml:?}");
            assert_eq!(parsed.plugins, names(plugins), "{yaml:?}");
            assert_eq!(parsed.settings, *settings, "{yaml:?}");
        }
        // Name length is counted in characters, like workspace names.
        assert!(config(&format!("name: {}\n", "é".repeat(255))).is_ok());
    }

    #[test]
    fn config_rejects_with_clear_messages() {
        let too_long = format!("name: {}\n", "x".repeat(256));
        let cases: Vec<(&str, &str)> = vec![
            ("", "config.yaml: the document must be a mapping of fields to values, but it is empty"),
            ("# only a comment\n", "config.yaml: the document must be a mapping of fields to values, but it is empty"),
            ("- a\n- b\n", "config.yaml: the document must be a mapping of fields to values, but it is a list"),
            ("just text\n", "config.yaml: the document must be a mapping of fields to values, but it is a string"),
            ("runtime: r\n", "config.yaml: the required field `name` is missing"),
            ("name:\n", "config.yaml: the required field `name` is missing"),
            ("name: 42\n", "config.yaml: the field `name` must be a string, but it is a number"),
            ("name: [a]\n", "config.yaml: the field `name` must be a string, but it is a list"),
            ("name: '  '\n", "config.yaml: the field `name` must not be empty"),
            ("name: \"a\\nb\"\n", "config.yaml: the field `name` must not contain control characters"),
            (&too_long, "config.yaml: the field `name` must be at most 255 characters"),
            ("name: x\nruntime: 3\n", "config.yaml: the field `runtime` must be a string, but it is a number"),
            ("name: x\nmodel: {a: 1}\n", "config.yaml: the field `model` must be a string, but it is a mapping"),
            ("name: x\nplugins: web\n", "config.yaml: the field `plugins` must be a list of plugin names, but it is a string"),
            ("name: x\nplugins: [a, 3]\n", "config.yaml: the field `plugins[1]` must be a string, but it is a number"),
            (
                "name: x\nplugins: [ok, Bad]\n",
                "config.yaml: the field `plugins[1]` holds the plugin name \"Bad\", which does not match ^[a-z0-9][a-z0-9._-]{0,127}$",
            ),
            (
                "name: x\nplugins: ['../evil']\n",
                "config.yaml: the field `plugins[0]` holds the plugin name \"../evil\", which does not match ^[a-z0-9][a-z0-9._-]{0,127}$",
            ),
            ("name: x\nplugins: [a, b, a]\n", "config.yaml: the plugin \"a\" is listed more than once in `plugins`"),
            ("name: x\nf: .nan\n", "config.yaml: the field `f` holds .nan, which JSON cannot represent"),
            ("name: x\nenv:\n  l: [1, -.inf]\n", "config.yaml: the field `env.l[1]` holds -.inf, which JSON cannot represent"),
            (
                "name: x\nenv:\n  ? [1, 2]\n  : v\n",
                "config.yaml: the key at `env.?` must be a string, number, boolean or null, but it is a list",
            ),
            ("name: x\nenv:\n  1: a\n  '1': b\n", "config.yaml: the key `env.1` appears twice once keys are converted to strings"),
        ];
        for (yaml, expected) in cases {
            let err = config(yaml).map(|_| ()).expect_err(yaml);
            assert_eq!(err.to_string(), expected, "{yaml:?}");
        }
    }

    #[test]
    fn config_inf_nan_messages_use_yaml_spelling() {
        // Pin the exact spelling the YAML library uses for special floats, so the
        // table above documents reality.
        let err = config("name: x\nf: .inf\n").unwrap_err();
        assert!(matches!(err, ManifestError::NonFiniteNumber { ref field, .. } if field == "f"), "{err}");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let cases = [
            ("name: x\nplugins: [a\n", 3, 1),
            ("name: x\n  bad: indent\n", 2, 6),
            ("name: x\nname: y\n", 1, 1),
            ("name: x\n\tbad: tab\n", 2, 1),
            ("name: *missing\n", 1, 7),
            ("name: \"unterminated\n", 2, 1),
        ];
        for (yaml, line, column) in cases {
            let err = config(yaml).map(|_| ()).expect_err(yaml);
            match &err {
                ManifestError::Syntax { file, line: l, column: c, message } => {
                    assert_eq!((*file, *l, *c), ("config.yaml", line, column), "{yaml:?}: {err}");
                    assert!(!message.contains(&format!("at line {line} column {column}")), "{err}");
                    assert!(!message.is_empty());
                }
                other => panic!("{yaml:?}: expected a syntax error, got {other:?}"),
            }
            let text = err.to_string();
            assert!(text.starts_with(&format!("config.yaml: invalid YAML at line {line} column {column}: ")), "{text}");
        }
        // The exact shape, once.
        assert_eq!(
            config("name: x\n  bad: indent\n").unwrap_err().to_string(),
            "config.yaml: invalid YAML at line 2 column 6: mapping values are not allowed in this context"
        );
        assert_eq!(
            config("name: x\nname: y\n").unwrap_err().to_string(),
            "config.yaml: invalid YAML at line 1 column 1: duplicate entry with key \"name\""
        );
        // Several documents: the library gives no position.
        assert_eq!(
            config("name: a\n---\nname: b\n").unwrap_err().to_string(),
            "config.yaml: invalid YAML: deserializing from YAML containing more than one document is not supported"
        );
    }

    #[test]
    fn plugin_accepts() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("name: demo\nversion: 1.0.0\n", "demo", "1.0.0", None),
            ("name: demo\nversion: '2'\ndescription: Does things.\n", "demo", "2", Some("Does things.")),
            ("name: demo\nversion: 1.0\n", "demo", "1.0", None),
            ("name: demo\nversion: 1.10\n", "demo", "1.10", None),
            ("name: demo\nversion: 3\n", "demo", "3", None),
            ("name: demo\nversion: 2.5 # comment\n", "demo", "2.5", None),
            ("name: demo\nversion: 1e3\n", "demo", "1e3", None),
            ("name: demo\nversion: ' v1 '\n", "demo", "v1", None),
            ("name: demo\nversion: 1\ndescription:\n", "demo", "1", None),
            ("name: demo\nversion: 1\nsha256: deadbeef\n", "demo", "1", None),
            ("name: demo\nversion: 1\nsha256: 42\nauthor: me\ntags: [x]\n", "demo", "1", None),
            ("{name: flow, version: 0.1}", "flow", "0.1", None),
            ("\u{feff}sha256: x\nname: bom\nversion: 1.10\n", "bom", "1.10", None),
            ("name: demo\nversion: 1\n? [weird, key]\n: ignored\n", "demo", "1", None),
        ];
        for (yaml, name, version, description) in cases {
            let parsed = plugin(yaml).unwrap_or_else(|e| panic!("{yaml:?} rejected: {e}"));
            assert_eq!(parsed.name.as_str(), *name, "{yaml:?}");
            assert_eq!(parsed.version, *version, "{yaml:?}");
            assert_eq!(parsed.description.as_deref(), *description, "{yaml:?}");
        }
    }

    #[test]
    fn plugin_rejects_with_clear_messages() {
        let cases = [
            ("", "plugin.yaml: the document must be a mapping of fields to values, but it is empty"),
            ("version: 1\n", "plugin.yaml: the required field `name` is missing"),
            ("name: demo\n", "plugin.yaml: the required field `version` is missing"),
            ("name: demo\nversion:\n", "plugin.yaml: the required field `version` is missing"),
            ("name: demo\nversion: ''\n", "plugin.yaml: the field `version` must not be empty"),
            (
                "name: demo\nversion: true\n",
                "plugin.yaml: the field `version` must be a string (or a number such as 1.0), but it is a boolean",
            ),
            (
                "name: demo\nversion: [1]\n",
                "plugin.yaml: the field `version` must be a string (or a number such as 1.0), but it is a list",
            ),
            ("name: 7\nversion: 1\n", "plugin.yaml: the field `name` must be a string, but it is a number"),
            (
                "name: My Plugin\nversion: 1\n",
                "plugin.yaml: the field `name` holds the plugin name \"My Plugin\", which does not match ^[a-z0-9][a-z0-9._-]{0,127}$",
            ),
            (
                "name: demo\nversion: 1\ndescription: [a]\n",
                "plugin.yaml: the field `description` must be a string, but it is a list",
            ),
            ("name: demo\nversion: 1\nversion: 2\n", "plugin.yaml: invalid YAML at line 1 column 1: duplicate entry with key \"version\""),
            ("name: [demo\n", "plugin.yaml: invalid YAML at line 2 column 1: did not find expected ',' or ']' while parsing a flow sequence at line 1 column 7"),
        ];
        for (yaml, expected) in cases {
            let err = plugin(yaml).map(|_| ()).expect_err(yaml);
            assert_eq!(err.to_string(), expected, "{yaml:?}");
        }
    }

    const HASH: &str = "9f14d6c05e90d8c0bfa6b88f9ae5f7ad5663e67e9019e54d0d1a1953de6bd99f";

    #[test]
    fn sha256_line_is_appended_or_replaced() {
        let cases: Vec<(&str, String)> = vec![
            // Appended, with a newline added when the file lacks a final one.
            ("name: demo\nversion: 1\n", format!("name: demo\nversion: 1\nsha256: {HASH}\n")),
            ("name: demo\nversion: 1", format!("name: demo\nversion: 1\nsha256: {HASH}\n")),
            // CRLF files stay CRLF.
            ("name: demo\r\nversion: 1\r\n", format!("name: demo\r\nversion: 1\r\nsha256: {HASH}\r\n")),
            // Replaced in place; comments and spacing elsewhere untouched.
            (
                "# My plugin\nname:   demo   # the name\nsha256: old\nversion: 1\n",
                format!("# My plugin\nname:   demo   # the name\nsha256: {HASH}\nversion: 1\n"),
            ),
            ("sha256: old\nname: demo\nversion: 1\n", format!("sha256: {HASH}\nname: demo\nversion: 1\n")),
            ("name: demo\nversion: 1\nsha256: old", format!("name: demo\nversion: 1\nsha256: {HASH}")),
            ("name: demo\nversion: 1\nsha256:\n", format!("name: demo\nversion: 1\nsha256: {HASH}\n")),
            ("name: demo\nversion: 1\n\"sha256\" : 'x'\n", format!("name: demo\nversion: 1\nsha256: {HASH}\n")),
            ("name: demo\nversion: 1\nsha256: old\r\n", format!("name: demo\nversion: 1\nsha256: {HASH}\r\n")),
            // A multi-line old value is removed whole; the blank line after it stays.
            (
                "name: demo\nsha256: >\n  abc\n\n  def\n\nversion: 1\n",
                format!("name: demo\nsha256: {HASH}\n\nversion: 1\n"),
            ),
            // Duplicate sha256 lines collapse to one.
            ("sha256: a\nname: demo\nsha256: b\nversion: 1\n", format!("sha256: {HASH}\nname: demo\nversion: 1\n")),
            // Nested or look-alike keys are not touched.
            (
                "name: demo\nversion: 1\nfiles:\n  sha256: nested\nsha256sum: other\n",
                format!("name: demo\nversion: 1\nfiles:\n  sha256: nested\nsha256sum: other\nsha256: {HASH}\n"),
            ),
            // A byte-order mark is preserved.
            ("\u{feff}sha256: old\nname: demo\n", format!("\u{feff}sha256: {HASH}\nname: demo\n")),
            ("\u{feff}name: demo\n", format!("\u{feff}name: demo\nsha256: {HASH}\n")),
        ];
        for (input, expected) in cases {
            assert_eq!(plugin_yaml_with_sha256(input, HASH), expected, "{input:?}");
            // The result is still a valid plugin.yaml carrying the hash.
            let reparsed = parse_yaml(&expected).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(reparsed.get("sha256").and_then(Yaml::as_str), Some(HASH), "{input:?}");
        }
    }

    #[test]
    fn sha256_edit_keeps_the_manifest_equal() {
        let original = "name: demo # c\nversion: 1.10\ndescription: |\n  Multi\n  line\n";
        let edited = plugin_yaml_with_sha256(original, HASH);
        assert!(edited.starts_with(original));
        assert_eq!(plugin(&edited).unwrap(), plugin(original).unwrap());
    }

    #[test]
    fn sha256_edit_falls_back_when_a_line_edit_is_not_enough() {
        // A hash text YAML would read as a number gets quoted.
        let digits = "1".repeat(64);
        let edited = plugin_yaml_with_sha256("name: demo\nversion: 1\n", &digits);
        assert_eq!(edited, format!("name: demo\nversion: 1\nsha256: \"{digits}\"\n"));
        // Odd text cannot break out of its line.
        let edited = plugin_yaml_with_sha256("name: demo\n", "a\nversion: evil");
        assert_eq!(edited, "name: demo\nsha256: \"a\\nversion: evil\"\n");
        // A trailing `|` block scalar without a final newline: appending a
        // newline would change the description, so the line goes on top.
        let original = "name: demo\nversion: 1\ndescription: |\n  one\n  two";
        let edited = plugin_yaml_with_sha256(original, HASH);
        assert_eq!(edited, format!("sha256: {HASH}\n{original}"));
        assert_eq!(plugin(&edited).unwrap(), plugin(original).unwrap());
        // A flow-style document is re-serialized, with the same content.
        let edited = plugin_yaml_with_sha256("{name: demo, version: 1}\n", HASH);
        let value: Yaml = serde_norway::from_str(&edited).unwrap();
        assert_eq!(value.get("sha256").and_then(Yaml::as_str), Some(HASH));
        assert_eq!(value.get("name").and_then(Yaml::as_str), Some("demo"));
        // Not YAML at all: best effort, no panic.
        let edited = plugin_yaml_with_sha256("name: [broken\n", HASH);
        assert!(edited.ends_with(&format!("sha256: {HASH}\n")));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC*") {
            let _ = TemplateConfig::parse(&text);
            let _ = PluginManifest::parse(&text);
            let _ = plugin_yaml_with_sha256(&text, HASH);
        }

        /// Whatever a valid plugin.yaml looks like, writing the hash keeps the
        /// manifest and makes the hash readable.
        #[test]
        fn sha256_edit_preserves_valid_manifests(
            blocks in proptest::sample::subsequence(
                vec![
                    String::new(),
                    "# comment".to_owned(),
                    "extra: [1, 2]".to_owned(),
                    "nested:\n  sha256: inner".to_owned(),
                ],
                0..=4,
            ),
            name in "name: [a-z]{1,4}",
            version in "version: ([0-9]{1,2}(\\.[0-9]{1,2}){0,2}|'v[0-9]')",
            sha in proptest::option::of(proptest::prop_oneof![
                "sha256: [a-z0-9]{1,4}",
                proptest::strategy::Just("sha256:".to_owned()),
                proptest::strategy::Just("\"sha256\" : x".to_owned()),
                proptest::strategy::Just("sha256: >\n  abc\n\n  def".to_owned()),
            ]),
            description in proptest::option::of(proptest::prop_oneof![
                "description: [a-z ]{0,6}",
                proptest::strategy::Just("description: |\n  one\n\n  two".to_owned()),
            ]),
            seed in proptest::collection::vec(proptest::num::usize::ANY, 8),
            crlf in proptest::bool::ANY,
            final_newline in proptest::bool::ANY,
        ) {
            let mut parts: Vec<String> = blocks;
            parts.extend([Some(name), Some(version), sha, description].into_iter().flatten());
            // Deterministic shuffle driven by the generated seed.
            for (i, r) in seed.iter().enumerate() {
                let len = parts.len();
                parts.swap(i % len, r % len);
            }
            let newline = if crlf { "\r\n" } else { "\n" };
            let mut text = parts.join("\n").replace('\n', newline);
            if final_newline {
                text.push_str(newline);
            }
            let before = PluginManifest::parse(&text);
            proptest::prop_assert!(before.is_ok(), "generator produced an invalid manifest: {:?}", text);
            let edited = plugin_yaml_with_sha256(&text, HASH);
            proptest::prop_assert_eq!(PluginManifest::parse(&edited).ok(), before.ok(), "{:?} -> {:?}", text, edited);
            let value = parse_yaml(&edited).ok();
            proptest::prop_assert_eq!(value.as_ref().and_then(|v| v.get("sha256")).and_then(Yaml::as_str), Some(HASH));
            // A plain line edit was enough: apart from sha256 lines (and the
            // old value's continuation and blank lines) the author's text is kept.
            let kept = |t: &str| -> Vec<String> {
                t.lines()
                    .filter(|l| !l.trim().is_empty() && !l.contains("sha256"))
                    .filter(|l| !l.starts_with("  abc") && !l.starts_with("  def"))
                    .map(str::to_owned)
                    .collect()
            };
            proptest::prop_assert_eq!(kept(&edited), kept(&text));
        }
    }
}
