//! How a template's agent runs: `image:`, `command:` and `env:` of
//! `config.yaml`. Hearth's provisioners read `image`; `hearth agent` runs
//! `command` with `env` once delivery is complete.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_norway::Value as Yaml;

use super::parse::{kind, ManifestError};

/// Longest `image:` reference, in bytes (Docker's own limit on a reference
/// is 255 for the name; a tag and digest add to it).
pub const MAX_IMAGE_BYTES: usize = 512;
/// Most arguments a `command:` list may hold.
pub const MAX_COMMAND_ARGS: usize = 256;
/// Longest `command:` in all (a shell string, or every argument together),
/// in bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Most `env:` entries.
pub const MAX_ENV_ENTRIES: usize = 256;
/// Longest `env:` name, in bytes.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// Longest `env:` value, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;

/// Names `hearth agent` sets itself; a template may not set them.
pub const RESERVED_ENV_NAMES: &[&str] = &["WORKSPACE_ID", "PLATFORM_URL", "PLUGINS_DIR"];
/// A prefix of names `hearth agent` sets itself (`HEARTH_SERVER`, …).
pub const RESERVED_ENV_PREFIX: &str = "HEARTH_";

/// The program a template's agent runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// `command: [prog, arg, …]`: run as is, no shell.
    Argv(Vec<String>),
    /// `command: "…"`: run by `/bin/sh -c`.
    Shell(String),
}

impl Command {
    /// The argument vector to execute.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Argv(argv) => argv.clone(),
            Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
        }
    }
}

/// `image:`: a container image reference such as `ghcr.io/acme/agent:1.2`
/// or `agent@sha256:…`; no spaces or control characters.
pub(super) fn image(file: &'static str, value: Option<Yaml>) -> Result<Option<String>, ManifestError> {
    let Some(value) = value else { return Ok(None) };
    let Yaml::String(text) = value else {
        return Err(ManifestError::WrongType {
            file,
            field: "image".into(),
            expected: "a string",
            found: kind(&value),
        });
    };
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = |reason: String| ManifestError::InvalidValue { file, field: "image".into(), reason };
    if text.len() > MAX_IMAGE_BYTES {
        return Err(invalid(format!("is {} bytes; at most {MAX_IMAGE_BYTES} are allowed", text.len())));
    }
    if let Some(bad) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-/:@".contains(*c))) {
        return Err(invalid(format!(
            "holds {bad:?}; an image reference has only letters, digits and . _ - / : @ (such as ghcr.io/acme/agent:1.2)"
        )));
    }
    Ok(Some(text))
}

/// `command:`: a list of strings (the argument vector) or one string (a
/// shell command line).
pub(super) fn command(file: &'static str, value: Option<Yaml>) -> Result<Option<Command>, ManifestError> {
    let invalid = |field: String, reason: String| ManifestError::InvalidValue { file, field, reason };
    let command = match value {
        None => return Ok(None),
        Some(Yaml::String(script)) => {
            if script.trim().is_empty() {
                return Err(invalid("command".into(), "must not be empty".into()));
            }
            Command::Shell(script)
        }
        Some(Yaml::Sequence(items)) => {
            if items.is_empty() {
                return Err(invalid("command".into(), "must name a program: the list is empty".into()));
            }
            if items.len() > MAX_COMMAND_ARGS {
                return Err(invalid(
                    "command".into(),
                    format!("has {} arguments; at most {MAX_COMMAND_ARGS} are allowed", items.len()),
                ));
            }
            let mut argv = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Yaml::String(arg) => argv.push(arg),
                    Yaml::Number(n) => argv.push(n.to_string()),
                    Yaml::Bool(b) => argv.push(b.to_string()),
                    other => {
                        return Err(ManifestError::WrongType {
                            file,
                            field: format!("command[{i}]"),
                            expected: "a string",
                            found: kind(&other),
                        })
                    }
                }
            }
            if argv[0].trim().is_empty() {
                return Err(invalid("command[0]".into(), "must name a program, but it is empty".into()));
            }
            Command::Argv(argv)
        }
        Some(other) => {
            return Err(ManifestError::WrongType {
                file,
                field: "command".into(),
                expected: "a list of strings or a string",
                found: kind(&other),
            })
        }
    };
    let bytes = match &command {
        Command::Shell(script) => script.len(),
        Command::Argv(argv) => argv.iter().map(String::len).sum(),
    };
    if bytes > MAX_COMMAND_BYTES {
        return Err(invalid("command".into(), format!("is {bytes} bytes; at most {MAX_COMMAND_BYTES} are allowed")));
    }
    Ok(Some(command))
}

/// `env:`: a mapping of names to plain values (strings, numbers, booleans).
pub(super) fn env(file: &'static str, value: Option<Yaml>) -> Result<BTreeMap<String, String>, ManifestError> {
    let mapping = match value {
        None => return Ok(BTreeMap::new()),
        Some(Yaml::Mapping(mapping)) => mapping,
        Some(other) => {
            return Err(ManifestError::WrongType {
                file,
                field: "env".into(),
                expected: "a mapping of names to values",
                found: kind(&other),
            })
        }
    };
    if mapping.len() > MAX_ENV_ENTRIES {
        return Err(ManifestError::InvalidValue {
            file,
            field: "env".into(),
            reason: format!("has {} entries; at most {MAX_ENV_ENTRIES} are allowed", mapping.len()),
        });
    }
    let mut env = BTreeMap::new();
    for (key, value) in mapping {
        let Yaml::String(name) = key else {
            return Err(ManifestError::UnsupportedKey { file, field: "env.?".into(), found: kind(&key) });
        };
        let field = format!("env.{name}");
        let invalid = |reason: String| ManifestError::InvalidValue { file, field: field.clone(), reason };
        if let Some(reason) = env_name_problem(&name) {
            return Err(invalid(reason));
        }
        let text = match value {
            Yaml::String(text) => text,
            Yaml::Number(n) => n.to_string(),
            Yaml::Bool(b) => b.to_string(),
            Yaml::Null => String::new(),
            other => {
                return Err(ManifestError::WrongType {
                    file,
                    field,
                    expected: "a string, number or boolean",
                    found: kind(&other),
                })
            }
        };
        if text.len() > MAX_ENV_VALUE_BYTES {
            return Err(invalid(format!("is {} bytes; at most {MAX_ENV_VALUE_BYTES} are allowed", text.len())));
        }
        env.insert(name, text);
    }
    Ok(env)
}

/// Why `name` cannot be an environment variable a template sets, if it
/// cannot.
fn env_name_problem(name: &str) -> Option<String> {
    let valid = name.len() <= MAX_ENV_NAME_BYTES
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Some(format!(
            "is not a variable name: letters, digits and _, not starting with a digit, at most {MAX_ENV_NAME_BYTES} bytes"
        ));
    }
    if name.starts_with(RESERVED_ENV_PREFIX) || RESERVED_ENV_NAMES.contains(&name) {
        return Some(format!(
            "is set by hearth agent itself ({RESERVED_ENV_PREFIX}*, {}); choose another name",
            RESERVED_ENV_NAMES.join(", ")
        ));
    }
    None
}
