//! Parsing `config.yaml` and `plugin.yaml` into [`TemplateConfig`] and
//! [`PluginManifest`], with errors that name the file and the field.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map as JsonMap, Value as Json};
use serde_norway::{Mapping, Value as Yaml};

use super::name::{PluginName, PLUGIN_NAME_PATTERN};
use super::program::{self, Command};
use super::{quote, TEMPLATE_CONFIG};
use crate::digest::PLUGIN_MANIFEST;
use crate::validate::MAX_NAME_CHARS;

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
    #[error("{file}: the field `{field}` {reason}")]
    InvalidValue { file: &'static str, field: String, reason: String },
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
    /// The container image the workspace runs in (`image:`); `None`: the
    /// image the operator maps `runtime` to.
    pub image: Option<String>,
    /// The program `hearth agent` runs once delivery is complete
    /// (`command:`); `None`: the agent runs no program.
    pub command: Option<Command>,
    /// Plain settings for the program's environment (`env:`), by name.
    pub env: BTreeMap<String, String>,
    /// Every other top-level field, converted to JSON: always an object.
    /// Kept so runtimes get the free-form settings without Hearth having to
    /// understand them.
    pub settings: Json,
}

/// A plugin's `plugin.yaml`, validated. Any `sha256:` field in the input is
/// ignored: Hearth computes the hash itself and writes it on download (see
/// [`plugin_yaml_with_sha256`](super::plugin_yaml_with_sha256)). Unknown fields are ignored too, so plugins
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
        let image = program::image(file, take(&mut top, "image"))?;
        let command = program::command(file, take(&mut top, "command"))?;
        let env = program::env(file, take(&mut top, "env"))?;

        let mut settings = JsonMap::new();
        for (key, value) in top {
            let key = key_to_string(file, "", key)?;
            let converted = yaml_to_json(file, &key, value)?;
            settings.insert(key, converted);
        }
        Ok(TemplateConfig { name, runtime, model, plugins, image, command, env, settings: Json::Object(settings) })
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
pub(super) fn parse_yaml(yaml: &str) -> Result<Yaml, serde_norway::Error> {
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
pub(super) fn kind(value: &Yaml) -> &'static str {
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
