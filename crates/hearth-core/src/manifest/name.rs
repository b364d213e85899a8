//! [`PluginName`]: the plugin-name rule, checked by its only constructor.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::quote;

/// Longest plugin name, in bytes (the `{0,127}` of the pattern plus the first character).
pub const MAX_PLUGIN_NAME_BYTES: usize = 128;

/// The plugin name pattern, for messages and documentation.
pub const PLUGIN_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,127}$";

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
